"""Graph's answers in plain words: what the admin must do, and failed items."""

from __future__ import annotations

import base64
import json
import logging
from typing import TYPE_CHECKING, Any

import httpx

from sync_engine.mailbox.base import (
    MailboxAccessError,
    MailboxCredentialsError,
    MailboxError,
    MailboxNotFound,
)
from sync_engine.mailbox.graph.transport import (
    ITEM_NOT_FOUND,
    RETRY_STATUSES,
    Answer,
    first_line,
    json_of,
)
from sync_engine.model import (
    WriteResult,
)

if TYPE_CHECKING:
    from sync_engine.mailbox.graph.mailbox import GraphMailbox

log = logging.getLogger(__name__)

# 404 codes that mean the user segment of the path named nobody (Graph's `/users/{id}`
# takes an object id or a userPrincipalName, user-get v1.0), not that an item is gone.
USER_NOT_FOUND = frozenset(
    {"ErrorInvalidUser", "Request_ResourceNotFound", "ResourceNotFound", "UserNotFound"}
)


# KB 4462988 ("REST API is not yet supported for this mailbox"): HTTP 404 with one of these
# codes for a mailbox that is not in Exchange Online (on Exchange Server in a hybrid
# organisation; also an inactive or unlicensed one).
NOT_IN_EXCHANGE_ONLINE = frozenset({"MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI"})


class UnknownUser(Exception):
    """`/users/{address}` named nobody: the address may be an SMTP address, not the UPN."""


class OnPremises(MailboxAccessError):
    """Exchange Online does not hold this mailbox (KB 4462988): in a hybrid organisation it
    is on Exchange Server, where EWS serves it (MAILBOX_BACKEND=hybrid)."""

    def __init__(self, address: str, code: str) -> None:
        super().__init__(
            f"Exchange Online does not serve the mailbox of {address} (Graph says {code}): "
            "it is on Exchange Server, or has no Exchange Online licence. To serve mailboxes "
            "on Exchange Server too, set MAILBOX_BACKEND=hybrid with the EWS settings "
            "(docs/exchange-online.md)."
        )
        self.code = code


def failure(answer: Answer, *, item_id: str | None = None) -> WriteResult:
    status = answer.status
    if status == 404:
        kind = "not_found"
    elif status in (409, 412):
        kind = "conflict"
    elif status in (400, 422):
        kind = "invalid"
    elif status in RETRY_STATUSES:
        kind = "throttled"
    else:
        kind = "other"
    text = f"HTTP {status} {answer.code}: {answer.message}".strip() if status else "no answer"
    if kind == "not_found":
        text = "the contact is no longer in the mailbox"
    return WriteResult(item_id=item_id, error=text, error_kind=kind)


