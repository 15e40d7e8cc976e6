"""The Exchange Server target: one mailbox's default Contacts folder over EWS (exchangelib).

Why it is built the way it is:

- One service account with ApplicationImpersonation serves every salesperson's mailbox
  (Sage CRM's model), or per-user/delegate access when `EWS_IMPERSONATION=false`.
- The EWS URL and the Exchange version come from the configuration, so no request is
  spent on autodiscover or version guessing (autodiscover only when `EWS_URL` is unset).
- Round trips are ours to count and to bound. exchangelib's services are used for the
  XML (payloads and parsing), but each call is made exactly once (exchangelib's own
  retry loop is switched off, FailFast) and retried here with a bounded back-off that
  honours `ErrorServerBusy`'s BackOffMilliseconds. Every HTTP POST adds one to
  `requests`.
- Partial updates are built field by field. exchangelib's `bulk_update` rewrites an
  indexed field as a whole (setting EmailAddress1 deletes EmailAddress2/3, setting the
  business phone deletes the home phone, ...), which would erase what the user typed in
  Outlook; here only the named entries are touched.
- Every per-item answer inside a batch is kept: an error on one item fails that item only
  (exchangelib would raise on the first unexpected item error and lose the rest).
- The salutation (DESIGN's "title") has no writable first-class EWS property
  (`CompleteName.Title` is read-only); Outlook keeps it in PidTagDisplayNamePrefix
  (0x3A45), written here as an extended property.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    OAUTH2,
    UTC,
    Account,
    Build,
    Configuration,
    Contact,
    Credentials,
    ExtendedProperty,
    FailFast,
    Identity,
    OAuth2Credentials,
    Version,
)
from exchangelib.errors import (
    CASError,
    ErrorAccessDenied,
    ErrorImpersonateUserDenied,
    ErrorImpersonationDenied,
    ErrorImpersonationFailed,
    ErrorIncorrectSchemaVersion,
    ErrorInternalServerTransientError,
    ErrorInvalidSchemaVersionForMailboxVersion,
    ErrorInvalidServerVersion,
    ErrorMailboxMoveInProgress,
    ErrorMailboxStoreUnavailable,
    ErrorNonExistentMailbox,
    ErrorServerBusy,
    ErrorTimeoutExpired,
    EWSError,
    MalformedResponseError,
    RedirectError,
    TransportError,
    UnauthorizedError,
)
from exchangelib.fields import FieldOrder, FieldPath
from exchangelib.folders import Contacts
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress
from exchangelib.items import HARD_DELETE, ID_ONLY, SAVE_ONLY, SHALLOW
from exchangelib.properties import DistinguishedFolderId, Mailbox
from exchangelib.restriction import Q
from exchangelib.services import CreateItem, DeleteItem, FindItem, GetFolder, GetItem, UpdateItem
from oauthlib.oauth2 import TokenExpiredError

from sync_engine.config import ConfigError, Settings
from sync_engine.mailbox.base import MailboxAccessError, MailboxError
from sync_engine.model import ContactChange, ContactFields, MailboxContact, NewContact, WriteResult

log = logging.getLogger(__name__)

# The CRM person id lives in this named property (our own property set; never shown in Outlook).
CRM_ID_PROPERTY_SET = "6f3f0c53-2e2b-4a57-9d3b-1c2f8e4a7b10"
CRM_ID_PROPERTY_NAME = "CrmPersonId"
# Outlook's "Title" (salutation) is PidTagDisplayNamePrefix.
SALUTATION_PROPERTY_TAG = "0x3a45"


class CrmPersonId(ExtendedProperty):
    """The CRM person id on a contact (DESIGN rule 9: found again before anything is created)."""

    property_set_id = CRM_ID_PROPERTY_SET
    property_name = CRM_ID_PROPERTY_NAME
    property_type = "Integer"


class Salutation(ExtendedProperty):
    """Outlook's Title field (Mr., Dr., ...): PidTagDisplayNamePrefix."""

    property_tag = 0x3A45
    property_type = "String"


_registered = threading.Lock()


def _register_properties() -> None:
    """Register the extended properties on Contact once per process (exchangelib is global)."""
    with _registered:
        names = {f.name for f in Contact.FIELDS}
        if "crm_person_id" not in names:
            Contact.register("crm_person_id", CrmPersonId)
        if "crm_salutation" not in names:
            Contact.register("crm_salutation", Salutation)


