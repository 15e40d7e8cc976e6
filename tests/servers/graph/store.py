"""The mailboxes' contents: items, extended properties, folders, change sequence."""

from __future__ import annotations

import copy
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from .schema import (
    ADDRESS_PROPS,
    ALL_PROPS,
    DEFAULT_FOLDER,
    LIST_PROPS,
    STRING_PROPS,
    StoredMailbox,
    apply_ext,
    apply_props,
    check_if_match,
    new_change_key,
    norm_prop,
    not_found,
)

NAME_PROPS = frozenset({"title", "givenName", "middleName", "surname", "generation"})
DELETED_ITEMS = "deleteditems"


class Store:
    """Contacts kept per mailbox (mixed into GraphServer)."""

    # ---- the store --------------------------------------------------------------------------

    def _box(self, address: str) -> StoredMailbox:
        return self._mailboxes.setdefault(self._user_key(address), StoredMailbox())

    def _stamp(self) -> str:
        now = datetime.now(UTC)
        if now <= self._last_ts:
            now = self._last_ts + timedelta(microseconds=1)
        self._last_ts = now
        return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _touch(self, box: StoredMailbox, item_id: str) -> None:
        box.seq += 1
        box.changed[item_id] = box.seq

    def _create(self, address: str, body: dict[str, Any], folder: str) -> dict[str, Any]:
        box = self._box(address)
        body = dict(body)
        ext: dict[str, tuple[str, str]] = {}
        apply_ext(ext, body.pop("singleValueExtendedProperties", None) or [])
        item: dict[str, Any] = {p: None for p in STRING_PROPS}
        item.update({p: [] for p in LIST_PROPS})
        item.update({p: {} for p in ADDRESS_PROPS})
        apply_props(item, body)
        item_id = "AAMkAD" + secrets.token_urlsafe(24)
        stamp = self._stamp()
        item.update(
            id=item_id,
            changeKey=new_change_key(),
            createdDateTime=stamp,
            lastModifiedDateTime=stamp,
            parentFolderId=f"AQMkAD-{folder}",
        )
        box.items[item_id] = item
        box.folder[item_id] = folder
        box.ext[item_id] = ext
        if folder == DEFAULT_FOLDER:
            self._touch(box, item_id)
        return item

    def _update(
        self, address: str, item_id: str, body: dict[str, Any], if_match: str | None
    ) -> dict[str, Any]:
        box = self._box(address)
        item = box.items.get(item_id)
        if item is None or box.folder[item_id] != DEFAULT_FOLDER:
            raise not_found()
        check_if_match(item, if_match)
        body = dict(body)
        ext = dict(box.ext[item_id])
        apply_ext(ext, body.pop("singleValueExtendedProperties", None) or [])
        updated = copy.deepcopy(item)
        apply_props(updated, body)  # validate everything before anything changes
        if NAME_PROPS & body.keys() and "displayName" not in body:
            # contact-update (v1.0): later updates to other properties may overwrite
            # displayName with a generated value unless it is sent again.
            updated["displayName"] = " ".join(
                str(updated[p])
                for p in ("title", "givenName", "middleName", "surname", "generation")
                if updated.get(p)
            )
        updated["changeKey"] = new_change_key()
        # contact resource (v1.0; msgraph-metadata EntityType outlookItem): changeKey and
        # lastModifiedDateTime (DateTimeOffset, UTC) change on every update of the item; the
        # engine's write-back compares it to tell the latest of two mailboxes' edits (issue 14)
        updated["lastModifiedDateTime"] = self._stamp()
        box.items[item_id] = updated
        box.ext[item_id] = ext
        self._touch(box, item_id)
        return updated

    def _delete(self, address: str, item_id: str, if_match: str | None) -> None:
        box = self._box(address)
        item = box.items.get(item_id)
        if item is None or box.folder[item_id] != DEFAULT_FOLDER:
            raise not_found()
        check_if_match(item, if_match)
        # contact-delete (v1.0) moves the contact to Deleted Items, where Outlook can
        # restore it; only contact-permanentDelete takes it out of the user's reach.
        box.folder[item_id] = DELETED_ITEMS
        self._touch(box, item_id)

    def _render(
        self, box: StoredMailbox, item_id: str, select: list[str] | None, expand: str | None
    ) -> dict[str, Any]:
        item = box.items[item_id]
        out: dict[str, Any] = {"@odata.etag": f'W/"{item["changeKey"]}"', "id": item_id}
        for prop in select or sorted(ALL_PROPS):
            out[prop] = copy.deepcopy(item[prop])
        if expand is not None:
            found = box.ext[item_id].get(norm_prop(expand))
            if found is not None:
                out["singleValueExtendedProperties"] = [{"id": found[0], "value": found[1]}]
        return out
