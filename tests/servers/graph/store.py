"""The mailboxes' contents: items, extended properties, folders, change sequence."""

from __future__ import annotations

import base64
import copy
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from .schema import (
    ADDRESS_PROPS,
    ALL_PROPS,
    DEFAULT_FOLDER,
    DELETED_ITEMS,
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


class Store:
    """Contacts kept per mailbox (mixed into GraphServer)."""

    # ---- the store --------------------------------------------------------------------------

    def _box(self, address: str) -> StoredMailbox:
        return self._mailboxes.setdefault(self._user_key(address), StoredMailbox())

    def _stamp(self) -> str:
        """The time of a change as Graph answers it: UTC, in whole seconds (the contact
        resource's examples: "2017-02-22T20:14:25Z"), so two changes may share one."""
        now = max(datetime.now(UTC) + self.clock_ahead, self._last_ts)
        self._last_ts = now
        return now.strftime("%Y-%m-%dT%H:%M:%SZ")

    def tick(self, seconds: float = 1.0) -> None:
        """Move the server's clock on (changes after this are that much later)."""
        with self._lock:
            self.clock_ahead += timedelta(seconds=seconds)

    def folder_id(self, address: str, folder: str = DEFAULT_FOLDER) -> str:
        """A folder's id in one mailbox (an opaque string, like Exchange's)."""
        raw = f"{self._user_key(address)}|{folder}".encode()
        return "AQMkAD" + base64.urlsafe_b64encode(raw).decode().rstrip("=")

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
            parentFolderId=self.folder_id(address, folder),
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
        if body.keys() - {"singleValueExtendedProperties"} and "displayName" not in body:
            # contact-update (v1.0): "later updates to other properties may cause an
            # automatically generated value to overwrite the displayName value you have
            # specified. To preserve a pre-existing value, always include it as displayName
            # in an update operation." Here every update without it regenerates it.
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
        self,
        box: StoredMailbox,
        item_id: str,
        select: list[str] | None,
        expand: list[str] | None,
    ) -> dict[str, Any]:
        item = box.items[item_id]
        out: dict[str, Any] = {"@odata.etag": f'W/"{item["changeKey"]}"', "id": item_id}
        for prop in select or sorted(ALL_PROPS):
            out[prop] = copy.deepcopy(item[prop])
        if expand is not None:  # only the properties the item carries
            found = [box.ext[item_id].get(norm_prop(p)) for p in expand]
            values = [{"id": f[0], "value": f[1]} for f in found if f is not None]
            if values:
                out["singleValueExtendedProperties"] = values
        return out
