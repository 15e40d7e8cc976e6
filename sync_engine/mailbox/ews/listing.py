"""Reading the Contacts folder: FindItem pages, look-ups by CRM id, GetItem."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from exchangelib import (
    Contact,
)
from exchangelib.fields import FieldOrder, FieldPath
from exchangelib.folders import Contacts
from exchangelib.items import ID_ONLY, SHALLOW
from exchangelib.restriction import Q

from sync_engine.mailbox.base import MailboxError
from sync_engine.mailbox.ews.addresses import with_smtp_addresses
from sync_engine.mailbox.ews.mapping import (
    FIND_ITEM_TEXT_LIMIT,
    contact_field,
    crm_id_of,
    legacy_crm_id_of,
    listing_fields,
    longest_text,
    mailbox_contact,
)
from sync_engine.mailbox.ews.services import (
    CountedFindItem,
    CountedGetItem,
    find_one_page,
    items_restriction,
)
from sync_engine.model import MailboxContact

log = logging.getLogger(__name__)


class Listing:
    """Reading the folder (mixed into EwsMailbox)."""

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
        fields = set(listing_fields())
        seen: set[str] = set()
        offset: int | None = 0
        step_backs = 0
        while offset is not None:
            asked = offset
            items, next_offset, _ = self._call(
                lambda o=asked: self._find_page(self._folder(), fields, o, None, overlap=o > 0)
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
                yield self._as_contacts(self._with_whole_texts(page, fields))
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
        service = self._service(CountedFindItem, page_size=size)
        kwargs = dict(
            folders=[folder],
            additional_fields=fields,
            restriction=restriction,
            order_fields=[
                FieldOrder(field_path=FieldPath(field=contact_field("datetime_created")))
            ],
            query_string=None,
            shape=ID_ONLY,
            depth=SHALLOW,
            calendar_view=None,
            page_size=size,
            offset=offset,
        )
        page, next_offset, objs = find_one_page(service, kwargs)
        if isinstance(page, Exception):
            raise page
        if page is None:
            return [], None, 0
        items = []
        for obj in objs:
            if isinstance(obj, Exception):
                raise obj
            if isinstance(obj, Contact):  # distribution lists live in Contacts too
                items.append(obj)
        return items, next_offset, int(page.get("TotalItemsInView") or 0)

    def find(self, crm_ids: Sequence[int]) -> dict[int, list[MailboxContact]]:
        """The contacts carrying these CRM ids (under the one property set or the legacy
        one), oldest first: FindItem pages with a restriction, as many as the folder needs."""
        ids = list(dict.fromkeys(int(i) for i in crm_ids))
        found: dict[int, list[MailboxContact]] = {}
        for start in range(0, len(ids), self.page_size):
            chunk = ids[start : start + self.page_size]
            items = self._call(lambda c=chunk: self._find_crm_items(c, set(listing_fields())))
            for contact in self._as_contacts(items):
                if contact.crm_id in chunk:
                    found.setdefault(contact.crm_id, []).append(contact)
        return {i: sorted(cs, key=lambda c: (c.created_at, c.item_id)) for i, cs in found.items()}

    def _find_by_crm_ids(self, crm_ids: Sequence[int]) -> dict[int, Contact]:
        """Which of these CRM ids already have a contact (after an ambiguous create)."""
        if not crm_ids:
            return {}
        fields = {
            FieldPath(field=contact_field("crm_person_id")),
            FieldPath(field=contact_field("crm_person_id_legacy")),
        }
        found: dict[int, Contact] = {}
        for item in self._find_crm_items(list(crm_ids), fields):
            crm_id = crm_id_of(item)
            if crm_id is not None:
                found.setdefault(crm_id, item)
        return found

    def _find_crm_items(self, crm_ids: list[int], fields: set[FieldPath]) -> list[Contact]:
        """Every contact whose CRM id (one set or legacy) is one of these, all pages."""
        folder = self._folder()
        query = Q(crm_person_id__in=crm_ids) | Q(crm_person_id_legacy__in=crm_ids)
        restriction = items_restriction(query, folder)
        out: list[Contact] = []
        offset: int | None = 0
        while offset is not None:
            items, offset, _ = self._find_page(folder, fields, offset, restriction)
            out += items
        return out

    def _as_contacts(self, items: Sequence[Contact]) -> list[MailboxContact]:
        """Listed items as the planner sees them. Remembers which carry the CRM id under
        the legacy property set (rewritten at their next write), and shows an address-book
        (EX) e-mail address as its SMTP address (addresses.py)."""
        listed = [mailbox_contact(item) for item in items]
        tag = self.category.casefold()
        # only ours are compared with the CRM: a user's own contacts cost no ResolveNames
        ours = [
            item
            for item, c in zip(items, listed, strict=True)
            if c.crm_id is not None or any(t.casefold() == tag for t in c.categories)
        ]
        resolved = self._resolve_ex_addresses(ours)
        for item in items:
            legacy = legacy_crm_id_of(item)
            if legacy is not None:
                self._legacy_crm_ids[item.id] = legacy
        return [with_smtp_addresses(c, resolved) for c in listed]

    def _with_whole_texts(self, page: list[Contact], fields: set[FieldPath]) -> list[Contact]:
        """FindItem cuts text values to 255 characters (EWS FindItem reference: "For
        Unicode, it returns the first 255 characters"); GetItem returns them whole. Contacts
        holding a value exactly that long are read again with GetItem, one request for all
        of them on this page, so a long CRM value does not look changed on every run and is
        never written back cut. Pages without such a value cost nothing more."""
        cut = [c.id for c in page if longest_text(c) == FIND_ITEM_TEXT_LIMIT]
        if not cut:
            return page
        whole = self._call(lambda: self._get_items(cut, fields))
        by_id = {c.id: c for c in whole if isinstance(c, Contact)}
        return [by_id.get(c.id, c) for c in page]

    def _get_items(
        self, item_ids: Sequence[str], fields: set[FieldPath] | None = None
    ) -> list[Contact | Exception]:
        service = self._service(CountedGetItem, chunk_size=len(item_ids))
        fields = fields or {FieldPath(field=contact_field("categories"))}
        return list(
            service.call(
                items=[(i, None) for i in item_ids], additional_fields=fields, shape=ID_ONLY
            )
        )
