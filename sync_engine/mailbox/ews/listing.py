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
from sync_engine.mailbox.ews.mapping import (
    FIND_ITEM_TEXT_LIMIT,
    contact_field,
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
                yield [mailbox_contact(c) for c in self._with_whole_texts(page, fields)]
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

    def _find_by_crm_ids(self, crm_ids: Sequence[int]) -> dict[int, Contact]:
        """Which of these CRM ids already have a contact (after an ambiguous create)."""
        if not crm_ids:
            return {}
        folder = self._folder()
        fields = {FieldPath(field=contact_field("crm_person_id"))}
        query = (
            Q(crm_person_id__in=list(crm_ids)) if len(crm_ids) > 1 else Q(crm_person_id=crm_ids[0])
        )
        restriction = items_restriction(query, folder)
        found: dict[int, Contact] = {}
        offset: int | None = 0
        while offset is not None:
            items, offset, _ = self._find_page(folder, fields, offset, restriction)
            for item in items:
                if item.crm_person_id is not None:
                    found.setdefault(int(item.crm_person_id), item)
        return found

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
