"""Who is asking: Slack user → email (users.info) → CRM user, cached in the state store.

Why here and not in each listener: every action is scoped to the asker's own list
(DESIGN 2.10), so there is exactly one way to find out who the asker is, and one set of
clear messages for those who cannot be mapped (DESIGN 6).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sync_engine.model import CrmUser
from sync_engine.service import UnknownUser

if TYPE_CHECKING:
    from sync_engine.service import Engine

log = logging.getLogger(__name__)


class NotMapped(Exception):
    """This Slack user cannot act: the message says why and whom to ask."""


def crm_user_for(client: WebClient, engine: Engine, slack_user_id: str) -> CrmUser:
    """The CRM user behind a Slack user, or NotMapped with a message for them."""
    if not slack_user_id:
        raise NotMapped("I could not tell who sent this request; please try again.")
    cached = engine.slack_email(slack_user_id)
    if cached:
        try:
            return _checked(engine.user(cached))
        except UnknownUser:
            pass  # the address may have changed in Slack, or the CRM user went: ask Slack again
    email, tz = _slack_profile(client, slack_user_id)
    try:
        user = _checked(engine.user(email))
    except UnknownUser as exc:
        raise NotMapped(_sentence(str(exc))) from None
    engine.remember_slack_user(slack_user_id, email, tz=tz)
    return user


def _checked(user: CrmUser) -> CrmUser:
    if user.deleted:
        raise NotMapped(
            f"Your CRM user ({user.email}) is deactivated, so I can't keep contacts for you. "
            "Ask your CRM administrator to reactivate it."
        )
    return user


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def _slack_profile(client: WebClient, slack_user_id: str) -> tuple[str, str | None]:
    """The user's email (needs users:read.email) and time zone, from users.info."""
    try:
        response = client.users_info(user=slack_user_id)
    except SlackApiError as exc:
        error = exc.response.get("error", "") if exc.response is not None else ""
        log.warning("users.info failed for %s: %s", slack_user_id, error)
        if error in ("missing_scope", "not_allowed_token_type"):
            raise NotMapped(
                "This app can't read email addresses in Slack yet (it needs the "
                "users:read.email scope). Ask your Slack admin to reinstall it."
            ) from None
        if error in ("user_not_found", "user_not_visible"):
            raise NotMapped(
                "I can't look up your Slack account (it may belong to another workspace), so "
                "I can't find your CRM user. Ask your Slack admin."
            ) from None
        raise NotMapped(
            "Slack could not tell me who you are just now; please try again in a minute."
        ) from None
    info = response.get("user") or {}
    if info.get("deleted"):
        raise NotMapped("Your Slack account is deactivated, so it can't use My CRM Contacts.")
    if info.get("is_bot"):
        raise NotMapped("Bots can't have a My CRM Contacts list.")
    email = str((info.get("profile") or {}).get("email") or "").strip()
    if not email:
        raise NotMapped(
            "I can't see an email address on your Slack profile, so I can't find your CRM "
            "user. Ask your Slack admin (guests and hidden emails can't be matched)."
        )
    tz = info.get("tz")
    return email, str(tz) if tz else None
