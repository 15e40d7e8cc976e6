"""Who is asking in Teams: tenant check, aadObjectId → Graph user → CRM user.

Every action is scoped to the asker's own list (DESIGN 2.10), so there is one way to
find the asker: the activity's tenant must be TEAMS_TENANT_ID; the sender's Entra object
id (`from.aadObjectId`, set by Teams on every user activity) is looked up once in
Microsoft Graph (`GET /users/{id}?$select=mail,userPrincipalName,userType,accountEnabled`,
user-get v1.0; the app needs User.Read.All) with the Graph app registration the mailbox
target already uses (GRAPH_*); a guest (`userType` Guest) or a disabled account is
refused; the address (`mail`, else the UPN) is matched to a CRM user by email, as Slack
users are. The match is kept an hour (chat_accounts), then read again, so a member made
a guest, disabled or given another address stops acting within the hour (issue 22.5, as
for Slack: `Engine.SLACK_PROFILE_TTL`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
import msal

from sync_engine import chat_accounts
from sync_engine.answers import UnknownUser
from sync_engine.model import CrmUser
from sync_engine.store import utcnow

if TYPE_CHECKING:
    from sync_engine.config import Settings
    from sync_engine.service import Engine

log = logging.getLogger(__name__)

FRONT_END = "teams"
PROFILE_TTL = timedelta(hours=1)
GRAPH_TIMEOUT = 10.0
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"


class NotMapped(Exception):
    """This Teams user cannot act: the message says why and whom to ask."""


@dataclass(frozen=True)
class Asker:
    """The sender of one activity, as Teams says it (nothing here is trusted yet)."""

    aad_object_id: str
    tenant_id: str
    conversation_id: str
    service_url: str
    tz: str | None


OTHER_TENANT = "This app serves one organisation only, and your Teams account belongs to another."
GUEST = "Guest accounts can't have a My CRM Contacts list; ask your admin."
NO_GRAPH = (
    "I can't look up Teams users yet: the admin has to set GRAPH_TENANT_ID, GRAPH_CLIENT_ID "
    "and GRAPH_CLIENT_SECRET (docs/teams.md)."
)
GRAPH_DOWN = "Microsoft could not tell me who you are just now; please try again in a minute."


class Directory:
    """Graph's users, read with an app-only token (msal, cached per process)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._app: msal.ConfidentialClientApplication | None = None

    def user(self, object_id: str) -> dict[str, object] | None:
        """The user's mail, UPN, userType and accountEnabled; None when Graph knows none."""
        s = self._settings
        if not (s.graph_tenant_id and s.graph_client_id and s.graph_client_secret):
            raise NotMapped(NO_GRAPH)
        token = self._token()
        url = f"{s.graph_url.rstrip('/')}/users/{quote(object_id, safe='')}"
        params = {"$select": "id,mail,userPrincipalName,userType,accountEnabled"}
        try:
            response = httpx.get(
                url,
                params=params,
                headers={"Authorization": f"Bearer {token}"},
                timeout=GRAPH_TIMEOUT,
            )
        except httpx.HTTPError as exc:
            log.warning("Graph user look-up failed: %s", type(exc).__name__)
            raise NotMapped(GRAPH_DOWN) from None
        if response.status_code == 404:
            return None
        if response.status_code == 403:
            log.error(
                "Graph refused to read users: app %s needs the application permission "
                "User.Read.All (admin consent)",
                s.graph_client_id,
                extra={"event": "teams_graph_denied"},
            )
            raise NotMapped(
                "I'm not allowed to look up Teams users yet; I've told the admin "
                "(the app needs User.Read.All)."
            )
        if response.status_code != 200:
            log.warning("Graph user look-up answered HTTP %s", response.status_code)
            raise NotMapped(GRAPH_DOWN)
        return dict(response.json())

    def _token(self) -> str:
        s = self._settings
        with self._lock:
            if self._app is None:
                authority = s.graph_authority.rstrip("/")
                assert s.graph_client_secret is not None
                self._app = msal.ConfidentialClientApplication(
                    s.graph_client_id,
                    client_credential=s.graph_client_secret.get_secret_value(),
                    authority=f"{authority}/{s.graph_tenant_id}",
                    instance_discovery=None if authority == DEFAULT_AUTHORITY else False,
                )
            app = self._app
        scope = s.graph_url.split("/v1.0")[0].split("/beta")[0].rstrip("/") + "/.default"
        try:
            result = app.acquire_token_for_client(scopes=[scope])
        except (OSError, ValueError) as exc:
            log.warning("Graph sign-in failed: %s", type(exc).__name__)
            raise NotMapped(GRAPH_DOWN) from None
        if "access_token" not in result:
            log.error("Entra ID refused a Graph token: %s", result.get("error"))
            raise NotMapped(GRAPH_DOWN)
        return str(result["access_token"])


class Identities:
    """The one way a Teams sender becomes a CRM user (or a clear refusal)."""

    def __init__(self, engine: Engine, tenant_id: str, directory: Directory) -> None:
        self.engine = engine
        self.tenant_id = tenant_id.strip().lower()
        self.directory = directory

    def check_tenant(self, asker: Asker) -> None:
        if asker.tenant_id.strip().lower() != self.tenant_id:
            log.warning(
                "refused a Teams user of tenant %s: not TEAMS_TENANT_ID",
                asker.tenant_id[:64],
                extra={"event": "teams_other_tenant"},
            )
            raise NotMapped(OTHER_TENANT)

    def crm_user(self, asker: Asker) -> CrmUser:
        """The CRM user behind the sender, or NotMapped with a message for them."""
        self.check_tenant(asker)
        if not asker.aad_object_id:
            raise NotMapped("I could not tell who sent this request; please try again.")
        known = chat_accounts.find(self.engine, FRONT_END, "user", asker.aad_object_id)
        fresh = known and known.checked_at and utcnow() - known.checked_at < PROFILE_TTL
        if known and fresh and known.email:
            try:
                user = self.engine.user(known.email)
                self._remember(asker, user, checked=False)
                return user
            except UnknownUser:
                pass  # the CRM user went, or their address changed: ask Graph again
        profile = self.directory.user(asker.aad_object_id)
        if profile is None:
            raise NotMapped("Microsoft 365 doesn't know your account; ask your admin.")
        if str(profile.get("userType") or "").lower() == "guest":
            log.info("refused a Teams guest", extra={"event": "teams_guest"})
            raise NotMapped(GUEST)
        if profile.get("accountEnabled") is False:
            raise NotMapped("Your Microsoft 365 account is disabled; ask your admin.")
        email = str(profile.get("mail") or profile.get("userPrincipalName") or "").strip()
        if not email:
            raise NotMapped(
                "Your Microsoft 365 account has no email address, so I can't find your CRM "
                "user. Ask your admin."
            )
        try:
            user = self.engine.user(email)
        except UnknownUser as exc:
            text = str(exc)
            raise NotMapped(text[:1].upper() + text[1:].rstrip(".") + ".") from None
        self._remember(asker, user, checked=True)
        return user

    def _remember(self, asker: Asker, user: CrmUser, *, checked: bool) -> None:
        chat_accounts.remember_user(
            self.engine,
            FRONT_END,
            asker.aad_object_id,
            user,
            tenant_id=asker.tenant_id,
            conversation_id=asker.conversation_id,
            service_url=asker.service_url,
            tz=asker.tz,
            checked=checked,
        )
