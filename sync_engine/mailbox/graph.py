"""Exchange Online over Microsoft Graph: `GraphMailbox`, one mailbox's default Contacts folder.

Why it is built this way (issue 6; DESIGN sections 2-5):

- **Auth**: app-only client credentials through msal, one app registration for every mailbox
  (`/users/{address}/contacts`, application permission Contacts.ReadWrite). A non-default
  `GRAPH_AUTHORITY` is used as given (`instance_discovery=False`); msal still fetches the
  tenant's OIDC document (`{authority}/{tenant}/v2.0/.well-known/openid-configuration`) and
  insists on https. msal talks through requests (trusts REQUESTS_CA_BUNDLE), Graph calls go
  through httpx (trusts SSL_CERT_FILE): no TLS code of our own. The Graph SDK is not used: it
  would hide the `$batch` and delta details this target exists to get right.
- **Few round trips**: listing is a delta query on the default Contacts folder with `$select`
  and `Prefer: odata.maxpagesize`; the folder's picture and the delta link are kept between runs
  in `CRM_CONTACTS_HOME/graph-delta/`, so a sync with no change costs one request. An expired
  delta token (410) falls back to a full round. Writes go in JSON `$batch` requests of at most
  20. Graph hands Outlook at most 4 requests of one batch at a time, which is exactly Outlook's
  per-app, per-mailbox concurrency limit, so one batch in flight per mailbox is the most that
  never throttles itself; an in-process gate holds every caller to that.
- **CRM id**: an Integer named extended property, listed with
  `$expand=singleValueExtendedProperties($filter=id eq ...)`, found with `$filter` (`find`)
  before a create is repeated after an answer that may have been lost. Graph has no way to
  delete an extended property, so "clear" writes 0, which reads back as no CRM id.
- **Change keys**: PATCH carries `If-Match: W/"<changeKey>"` (Outlook items' ETag); a 412
  ErrorIrresolvableConflict re-reads the item and applies the same mapped fields to what is
  there now (CRM wins on mapped fields; the user's other emails, phones and categories stay).
  `emailAddresses`/`businessPhones` are collections and `businessAddress` a complex value, so a
  PATCH sends them whole: entry 0 (or the named address parts) changed, the rest as they are.
- **Faults**: 429/503/504 wait for Retry-After (a wait longer than `max_retry_after` gives up for
  this run instead of hammering); in a batch only the failed items are retried; an expired token
  is renewed once; 401/403/404 become `MailboxAccessError`s that say what the admin must do.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import msal

from sync_engine.config import ConfigError, Settings
from sync_engine.mailbox.base import MailboxAccessError, MailboxError
from sync_engine.model import (
    ContactChange,
    ContactFields,
    MailboxContact,
    NewContact,
    WriteResult,
)

log = logging.getLogger(__name__)

# Never change: every contact we created carries this property. Integer = PT_LONG (32 bit).
CRM_ID_PROPERTY = "Integer {6d1c8f3a-2b7e-4c59-a0d4-8e3f5b7c9a12} Name CrmPersonId"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
BATCH_LIMIT = 20  # Graph's JSON batching limit
MAILBOX_CONCURRENCY = 4  # Outlook: concurrent requests per app and mailbox
MAX_EMAILS = 3  # Outlook's Email1..Email3

_SCALARS = {
    "title": "title",
    "first_name": "givenName",
    "middle_name": "middleName",
    "last_name": "surname",
    "suffix": "generation",
    "company": "companyName",
    "job_title": "jobTitle",
    "department": "department",
    "web_page": "businessHomePage",
    "mobile_phone": "mobilePhone",
    "display_name": "displayName",
    "file_as": "fileAs",
}
_ADDRESS = {
    "street": "street",
    "city": "city",
    "state": "state",
    "postal_code": "postalCode",
    "country": "countryOrRegion",
}
_SELECT = (
    "id",
    "changeKey",
    "createdDateTime",
    "categories",
    *_SCALARS.values(),
    "emailAddresses",
    "businessPhones",
    "businessAddress",
)
_STATEFUL = frozenset({"email", "business_phone", *_ADDRESS})  # PATCH needs the current value
_RETRY = frozenset({429, 503, 504})
_ITEM_NOT_FOUND = frozenset({"ErrorItemNotFound", "ItemNotFound"})
_JSON = {"Content-Type": "application/json"}


class _Unsure(Exception):
    """A create may or may not have happened (answer lost, 5xx): look before creating again."""


class _DeltaGone(Exception):
    """The delta token expired (410): read the whole folder again."""


class _DeltaUnsupported(Exception):
    """Graph refused the delta query itself: list the folder in full instead."""


@dataclass
class _Op:
    method: str
    path: str  # relative to the Graph version root, as $batch wants it
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    unsure: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str:
        return _error(self.body)[0]

    @property
    def message(self) -> str:
        return _error(self.body)[1]

    def retry_after(self) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == "retry-after"), None)


class _MailboxGate:
    """At most four Outlook requests in flight per mailbox from this process (a batch counts
    as up to four: Graph runs that many of its requests at once)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = 0

    @contextlib.contextmanager
    def hold(self, permits: int) -> Iterator[None]:
        permits = max(1, min(permits, MAILBOX_CONCURRENCY))
        with self._cond:
            self._cond.wait_for(lambda: self._busy + permits <= MAILBOX_CONCURRENCY)
            self._busy += permits
        try:
            yield
        finally:
            with self._cond:
                self._busy -= permits
                self._cond.notify_all()