class _HideSecrets(logging.Filter):
    """exchangelib logs request headers at DEBUG; a basic-auth header is the password."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict) and "request_headers" in args:
            headers = args.get("request_headers")
            if headers and "Authorization" in headers:
                clean = dict(headers)
                clean["Authorization"] = "********"
                record.args = {**args, "request_headers": clean}
        return True


class _HideOAuthSecrets(logging.Filter):
    """requests-oauthlib logs token request bodies (the client secret) and tokens at DEBUG."""

    WORDS = ("body", "token", "headers", "data", "content")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and any(w in str(record.msg).lower() for w in self.WORDS):
            record.msg = re.sub(r"%[^%a-zA-Z]*[a-zA-Z]", "********", str(record.msg))
            record.args = ()
        return True


for _name, _filter in (
    ("exchangelib.util", _HideSecrets),
    ("exchangelib.protocol", _HideSecrets),
    ("requests_oauthlib.oauth2_session", _HideOAuthSecrets),
):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _filter) for f in _logger.filters):
        _logger.addFilter(_filter())


# -- field mapping (DESIGN section 4) --------------------------------------------------

SIMPLE_FIELDS: dict[str, str] = {  # ContactFields name -> exchangelib Contact field
    "title": "crm_salutation",
    "first_name": "given_name",
    "middle_name": "middle_name",
    "last_name": "surname",
    "suffix": "generation",
    "company": "company_name",
    "job_title": "job_title",
    "department": "department",
    "web_page": "business_homepage",
    "display_name": "display_name",
    "file_as": "file_as",
}
PHONE_LABELS = {"business_phone": "BusinessPhone", "mobile_phone": "MobilePhone"}
ADDRESS_PARTS = {  # ContactFields name -> PhysicalAddress sub-field (label Business)
    "street": "street",
    "city": "city",
    "state": "state",
    "postal_code": "zipcode",
    "country": "country",
}
MAX_CONNECTIONS = 4
EMAIL_LABEL = "EmailAddress1"
ADDRESS_LABEL = "Business"

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


def parse_version(text: str | None) -> Version:
    """EWS_VERSION: an API name ("Exchange2016", "Exchange2013_SP1"), a product
    ("Exchange2019") or a build ("15.1", "15.2.1118.7"). Unset means Exchange 2013 SP1,
    the oldest Exchange Server this target supports, which every newer server accepts."""
    from exchangelib.version import VERSIONS

    value = (text or "Exchange2013_SP1").strip()
    if re.fullmatch(r"\d+(\.\d+){1,3}", value):
        parts = [int(p) for p in value.split(".")]
        return Version(build=Build(*parts))
    wanted = value.lower().replace(" ", "")
    for build, api_version, full_name in VERSIONS:
        product = full_name.replace("Microsoft ", "").replace(" ", "").lower()
        if wanted in (api_version.lower(), product, product.replace("server", "")):
            return Version(build=build, api_version=api_version)
    raise ConfigError(
        f"EWS_VERSION: {value!r} is not an Exchange version; use e.g. Exchange2016, "
        "Exchange2013_SP1 or a build number such as 15.1"
    )


def _code(exc: BaseException) -> str:
    """The EWS response code of an error, also for codes exchangelib has no class for."""
    unknown = re.match(r"Unknown ResponseCode in ResponseMessage: (\w+)", str(exc))
    return unknown.group(1) if unknown else type(exc).__name__


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- services: exchangelib's XML, one HTTP request per call, counted -------------------


class _Counted:
    """Mixin for exchangelib services: count each POST, no internal retries or guessing."""

    # Keep every per-item answer, including codes exchangelib does not know (TransportError).
    ERRORS_TO_CATCH_IN_RESPONSE = TransportError
    counter: EwsMailbox

    def _get_response(self, payload: Any, api_version: str) -> Any:
        self.counter._count()
        return super()._get_response(payload=payload, api_version=api_version)  # type: ignore[misc]

    def _get_elements(self, payload: Any) -> Iterator[Any]:
        # One attempt: EwsMailbox._call retries with its own bounded, honest back-off.
        yield from self._response_generator(payload=payload)  # type: ignore[attr-defined]

    def _api_versions_to_try(self) -> tuple[str, ...]:
        # The version is configured; a wrong one is a configuration error, not a guessing game.
        return (self._version_hint.api_version,)  # type: ignore[attr-defined]


class _FindItem(_Counted, FindItem):
    pass


class _GetItem(_Counted, GetItem):
    pass


class _GetFolder(_Counted, GetFolder):
    pass


class _CreateItem(_Counted, CreateItem):
    pass


class _DeleteItem(_Counted, DeleteItem):
    pass


class _UpdateItem(_Counted, UpdateItem):
    """UpdateItem with exactly the SetItemField / DeleteItemField elements we name."""

    def _update_elems(self, target: Any, fieldnames: Any) -> Iterator[Any]:
        for op, path, value in fieldnames:
            if op == "set":
                yield self._set_field_elem(target_model=Contact, field_path=path, value=value)
            else:
                yield self._delete_field_elem(field_path=path)


@dataclass
class _Retry:
    """The retry budget of one call: attempts and total sleep are both bounded."""

    max_attempts: int
    max_wait: float
    base_delay: float
    attempts: int = 0
    waited: float = 0.0


def _field(name: str) -> Any:
    return Contact.get_field_by_fieldname(name)


def _address_subfield(name: str) -> Any:
    return PhysicalAddress.get_field_by_fieldname(name)


def _single_path(field: str, value_cls: Any, label: str) -> FieldPath:
    """The path of one entry of a one-value indexed field (EmailAddress1, BusinessPhone)."""
    return FieldPath(field=_field(field), label=label, subfield=value_cls.value_field(version=None))


def _listing_fields() -> list[FieldPath]:
    """Only what the planner needs: the mapped fields, categories, CRM id, creation time."""
    paths = [FieldPath(field=_field(n)) for n in SIMPLE_FIELDS.values()]
    paths += [
        FieldPath(field=_field(n)) for n in ("categories", "datetime_created", "crm_person_id")
    ]
    paths.append(FieldPath(field=_field("email_addresses"), label=EMAIL_LABEL))
    paths += [FieldPath(field=_field("phone_numbers"), label=lbl) for lbl in PHONE_LABELS.values()]
    paths += [
        FieldPath(
            field=_field("physical_addresses"), label=ADDRESS_LABEL, subfield=_address_subfield(p)
        )
        for p in ADDRESS_PARTS.values()
    ]
    return paths


class EwsMailbox:
    """One mailbox's default Contacts folder on Exchange Server, over EWS."""

    def __init__(
        self,
        settings: Settings,
        address: str,
        *,
        batch_size: int = 100,
        page_size: int = 500,
        timeout: float | None = None,
        max_attempts: int = 5,
        max_wait: float | None = None,
        base_delay: float | None = None,
    ) -> None:
        """`timeout` is per HTTP request; a failing call is tried at most `max_attempts`
        times and sleeps at most `max_wait` seconds in all (a server asking for a longer
        back-off than is left makes the call fail at once, for the next run to pick up).
        Unset, they come from the settings' `ews_timeout` / `ews_retry_max_wait` when the
        Settings model has them, else 60 s and 120 s. The first pause is `base_delay`
        (default: 1 s, less when `max_wait` is small) and doubles on each retry."""
        _register_properties()
        self.address = address.strip().lower()
        self.batch_size = batch_size
        self.page_size = page_size
        self.requests = 0
        self.timeout = float(timeout or getattr(settings, "ews_timeout", None) or 60.0)
        self.max_attempts = max_attempts
        self.max_wait = float(
            max_wait
            if max_wait is not None
            else getattr(settings, "ews_retry_max_wait", None) or 120.0
        )
        self.base_delay = base_delay if base_delay is not None else min(1.0, self.max_wait / 20)
        self.category = settings.crm_category
        self._settings = settings
        self._lock = threading.Lock()
        self._impersonation = settings.ews_impersonation
        self._username = settings.ews_username or settings.graph_client_id or ""
        self._url = settings.ews_url or "(autodiscover)"
        self._version = parse_version(settings.ews_version)
        self._account = self._open(settings)

    # -- connection ---------------------------------------------------------------------

    def _open(self, settings: Settings) -> Account:
        """Build the exchangelib Account; no request is made here."""
        access = IMPERSONATION if settings.ews_impersonation else DELEGATE
        credentials: Any
        if settings.ews_auth == "oauth":
            if not (settings.graph_client_id and settings.graph_client_secret):
                raise ConfigError(
                    "EWS_AUTH=oauth needs GRAPH_TENANT_ID, GRAPH_CLIENT_ID and GRAPH_CLIENT_SECRET "
                    "(the app registration with the full_access_as_app EWS permission)"
                )
            credentials = _OAuthCredentials(
                client_id=settings.graph_client_id,
                client_secret=settings.graph_client_secret.get_secret_value(),
                tenant_id=settings.graph_tenant_id,
                identity=Identity(primary_smtp_address=self.address),
                authority=settings.graph_authority,
                resource=settings.ews_url,
            )
            auth_type = OAUTH2
        else:
            if not settings.ews_username or settings.ews_password is None:
                raise ConfigError(
                    "EWS_USERNAME and EWS_PASSWORD must be set for MAILBOX_BACKEND=ews "
                    "(the service account, e.g. svc-crm@example.com)"
                )
            credentials = Credentials(
                settings.ews_username, settings.ews_password.get_secret_value()
            )
            auth_type = NTLM if settings.ews_auth == "ntlm" else BASIC
        config = Configuration(
            credentials=credentials,
            service_endpoint=settings.ews_url or None,
            auth_type=auth_type,
            version=self._version,
            retry_policy=FailFast(),
            # Shared by every mailbox on this endpoint and account: a few mailboxes may sync
            # at once, well under Exchange's default EWS concurrency limit (27 per account).
            max_connections=MAX_CONNECTIONS,
        )
        try:
            return Account(
                self.address,
                access_type=access,
                config=config,
                autodiscover=not settings.ews_url,
                default_timezone=UTC,
                locale="en_US",
            )
        except (EWSError, OSError) as exc:  # autodiscover talks to the network
            raise self._fatal(exc) from None

    def close(self) -> None:
        """Sessions are pooled per endpoint and credentials by exchangelib; nothing to free."""

    def _count(self) -> None:
        with self._lock:
            self.requests += 1

    def _service(self, cls: type[T], **kwargs: Any) -> T:
        service = cls(account=self._account, timeout=self.timeout, **kwargs)  # type: ignore[call-arg]
        service.counter = self  # type: ignore[attr-defined]
        return service

    def _folder(self) -> Contacts:
        """The default Contacts folder, addressed by its distinguished id (no GetFolder)."""
        return Contacts(
            _distinguished_id=DistinguishedFolderId(
                id=Contacts.DISTINGUISHED_FOLDER_ID,
                mailbox=Mailbox(email_address=self.address),
            ),
            root=_Root(self._account),
        )

    # -- the retry loop -----------------------------------------------------------------

    def _budget(self) -> _Retry:
        return _Retry(self.max_attempts, self.max_wait, self.base_delay)

    def _call(self, fn: Callable[[], T], budget: _Retry | None = None) -> T:
        """Run one request, retrying transient failures within the budget."""
        budget = budget or self._budget()
        while True:
            try:
                return fn()
            except Exception as exc:
                self._wait_or_raise(exc, budget)

    def _wait_or_raise(self, exc: BaseException, budget: _Retry) -> None:
        """Sleep before the next attempt, or raise MailboxError when the budget is spent."""
        kind = self._transient(exc)
        if kind is None:
            raise self._fatal(exc) from None
        budget.attempts += 1
        delay = budget.base_delay * 2 ** (budget.attempts - 1)
        if isinstance(exc, ErrorServerBusy) and exc.back_off:
            delay = float(exc.back_off)  # the server said how long; honour it exactly
        left = budget.max_wait - budget.waited
        if budget.attempts >= budget.max_attempts or delay > left:
            raise MailboxError(self._gave_up(kind, exc, budget, delay)) from None
        log.info(
            "EWS %s for %s (%s); retrying in %.2fs (attempt %d of %d)",
            kind,
            self.address,
            _clip(str(exc), 120),
            delay,
            budget.attempts + 1,
            budget.max_attempts,
        )
        time.sleep(delay)
        budget.waited += delay

    @staticmethod
    def _transient(exc: BaseException) -> str | None:
        """Which kind of passing trouble this is, or None when retrying cannot help."""
        if isinstance(exc, ErrorServerBusy):
            return "busy"
        if isinstance(exc, ErrorTimeoutExpired):
            return "timeout" if "Timeout" in str(exc) else "connection"
        if isinstance(exc, ErrorInternalServerTransientError | ErrorMailboxStoreUnavailable):
            return "http"
        if isinstance(exc, ErrorMailboxMoveInProgress):
            return "busy"
        if isinstance(exc, MalformedResponseError):
            return "http"
        if isinstance(exc, TokenExpiredError):
            return "token"
        return None

    def _gave_up(self, kind: str, exc: BaseException, budget: _Retry, delay: float) -> str:
        tries = f"{budget.attempts} attempt{'s' if budget.attempts != 1 else ''}"
        later = "The next sync will try again."
        if kind == "busy":
            if (
                isinstance(exc, ErrorServerBusy)
                and exc.back_off
                and delay > budget.max_wait - budget.waited
            ):
                return (
                    f"Exchange is throttling requests for {self.address} and asked to wait "
                    f"{delay:.0f}s, longer than this run may wait. {later}"
                )
            return f"Exchange stayed too busy to serve {self.address} after {tries}. {later}"
        if kind == "timeout":
            return (
                f"Exchange at {self._url} did not answer within {self.timeout:g}s "
                f"({tries}) for {self.address}. {later}"
            )
        if kind == "connection":
            return (
                f"Could not reach Exchange at {self._url} for {self.address}: the connection "
                f"was refused or dropped ({tries}). Check EWS_URL and that the server is up. {later}"
            )
        status = re.search(r"Code: (\d{3})|HTTP (\d{3})", str(exc))
        code = next((g for g in status.groups() if g), "5xx") if status else "5xx"
        return (
            f"Exchange at {self._url} kept failing with HTTP {code} for {self.address} "
            f"({tries}). {later}"
        )

    def _fatal(self, exc: BaseException) -> MailboxError:
        """A plain-words error for a problem retrying cannot fix."""
        who = self._username or "the service account"
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
            return MailboxAccessError(
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
            return MailboxAccessError(
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
                f"EWS_URL {self._url} redirects elsewhere ({_clip(str(exc), 120)}); set EWS_URL "
                f"to the final https://<server>/EWS/Exchange.asmx address."
            )
        if isinstance(exc, CASError):
            return MailboxError(
                f"Exchange's front end could not route the request for {self.address} "
                f"({_clip(str(exc), 120)}). Ask the Exchange admin; the next sync will try again."
            )
        if isinstance(exc, TransportError) and "SSL" in str(exc).upper():
            return MailboxError(
                f"TLS failed talking to {self._url} ({_clip(str(exc), 120)}). Trust the server's "
                f"certificate authority with REQUESTS_CA_BUNDLE / SSL_CERT_FILE."
            )
        if isinstance(exc, MailboxError):
            return exc
        if isinstance(exc, EWSError | OSError):
            return MailboxError(
                f"Exchange could not serve {self.address}: {_code(exc)} "
                f"({_clip(str(exc), 160)}). The next sync will try again."
            )
        raise exc

    # -- reading ------------------------------------------------------------------------

    def list_contacts(self) -> Iterator[list[MailboxContact]]:
        """Page through the folder with FindItem, oldest first; one request per page.

        Offset paging alone can skip a contact when others are deleted in Outlook while
        the pages are read (everything after them moves up), and a skipped contact would
        look deleted by the user (DESIGN rule 7). So each page after the first starts one
        item early, on a contact already read: if that one is not there, the folder moved
        and the listing steps back a page (one more request, only in that race). Items
        read twice are dropped; new contacts sort last and cannot push others out.
        """
        fields = set(_listing_fields())
        folder = self._folder()
        seen: set[str] = set()
        offset: int | None = 0
        step_backs = 0
        while offset is not None:
            asked = offset
            items, next_offset, _ = self._call(
                lambda o=asked: self._find_page(folder, fields, o, None, overlap=o > 0)
            )
            if asked > 0 and (not items or items[0].id not in seen):
                step_backs += 1
                if step_backs > 20:
                    raise MailboxError(
                        f"The Contacts folder of {self.address} kept changing while it was "
                        "being read. The next sync will try again."
                    )
                offset = max(0, asked - self.page_size)
                continue
            page = [c for c in items if c.id not in seen]
            seen.update(c.id for c in page)
            if page:
                yield [_mailbox_contact(c) for c in page]
            offset = None if next_offset is None else max(0, next_offset - 1)

    def _find_page(
        self,
        folder: Contacts,
        fields: set[FieldPath],
        offset: int,
        restriction: Any,
        *,
        overlap: bool = False,
    ) -> tuple[list[Contact], int | None, int]:
        """One FindItem page: the contacts, the next offset (None at the end), the total.
        With `overlap`, one more item is asked for (the one before `offset`)."""
        size = self.page_size + (1 if overlap else 0)
        service = self._service(_FindItem, page_size=size)
        service.additional_fields = fields
        service.shape = ID_ONLY
        kwargs = dict(
            folders=[folder],
            additional_fields=fields,
            restriction=restriction,
            order_fields=[FieldOrder(field_path=FieldPath(field=_field("datetime_created")))],
            query_string=None,
            shape=ID_ONLY,
            depth=SHALLOW,
            calendar_view=None,
            page_size=size,
            offset=offset,
        )
        [(page, next_offset)] = service._get_pages(service.get_payload, kwargs, 1)
        if isinstance(page, Exception):
            raise page
        if page is None:
            return [], None, 0
        items = []
        for obj in service._elems_to_objs(service._get_elems_from_page(page, None, 0)):
            if isinstance(obj, Exception):
                raise obj
            if isinstance(obj, Contact):  # distribution lists live in Contacts too
                items.append(obj)
        return items, next_offset, int(page.get("TotalItemsInView") or 0)

    def _find_by_crm_ids(self, crm_ids: Sequence[int]) -> dict[int, Contact]:
        """Which of these CRM ids already have a contact (after an ambiguous create)."""
        if not crm_ids:
            return {}
        folder = self._folder()
        fields = {FieldPath(field=_field("crm_person_id"))}
        query = (
            Q(crm_person_id__in=list(crm_ids)) if len(crm_ids) > 1 else Q(crm_person_id=crm_ids[0])
        )
        restriction = _restriction(query, folder)
        found: dict[int, Contact] = {}
        offset: int | None = 0
        while offset is not None:
            items, offset, _ = self._find_page(folder, fields, offset, restriction)
            for item in items:
                if item.crm_person_id is not None:
                    found.setdefault(int(item.crm_person_id), item)
        return found

    def _get_items(self, item_ids: Sequence[str]) -> list[Contact | Exception]:
        service = self._service(_GetItem, chunk_size=len(item_ids))
        fields = {FieldPath(field=_field("categories"))}
        return list(
            service.call(
                items=[(i, None) for i in item_ids], additional_fields=fields, shape=ID_ONLY
            )
        )

    # -- writing ------------------------------------------------------------------------

    def create(self, items: Sequence[NewContact]) -> list[WriteResult]:
        """CreateItem in batches; after an ambiguous failure, look the CRM ids up before
        sending again so a retried batch never makes duplicates."""
        results: list[WriteResult] = []
        for start in range(0, len(items), self.batch_size):
            results += self._create_batch(list(items[start : start + self.batch_size]))
        return results

    def _create_batch(self, batch: list[NewContact]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(batch)
        contacts: dict[int, Contact] = {}
        for i, new in enumerate(batch):
            try:
                contacts[i] = self._new_contact(new)
            except (ValueError, TypeError) as exc:
                results[i] = WriteResult(
                    error=f"invalid value: {_clip(str(exc))}", error_kind="invalid"
                )
        todo = sorted(contacts)
        budget = self._budget()
        ambiguous = False
        while todo:
            try:
                if ambiguous:
                    found = self._find_by_crm_ids(
                        [cid for i in todo if (cid := batch[i].crm_id) is not None]
                    )
                    for i in todo:
                        hit = found.get(batch[i].crm_id)
                        if hit is not None:
                            results[i] = WriteResult(item_id=hit.id, change_key=hit.changekey)
                    todo = [i for i in todo if results[i] is None]
                    ambiguous = False
                    if not todo:
                        break
                service = self._service(_CreateItem, chunk_size=len(todo))
                answers = list(
                    service.call(
                        items=[contacts[i] for i in todo],
                        folder=self._folder(),
                        message_disposition=SAVE_ONLY,
                        send_meeting_invitations="SendToNone",
                    )
                )
            except Exception as exc:
                self._wait_or_raise(exc, budget)
                ambiguous = not isinstance(exc, ErrorServerBusy)  # busy: nothing was written
                continue
            again = self._collect(todo, answers, results, created=True)
            if again:
                self._wait_or_raise(ErrorServerBusy("items throttled inside the batch"), budget)
            todo = again
        return [r or WriteResult(error="not written", error_kind="other") for r in results]

    def _batch_call(self, service_class: Any, n: int, **kwargs: Any) -> list[Any]:
        """One batched EWS request for `n` items: one answer per item, or an error for the
        whole mailbox (raised, so the caller's retry loop decides)."""
        answers = list(self._service(service_class, chunk_size=n).call(**kwargs))
        if len(answers) != n:
            raise MalformedResponseError(f"expected {n} answers, got {len(answers)}")
        self._raise_if_mailbox_error(answers)
        return answers

    def _collect(
        self,
        todo: list[int],
        answers: list[Any],
        results: list[WriteResult | None],
        *,
        created: bool,
    ) -> list[int]:
        """Record per-item answers; return the items to send again (throttled ones)."""
        if len(answers) != len(todo):
            raise MalformedResponseError(f"expected {len(todo)} answers, got {len(answers)}")
        self._raise_if_mailbox_error(answers)
        again = []
        for i, answer in zip(todo, answers, strict=True):
            if isinstance(answer, Exception):
                if _code(answer) in TRANSIENT_ITEM_CODES:
                    again.append(i)
                else:
                    results[i] = _item_error(answer)
            elif created:
                results[i] = WriteResult(item_id=answer.id, change_key=answer.changekey)
        return again

    def _raise_if_mailbox_error(self, answers: Sequence[Any]) -> None:
        """Access errors are about the mailbox, not the item: fail the mailbox."""
        errors = [a for a in answers if isinstance(a, Exception)]
        for error in errors:
            if _code(error) in MAILBOX_CODES - {"ErrorAccessDenied"}:
                raise self._fatal(error)
        if (
            errors
            and len(errors) == len(answers)
            and all(isinstance(e, ErrorAccessDenied) for e in errors)
        ):
            raise self._fatal(errors[0])

    def _new_contact(self, new: NewContact) -> Contact:
        f = new.fields
        values: dict[str, Any] = {
            field: getattr(f, name) or None for name, field in SIMPLE_FIELDS.items()
        }
        values["display_name"] = (
            f.display_name or f.full_name() or f.company or f.email or "(no name)"
        )
        if f.email:
            values["email_addresses"] = [EmailAddress(label=EMAIL_LABEL, email=f.email)]
        phones = [
            PhoneNumber(label=lbl, phone_number=getattr(f, n))
            for n, lbl in PHONE_LABELS.items()
            if getattr(f, n)
        ]
        if phones:
            values["phone_numbers"] = phones
        parts = {sub: getattr(f, name) for name, sub in ADDRESS_PARTS.items() if getattr(f, name)}
        if parts:
            values["physical_addresses"] = [PhysicalAddress(label=ADDRESS_LABEL, **parts)]
            values["postal_address_index"] = ADDRESS_LABEL
        if new.categories:
            values["categories"] = list(new.categories)
        if new.crm_id is not None:  # None only for a contact made by hand
            values["crm_person_id"] = int(new.crm_id)
        contact = Contact(account=self._account, **values)
        contact.clean(version=self._account.version)
        return contact

    def update(self, changes: Sequence[ContactChange]) -> list[WriteResult]:
        """UpdateItem in batches, touching only the named fields. A stale change key is
        answered by one GetItem for the stale items and the change sent again on top of
        the current item (mapped fields: CRM wins; categories: the user's are kept)."""
        results: list[WriteResult] = []
        for start in range(0, len(changes), self.batch_size):
            results += self._update_batch(list(changes[start : start + self.batch_size]))
        return results

    def _update_batch(self, batch: list[ContactChange]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(batch)
        current: dict[int, ContactChange] = {}
        for i, change in enumerate(batch):
            if change.is_empty():
                results[i] = WriteResult(item_id=change.item_id, change_key=change.change_key)
            else:
                current[i] = change
        todo = sorted(current)
        budget = self._budget()
        rereads = 0
        while todo:
            try:
                plans = {i: self._update_ops(current[i]) for i in todo}
                for i in [i for i in todo if not plans[i]]:  # only blanks: nothing to write
                    results[i] = WriteResult(
                        item_id=current[i].item_id, change_key=current[i].change_key
                    )
                todo = [i for i in todo if plans[i]]
                if not todo:
                    break
            except (ValueError, TypeError) as exc:
                bad = next(i for i in todo if not self._valid(current[i]))
                results[bad] = WriteResult(
                    item_id=current[bad].item_id,
                    error=f"invalid value: {_clip(str(exc))}",
                    error_kind="invalid",
                )
                todo = [i for i in todo if i != bad]
                continue
            targets = [
                (
                    Contact(
                        account=self._account,
                        id=current[i].item_id,
                        changekey=current[i].change_key or None,
                    ),
                    plans[i],
                )
                for i in todo
            ]
            try:
                answers = self._batch_call(
                    _UpdateItem,
                    len(todo),
                    items=targets,
                    conflict_resolution="NeverOverwrite",
                    message_disposition=SAVE_ONLY,
                    send_meeting_invitations_or_cancellations="SendToNone",
                    suppress_read_receipts=True,
                )
            except Exception as exc:
                self._wait_or_raise(exc, budget)
                continue
            again, stale = [], []
            for i, answer in zip(todo, answers, strict=True):
                if not isinstance(answer, Exception):
                    item_id, change_key = answer
                    results[i] = WriteResult(item_id=item_id, change_key=change_key)
                elif _code(answer) in TRANSIENT_ITEM_CODES:
                    again.append(i)
                elif _code(answer) in CONFLICT_CODES and rereads < 2:
                    stale.append(i)
                else:
                    results[i] = _item_error(answer, current[i].item_id)
            if stale:
                rereads += 1
                try:
                    fresh = self._call(
                        lambda s=stale: self._get_items([current[i].item_id for i in s]), budget
                    )
                except MailboxError:
                    raise
                for i, item in zip(stale, fresh, strict=True):
                    if isinstance(item, Exception):
                        results[i] = _item_error(item, current[i].item_id)
                    else:
                        current[i] = self._rebase(current[i], item)
                        again.append(i)
            elif again:
                self._wait_or_raise(ErrorServerBusy("items throttled inside the batch"), budget)
            todo = sorted(again)
        return [
            r or WriteResult(item_id=c.item_id, error="not written", error_kind="other")
            for r, c in zip(results, batch, strict=True)
        ]

    def _valid(self, change: ContactChange) -> bool:
        try:
            self._update_ops(change)
        except (ValueError, TypeError):
            return False
        return True

    def _rebase(self, change: ContactChange, item: Contact) -> ContactChange:
        """The same change on top of the item as it is now (after an Outlook edit)."""
        categories = change.categories
        if categories is not None:
            now = [c for c in (item.categories or []) if c != self.category]
            categories = tuple(now + ([self.category] if self.category in categories else []))
        return ContactChange(
            item_id=change.item_id,
            change_key=item.changekey,
            set_fields=change.set_fields,
            categories=categories,
            set_crm_id=change.set_crm_id,
            clear_crm_id=change.clear_crm_id,
        )

    def _update_ops(self, change: ContactChange) -> list[tuple[str, FieldPath, Any]]:
        """The SetItemField / DeleteItemField list for exactly what the change names."""
        version = self._account.version
        ops: list[tuple[str, FieldPath, Any]] = []
        for name, raw in change.set_fields:
            value = raw.strip()
            if not value:
                continue  # a CRM blank never erases what the user typed
            if name in SIMPLE_FIELDS:
                field = _field(SIMPLE_FIELDS[name])
                ops.append(("set", FieldPath(field=field), field.clean(value, version=version)))
            elif name == "email":
                path = _single_path("email_addresses", EmailAddress, EMAIL_LABEL)
                ops.append(("set", path, EmailAddress(label=EMAIL_LABEL, email=value)))
            elif name in PHONE_LABELS:
                label = PHONE_LABELS[name]
                path = _single_path("phone_numbers", PhoneNumber, label)
                ops.append(("set", path, PhoneNumber(label=label, phone_number=value)))
            elif name in ADDRESS_PARTS:
                sub = ADDRESS_PARTS[name]
                path = FieldPath(
                    field=_field("physical_addresses"),
                    label=ADDRESS_LABEL,
                    subfield=_address_subfield(sub),
                )
                ops.append(("set", path, PhysicalAddress(label=ADDRESS_LABEL, **{sub: value})))
            else:
                raise ValueError(f"{name!r} is not a mapped contact field")
        if change.categories is not None:
            path = FieldPath(field=_field("categories"))
            if change.categories:
                ops.append(("set", path, list(change.categories)))
            else:
                ops.append(("delete", path, None))
        crm = FieldPath(field=_field("crm_person_id"))
        if change.set_crm_id is not None:
            ops.append(("set", crm, int(change.set_crm_id)))
        elif change.clear_crm_id:
            ops.append(("delete", crm, None))
        for op, _path, value in ops:
            if op == "set" and hasattr(value, "clean"):
                value.clean(version=version)
        return ops

    def delete(self, item_ids: Sequence[str]) -> list[WriteResult]:
        """DeleteItem (hard delete) in batches; an item already gone counts as deleted."""
        results: list[WriteResult] = []
        for start in range(0, len(item_ids), self.batch_size):
            results += self._delete_batch(list(item_ids[start : start + self.batch_size]))
        return results

    def _delete_batch(self, batch: list[str]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(batch)
        todo = list(range(len(batch)))
        budget = self._budget()
        while todo:
            try:
                answers = self._batch_call(
                    _DeleteItem,
                    len(todo),
                    items=[(batch[i], None) for i in todo],
                    delete_type=HARD_DELETE,
                    send_meeting_cancellations="SendToNone",
                    affected_task_occurrences="AllOccurrences",
                    suppress_read_receipts=True,
                )
            except Exception as exc:
                self._wait_or_raise(exc, budget)
                continue
            again = []
            for i, answer in zip(todo, answers, strict=True):
                if not isinstance(answer, Exception) or _code(answer) == "ErrorItemNotFound":
                    results[i] = WriteResult(item_id=batch[i])
                elif _code(answer) in TRANSIENT_ITEM_CODES:
                    again.append(i)
                else:
                    results[i] = _item_error(answer, batch[i])
            if again:
                self._wait_or_raise(ErrorServerBusy("items throttled inside the batch"), budget)
            todo = again
        return [
            r or WriteResult(item_id=i, error="not deleted", error_kind="other")
            for r, i in zip(results, batch, strict=True)
        ]

    # -- checking -----------------------------------------------------------------------

    def check(self) -> list[str]:
        """GetFolder on the default Contacts folder: proves login, impersonation, access."""
        how = (
            f"impersonating {self.address} as {self._username}"
            if self._impersonation
            else f"as {self._username} (delegate access to {self.address})"
        )
        findings = [
            f"EWS endpoint {self._url}, Exchange version {self._version.api_version}, "
            f"auth {self._settings.ews_auth}, {how}."
        ]
        if not self._settings.ews_version:
            findings.append(
                "EWS_VERSION is not set; assuming Exchange2013_SP1. Set it to the server's "
                "version (e.g. Exchange2016) to use everything the server offers."
            )
        service = self._service(_GetFolder)
        folder = self._folder()
        fields = {
            FieldPath(field=Contacts.get_field_by_fieldname(n)) for n in ("name", "total_count")
        }
        answers = self._call(
            lambda: list(service.call(folders=[folder], additional_fields=fields, shape=ID_ONLY))
        )
        answer = answers[0] if answers else MalformedResponseError("no answer to GetFolder")
        if isinstance(answer, Exception):
            raise self._fatal(answer)
        findings.append(
            f"Contacts folder of {self.address} is readable: "
            f'"{answer.name or "Contacts"}", {answer.total_count or 0} items. All is well.'
        )
        return findings


class _Root:
    """Just enough of a folder root for exchangelib to address a distinguished folder
    without first fetching the folder hierarchy (which would cost two GetFolder calls)."""

    def __init__(self, account: Account) -> None:
        self.account = account


class _OAuthCredentials(OAuth2Credentials):
    """Client-credentials OAuth against GRAPH_AUTHORITY, for the EWS resource of EWS_URL."""

    def __init__(self, *, authority: str, resource: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.authority = authority.rstrip("/")
        origin = re.match(r"https?://[^/]+", resource or "")
        self.resource = origin.group(0) if origin else "https://outlook.office365.com"

    @property
    def token_url(self) -> str:
        return f"{self.authority}/{self.tenant_id or 'common'}/oauth2/v2.0/token"

    @property
    def scope(self) -> list[str]:
        return [f"{self.resource}/.default"]


def _restriction(query: Q, folder: Contacts) -> Any:
    from exchangelib.restriction import Restriction

    return Restriction(query, folders=[folder], applies_to=Restriction.ITEMS)


def _item_error(exc: BaseException, item_id: str | None = None) -> WriteResult:
    code = _code(exc)
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
        item_id=item_id, error=f"{words} ({code}: {_clip(str(exc), 160)})", error_kind=kind
    )


def _mailbox_contact(c: Contact) -> MailboxContact:
    email = next((e.email for e in c.email_addresses or [] if e.label == EMAIL_LABEL), "")
    phones = {p.label: p.phone_number for p in c.phone_numbers or []}
    address = next((a for a in c.physical_addresses or [] if a.label == ADDRESS_LABEL), None)
    values: dict[str, Any] = {name: getattr(c, field) for name, field in SIMPLE_FIELDS.items()}
    values["email"] = email
    values.update({name: phones.get(label) for name, label in PHONE_LABELS.items()})
    values.update({name: getattr(address, sub, None) for name, sub in ADDRESS_PARTS.items()})
    created = c.datetime_created.isoformat() if c.datetime_created else ""
    crm_id = int(c.crm_person_id) if c.crm_person_id is not None else None
    return MailboxContact(
        item_id=c.id,
        change_key=c.changekey,
        fields=ContactFields.of(**values),
        categories=tuple(c.categories or ()),
        crm_id=crm_id,
        created_at=created,
    )
