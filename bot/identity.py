"""Who is asking: Slack user → email (users.info) → CRM user, cached in the state store.

Why here and not in each listener: every action is scoped to the asker's own list
(DESIGN 2.10), so there is exactly one way to find out who the asker is, and one set of
clear messages for those who cannot be mapped (DESIGN 6).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sync_engine.answers import SlackIdTaken, UnknownUser
from sync_engine.model import CrmUser

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
            return engine.user(cached)  # UnknownUser for an inactive one too
        except UnknownUser:
            pass  # the address may have changed in Slack, or the CRM user went: ask Slack again
    team = engine.settings.slack_team_id or _our_team(client)
    email, tz = _slack_profile(client, slack_user_id, team)
    try:
        user = engine.user(email)
    except UnknownUser as exc:
        raise NotMapped(_sentence(str(exc))) from None
    try:
        engine.remember_slack_user(slack_user_id, email, tz=tz)
    except SlackIdTaken as taken:
        if not _gone(client, taken.slack_user_id, team, email):
            log.warning(
                "Slack account %s was refused: the CRM user %s is already linked to Slack "
                "account %s. If that is wrong, deactivate the old account in Slack.",
                slack_user_id,
                user.email,
                taken.slack_user_id,
                extra={"event": "slack_identity_conflict"},
            )
            raise NotMapped(TAKEN) from None
        log.info(
            "Slack account %s replaces %s (deactivated, or not this email now) for %s",
            slack_user_id,
            taken.slack_user_id,
            user.email,
            extra={"event": "slack_identity_replaced"},
        )
        engine.remember_slack_user(slack_user_id, email, tz=tz, replace=True)
    return user


TAKEN = (
    "Your email address is already linked to another Slack account, so I can't use it for "
    "this one. I've told the admin; ask them if this is your account."
)
_teams: dict[str, str] = {}
_teams_lock = threading.Lock()


def _our_team(client: WebClient) -> str:
    """Our workspace's id, from auth.test once per token (SLACK_TEAM_ID overrides it)."""
    key = client.token or ""
    with _teams_lock:
        if key in _teams:
            return _teams[key]
    try:
        team = str(client.auth_test().get("team_id") or "")
    except SlackApiError:
        team = ""
    if not team:
        raise NotMapped(
            "Slack could not tell me who you are just now; please try again in a minute."
        )
    with _teams_lock:
        _teams[key] = team
    return team


def _in_team(info: dict[str, Any], team: str) -> bool:
    """A member of our workspace (on Enterprise Grid, one of the user's workspaces)."""
    teams = {str(info.get("team_id") or "")}
    teams.update(str(t) for t in (info.get("enterprise_user") or {}).get("teams") or [])
    return team in teams


def _gone(client: WebClient, slack_user_id: str, team: str, email: str) -> bool:
    """Whether the Slack account that has a CRM user no longer claims it (deactivated,
    not ours any more, or its email changed), so that another may take its place."""
    try:
        info = client.users_info(user=slack_user_id).get("user") or {}
    except SlackApiError as exc:
        error = exc.response.get("error", "") if exc.response is not None else ""
        return error in ("user_not_found", "user_not_visible")
    now = str((info.get("profile") or {}).get("email") or "").strip().lower()
    return bool(info.get("deleted")) or not _in_team(info, team) or now != email.strip().lower()


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def _slack_profile(client: WebClient, slack_user_id: str, team: str) -> tuple[str, str | None]:
    """The user's email (needs users:read.email) and time zone, from users.info.

    Only a full member of our workspace with a confirmed email is mapped to a CRM user:
    anyone can type any address into a profile in another workspace or as a guest. The
    user object's `team_id`, `is_restricted` / `is_ultra_restricted` (guests) and
    `is_email_confirmed` are those of users.info (docs.slack.dev/reference/methods/users.info).
    """
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
    if not _in_team(info, team):
        log.warning(
            "Slack account %s of workspace %s refused: not our workspace",
            slack_user_id,
            info.get("team_id"),
            extra={"event": "slack_other_workspace"},
        )
        raise NotMapped(
            "Your Slack account belongs to another workspace, so I can't find your CRM user. "
            "Ask your Slack admin."
        )
    if info.get("is_restricted") or info.get("is_ultra_restricted"):
        raise NotMapped("Guest accounts can't have a My CRM Contacts list; ask your Slack admin.")
    if info.get("is_email_confirmed") is not True:
        raise NotMapped(
            "The email address on your Slack account isn't confirmed yet, so I can't match it "
            "to your CRM user. Confirm it in Slack, then try again."
        )
    email = str((info.get("profile") or {}).get("email") or "").strip()
    if not email:
        raise NotMapped(
            "I can't see an email address on your Slack profile, so I can't find your CRM "
            "user. Ask your Slack admin (guests and hidden emails can't be matched)."
        )
    tz = info.get("tz")
    return email, str(tz) if tz else None
