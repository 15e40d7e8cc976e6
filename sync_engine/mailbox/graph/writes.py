"""Writing in `$batch`es: creates (never twice), PATCHes with change keys, deletes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from sync_engine.mailbox.base import MailboxError
from sync_engine.mailbox.graph.errors import failure
from sync_engine.mailbox.graph.mapping import (
    CRM_ID_PROPERTY,
    EXT_READ_AT,
    LEGACY_CRM_ID_PROPERTIES,
    SELECT,
    ext_fresh,
    extended_expand,
    needs_current,
    new_body,
    patch_body,
    set_ext,
    to_contact,
    trim,
    written_ext,
)
from sync_engine.mailbox.graph.transport import ITEM_NOT_FOUND, JSON_HEADERS, Op
from sync_engine.model import (
    ContactChange,
    MailboxContact,
    NewContact,
    WriteResult,
)

log = logging.getLogger(__name__)


class Writes:
    """Creates, updates, deletes and CRM id look-ups (mixed into GraphMailbox)."""

    def create(self, items: Sequence[NewContact]) -> list[WriteResult]:
        return self._resolving(lambda: self._create(items))

    def update(self, changes: Sequence[ContactChange]) -> list[WriteResult]:
        return self._resolving(lambda: self._update(changes))

    def delete(self, item_ids: Sequence[str]) -> list[WriteResult]:
        return self._resolving(lambda: self._delete(item_ids))

    def find(self, crm_ids: Sequence[int]) -> dict[int, list[MailboxContact]]:
        """Contacts carrying these CRM ids, oldest first: one `$filter` per id, in `$batch`es."""
        found, unknown = self._resolving(lambda: self._lookup(crm_ids))
        if unknown:
            crm_id, message = next(iter(unknown.items()))
            raise MailboxError(f"Could not look up CRM id {crm_id} in {self.address}: {message}")
        return found

    def _create(self, items: Sequence[NewContact]) -> list[WriteResult]:
        """Create in `$batch`es; a create whose answer was lost is looked up before it is
        sent again, so a retry never makes a duplicate (DESIGN rule 9)."""
        results: list[WriteResult | None] = [None] * len(items)
        todo = list(range(len(items)))
        if self.check_before_create and todo:
            todo = self._take_existing(items, todo, results)
        for _round in range(3):
            if not todo:
                break
            bodies = {i: new_body(items[i]) for i in todo}
            ops = [Op("POST", f"{self._user}/contacts", bodies[i], JSON_HEADERS) for i in todo]
            unsure = []
            for i, answer in zip(todo, self._run_batch(ops), strict=True):
                if answer.ok and isinstance(answer.body, dict):
                    # what we sent is all it carries: known, never looked up
                    raw = self._remember(answer.body, ext=written_ext(bodies[i]), whole=True)
                    results[i] = WriteResult(item_id=raw["id"], change_key=raw.get("changeKey"))
                elif answer.unsure or answer.status >= 500:
                    unsure.append(i)
                else:
                    self._raise_for_mailbox(answer)
                    results[i] = failure(answer)
            todo = self._take_existing(items, unsure, results) if unsure else []
        for i in todo:
            results[i] = WriteResult(
                error="Exchange Online did not confirm the create; the next sync tries again",
                error_kind="other",
            )
        return [r or WriteResult(error="not attempted", error_kind="other") for r in results]

    def _update(self, changes: Sequence[ContactChange]) -> list[WriteResult]:
        """PATCH only the named fields, guarded by the change key; on a conflict re-read the
        item and apply the same mapped fields to what is there now."""
        self._load_state()
        results: list[WriteResult | None] = [None] * len(changes)
        unknown = [
            i for i, ch in enumerate(changes) if ch.item_id not in self._cache and needs_current(ch)
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
            for i, op, answer in zip(todo, ops, self._run_batch(ops), strict=True):
                ch = changes[i]
                if answer.ok and isinstance(answer.body, dict):
                    raw = self._remember(answer.body, ext=written_ext(op.body or {}), ours=True)
                    results[i] = WriteResult(item_id=raw["id"], change_key=raw.get("changeKey"))
                elif answer.status in (409, 412):
                    conflicts.append(i)
                else:
                    self._raise_for_mailbox(answer)
                    results[i] = failure(answer, item_id=ch.item_id)
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

    def _delete(self, item_ids: Sequence[str]) -> list[WriteResult]:
        """DELETE in `$batch`es; an item already gone counts as deleted.

        Graph's DELETE on a contact (contact-delete, v1.0) moves it to the user's Deleted
        Items folder, where Outlook can restore it (DESIGN rule 6); `permanentDelete`
        (to Recoverable Items' Purges, out of Outlook's reach) is never used."""
        ops = [Op("DELETE", f"{self._user}/contacts/{quote(i, safe='')}") for i in item_ids]
        results = []
        for item_id, answer in zip(item_ids, self._run_batch(ops), strict=True):
            if answer.ok or (answer.status == 404 and answer.code in ITEM_NOT_FOUND):
                self._load_state()
                if self._cache.pop(item_id, None) is not None:
                    self._dirty = True
                results.append(WriteResult(item_id=item_id))
            else:
                self._raise_for_mailbox(answer)
                results.append(failure(answer, item_id=item_id))
        return results

    # ---- more than the protocol -----------------------------------------------------------------

    def _lookup(
        self, crm_ids: Sequence[int]
    ) -> tuple[dict[int, list[MailboxContact]], dict[int, str]]:
        """Like `find`, but ids whose look-up failed come back apart, with the reason.

        The documented filter form (singleValueExtendedProperty-get: resource instances
        filtered by a numeric extended property, `ep/id eq` and `cast(ep/value, Edm.Int32)
        eq`) finds the items, one filter per property (the one and each legacy one); the
        CRM id of each is the one filtered on, so no `$expand` is needed. A filter's answer
        is a collection and may come in pages: every `@odata.nextLink` is followed."""
        ids = list(dict.fromkeys(int(i) for i in crm_ids))
        select = ",".join(SELECT)
        asks = [
            (crm_id, prop)
            for crm_id in ids
            for prop in (CRM_ID_PROPERTY, *LEGACY_CRM_ID_PROPERTIES)
        ]
        ops = []
        for crm_id, prop in asks:
            flt = (
                f"singleValueExtendedProperties/any(ep: ep/id eq '{prop}' "
                f"and cast(ep/value, Edm.Int32) eq {crm_id})"
            )
            query = urlencode({"$filter": flt, "$select": select}, quote_via=quote)
            ops.append(Op("GET", f"{self._user}/contacts?{query}"))
        seen: dict[int, dict[str, MailboxContact]] = {}
        unknown: dict[int, str] = {}
        for (crm_id, prop), answer in zip(asks, self._run_batch(ops), strict=True):
            if not answer.ok:
                self._raise_for_mailbox(answer)
                unknown[crm_id] = answer.message
                continue
            for raw in self._all_pages(answer.body):
                if raw.get("id"):
                    contact = to_contact(self._remember(raw, ext={prop: str(crm_id)}))
                    seen.setdefault(crm_id, {})[contact.item_id] = contact
        found = {
            crm_id: sorted(by_id.values(), key=lambda c: (c.created_at, c.item_id))
            for crm_id, by_id in seen.items()
            if crm_id not in unknown
        }
        return found, unknown

    def _all_pages(self, body: Any) -> list[dict[str, Any]]:
        """The items of a collection answer and of every page after it."""
        if not isinstance(body, dict):
            return []
        items = [raw for raw in body.get("value") or [] if isinstance(raw, dict)]
        link = body.get("@odata.nextLink")
        while link:
            data = self._ok_json(self._send("GET", self._own(link)))
            items += [raw for raw in data.get("value") or [] if isinstance(raw, dict)]
            link = data.get("@odata.nextLink")
        return items

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

    def _patch_op(self, change: ContactChange, *, fresh: bool) -> Op:
        current = self._cache.get(change.item_id)
        body = patch_body(change, current, self._settings.crm_category, fresh=fresh)
        stateful = needs_current(change)
        key = (current or {}).get("changeKey") if (stateful or fresh) else change.change_key
        headers = dict(JSON_HEADERS)
        if key:
            headers["If-Match"] = f'W/"{key}"'
        return Op("PATCH", f"{self._user}/contacts/{quote(change.item_id, safe='')}", body, headers)

    def _reread(
        self,
        changes: Sequence[ContactChange],
        todo: list[int],
        results: list[WriteResult | None],
    ) -> list[int]:
        """Fetch the items as they are now (one `$batch`); gone items are reported not found."""
        query = urlencode(
            {"$select": ",".join(SELECT), "$expand": extended_expand()}, quote_via=quote
        )
        ops = [
            Op("GET", f"{self._user}/contacts/{quote(changes[i].item_id, safe='')}?{query}")
            for i in todo
        ]
        alive = []
        for i, answer in zip(todo, self._run_batch(ops), strict=True):
            if answer.ok and isinstance(answer.body, dict):
                self._cache.pop(changes[i].item_id, None)
                # The properties were expanded: what is absent, the item does not carry.
                self._remember(answer.body, ext=written_ext(answer.body), whole=True)
                alive.append(i)
            else:
                self._raise_for_mailbox(answer)
                results[i] = failure(answer, item_id=changes[i].item_id)
        return alive

    def _remember(
        self,
        raw: dict[str, Any],
        *,
        ext: dict[str, str] | None = None,
        whole: bool = False,
        ours: bool = False,
    ) -> dict[str, Any]:
        """Fold an item we read or wrote into the folder's picture (selected fields only).

        `ext`: extended property values it carries (`whole`: all it carries, as expanded
        or as created); `ours`: the answer to our own write, which changed no extended
        property but those in `ext`, so what was known of the others stays known."""
        self._load_state()
        before = self._cache.get(raw["id"], {})
        if raw.get("parentFolderId") and not self._contacts_folder_id:
            self._contacts_folder_id = str(raw["parentFolderId"])  # learned from a create
        merged = trim({**before, **raw})
        if ext is not None or whole:
            set_ext(merged, ext or {}, whole=whole)
        if whole or (ours and ext_fresh(before)):
            merged[EXT_READ_AT] = merged.get("changeKey")
        self._cache[raw["id"]] = merged
        self._dirty = True
        return merged
