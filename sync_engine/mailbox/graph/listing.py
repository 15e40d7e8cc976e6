"""Listing the folder: delta rounds on the saved picture, or full pages without delta.

The contacts delta function (contact-delta, v1.0) is `GET
/users/{id}/contactFolders/{id}/contacts/delta`: it takes the folder's id, and documents
`$select` and the `Prefer: odata.maxpagesize` header, nothing else; delta with `$expand` is
refused in practice (400, or 500 "Parsing OData Select and Expand failed"). Microsoft's
Q&A answer on contact delta gives 200 as the most a page holds (and the default), so we
ask for at most that. The default Contacts folder's id comes from the documented
collection `GET /users/{id}/contacts` (contact-list: "the default Contacts folder"): one
contact's `parentFolderId`, or, when that folder is empty, one of its child folders'
(`GET /users/{id}/contactFolders`); it is kept with the picture. A well-known name such as
`contactFolders/contacts` is not documented for contact folders, so it is not used.

So the delta query selects fields only, and the extended properties (the CRM id, Sage's
fax) are read where they are needed: for contacts carrying our category whose properties
were not read at their current changeKey (new to us, or edited in Outlook since), through
the documented single-item form `GET …/contacts/{id}?$expand=singleValueExtendedProperties(
$filter=id eq '…')`, 20 to a `$batch`. Contacts we create or update are known from our own
writes.

A saved delta link Graph no longer accepts (410, or 400/404 with SyncStateNotFound,
SyncStateInvalid, ResyncRequired, ErrorSyncFolderNotFound, or any other 4xx but
401/403/429) is dropped and the folder read again in full (delta-query-overview:
"re-sync from scratch"); what is known of items that did not change since is kept.

Without delta (GRAPH_LISTING=full; contact delta is not available in Microsoft 365
operated by 21Vianet, per contact-delta's national cloud table; or Graph refused the very
first delta request) the folder is listed in pages of `$top` (contact-list documents the
OData query parameters; Outlook's list endpoints answer 10 items a page by default). A
refused delta is tried again a day later: the refusal may have been passing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from sync_engine.mailbox.base import MailboxError
from sync_engine.mailbox.graph.mapping import (
    CRM_ID_EXTENSION,
    EXT_READ_AT,
    SELECT,
    ext_fresh,
    extended_expand,
    set_ext,
    to_contact,
    trim,
    written_ext,
)
from sync_engine.mailbox.graph.transport import (
    ITEM_NOT_FOUND,
    DeltaGone,
    DeltaUnsupported,
    Op,
    error_of,
    json_of,
)
from sync_engine.model import MailboxContact

log = logging.getLogger(__name__)

# 4xx answers to a delta request that mean "this link is no good": start over.
STAY_ON_LINK = frozenset({401, 403, 429})
DELTA_PAGE_MAX = 200  # Microsoft Q&A on contact delta: "200 for objects, such as … contacts"
LIST_PAGE_MAX = 1000  # the most `$top` an Outlook list endpoint answers in one page
DELTA_RETRY = timedelta(days=1)  # a refused delta is tried again after this
# contact-delta's national cloud table: not available in "China operated by 21Vianet".
NO_DELTA_HOSTS = ("microsoftgraph.chinacloudapi.cn",)


def delta_unavailable_here(graph_url: str) -> bool:
    host = (urlsplit(graph_url).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in NO_DELTA_HOSTS)


class Listing:
    """Delta and full listing (mixed into GraphMailbox)."""

    # ---- which way ----------------------------------------------------------------------------

    def listing_mode(self) -> tuple[str, str]:
        """("delta" or "full", why), for the listing and for check-mailbox."""
        setting = self._settings.graph_listing
        if setting == "full":
            return "full", "GRAPH_LISTING=full: the whole folder is read at every sync"
        if setting == "auto" and delta_unavailable_here(self._graph):
            return "full", (
                "contact delta is not available in Microsoft 365 operated by 21Vianet: the "
                "whole folder is read at every sync"
            )
        since = self._no_delta_since
        if since is not None and datetime.now(UTC) - since < DELTA_RETRY:
            return "full", (
                f"Graph refused the delta query on {since:%Y-%m-%d %H:%M} UTC: the whole "
                "folder is read at every sync until it is tried again a day later"
            )
        return "delta", "delta query: a sync reads only what changed"

    def _listed(self) -> Iterator[list[MailboxContact]]:
        """The whole folder, a page at a time: a delta round on top of the saved picture,
        or every page of the folder when delta is off or refused."""
        self._load_state()
        if self.listing_mode()[0] == "delta":
            try:
                self._resolving(self._refresh)
            except DeltaUnsupported:
                log.warning(
                    "Graph refused delta on %s; listing the folder in full, delta is tried "
                    "again in a day",
                    self.address,
                )
                self._no_delta_since = datetime.now(UTC)
                self._dirty = True
            else:
                self._no_delta_since = None
                contacts = sorted(
                    (to_contact(raw) for raw in self._cache.values()),
                    key=lambda c: (c.created_at, c.item_id),
                )
                for start in range(0, len(contacts), self.page_size):
                    yield contacts[start : start + self.page_size]
                return
        yield from self._resolving(lambda: list(self._full_listing()))

    # ---- delta --------------------------------------------------------------------------------

    def _folder_id(self) -> str | None:
        """The default Contacts folder's id (see the module's doc); None while the folder
        is empty and has no child folder (nothing to list then)."""
        if self._contacts_folder_id:
            return self._contacts_folder_id
        for path in ("contacts", "contactFolders"):
            query = urlencode({"$top": "1", "$select": "parentFolderId"}, quote_via=quote)
            data = self._ok_json(self._send("GET", f"{self._graph}{self._user}/{path}?{query}"))
            for item in data.get("value") or []:
                if isinstance(item, dict) and item.get("parentFolderId"):
                    self._contacts_folder_id = str(item["parentFolderId"])
                    self._dirty = True
                    return self._contacts_folder_id
        return None

    def _delta_url(self, folder_id: str) -> str:
        query = urlencode({"$select": ",".join(SELECT)}, quote_via=quote)
        folder = quote(folder_id, safe="")
        return f"{self._graph}{self._user}/contactFolders/{folder}/contacts/delta?{query}"

    def _refresh(self) -> None:
        """One delta round from the saved link (or from scratch), then save the picture."""
        before = self._cache
        if self._delta_link:
            try:
                self._cache, self._delta_link = self._delta_round(self._delta_link, self._cache)
            except DeltaGone as gone:
                log.info(
                    "delta link for %s refused (%s); reading the whole folder", self.address, gone
                )
                self._delta_link = None
        for attempt in range(2):
            if self._delta_link:
                break
            folder_id = self._folder_id()
            if folder_id is None:  # an empty folder without child folders: nothing to list
                self._cache = {}
                break
            self.full_listings += 1
            try:
                self._cache, self._delta_link = self._delta_round(
                    self._delta_url(folder_id), {}, initial=True
                )
            except DeltaGone as gone:
                if attempt:
                    raise MailboxError(
                        f"Graph kept refusing the delta round for {self.address} ({gone}). "
                        "The next sync tries again."
                    ) from None
        self._cache = kept_extended(self._cache, before)
        self._read_extended(self._cache)
        self._save_state()

    def _delta_round(
        self, url: str, known: dict[str, dict[str, Any]], *, initial: bool = False
    ) -> tuple[dict[str, dict[str, Any]], str]:
        contacts = dict(known)
        first = True
        while True:
            response = self._send("GET", url, headers=self._prefer())
            self._check_delta_answer(response, fresh=initial and first)
            data = self._ok_json(response)
            first = False
            for raw in data.get("value", []):
                item_id = raw.get("id")
                if not item_id:
                    continue
                if "@removed" in raw:
                    contacts.pop(item_id, None)
                else:
                    contacts[item_id] = trim({**contacts.get(item_id, {}), **raw})
            if data.get("@odata.nextLink"):
                url = self._own(data["@odata.nextLink"])
            elif data.get("@odata.deltaLink"):
                return contacts, self._own(data["@odata.deltaLink"])
            else:
                raise MailboxError(f"Graph ended a delta round for {self.address} without a link")

    def _check_delta_answer(self, response: httpx.Response, *, fresh: bool) -> None:
        """Raise DeltaGone for a link Graph no longer takes, DeltaUnsupported when the very
        first delta request of a fresh round is refused; leave the rest to `_ok_json`."""
        status = response.status_code
        if status < 400 or status >= 500 or status in STAY_ON_LINK:
            return
        answer_code = error_of(json_of(response))[0]
        if not fresh:
            raise DeltaGone(f"HTTP {status} {answer_code}".strip())
        if status == 400 or (status == 404 and answer_code in ITEM_NOT_FOUND):
            raise DeltaUnsupported
        if status == 410:
            raise DeltaGone(f"HTTP {status} {answer_code}".strip())

    def _read_extended(self, contacts: dict[str, dict[str, Any]]) -> None:
        """Read the extended properties of our contacts not read at their current
        changeKey, 20 to a batch.

        A contact without our category is not ours (we tag every contact we create or
        link, DESIGN rule 3), so its properties are not needed and not read; one whose CRM
        id the listing cannot see is found by `find` when its link misses it."""
        ours = self._settings.crm_category.casefold()
        wanted = [
            item_id
            for item_id, raw in contacts.items()
            if not ext_fresh(raw)
            and any(str(c).casefold() == ours for c in raw.get("categories") or ())
        ]
        if not wanted:
            return
        query = urlencode(
            {"$select": "id,changeKey", "$expand": extended_expand()}, quote_via=quote
        )
        ops = [Op("GET", f"{self._user}/contacts/{quote(i, safe='')}?{query}") for i in wanted]
        for item_id, answer in zip(wanted, self._run_batch(ops), strict=True):
            if answer.ok and isinstance(answer.body, dict):
                raw = contacts[item_id]
                set_ext(raw, written_ext(answer.body), whole=True)
                read_at = trim(answer.body).get("changeKey")
                if read_at == raw.get("changeKey"):
                    raw[EXT_READ_AT] = read_at  # else: edited since the listing; read again
                self._dirty = True
            elif answer.status == 404 and answer.code in ITEM_NOT_FOUND:
                contacts.pop(item_id, None)  # deleted since the delta round: gone
            else:
                self._raise_for_mailbox(answer)
                raise MailboxError(
                    f"Could not read the CRM id of a contact in {self.address} (HTTP "
                    f"{answer.status} {answer.code}). The next sync tries again."
                )

    # ---- without delta ------------------------------------------------------------------------

    def _full_listing(self) -> Iterator[list[MailboxContact]]:
        """Without delta: every page of the folder, every time, in pages of `$top`."""
        self.full_listings += 1
        before = self._cache
        top = str(max(1, min(self.page_size, LIST_PAGE_MAX)))
        query = urlencode({"$select": ",".join(SELECT), "$top": top}, quote_via=quote)
        url: str | None = f"{self._graph}{self._user}/contacts?{query}"
        self._cache = {}
        while url:
            data = self._ok_json(self._send("GET", url))
            page = {raw["id"]: trim(raw) for raw in data.get("value", []) if raw.get("id")}
            page = kept_extended(page, before)
            self._read_extended(page)
            self._cache.update(page)
            self._dirty = True
            if page:
                yield [to_contact(raw) for raw in page.values()]
            link = data.get("@odata.nextLink")
            url = self._own(link) if link else None

    def _prefer(self) -> dict[str, str]:
        return {"Prefer": f"odata.maxpagesize={min(self.page_size, DELTA_PAGE_MAX)}"}

    def _own(self, link: str) -> str:
        """Follow Graph's links only to Graph: the bearer token must not travel elsewhere."""
        if not link.startswith(self._origin + "/"):
            raise MailboxError(f"Graph sent a link outside {self._origin}; refusing to follow it")
        return link


def kept_extended(
    contacts: dict[str, dict[str, Any]], before: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """What was read of each item's extended properties, kept while the item did not
    change since (same changeKey): a full round costs no look-up for those."""
    for item_id, raw in contacts.items():
        old = before.get(item_id)
        if old is None or ext_fresh(raw) or not ext_fresh(old):
            continue
        if old.get("changeKey") == raw.get("changeKey"):
            raw[CRM_ID_EXTENSION] = old[CRM_ID_EXTENSION]
            raw[EXT_READ_AT] = old[EXT_READ_AT]
    return contacts