def token_roles(token: str) -> frozenset[str] | None:
    """The `roles` claim of an access token (read for diagnostics only, never verified)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return frozenset(str(r) for r in roles) if isinstance(roles, list) else frozenset()


def token_roles_or_none(mailbox: GraphMailbox) -> frozenset[str] | None:
    try:
        return token_roles(mailbox._access_token())
    except MailboxError:
        return None


class AccessWords:
    """Errors that stop the run for a mailbox (mixed into GraphMailbox)."""

    def _token_error(self, result: dict[str, Any]) -> MailboxError:
        codes = set(result.get("error_codes") or [])
        error = str(result.get("error", ""))
        text = first_line(str(result.get("error_description", "")))
        if codes & {7000215, 7000222, 7000216}:
            return MailboxCredentialsError(
                "Microsoft Entra ID refused GRAPH_CLIENT_SECRET (wrong or expired): create a new "
                "client secret under the app registration's Certificates & secrets and set "
                f"GRAPH_CLIENT_SECRET to its Value, not its Secret ID. ({text})"
            )
        if codes & {700016}:
            return MailboxCredentialsError(
                f"There is no app {self._client_id} in tenant {self._tenant}: check "
                f"GRAPH_CLIENT_ID and GRAPH_TENANT_ID. ({text})"
            )
        if codes & {90002, 90072}:
            return MailboxCredentialsError(
                f"Microsoft Entra ID does not know tenant {self._tenant}: check "
                f"GRAPH_TENANT_ID. ({text})"
            )
        if error in {"invalid_client", "unauthorized_client", "invalid_scope", "invalid_request"}:
            return MailboxCredentialsError(f"Microsoft Entra ID refused the app's sign-in: {text}")
        return MailboxError(f"Microsoft Entra ID could not issue a token now ({error}): {text}")

    def _ok_json(self, response: httpx.Response) -> dict[str, Any]:
        """The JSON of a 2xx answer; anything else becomes a plain-words `MailboxError`."""
        body = json_of(response)
        if 200 <= response.status_code < 300:
            if not isinstance(body, dict):
                raise MailboxError(f"Graph answered {self.address} with something that is not JSON")
            return body
        answer = Answer(response.status_code, body, dict(response.headers))
        self._raise_for_mailbox(answer, item_level=False)
        raise MailboxError(
            f"Microsoft Graph answered HTTP {answer.status} for {self.address}: "
            f"{answer.code or 'error'} {answer.message}".strip()
        )

    def _raise_for_mailbox(self, answer: Answer, *, item_level: bool = True) -> None:
        """401/403, and 404 for the mailbox itself, stop the run for this mailbox: an admin acts."""
        code, message = answer.code, answer.message
        if answer.status == 401:
            raise MailboxCredentialsError(
                f"Microsoft Graph refused the app's token for {self.address} ({code}). "
                "Check GRAPH_TENANT_ID and GRAPH_CLIENT_ID, and that the app holds the "
                "application permission Contacts.ReadWrite with admin consent."
            )
        if answer.status == 403:
            if "accesspolicy" in message.replace(" ", "").lower():
                raise MailboxAccessError(
                    f"An application access policy keeps app {self._client_id} away from "
                    f"{self.address}. An Exchange admin adds the mailbox to the policy's group "
                    f"(check with Test-ApplicationAccessPolicy -Identity {self.address} -AppId "
                    f"{self._client_id}); see docs/exchange-online.md."
                )
            raise MailboxAccessError(self._permission_text(token_roles_or_none(self)))
        if answer.status == 404 and not (item_level and code in ITEM_NOT_FOUND):
            if code in NOT_IN_EXCHANGE_ONLINE:
                raise OnPremises(self.address, code)
            if code in USER_NOT_FOUND and not self._user_resolved:
                raise UnknownUser(code)
            raise MailboxNotFound(
                f"There is no Exchange Online mailbox for {self.address} in tenant "
                f"{self._tenant} (Graph says {code or 'not found'}). Check the address and "
                "that the user has an Exchange Online licence." + self._lookup_hint
            )

    def _permission_text(self, roles: frozenset[str] | None) -> str:
        has = (
            f" Its token carries: {', '.join(sorted(roles)) or 'no permissions'}."
            if roles is not None
            else ""
        )
        return (
            f"Microsoft Graph denied app {self._client_id} access to {self.address}'s contacts: "
            "it needs the application permission Contacts.ReadWrite with admin consent "
            "(Entra admin center > App registrations > API permissions > Grant admin "
            "consent), or, with Exchange RBAC for Applications, the role 'Application "
            f"Contacts.ReadWrite' scoped to this mailbox.{has}"
        )

    def _throttled_text(self, status: int, response: httpx.Response) -> str:
        after = response.headers.get("Retry-After")
        wait = f"; it asks to wait {after} s" if after else ""
        return (
            f"Exchange Online is not serving {self.address} now (HTTP {status}{wait}). "
            "Nothing is lost: the next sync tries again."
        )

    def _unreachable(self, exc: Exception) -> str:
        hint = ""
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            hint = (
                " Its TLS certificate is not trusted: point SSL_CERT_FILE at a CA bundle "
                "that holds its CA."
            )
        return f"Microsoft Graph at {self._origin} does not answer ({type(exc).__name__}).{hint}"

    def _signin_unreachable(self, exc: Exception) -> str:
        hint = ""
        if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSLError" in type(exc).__name__:
            hint = (
                " Its TLS certificate is not trusted: point REQUESTS_CA_BUNDLE at a CA bundle "
                "that holds its CA."
            )
        return (
            f"The sign-in service {self._authority} does not answer ({type(exc).__name__}).{hint}"
        )
