"""EWS response codes: what each means for an item, and plain words for the admin."""

from __future__ import annotations

import logging
import re
from typing import TypeVar

from exchangelib.errors import (
    CASError,
    ErrorAccessDenied,
    ErrorImpersonateUserDenied,
    ErrorImpersonationDenied,
    ErrorImpersonationFailed,
    ErrorIncorrectSchemaVersion,
    ErrorInvalidSchemaVersionForMailboxVersion,
    ErrorInvalidServerVersion,
    ErrorNonExistentMailbox,
    ErrorNonPrimarySmtpAddress,
    EWSError,
    RedirectError,
    TransportError,
    UnauthorizedError,
)

from sync_engine.mailbox.base import (
    MailboxAccessError,
    MailboxCredentialsError,
    MailboxError,
    MailboxNotFound,
)
from sync_engine.model import WriteResult

log = logging.getLogger(__name__)

ERROR_KINDS = {
    "ErrorItemNotFound": "not_found",
    "ErrorInvalidIdMalformed": "not_found",
    "ErrorIrresolvableConflict": "conflict",
    "ErrorInvalidChangeKey": "conflict",
    "ErrorChangeKeyRequired": "conflict",
    "ErrorChangeKeyRequiredForWriteOperations": "conflict",
    "ErrorStaleObject": "conflict",
    "ErrorServerBusy": "throttled",
    "ErrorTimeoutExpired": "throttled",
    "ErrorInternalServerTransientError": "throttled",
    "ErrorBatchProcessingStopped": "throttled",
    "ErrorMailboxStoreUnavailable": "throttled",
}
TRANSIENT_ITEM_CODES = {code for code, kind in ERROR_KINDS.items() if kind == "throttled"}
CONFLICT_CODES = {code for code, kind in ERROR_KINDS.items() if kind == "conflict"}
MAILBOX_CODES = {
    "ErrorAccessDenied",
    "ErrorImpersonateUserDenied",
    "ErrorImpersonationDenied",
    "ErrorImpersonationFailed",
    "ErrorNonExistentMailbox",
}

T = TypeVar("T")


def response_code(exc: BaseException) -> str:
    """The EWS response code of an error, also for codes exchangelib has no class for."""
    unknown = re.match(r"Unknown ResponseCode in ResponseMessage: (\w+)", str(exc))
    return unknown.group(1) if unknown else type(exc).__name__


def clip(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def item_error(exc: BaseException, item_id: str | None = None) -> WriteResult:
    code = response_code(exc)
    kind = ERROR_KINDS.get(code)
    if kind is None:
        kind = (
            "invalid"
            if code.startswith(("ErrorInvalid", "ErrorSchema", "ErrorProperty"))
            else "other"
        )
    words = {
        "not_found": "the contact no longer exists in the mailbox",
        "conflict": "the contact was changed in Outlook at the same time; it will be retried",
        "invalid": "Exchange refused a value of this contact",
        "throttled": "Exchange was too busy to write this contact; it will be retried",
        "other": "Exchange could not write this contact",
    }[kind]
    return WriteResult(
        item_id=item_id, error=f"{words} ({code}: {clip(str(exc), 160)})", error_kind=kind
    )


class AccessWords:
    """Plain-words errors for problems retrying cannot fix (mixed into EwsMailbox)."""

    def _fatal(self, exc: BaseException) -> MailboxError:
        """A plain-words error for a problem retrying cannot fix."""
        who = self._username or "the service account"
        if isinstance(exc, ErrorNonPrimarySmtpAddress):
            primary = getattr(exc, "primary_smtp_address", None)
            named = f" ({primary})" if primary else ""
            return MailboxAccessError(
                f"Exchange wants the primary SMTP address of {self.address}'s mailbox{named}, "
                "not an alias, and did not accept it after one retry. Set the user's address "
                "in the CRM to the primary address (Get-Mailbox shows PrimarySmtpAddress)."
            )
        if isinstance(
            exc, ErrorImpersonateUserDenied | ErrorImpersonationDenied | ErrorImpersonationFailed
        ):
            return MailboxAccessError(
                f"The service account {who} may not impersonate {self.address}. An Exchange admin "
                f"must grant it the ApplicationImpersonation role for the sales team, e.g. "
                f"New-ManagementRoleAssignment -Name CRM-Contacts -Role ApplicationImpersonation "
                f"-User {who} -CustomRecipientWriteScope SalesTeam (see docs/exchange-server.md)."
            )
        if isinstance(exc, ErrorNonExistentMailbox):
            return MailboxNotFound(
                f"Exchange has no mailbox for {self.address}. Check the user's e-mail address in "
                f"the CRM, or ask the Exchange admin whether the mailbox was moved or removed."
            )
        if isinstance(exc, ErrorAccessDenied):
            if self._impersonation:
                fix = (
                    f"grant {who} the ApplicationImpersonation role for this user "
                    f"(New-ManagementRoleAssignment -Role ApplicationImpersonation -User {who})"
                )
            else:
                fix = (
                    f"give {who} access to the mailbox (Add-MailboxPermission -Identity "
                    f"{self.address} -User {who} -AccessRights FullAccess), or set "
                    f"EWS_IMPERSONATION=true with the ApplicationImpersonation role"
                )
            return MailboxAccessError(
                f"Exchange denied {who} access to the Contacts folder of {self.address}: {fix}."
            )
        if isinstance(exc, UnauthorizedError):
            return MailboxCredentialsError(
                f"Exchange at {self._url} rejected the login of {who} (HTTP 401). Check "
                f"EWS_USERNAME and EWS_PASSWORD, and that EWS_AUTH ({self._settings.ews_auth}) "
                f"is enabled on the EWS virtual directory."
            )
        if isinstance(
            exc,
            ErrorInvalidServerVersion
            | ErrorInvalidSchemaVersionForMailboxVersion
            | ErrorIncorrectSchemaVersion,
        ):
            return MailboxError(
                f"Exchange refused the version {self._version.api_version} (EWS_VERSION="
                f"{self._settings.ews_version or 'unset'}). Set EWS_VERSION to the server's "
                f"version, e.g. Exchange2013_SP1 or Exchange2016."
            )
        if isinstance(exc, RedirectError):
            return MailboxError(
                f"EWS_URL {self._url} redirects elsewhere ({clip(str(exc), 120)}); set EWS_URL "
                f"to the final https://<server>/EWS/Exchange.asmx address."
            )
        if isinstance(exc, CASError):
            return MailboxError(
                f"Exchange's front end could not route the request for {self.address} "
                f"({clip(str(exc), 120)}). Ask the Exchange admin; the next sync will try again."
            )
        if isinstance(exc, TransportError) and "SSL" in str(exc).upper():
            return MailboxError(
                f"TLS failed talking to {self._url} ({clip(str(exc), 120)}). Trust the server's "
                f"certificate authority with REQUESTS_CA_BUNDLE / SSL_CERT_FILE."
            )
        if isinstance(exc, MailboxError):
            return exc
        if isinstance(exc, EWSError | OSError):
            return MailboxError(
                f"Exchange could not serve {self.address}: {response_code(exc)} "
                f"({clip(str(exc), 160)}). The next sync will try again."
            )
        raise exc