_GATES: dict[tuple[str, str], _MailboxGate] = {}
_APPS: dict[tuple[str, str, str], msal.ConfidentialClientApplication] = {}
_SHARED_LOCK = threading.Lock()


def _gate_for(graph_url: str, address: str) -> _MailboxGate:
    with _SHARED_LOCK:
        return _GATES.setdefault((graph_url.lower(), address.lower()), _MailboxGate())


class GraphMailbox:
    """One Exchange Online mailbox's default Contacts folder, through Microsoft Graph."""

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
    ) -> None:
        """`max_retry_after` caps one wait for Retry-After (longer: give up for this run);
        `check_before_create` looks every CRM id up with `$filter` before creating it (one
        extra request per batch; a create whose answer was lost is always looked up)."""
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
        self._user = f"/users/{quote(self.address, safe='@')}"
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
        self._gate = _gate_for(self._graph, self.address)
        self._state_path = self._state_file()
        self._loaded = False
        self._cache: dict[str, dict[str, Any]] = {}
        self._delta_link: str | None = None
        self._no_delta = False
        self._dirty = False

    # ---- the Mailbox protocol -------------------------------------------------------------------

    def list_contacts(self) -> Iterator[list[MailboxContact]]:
        """The whole folder, a page at a time: a delta round on top of the saved picture."""
        self._load_state()
        if not self._no_delta:
            try:
                self._refresh()
            except _DeltaUnsupported:
                log.warning("Graph refused delta on %s; listing the folder in full", self.address)
                self._no_delta = True
                self._dirty = True
        if self._no_delta:
            yield from self._full_listing()
            return
        contacts = sorted(
            (_to_contact(raw) for raw in self._cache.values()),
            key=lambda c: (c.created_at, c.item_id),
        )
        for start in range(0, len(contacts), self.page_size):
            yield contacts[start : start + self.page_size]

    def create(self, items: Sequence[NewContact]) -> list[WriteResult]:
        """Create in `$batch`es; a create whose answer was lost is looked up before it is
        sent again, so a retry never makes a duplicate (DESIGN rule 9)."""
        results: list[WriteResult | None] = [None] * len(items)
        todo = list(range(len(items)))
        if self.check_before_create and todo:
            todo = self._take_existing(items, todo, results)
        for _round in range(3):
            if not todo:
                break
            ops = [_Op("POST", f"{self._user}/contacts", _new_body(items[i]), _JSON) for i in todo]
            unsure = []
            for i, answer in zip(todo, self._run_batch(ops), strict=True):
                if answer.ok and isinstance(answer.body, dict):
                    raw = self._remember(answer.body, crm_id=items[i].crm_id)
                    results[i] = WriteResult(item_id=raw["id"], change_key=raw.get("changeKey"))
                elif answer.unsure or answer.status >= 500:
                    unsure.append(i)
                else:
                    self._raise_for_mailbox(answer)
                    results[i] = _failure(answer)
            todo = self._take_existing(items, unsure, results) if unsure else []
        for i in todo:
            results[i] = WriteResult(
                error="Exchange Online did not confirm the create; the next sync tries again",
                error_kind="other",
            )
        return [r or WriteResult(error="not attempted", error_kind="other") for r in results]

    def update(self, changes: Sequence[ContactChange]) -> list[WriteResult]:
        """PATCH only the named fields, guarded by the change key; on a conflict re-read the
        item and apply the same mapped fields to what is there now."""
        self._load_state()
        results: list[WriteResult | None] = [None] * len(changes)
        unknown = [
            i
            for i, ch in enumerate(changes)
            if ch.item_id not in self._cache and _STATEFUL & {n for n, _ in ch.set_fields}
        ]
        if unknown:
            self._reread(changes, unknown, results)
        todo = [i for i, r in enumerate(results) if r is None and not changes[i].is_empty()]
        for i, ch in enumerate(changes):
            if results[i] is None and ch.is_empty():
                results[i] = WriteResult(item_id=ch.item_id, change_key=ch.change_key)
        fresh = False
        for _round in range(3):
            if not todo:
                break
            ops = [self._patch_op(changes[i], fresh=fresh) for i in todo]
            conflicts = []
            for i, answer in zip(todo, self._run_batch(ops), strict=True):
                ch = changes[i]
                if answer.ok and isinstance(answer.body, dict):
                    raw = self._remember(answer.body, crm_id=_crm_after(ch, self._cache))
                    results[i] = WriteResult(item_id=raw["id"], change_key=raw.get("changeKey"))
                elif answer.status in (409, 412):
                    conflicts.append(i)
                else:
                    self._raise_for_mailbox(answer)
                    results[i] = _failure(answer, item_id=ch.item_id)
            if not conflicts:
                todo = []
                break
            log.info(
                "%d change(s) on %s met a newer item; re-reading", len(conflicts), self.address
            )
            todo = self._reread(changes, conflicts, results)
            fresh = True
        for i in todo:
            results[i] = WriteResult(
                item_id=changes[i].item_id,
                error="the contact kept changing in Outlook while we wrote it",
                error_kind="conflict",
            )
        return [r or WriteResult(error="not attempted", error_kind="other") for r in results]

    def delete(self, item_ids: Sequence[str]) -> list[WriteResult]:
        """Delete in `$batch`es; an item already gone counts as deleted."""
        ops = [_Op("DELETE", f"{self._user}/contacts/{quote(i, safe='')}") for i in item_ids]
        results = []
        for item_id, answer in zip(item_ids, self._run_batch(ops), strict=True):
            if answer.ok or (answer.status == 404 and answer.code in _ITEM_NOT_FOUND):
                self._load_state()
                if self._cache.pop(item_id, None) is not None:
                    self._dirty = True
                results.append(WriteResult(item_id=item_id))
            else:
                self._raise_for_mailbox(answer)
                results.append(_failure(answer, item_id=item_id))
        return results

    def check(self) -> list[str]:
        """Sign in, read the app's permissions from its token, look at the Contacts folder.

        A token without Contacts.ReadWrite is a warning, not a failure: Exchange RBAC for
        Applications grants access that no token shows. A refused read is a failure."""
        findings = [
            f"Signed in to tenant {self._tenant} as app {self._client_id} "
            f"through {self._authority}."
        ]
        roles = _roles(self._access_token())
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
        query = urlencode({"$top": "1", "$select": "id", "$count": "true"}, quote_via=quote)
        data = self._ok_json(self._send("GET", f"{self._graph}{self._user}/contacts?{query}"))
        count = data.get("@odata.count")
        size = f"{count} contacts" if isinstance(count, int) else "contacts readable"
        findings.append(f"{self.address}: the default Contacts folder is reachable ({size}).")
        self._load_state()
        if self._delta_link:
            findings.append(
                f"Saved sync state knows {len(self._cache)} contacts; the next sync reads "
                "only what changed."
            )
        else:
            findings.append("No saved sync state yet: the next sync reads the whole folder once.")
        return findings

    def close(self) -> None:
        """Keep what this run wrote in the saved picture, then hang up."""
        if self._dirty:
            self._save_state()
        self._http.close()

    def __enter__(self) -> GraphMailbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- more than the protocol -----------------------------------------------------------------

    def find(self, crm_ids: Sequence[int]) -> dict[int, list[MailboxContact]]:
        """Contacts carrying these CRM ids, oldest first: one `$filter` per id, in `$batch`es."""
        found, unknown = self._lookup(crm_ids)
        if unknown:
            crm_id, message = next(iter(unknown.items()))
            raise MailboxError(f"Could not look up CRM id {crm_id} in {self.address}: {message}")
        return found

    def _lookup(
        self, crm_ids: Sequence[int]
    ) -> tuple[dict[int, list[MailboxContact]], dict[int, str]]:
        """Like `find`, but ids whose look-up failed come back apart, with the reason."""
        ids = list(dict.fromkeys(crm_ids))
        select = ",".join(_SELECT)
        ops = []
        for crm_id in ids:
            flt = (
                f"singleValueExtendedProperties/any(ep: ep/id eq '{CRM_ID_PROPERTY}' "
                f"and cast(ep/value, Edm.Int32) eq {int(crm_id)})"
            )
            query = urlencode(
                {"$filter": flt, "$select": select, "$expand": _expand()}, quote_via=quote
            )
            ops.append(_Op("GET", f"{self._user}/contacts?{query}"))
        found: dict[int, list[MailboxContact]] = {}
        unknown: dict[int, str] = {}
        for crm_id, answer in zip(ids, self._run_batch(ops), strict=True):
            if not answer.ok:
                self._raise_for_mailbox(answer)
                unknown[crm_id] = answer.message
                continue
            raws = answer.body.get("value", []) if isinstance(answer.body, dict) else []
            contacts = sorted(
                (_to_contact(self._remember(raw)) for raw in raws),
                key=lambda c: (c.created_at, c.item_id),
            )
            if contacts:
                found[crm_id] = contacts
        return found, unknown

    # ---- listing --------------------------------------------------------------------------------

    def _delta_url(self) -> str:
        query = urlencode({"$select": ",".join(_SELECT), "$expand": _expand()}, quote_via=quote)
        return f"{self._graph}{self._user}/contactFolders/contacts/contacts/delta?{query}"

    def _refresh(self) -> None:
        """One delta round from the saved link (or from scratch), then save the picture."""
        if self._delta_link:
            try:
                self._cache, self._delta_link = self._delta_round(self._delta_link, self._cache)
            except _DeltaGone:
                log.info("delta token for %s expired; reading the whole folder", self.address)
                self._delta_link = None
        if not self._delta_link:
            self.full_listings += 1
            self._cache, self._delta_link = self._delta_round(self._delta_url(), {}, initial=True)
        self._save_state()

    def _delta_round(
        self, url: str, known: dict[str, dict[str, Any]], *, initial: bool = False
    ) -> tuple[dict[str, dict[str, Any]], str]:
        contacts = dict(known)
        first = True
        while True:
            response = self._send("GET", url, headers=self._prefer())
            if response.status_code == 410:
                raise _DeltaGone
            refused = response.status_code == 400 or (
                response.status_code == 404 and _error(_json_of(response))[0] in _ITEM_NOT_FOUND
            )
            if initial and first and refused:
                raise _DeltaUnsupported
            data = self._ok_json(response)
            first = False
            for raw in data.get("value", []):
                item_id = raw.get("id")
                if not item_id:
                    continue
                if "@removed" in raw:
                    contacts.pop(item_id, None)
                else:
                    contacts[item_id] = _trim({**contacts.get(item_id, {}), **raw})
            if data.get("@odata.nextLink"):
                url = self._own(data["@odata.nextLink"])
            elif data.get("@odata.deltaLink"):
                return contacts, self._own(data["@odata.deltaLink"])
            else:
                raise MailboxError(f"Graph ended a delta round for {self.address} without a link")

    def _full_listing(self) -> Iterator[list[MailboxContact]]:
        """Fallback without delta: every page of the folder, every time."""
        self.full_listings += 1
        query = urlencode({"$select": ",".join(_SELECT), "$expand": _expand()}, quote_via=quote)
        url: str | None = f"{self._graph}{self._user}/contacts?{query}"
        self._cache = {}
        while url:
            data = self._ok_json(self._send("GET", url, headers=self._prefer()))
            page = [_to_contact(self._remember(raw)) for raw in data.get("value", [])]
            if page:
                yield page
            link = data.get("@odata.nextLink")
            url = self._own(link) if link else None

    def _prefer(self) -> dict[str, str]:
        return {"Prefer": f"odata.maxpagesize={self.page_size}"}

    def _own(self, link: str) -> str:
        """Follow Graph's links only to Graph: the bearer token must not travel elsewhere."""
        if not link.startswith(self._origin + "/"):
            raise MailboxError(f"Graph sent a link outside {self._origin}; refusing to follow it")
        return link

    # ---- writing --------------------------------------------------------------------------------

    def _take_existing(
        self, items: Sequence[NewContact], todo: list[int], results: list[WriteResult | None]
    ) -> list[int]:
        """Mark items whose CRM id is already in the folder as done; return the rest.

        An item whose look-up failed is not created blind (it may exist): it fails alone
        and the next sync, which lists the folder, settles it."""
        found, unknown = self._lookup([cid for i in todo if (cid := items[i].crm_id) is not None])
        rest = []
        for i in todo:
            match = found.get(items[i].crm_id)
            if items[i].crm_id in unknown:
                reason = unknown[items[i].crm_id]
                results[i] = WriteResult(
                    error=f"could not check whether it was already created ({reason})",
                    error_kind="throttled",
                )
            elif match:
                results[i] = WriteResult(item_id=match[0].item_id, change_key=match[0].change_key)
            else:
                rest.append(i)
        return rest

    def _patch_op(self, change: ContactChange, *, fresh: bool) -> _Op:
        current = self._cache.get(change.item_id)
        body = _patch_body(change, current, self._settings.crm_category, fresh=fresh)
        stateful = bool(_STATEFUL & {name for name, _ in change.set_fields})
        key = (current or {}).get("changeKey") if (stateful or fresh) else change.change_key
        headers = dict(_JSON)
        if key:
            headers["If-Match"] = f'W/"{key}"'
        return _Op(
            "PATCH", f"{self._user}/contacts/{quote(change.item_id, safe='')}", body, headers
        )

    def _reread(
        self,
        changes: Sequence[ContactChange],
        todo: list[int],
        results: list[WriteResult | None],
    ) -> list[int]:
        """Fetch the items as they are now (one `$batch`); gone items are reported not found."""
        query = urlencode({"$select": ",".join(_SELECT), "$expand": _expand()}, quote_via=quote)
        ops = [
            _Op("GET", f"{self._user}/contacts/{quote(changes[i].item_id, safe='')}?{query}")
            for i in todo
        ]
        alive = []
        for i, answer in zip(todo, self._run_batch(ops), strict=True):
            if answer.ok and isinstance(answer.body, dict):
                self._cache.pop(changes[i].item_id, None)
                self._remember(answer.body)
                alive.append(i)
            else:
                self._raise_for_mailbox(answer)
                results[i] = _failure(answer, item_id=changes[i].item_id)
        return alive

    def _run_batch(self, ops: Sequence[_Op]) -> list[_Answer]:
        """Send `ops` in `$batch`es of 20, one batch at a time; retry only the items that were
        throttled (or, when repeating is safe, failed with 503/504) after their Retry-After."""
        answers: list[_Answer] = [_Answer(0, unsure=True) for _ in ops]
        pending = list(range(len(ops)))
        for attempt in range(1, self._max_attempts + 1):
            retry: list[int] = []
            waits: list[float | None] = []
            for start in range(0, len(pending), BATCH_LIMIT):
                chunk = pending[start : start + BATCH_LIMIT]
                payload = {"requests": [_batch_entry(i, ops[i]) for i in chunk]}
                repeatable = all(ops[i].method != "POST" for i in chunk)
                try:
                    response = self._send(
                        "POST",
                        f"{self._graph}/$batch",
                        json_body=payload,
                        headers=_JSON,
                        repeatable=repeatable,
                        permits=len(chunk),
                    )
                except _Unsure:
                    continue  # answers stay "unsure"; create() looks before trying again
                data = self._ok_json(response)
                for entry in data.get("responses", []):
                    i = int(entry["id"])
                    answer = _Answer(
                        int(entry.get("status", 0)),
                        entry.get("body"),
                        {str(k): str(v) for k, v in (entry.get("headers") or {}).items()},
                    )
                    answers[i] = answer
                    if answer.status == 429 or (
                        answer.status in _RETRY and ops[i].method != "POST"
                    ):
                        retry.append(i)
                        waits.append(self._wait_for(answer.retry_after(), attempt))
            if not retry:
                break
            if attempt == self._max_attempts or any(w is None for w in waits):
                log.warning(
                    "%d request(s) to %s still throttled; giving up for this run",
                    len(retry),
                    self.address,
                )
                break
            wait = max(w for w in waits if w is not None)
            log.info(
                "%d request(s) to %s throttled; retrying in %.1f s", len(retry), self.address, wait
            )
            self._sleep(wait)
            pending = sorted(retry)
        return answers

    def _remember(self, raw: dict[str, Any], *, crm_id: int | None = None) -> dict[str, Any]:
        """Fold an item we read or wrote into the folder's picture (selected fields only)."""
        self._load_state()
        merged = {**self._cache.get(raw["id"], {}), **raw}
        if crm_id is not None:
            merged["singleValueExtendedProperties"] = [
                {"id": CRM_ID_PROPERTY, "value": str(crm_id)}
            ]
        merged = _trim(merged)
        self._cache[raw["id"]] = merged
        self._dirty = True
        return merged

    # ---- HTTP, tokens, errors -------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        repeatable: bool = True,
        permits: int = 1,
    ) -> httpx.Response:
        """One Graph request with retries: Retry-After on 429/503/504, a new token once on an
        expired one. A request that is not `repeatable` raises `_Unsure` instead of repeating
        when its fate is unknown."""
        attempt = 0
        renew = renewed = False
        while True:
            attempt += 1
            token = self._access_token(renew=renew)
            renew = False
            sent = {**(headers or {}), "Authorization": f"Bearer {token}"}
            try:
                with self._gate.hold(permits):
                    self.requests += 1
                    response = self._http.request(method, url, json=json_body, headers=sent)
            except httpx.TransportError as exc:
                if not repeatable and not isinstance(exc, httpx.ConnectError):
                    raise _Unsure from None
                wait = self._wait_for(None, attempt)
                if attempt >= self._max_attempts or wait is None:
                    raise MailboxError(self._unreachable(exc)) from None
                log.info("Graph did not answer (%s); retrying in %.1f s", type(exc).__name__, wait)
                self._sleep(wait)
                continue
            status = response.status_code
            if (
                status == 401
                and not renewed
                and _error(_json_of(response))[0] == ("InvalidAuthenticationToken")
            ):
                log.info("Graph token for %s expired; getting a new one", self.address)
                renew = renewed = True
                attempt -= 1
                continue
            if status in _RETRY or status in (500, 502):
                if not repeatable and status != 429:
                    raise _Unsure
                if status not in _RETRY:
                    return response
                wait = self._wait_for(response.headers.get("Retry-After"), attempt)
                if attempt >= self._max_attempts or wait is None:
                    raise MailboxError(self._throttled_text(status, response))
                log.info("Graph answered %d for %s; retrying in %.1f s", status, self.address, wait)
                self._sleep(wait)
                continue
            return response

    def _wait_for(self, retry_after: str | None, attempt: int) -> float | None:
        """Seconds to wait: Retry-After when given, else exponential; None if over the cap."""
        wait: float
        if retry_after is None:
            wait = min(0.5 * 2 ** (attempt - 1), self._max_retry_after)
        else:
            try:
                wait = float(retry_after)
            except ValueError:
                try:
                    wait = parsedate_to_datetime(retry_after).timestamp() - time.time()
                except (TypeError, ValueError):
                    wait = 1.0
        wait = max(0.0, wait)
        return None if wait > self._max_retry_after else wait

    def _access_token(self, *, renew: bool = False) -> str:
        app = self._app()
        if renew:
            app.remove_tokens_for_client()
        try:
            result = app.acquire_token_for_client(scopes=[self._scope])
        except (OSError, ValueError, RuntimeError) as exc:
            raise MailboxError(self._signin_unreachable(exc)) from None
        if "access_token" not in result:
            raise self._token_error(result)
        if result.get("token_source") != "cache":
            self.token_requests += 1
        return str(result["access_token"])

    def _app(self) -> msal.ConfidentialClientApplication:
        """One msal app per (authority, tenant, client), shared by every mailbox of a process,
        so tokens are cached across mailboxes."""
        secret = self._settings.graph_client_secret
        assert secret is not None
        value = secret.get_secret_value()
        key = (
            f"{self._authority}/{self._tenant}",
            self._client_id,
            hashlib.sha256(value.encode()).hexdigest(),
        )
        with _SHARED_LOCK:
            app = _APPS.get(key)
            if app is not None:
                return app
            try:
                app = msal.ConfidentialClientApplication(
                    self._client_id,
                    client_credential=value,
                    authority=key[0],
                    instance_discovery=None if self._authority == DEFAULT_AUTHORITY else False,
                )
            except ValueError as exc:
                raise MailboxAccessError(
                    f"Microsoft Entra ID does not know the tenant {self._tenant} at "
                    f"{self._authority}: check GRAPH_TENANT_ID (and GRAPH_AUTHORITY for national "
                    f"clouds). ({_first_line(str(exc))})"
                ) from None
            except (OSError, RuntimeError) as exc:
                raise MailboxError(self._signin_unreachable(exc)) from None
            _APPS[key] = app
            return app

    def _token_error(self, result: dict[str, Any]) -> MailboxError:
        codes = set(result.get("error_codes") or [])
        error = str(result.get("error", ""))
        text = _first_line(str(result.get("error_description", "")))
        if codes & {7000215, 7000222, 7000216}:
            return MailboxAccessError(
                "Microsoft Entra ID refused GRAPH_CLIENT_SECRET (wrong or expired): create a new "
                "client secret under the app registration's Certificates & secrets and set "
                f"GRAPH_CLIENT_SECRET to its Value, not its Secret ID. ({text})"
            )
        if codes & {700016}:
            return MailboxAccessError(
                f"There is no app {self._client_id} in tenant {self._tenant}: check "
                f"GRAPH_CLIENT_ID and GRAPH_TENANT_ID. ({text})"
            )
        if codes & {90002, 90072}:
            return MailboxAccessError(
                f"Microsoft Entra ID does not know tenant {self._tenant}: check "
                f"GRAPH_TENANT_ID. ({text})"
            )
        if error in {"invalid_client", "unauthorized_client", "invalid_scope", "invalid_request"}:
            return MailboxAccessError(f"Microsoft Entra ID refused the app's sign-in: {text}")
        return MailboxError(f"Microsoft Entra ID could not issue a token now ({error}): {text}")

    def _ok_json(self, response: httpx.Response) -> dict[str, Any]:
        """The JSON of a 2xx answer; anything else becomes a plain-words `MailboxError`."""
        body = _json_of(response)
        if 200 <= response.status_code < 300:
            if not isinstance(body, dict):
                raise MailboxError(f"Graph answered {self.address} with something that is not JSON")
            return body
        answer = _Answer(response.status_code, body, dict(response.headers))
        self._raise_for_mailbox(answer, item_level=False)
        raise MailboxError(
            f"Microsoft Graph answered HTTP {answer.status} for {self.address}: "
            f"{answer.code or 'error'} {answer.message}".strip()
        )

    def _raise_for_mailbox(self, answer: _Answer, *, item_level: bool = True) -> None:
        """401/403, and 404 for the mailbox itself, stop the run for this mailbox: an admin acts."""
        code, message = answer.code, answer.message
        if answer.status == 401:
            raise MailboxAccessError(
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
            raise MailboxAccessError(self._permission_text(_roles_or_none(self)))
        if answer.status == 404 and not (item_level and code in _ITEM_NOT_FOUND):
            raise MailboxAccessError(
                f"There is no Exchange Online mailbox for {self.address} in tenant "
                f"{self._tenant} (Graph says {code or 'not found'}). Check the address and "
                "that the user has an Exchange Online licence."
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

    # ---- the saved picture ----------------------------------------------------------------------

    def _state_file(self) -> Path:
        key = "|".join((self._graph, self._tenant, self._client_id, self.address.lower()))
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        name = re.sub(r"[^A-Za-z0-9@._-]", "_", self.address.lower())
        return self._settings.crm_contacts_home / "graph-delta" / f"{name}-{digest}.json"

    def _load_state(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            data = json.loads(self._state_path.read_text(encoding="utf-8"))
            contacts = data["contacts"]
            link = data.get("delta_link")
            if not isinstance(contacts, dict) or (link is not None and not isinstance(link, str)):
                raise ValueError("bad shape")
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable sync state %s (%s)", self._state_path, exc)
            return
        self._cache = contacts
        self._delta_link = link if link and link.startswith(self._origin + "/") else None
        self._no_delta = bool(data.get("no_delta"))

    def _save_state(self) -> None:
        """Atomically, readable by this user only: it holds contact details."""
        folder = self._state_path.parent
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {
            "version": 1,
            "address": self.address,
            "graph_url": self._graph,
            "delta_link": self._delta_link,
            "no_delta": self._no_delta,
            "contacts": self._cache,
        }
        tmp = folder / f".{self._state_path.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False)
        os.replace(tmp, self._state_path)
        self._dirty = False


# ---- pure helpers -------------------------------------------------------------------------------


def _expand() -> str:
    return f"singleValueExtendedProperties($filter=id eq '{CRM_ID_PROPERTY}')"


def _batch_entry(index: int, op: _Op) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": str(index), "method": op.method, "url": op.path}
    if op.headers:
        entry["headers"] = op.headers
    if op.body is not None:
        entry["body"] = op.body
    return entry


def _json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error(body: Any) -> tuple[str, str]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code", "")), str(body["error"].get("message", ""))
    return "", ""


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _failure(answer: _Answer, *, item_id: str | None = None) -> WriteResult:
    status = answer.status
    if status == 404:
        kind = "not_found"
    elif status in (409, 412):
        kind = "conflict"
    elif status in (400, 422):
        kind = "invalid"
    elif status in _RETRY:
        kind = "throttled"
    else:
        kind = "other"
    text = f"HTTP {status} {answer.code}: {answer.message}".strip() if status else "no answer"
    if kind == "not_found":
        text = "the contact is no longer in the mailbox"
    return WriteResult(item_id=item_id, error=text, error_kind=kind)


def _roles(token: str) -> frozenset[str] | None:
    """The `roles` claim of an access token (read for diagnostics only, never verified)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return frozenset(str(r) for r in roles) if isinstance(roles, list) else frozenset()


def _roles_or_none(mailbox: GraphMailbox) -> frozenset[str] | None:
    try:
        return _roles(mailbox._access_token())
    except MailboxError:
        return None


def _trim(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep only what the planner needs: the picture on disk holds no notes or photos."""
    keep = {name: raw[name] for name in _SELECT if name in raw}
    if raw.get("singleValueExtendedProperties"):
        keep["singleValueExtendedProperties"] = raw["singleValueExtendedProperties"]
    if "changeKey" not in keep and isinstance(raw.get("@odata.etag"), str):
        keep["changeKey"] = raw["@odata.etag"].removeprefix("W/").strip('"')
    return keep


def _crm_id(raw: dict[str, Any]) -> int | None:
    for prop in raw.get("singleValueExtendedProperties") or []:
        if str(prop.get("id", "")).lower() == CRM_ID_PROPERTY.lower():
            try:
                value = int(str(prop.get("value")))
            except ValueError:
                return None
            return value or None  # 0 = cleared (Graph cannot delete an extended property)
    return None


def _crm_after(change: ContactChange, cache: dict[str, dict[str, Any]]) -> int | None:
    if change.set_crm_id is not None:
        return change.set_crm_id
    if change.clear_crm_id:
        return 0
    return _crm_id(cache.get(change.item_id, {}))


def _to_contact(raw: dict[str, Any]) -> MailboxContact:
    emails = raw.get("emailAddresses") or []
    phones = raw.get("businessPhones") or []
    address = raw.get("businessAddress") or {}
    values: dict[str, object] = {name: raw.get(prop) for name, prop in _SCALARS.items()}
    values["email"] = emails[0].get("address") if emails and isinstance(emails[0], dict) else ""
    values["business_phone"] = phones[0] if phones else ""
    values.update({name: address.get(prop) for name, prop in _ADDRESS.items()})
    return MailboxContact(
        item_id=str(raw["id"]),
        change_key=str(raw.get("changeKey") or ""),
        fields=ContactFields.of(**values),
        categories=tuple(str(c) for c in raw.get("categories") or ()),
        crm_id=_crm_id(raw),
        created_at=str(raw.get("createdDateTime") or ""),
    )


def _email_entry(email: str, display: str) -> dict[str, str]:
    return {"address": email, "name": f"{display} ({email})" if display else email}


def _new_body(item: NewContact) -> dict[str, Any]:
    """A new contact: only non-blank mapped fields, our category, the CRM id property."""
    values = item.fields.as_dict()
    body: dict[str, Any] = {prop: values[name] for name, prop in _SCALARS.items() if values[name]}
    if values["email"]:
        body["emailAddresses"] = [_email_entry(values["email"], values["display_name"])]
    if values["business_phone"]:
        body["businessPhones"] = [values["business_phone"]]
    address = {prop: values[name] for name, prop in _ADDRESS.items() if values[name]}
    if address:
        body["businessAddress"] = address
    body["categories"] = list(item.categories)
    if item.crm_id is not None:  # None only for a contact made by hand
        body["singleValueExtendedProperties"] = [{"id": CRM_ID_PROPERTY, "value": str(item.crm_id)}]
    return body


def _patch_body(
    change: ContactChange, current: dict[str, Any] | None, crm_category: str, *, fresh: bool
) -> dict[str, Any]:
    """Only what the change names. Collections and the address go whole, built on `current`."""
    current = current or {}
    named = dict(change.set_fields)
    body: dict[str, Any] = {_SCALARS[n]: v for n, v in named.items() if n in _SCALARS}
    display = named.get("display_name") or str(current.get("displayName") or "")
    if named.get("email"):
        email = named["email"]
        others = [
            e
            for e in (current.get("emailAddresses") or [])[1:]
            if isinstance(e, dict) and str(e.get("address", "")).lower() != email.lower()
        ]
        body["emailAddresses"] = [_email_entry(email, display), *others][:MAX_EMAILS]
    if named.get("business_phone"):
        phone = named["business_phone"]
        others = [p for p in (current.get("businessPhones") or [])[1:] if p != phone]
        body["businessPhones"] = [phone, *others]
    if _ADDRESS.keys() & named.keys():
        address = {k: v for k, v in (current.get("businessAddress") or {}).items() if v}
        address.update({_ADDRESS[n]: v for n, v in named.items() if n in _ADDRESS})
        body["businessAddress"] = address
    if change.categories is not None:
        categories = list(change.categories)
        if fresh:
            # Re-read after a conflict: keep what the user has now, only our tag follows the plan.
            ours = crm_category.casefold()
            categories = [c for c in current.get("categories") or [] if c.casefold() != ours]
            if any(c.casefold() == ours for c in change.categories):
                categories.append(crm_category)
        body["categories"] = categories
    if change.set_crm_id is not None:
        body["singleValueExtendedProperties"] = [
            {"id": CRM_ID_PROPERTY, "value": str(change.set_crm_id)}
        ]
    elif change.clear_crm_id:
        body["singleValueExtendedProperties"] = [{"id": CRM_ID_PROPERTY, "value": "0"}]
    return body
