"""The EWS account, the credentials, the bounded retry loop and secret-free logging."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
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
    Credentials,
    FailFast,
    Identity,
    Version,
)
from exchangelib.errors import (
    ErrorInternalServerTransientError,
    ErrorMailboxMoveInProgress,
    ErrorMailboxStoreUnavailable,
    ErrorNonPrimarySmtpAddress,
    ErrorServerBusy,
    ErrorTimeoutExpired,
    EWSError,
    MalformedResponseError,
)
from exchangelib.folders import Contacts
from oauthlib.oauth2 import TokenExpiredError

from sync_engine.config import ConfigError, Settings
from sync_engine.mailbox.base import MailboxError
from sync_engine.mailbox.ews.errors import clip
from sync_engine.mailbox.ews.services import OAuthCredentials, contacts_folder
from sync_engine.ops.metrics import throttle_waited

log = logging.getLogger(__name__)


class HideSecrets(logging.Filter):
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


class HideOAuthSecrets(logging.Filter):
    """requests-oauthlib logs token request bodies (the client secret) and tokens at DEBUG."""

    WORDS = ("body", "token", "headers", "data", "content")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and any(w in str(record.msg).lower() for w in self.WORDS):
            record.msg = re.sub(r"%[^%a-zA-Z]*[a-zA-Z]", "********", str(record.msg))
            record.args = ()
        return True


for _name, _filter in (
    ("exchangelib.util", HideSecrets),
    ("exchangelib.protocol", HideSecrets),
    ("requests_oauthlib.oauth2_session", HideOAuthSecrets),
):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _filter) for f in _logger.filters):
        _logger.addFilter(_filter())


MAX_CONNECTIONS = 4

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


@dataclass
class RetryBudget:
    """The retry budget of one call: attempts and total sleep are both bounded."""

    max_attempts: int
    max_wait: float
    base_delay: float
    attempts: int = 0
    waited: float = 0.0


class Connection:
    """Opening the account and retrying calls (mixed into EwsMailbox)."""

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
            credentials = OAuthCredentials(
                client_id=settings.graph_client_id,
                client_secret=settings.graph_client_secret.get_secret_value(),
                tenant_id=settings.graph_tenant_id,
                identity=Identity(primary_smtp_address=self.smtp_address),
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
                self.smtp_address,
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
        return contacts_folder(self._account, self.smtp_address)

    def _identity_target(self) -> str:
        return f"ews {self._url}"

    def _switch_to_primary(self, exc: BaseException) -> bool:
        """After ErrorNonPrimarySmtpAddress: use the primary address Exchange named (once),
        keep it in the state store, and say whether the request is worth sending again.

        messages.xsd/ResponseCodeType: the impersonation header and a folder's Mailbox take
        the primary SMTP address only; an alias is refused and MessageXml names the primary."""
        primary = getattr(exc, "primary_smtp_address", None)
        if not primary or primary == self.smtp_address or self._switched:
            return False
        log.info("%s is an alias; Exchange's primary address is %s", self.address, primary)
        self._switched = True
        self.smtp_address = primary
        self._identities.remember_mailbox_identity(self._identity_target(), self.address, primary)
        self._account = self._open(self._settings)
        return True

    # -- the retry loop -----------------------------------------------------------------

    def _budget(self) -> RetryBudget:
        return RetryBudget(self.max_attempts, self.max_wait, self.base_delay)

    def _call(self, fn: Callable[[], T], budget: RetryBudget | None = None) -> T:
        """Run one request, retrying transient failures within the budget."""
        budget = budget or self._budget()
        while True:
            try:
                return fn()
            except Exception as exc:
                self._wait_or_raise(exc, budget)

    def _wait_or_raise(self, exc: BaseException, budget: RetryBudget) -> None:
        """Sleep before the next attempt, or raise MailboxError when the budget is spent."""
        if isinstance(exc, ErrorNonPrimarySmtpAddress) and self._switch_to_primary(exc):
            return  # sent again at once to the primary address: not a failure to wait on
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
            clip(str(exc), 120),
            delay,
            budget.attempts + 1,
            budget.max_attempts,
        )
        if kind == "busy":  # Exchange asked us to back off (ErrorServerBusy, a mailbox move)
            throttle_waited("ews", delay)
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

    def _gave_up(self, kind: str, exc: BaseException, budget: RetryBudget, delay: float) -> str:
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
