"""Listing the folder: delta rounds on the saved picture, or full pages without delta.

The contacts delta function (contact-delta, v1.0) documents `$select` and the
`Prefer: odata.maxpagesize` header, nothing else; delta with `$expand` is refused in
practice (400, or 500 "Parsing OData Select and Expand failed"). So the delta query
selects fields only, and the CRM id (an extended property) is read where it is needed:
for contacts the saved picture does not know yet that carry our category (the ones we may
have created in a run whose answers were lost), through the documented single-item form
`GET …/contacts/{id}?$expand=singleValueExtendedProperties($filter=id eq '…')`, 20 to a
`$batch`. Contacts we created or updated are known from our own writes.

A saved delta link Graph no longer accepts (410, or 400/404 with SyncStateNotFound,
SyncStateInvalid, ResyncRequired, ErrorSyncFolderNotFound, or any other 4xx but
401/403/429) is dropped and the folder read again in full (delta-query-overview:
"re-sync from scratch"); the CRM ids already known are kept, so that round costs no
extra look-ups for them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from sync_engine.mailbox.base import MailboxError
from sync_engine.mailbox.graph.mapping import (
    CRM_ID_EXTENSION,
    SELECT,
    crm_id_expand,
    to_contact,
    trim,
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


class Listing:
    """Delta and full listing (mixed into GraphMailbox)."""

    def _delta_url(self) -> str:
        query = urlencode({"$select": ",".join(SELECT)}, quote_via=quote)
        return f"{self._graph}{self._user}/contactFolders/contacts/contacts/delta?{query}"

    def _refresh(self) -> None:
        """One delta round from the saved link (or from scratch), then save the picture."""
        known = {
            i: raw[CRM_ID_EXTENSION] for i, raw in self._cache.items() if CRM_ID_EXTENSION in raw
        }
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
            self.full_listings += 1
            try:
                self._cache, self._delta_link = self._delta_round(
                    self._delta_url(), {}, initial=True
                )
            except DeltaGone as gone:
                if attempt:
                    raise MailboxError(
                        f"Graph kept refusing the delta round for {self.address} ({gone}). "
                        "The next sync tries again."
                    ) from None
        for item_id, raw in self._cache.items():
            if CRM_ID_EXTENSION not in raw and item_id in known:
                raw[CRM_ID_EXTENSION] = known[item_id]
        self._read_crm_ids(self._cache)
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

    def _read_crm_ids(self, contacts: dict[str, dict[str, Any]]) -> None:
        """Read the CRM id of contacts not known yet that carry our category, 20 to a batch.

        A contact without our category is not ours (we tag every contact we create or
        link, DESIGN rule 3), so its CRM id is not needed and not read."""
        ours = self._settings.crm_category.casefold()
        wanted = [
            item_id
            for item_id, raw in contacts.items()
            if CRM_ID_EXTENSION not in raw
            and any(str(c).casefold() == ours for c in raw.get("categories") or ())
        ]
        if not wanted:
            return
        query = urlencode({"$select": "id", "$expand": crm_id_expand()}, quote_via=quote)
        ops = [Op("GET", f"{self._user}/contacts/{quote(i, safe='')}?{query}") for i in wanted]
        for item_id, answer in zip(wanted, self._run_batch(ops), strict=True):
            if answer.ok and isinstance(answer.body, dict):
                contacts[item_id][CRM_ID_EXTENSION] = answer.body.get(CRM_ID_EXTENSION) or []
                self._dirty = True
            elif answer.status == 404 and answer.code in ITEM_NOT_FOUND:
                contacts.pop(item_id, None)  # deleted since the delta round: gone
            else:
                self._raise_for_mailbox(answer)
                raise MailboxError(
                    f"Could not read the CRM id of a contact in {self.address} (HTTP "
                    f"{answer.status} {answer.code}). The next sync tries again."
                )

    def _full_listing(self) -> Iterator[list[MailboxContact]]:
        """Fallback without delta: every page of the folder, every time."""
        self.full_listings += 1
        known = {
            i: raw[CRM_ID_EXTENSION] for i, raw in self._cache.items() if CRM_ID_EXTENSION in raw
        }
        query = urlencode({"$select": ",".join(SELECT)}, quote_via=quote)
        url: str | None = f"{self._graph}{self._user}/contacts?{query}"
        self._cache = {}
        while url:
            data = self._ok_json(self._send("GET", url, headers=self._prefer()))
            page: dict[str, dict[str, Any]] = {}
            for raw in data.get("value", []):
                if raw.get("id"):
                    entry = trim(raw)
                    if raw["id"] in known:
                        entry[CRM_ID_EXTENSION] = known[raw["id"]]
                    page[raw["id"]] = entry
            self._read_crm_ids(page)
            self._cache.update(page)
            self._dirty = True
            if page:
                yield [to_contact(raw) for raw in page.values()]
            link = data.get("@odata.nextLink")
            url = self._own(link) if link else None

    def _prefer(self) -> dict[str, str]:
        return {"Prefer": f"odata.maxpagesize={self.page_size}"}

    def _own(self, link: str) -> str:
        """Follow Graph's links only to Graph: the bearer token must not travel elsewhere."""
        if not link.startswith(self._origin + "/"):
            raise MailboxError(f"Graph sent a link outside {self._origin}; refusing to follow it")
        return link
