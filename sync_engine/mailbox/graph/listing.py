"""Listing the folder: delta rounds on the saved picture, or full pages without delta."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from sync_engine.mailbox.base import MailboxError
from sync_engine.mailbox.graph.mapping import SELECT, crm_id_expand, to_contact, trim
from sync_engine.mailbox.graph.transport import (
    ITEM_NOT_FOUND,
    DeltaGone,
    DeltaUnsupported,
    error_of,
    json_of,
)
from sync_engine.model import (
    MailboxContact,
)

log = logging.getLogger(__name__)


class Listing:
    """Delta and full listing (mixed into GraphMailbox)."""

    # ---- listing --------------------------------------------------------------------------------

    def _delta_url(self) -> str:
        query = urlencode(
            {"$select": ",".join(SELECT), "$expand": crm_id_expand()}, quote_via=quote
        )
        return f"{self._graph}{self._user}/contactFolders/contacts/contacts/delta?{query}"

    def _refresh(self) -> None:
        """One delta round from the saved link (or from scratch), then save the picture."""
        if self._delta_link:
            try:
                self._cache, self._delta_link = self._delta_round(self._delta_link, self._cache)
            except DeltaGone:
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
                raise DeltaGone
            refused = response.status_code == 400 or (
                response.status_code == 404 and error_of(json_of(response))[0] in ITEM_NOT_FOUND
            )
            if initial and first and refused:
                raise DeltaUnsupported
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

    def _full_listing(self) -> Iterator[list[MailboxContact]]:
        """Fallback without delta: every page of the folder, every time."""
        self.full_listings += 1
        query = urlencode(
            {"$select": ",".join(SELECT), "$expand": crm_id_expand()}, quote_via=quote
        )
        url: str | None = f"{self._graph}{self._user}/contacts?{query}"
        self._cache = {}
        while url:
            data = self._ok_json(self._send("GET", url, headers=self._prefer()))
            page = [to_contact(self._remember(raw)) for raw in data.get("value", [])]
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
