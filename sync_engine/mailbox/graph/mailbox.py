"""`GraphMailbox`: one Exchange Online mailbox's default Contacts folder, over Graph."""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from sync_engine.config import ConfigError, Settings
from sync_engine.mailbox.base import PROCESS_IDENTITIES, MailboxError, MailboxIdentities
from sync_engine.mailbox.graph.errors import AccessWords, OnPremises, token_roles
from sync_engine.mailbox.graph.listing import Listing
from sync_engine.mailbox.graph.mapping import as_held
from sync_engine.mailbox.graph.state import SavedState
from sync_engine.mailbox.graph.transport import BATCH_LIMIT, Transport, gate_for
from sync_engine.mailbox.graph.users import LOOKUP_PERMISSION, Users
from sync_engine.mailbox.graph.writes import Writes
from sync_engine.model import (
    ContactFields,
    MailboxContact,
)

log = logging.getLogger(__name__)


class GraphMailbox(Transport, AccessWords, Users, SavedState, Listing, Writes):
    """One Exchange Online mailbox's default Contacts folder, through Microsoft Graph."""

    kind = "graph"

    @staticmethod
    def as_held(fields: ContactFields) -> ContactFields:
        """CRM fields as this target holds them (see mapping.as_held)."""
        return as_held(fields)

    def __init__(
        self,
        settings: Settings,
        address: str,
        *,
        page_size: int = 500,
        max_retry_after: float = 60.0,
        max_attempts: int = 5,
        check_before_create: bool = False,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        identities: MailboxIdentities | None = None,
    ) -> None:
        """`max_retry_after` caps one wait for Retry-After (longer: give up for this run);
        `check_before_create` looks every CRM id up with `$filter` before creating it (one
        extra request per batch; a create whose answer was lost is always looked up);
        `identities` (the state store) keeps the user object id the address resolved to."""
        missing = [
            name
            for name, value in (
                ("GRAPH_TENANT_ID", settings.graph_tenant_id),
                ("GRAPH_CLIENT_ID", settings.graph_client_id),
                ("GRAPH_CLIENT_SECRET", settings.graph_client_secret),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"{', '.join(missing)} must be set for MAILBOX_BACKEND=graph "
                "(the Exchange Online app registration; see docs/exchange-online.md)"
            )
        if not address or "@" not in address:
            raise MailboxError(f"{address!r} is not a mailbox address")
        self.address = address.strip()
        self.batch_size = BATCH_LIMIT
        self.requests = 0  # every HTTP request to Graph, a $batch counting one
        self.token_requests = 0  # tokens fetched from Entra ID (not from msal's cache)
        self.full_listings = 0  # listings that had to read the whole folder
        self.page_size = max(1, min(page_size, 1000))
        self.check_before_create = check_before_create
        self._settings = settings
        self._tenant = str(settings.graph_tenant_id)
        self._client_id = str(settings.graph_client_id)
        self._authority = settings.graph_authority.rstrip("/")
        self._graph = settings.graph_url.rstrip("/")
        parts = urlsplit(self._graph)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._scope = f"{self._origin}/.default"
        self.target_id = f"graph {self._graph} {self._tenant}"
        self._identities = identities or PROCESS_IDENTITIES
        self._user_resolved = False  # looked the address up during this run
        self.user_id: str | None = None  # the user's object id, once known
        self._use_user(self._identities.mailbox_identity(self._identity_target(), self.address))
        self._max_retry_after = max_retry_after
        self._max_attempts = max(1, max_attempts)
        self._sleep = sleep
        try:  # httpx reads SSL_CERT_FILE / SSL_CERT_DIR here
            self._http = httpx.Client(timeout=timeout, headers={"Accept": "application/json"})
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"SSL_CERT_FILE={os.environ.get('SSL_CERT_FILE', '')} is not a readable CA "
                f"bundle ({exc.__class__.__name__}); point it at a PEM file of trusted CAs"
            ) from None
        self._gate = gate_for(self._graph, self.address)
        self._state_path = self._state_file()
        self._loaded = False
        self._cache: dict[str, dict[str, Any]] = {}
        self._delta_link: str | None = None
        self._contacts_folder_id: str | None = None
        self._no_delta_since: datetime | None = None  # when Graph last refused delta
        self._folder_learned_now = False  # the folder id was read in this run
        self._dirty = False

    # ---- the Mailbox protocol -------------------------------------------------------------------

    def list_contacts(self) -> Iterator[list[MailboxContact]]:
        """The whole folder, a page at a time: a delta round on top of the saved picture."""
        yield from self._listed()

    def forget_state(self) -> None:
        """Drop the saved picture and delta link: the next listing reads the folder anew
        (after the mailbox moved, or `crm-contacts mailbox reset`)."""
        self._state_path.unlink(missing_ok=True)
        self._loaded = True
        self._cache = {}
        self._delta_link = None
        if not self._folder_learned_now:  # an id `located` just read is not stale
            self._contacts_folder_id = None
        self._no_delta_since = None
        self._dirty = False

    def located(self) -> str | None:
        """Whether Exchange Online holds this mailbox: None when it does (one request, which
        also learns the Contacts folder's id); the error code when Graph answers that the
        mailbox is not served here (hybrid: it is on Exchange Server). KB 4462988: HTTP 404
        MailboxNotEnabledForRESTAPI or MailboxNotSupportedForRESTAPI, "REST API is not yet
        supported for this mailbox", for a mailbox on Exchange Server (the same code also
        answers an inactive or unlicensed mailbox)."""
        self._contacts_folder_id = None  # a fresh question to Graph, not the saved answer
        try:
            self._resolving(self._folder_id)
        except OnPremises as where:
            return where.code
        self._folder_learned_now = self._contacts_folder_id is not None
        return None

    def check(self) -> list[str]:
        """Sign in, read the app's permissions from its token, look at the Contacts folder.

        A token without Contacts.ReadWrite is a warning, not a failure: Exchange RBAC for
        Applications grants access that no token shows. A refused read is a failure."""
        findings = [
            f"Signed in to tenant {self._tenant} as app {self._client_id} "
            f"through {self._authority}."
        ]
        roles = token_roles(self._access_token())
        if roles is None:
            findings.append(
                "The token does not list the app's permissions; the first write will show "
                "whether it may write contacts."
            )
        elif "Contacts.ReadWrite" in roles:
            findings.append("The app holds the application permission Contacts.ReadWrite.")
        else:
            # Not fatal: Exchange RBAC for Applications grants outside the token.
            findings.append(
                "Warning: the app's token does not carry Contacts.ReadWrite (it carries: "
                f"{', '.join(sorted(roles)) or 'nothing'}). Writes will be refused unless Exchange "
                "RBAC for Applications assigns it the role 'Application Contacts.ReadWrite' for "
                "this mailbox; otherwise grant Contacts.ReadWrite with admin consent."
            )
        findings.append(self._user_finding())
        query = urlencode({"$top": "1", "$select": "id", "$count": "true"}, quote_via=quote)
        data = self._resolving(
            lambda: self._ok_json(self._send("GET", f"{self._graph}{self._user}/contacts?{query}"))
        )
        count = data.get("@odata.count")
        size = f"{count} contacts" if isinstance(count, int) else "contacts readable"
        findings.append(f"{self.address}: the default Contacts folder is reachable ({size}).")
        self._load_state()
        mode, why = self.listing_mode()
        if mode == "full":
            findings.append(f"Listing: {why}.")
        elif self._delta_link:
            findings.append(
                f"Saved sync state knows {len(self._cache)} contacts; the next sync reads "
                "only what changed."
            )
        else:
            findings.append("No saved sync state yet: the next sync reads the whole folder once.")
        return findings

    def _user_finding(self) -> str:
        """Look the address up among the users' e-mail addresses and keep the object id."""
        found, denied = self._lookup_user()
        if denied:
            return (
                f"Warning: app {self._client_id} may not look users up "
                f"({LOOKUP_PERMISSION} is missing), so {self.address} is used as the user's "
                f"UPN. If it is an e-mail address that is not the UPN, grant "
                f"{LOOKUP_PERMISSION} with admin consent."
            )
        if found is None:
            return f"No user has {self.address} as an e-mail address; it is tried as a UPN."
        object_id, upn = found
        self._use_user(object_id)
        self._user_resolved = True
        self._identities.remember_mailbox_identity(self._identity_target(), self.address, object_id)
        return (
            f"{self.address} is Entra ID user {object_id} (UPN {upn}); the id is stored "
            "and used for every request."
        )

    def close(self) -> None:
        """Keep what this run wrote in the saved picture, then hang up."""
        if self._dirty:
            self._save_state()
        self._http.close()

    def __enter__(self) -> GraphMailbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
