"""`EwsMailbox`: one mailbox's default Contacts folder on Exchange Server, over EWS."""

from __future__ import annotations

import logging
import threading
from typing import Any

from exchangelib.errors import (
    ErrorNonPrimarySmtpAddress,
    MalformedResponseError,
)
from exchangelib.fields import FieldPath
from exchangelib.folders import Contacts
from exchangelib.items import ID_ONLY

from sync_engine.config import Settings
from sync_engine.mailbox.base import PROCESS_IDENTITIES, MailboxIdentities
from sync_engine.mailbox.ews.addresses import Addresses
from sync_engine.mailbox.ews.connection import Connection, parse_version
from sync_engine.mailbox.ews.errors import AccessWords
from sync_engine.mailbox.ews.listing import Listing
from sync_engine.mailbox.ews.mapping import register_properties
from sync_engine.mailbox.ews.services import CountedGetFolder
from sync_engine.mailbox.ews.writes import Writes
from sync_engine.model import ContactFields

log = logging.getLogger(__name__)


class EwsMailbox(Connection, AccessWords, Addresses, Listing, Writes):
    """One mailbox's default Contacts folder on Exchange Server, over EWS."""

    kind = "ews"

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
        identities: MailboxIdentities | None = None,
    ) -> None:
        """`timeout` is per HTTP request; a failing call is tried at most `max_attempts`
        times and sleeps at most `max_wait` seconds in all (a server asking for a longer
        back-off than is left makes the call fail at once, for the next run to pick up).
        Unset, they come from the settings' `ews_timeout` / `ews_retry_max_wait` when the
        Settings model has them, else 60 s and 120 s. The first pause is `base_delay`
        (default: 1 s, less when `max_wait` is small) and doubles on each retry.
        `identities` (the state store) keeps the primary SMTP address of an alias."""
        register_properties()
        self.address = address.strip().lower()
        self.batch_size = batch_size
        self.page_size = page_size
        self.requests = 0
        self.timeout = float(timeout or getattr(settings, "ews_timeout", None) or 60.0)
        self.max_attempts = max_attempts
        if max_wait is None:  # 0 is a setting (never sleep), not "unset"
            max_wait = getattr(settings, "ews_retry_max_wait", None)
        self.max_wait = float(120.0 if max_wait is None else max_wait)
        self.base_delay = base_delay if base_delay is not None else min(1.0, self.max_wait / 20)
        self.category = settings.crm_category
        self._settings = settings
        self._lock = threading.Lock()
        self._impersonation = settings.ews_impersonation
        self._username = settings.ews_username or settings.graph_client_id or ""
        self._url = settings.ews_url or "(autodiscover)"
        self._version = parse_version(settings.ews_version)
        self._identities = identities or PROCESS_IDENTITIES
        # Exchange wants the primary SMTP address; an alias is learned once and kept.
        stored = self._identities.mailbox_identity(self._identity_target(), self.address)
        self.smtp_address = (stored or self.address).lower()
        self._switched = False
        self._legacy_crm_ids: dict[str, int] = {}  # item id -> CRM id under the legacy set
        self._resolved_addresses: dict[str, str | None] = {}  # EX address -> SMTP, this run
        self.target_id = self._identity_target()
        self._account = self._open(settings)

    @staticmethod
    def as_held(fields: ContactFields) -> ContactFields:
        """Exchange Server holds every mapped field in a slot of its own."""
        return fields

    def forget_state(self) -> None:
        """Nothing of the folder is kept between runs here: FindItem reads it whole."""

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
        fields = {
            FieldPath(field=Contacts.get_field_by_fieldname(n)) for n in ("name", "total_count")
        }

        def get_folder() -> Any:
            service = self._service(CountedGetFolder)
            answers = list(
                service.call(folders=[self._folder()], additional_fields=fields, shape=ID_ONLY)
            )
            answer = answers[0] if answers else MalformedResponseError("no answer to GetFolder")
            if isinstance(answer, ErrorNonPrimarySmtpAddress):
                raise answer  # the retry loop switches to the primary address
            return answer

        answer = self._call(get_folder)
        if isinstance(answer, Exception):
            raise self._fatal(answer)
        if self.smtp_address != self.address:
            findings.append(
                f"{self.address} is an alias; Exchange's primary SMTP address for it is "
                f"{self.smtp_address}, which is stored and used for every request."
            )
        findings.append(
            f"Contacts folder of {self.address} is readable: "
            f'"{answer.name or "Contacts"}", {answer.total_count or 0} items. All is well.'
        )
        return findings
