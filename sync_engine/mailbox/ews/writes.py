"""Writing: CreateItem, UpdateItem and DeleteItem in batches, per-item answers kept."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from exchangelib import (
    Contact,
)
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorNonPrimarySmtpAddress,
    ErrorServerBusy,
    MalformedResponseError,
)
from exchangelib.items import MOVE_TO_DELETED_ITEMS, SAVE_ONLY

from sync_engine.mailbox.base import MailboxError
from sync_engine.mailbox.ews.errors import (
    CONFLICT_CODES,
    MAILBOX_CODES,
    TRANSIENT_ITEM_CODES,
    clip,
    item_error,
    response_code,
)
from sync_engine.mailbox.ews.mapping import new_contact, update_ops
from sync_engine.mailbox.ews.services import (
    CountedCreateItem,
    CountedDeleteItem,
    CountedMoveItem,
    CountedUpdateItem,
    deleted_items_folder,
)
from sync_engine.model import ContactChange, NewContact, WriteResult

log = logging.getLogger(__name__)


def busy_items(answers: Sequence[Any]) -> ErrorServerBusy:
    """Items answered ErrorServerBusy inside a batch: the batch waits as long as the longest
    BackOffMilliseconds any of them asked for (from its MessageXml), like a whole request."""
    waits = [a.back_off for a in answers if isinstance(a, ErrorServerBusy) and a.back_off]
    return ErrorServerBusy(
        "items throttled inside the batch", back_off=max(waits) if waits else None
    )


class Writes:
    """Writing in batches (mixed into EwsMailbox)."""

    # -- writing ------------------------------------------------------------------------

    def create(self, items: Sequence[NewContact]) -> list[WriteResult]:
        """CreateItem in batches; after an ambiguous failure, look the CRM ids up before
        sending again so a retried batch never makes duplicates."""
        results: list[WriteResult] = []
        for start in range(0, len(items), self.batch_size):
            results += self._create_batch(list(items[start : start + self.batch_size]))
        return results

    def _create_batch(self, batch: list[NewContact]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(batch)
        contacts: dict[int, Contact] = {}
        for i, new in enumerate(batch):
            try:
                contacts[i] = new_contact(self._account, new)
            except (ValueError, TypeError) as exc:
                results[i] = WriteResult(
                    error=f"invalid value: {clip(str(exc))}", error_kind="invalid"
                )
        todo = sorted(contacts)
        budget = self._budget()
        ambiguous = False
        while todo:
            try:
                if ambiguous:
                    found = self._find_by_crm_ids(
                        [cid for i in todo if (cid := batch[i].crm_id) is not None]
                    )
                    for i in todo:
                        hit = found.get(batch[i].crm_id)
                        if hit is not None:
                            results[i] = WriteResult(item_id=hit.id, change_key=hit.changekey)
                    todo = [i for i in todo if results[i] is None]
                    ambiguous = False
                    if not todo:
                        break
                service = self._service(CountedCreateItem, chunk_size=len(todo))
                answers = list(
                    service.call(
                        items=[contacts[i] for i in todo],
                        folder=self._folder(),
                        message_disposition=SAVE_ONLY,
                        send_meeting_invitations="SendToNone",
                    )
                )
                if len(answers) == len(todo):
                    self._raise_if_mailbox_error(answers)
            except Exception as exc:
                self._wait_or_raise(exc, budget)
                # busy or an alias refused: nothing was written, so no look-up is needed
                ambiguous = not isinstance(exc, ErrorServerBusy | ErrorNonPrimarySmtpAddress)
                continue
            again = self._collect(todo, answers, results, created=True)
            if again:
                self._wait_or_raise(busy_items(answers), budget)
            todo = again
        return [r or WriteResult(error="not written", error_kind="other") for r in results]

    def _batch_call(self, service_class: Any, n: int, **kwargs: Any) -> list[Any]:
        """One batched EWS request for `n` items: one answer per item, or an error for the
        whole mailbox (raised, so the caller's retry loop decides)."""
        answers = list(self._service(service_class, chunk_size=n).call(**kwargs))
        if len(answers) != n:
            raise MalformedResponseError(f"expected {n} answers, got {len(answers)}")
        self._raise_if_mailbox_error(answers)
        return answers

    def _collect(
        self,
        todo: list[int],
        answers: list[Any],
        results: list[WriteResult | None],
        *,
        created: bool,
    ) -> list[int]:
        """Record per-item answers; return the items to send again (throttled ones)."""
        if len(answers) != len(todo):
            raise MalformedResponseError(f"expected {len(todo)} answers, got {len(answers)}")
        self._raise_if_mailbox_error(answers)
        again = []
        for i, answer in zip(todo, answers, strict=True):
            if isinstance(answer, Exception):
                if response_code(answer) in TRANSIENT_ITEM_CODES:
                    again.append(i)
                else:
                    results[i] = item_error(answer)
            elif created:
                results[i] = WriteResult(item_id=answer.id, change_key=answer.changekey)
        return again

    def _raise_if_mailbox_error(self, answers: Sequence[Any]) -> None:
        """Access errors are about the mailbox, not the item: fail the mailbox. An alias
        refused for the folder's Mailbox is raised too: the retry loop switches to the
        primary address Exchange named and sends the batch again."""
        errors = [a for a in answers if isinstance(a, Exception)]
        for error in errors:
            if isinstance(error, ErrorNonPrimarySmtpAddress):
                raise error
        for error in errors:
            if response_code(error) in MAILBOX_CODES - {"ErrorAccessDenied"}:
                raise self._fatal(error)
        if (
            errors
            and len(errors) == len(answers)
            and all(isinstance(e, ErrorAccessDenied) for e in errors)
        ):
            raise self._fatal(errors[0])

    def update(self, changes: Sequence[ContactChange]) -> list[WriteResult]:
        """UpdateItem in batches, touching only the named fields. A stale change key is
        answered by one GetItem for the stale items and the change sent again on top of
        the current item (mapped fields: CRM wins; categories: the user's are kept)."""
        results: list[WriteResult] = []
        for start in range(0, len(changes), self.batch_size):
            results += self._update_batch(list(changes[start : start + self.batch_size]))
        return results

    def _update_batch(self, batch: list[ContactChange]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(batch)
        current: dict[int, ContactChange] = {}
        for i, change in enumerate(batch):
            if change.is_empty():
                results[i] = WriteResult(item_id=change.item_id, change_key=change.change_key)
            else:
                current[i] = change
        todo = sorted(current)
        budget = self._budget()
        rereads = 0
        while todo:
            try:
                plans = {i: self._ops(current[i]) for i in todo}
                for i in [i for i in todo if not plans[i]]:  # only blanks: nothing to write
                    results[i] = WriteResult(
                        item_id=current[i].item_id, change_key=current[i].change_key
                    )
                todo = [i for i in todo if plans[i]]
                if not todo:
                    break
            except (ValueError, TypeError) as exc:
                bad = next(i for i in todo if not self._valid(current[i]))
                results[bad] = WriteResult(
                    item_id=current[bad].item_id,
                    error=f"invalid value: {clip(str(exc))}",
                    error_kind="invalid",
                )
                todo = [i for i in todo if i != bad]
                continue
            targets = [
                (
                    Contact(
                        account=self._account,
                        id=current[i].item_id,
                        changekey=current[i].change_key or None,
                    ),
                    plans[i],
                )
                for i in todo
            ]
            try:
                answers = self._batch_call(
                    CountedUpdateItem,
                    len(todo),
                    items=targets,
                    conflict_resolution="NeverOverwrite",
                    message_disposition=SAVE_ONLY,
                    send_meeting_invitations_or_cancellations="SendToNone",
                    suppress_read_receipts=True,
                )
            except Exception as exc:
                self._wait_or_raise(exc, budget)
                continue
            again, stale = [], []
            for i, answer in zip(todo, answers, strict=True):
                if not isinstance(answer, Exception):
                    item_id, change_key = answer
                    self._legacy_crm_ids.pop(current[i].item_id, None)  # rewritten (one set)
                    results[i] = WriteResult(item_id=item_id, change_key=change_key)
                elif response_code(answer) in TRANSIENT_ITEM_CODES:
                    again.append(i)
                elif response_code(answer) in CONFLICT_CODES and rereads < 2:
                    stale.append(i)
                else:
                    results[i] = item_error(answer, current[i].item_id)
            if stale:
                rereads += 1
                try:
                    fresh = self._call(
                        lambda s=stale: self._get_items([current[i].item_id for i in s]), budget
                    )
                except MailboxError:
                    raise
                for i, item in zip(stale, fresh, strict=True):
                    if isinstance(item, Exception):
                        results[i] = item_error(item, current[i].item_id)
                    else:
                        current[i] = self._rebase(current[i], item)
                        again.append(i)
            elif again:
                self._wait_or_raise(busy_items(answers), budget)
            todo = sorted(again)
        return [
            r or WriteResult(item_id=c.item_id, error="not written", error_kind="other")
            for r, c in zip(results, batch, strict=True)
        ]

    def _ops(self, change: ContactChange) -> list[tuple[str, Any, Any]]:
        """The update's field operations; an item still carrying its CRM id under the
        legacy property set gets it under the one set too (crm_id.py)."""
        legacy = self._legacy_crm_ids.get(change.item_id)
        return update_ops(change, self._account.version, legacy)

    def _valid(self, change: ContactChange) -> bool:
        try:
            self._ops(change)
        except (ValueError, TypeError):
            return False
        return True

    def _rebase(self, change: ContactChange, item: Contact) -> ContactChange:
        """The same change on top of the item as it is now (after an Outlook edit)."""
        categories = change.categories
        if categories is not None:
            now = [c for c in (item.categories or []) if c != self.category]
            categories = tuple(now + ([self.category] if self.category in categories else []))
        return ContactChange(
            item_id=change.item_id,
            change_key=item.changekey,
            set_fields=change.set_fields,
            categories=categories,
            set_crm_id=change.set_crm_id,
            clear_crm_id=change.clear_crm_id,
        )

    def delete(self, item_ids: Sequence[str]) -> list[WriteResult]:
        """Move each contact to Deleted Items, in batches (Outlook can restore it, with the
        user's notes and photo; DESIGN rule 6). HardDelete, which no Outlook user can undo,
        is never sent. An item already gone counts as deleted.

        With impersonation: DeleteItem with DeleteType MoveToDeletedItems. Without it the
        service account is a delegate, and the DeleteItem operation reference says a
        delegate that asks for MoveToDeletedItems in the principal's mailbox gets
        ErrorCannotDeleteObject: "a delegate must use the MoveItem operation". So a
        delegate moves the items to the mailbox's distinguished folder `deleteditems`."""
        results: list[WriteResult] = []
        for start in range(0, len(item_ids), self.batch_size):
            results += self._delete_batch(list(item_ids[start : start + self.batch_size]))
        return results

    def _delete_batch(self, batch: list[str]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(batch)
        todo = list(range(len(batch)))
        budget = self._budget()
        while todo:
            try:
                answers = self._delete_call([batch[i] for i in todo])
            except Exception as exc:
                self._wait_or_raise(exc, budget)
                continue
            again = []
            for i, answer in zip(todo, answers, strict=True):
                if (
                    not isinstance(answer, Exception)
                    or response_code(answer) == "ErrorItemNotFound"
                ):
                    results[i] = WriteResult(item_id=batch[i])
                elif response_code(answer) in TRANSIENT_ITEM_CODES:
                    again.append(i)
                else:
                    results[i] = item_error(answer, batch[i])
            if again:
                self._wait_or_raise(busy_items(answers), budget)
            todo = again
        return [
            r or WriteResult(item_id=i, error="not deleted", error_kind="other")
            for r, i in zip(results, batch, strict=True)
        ]

    def _delete_call(self, item_ids: list[str]) -> list[Any]:
        """One request moving these items to Deleted Items: one answer per item."""
        items = [(i, None) for i in item_ids]
        if not self._impersonation:  # a delegate: MoveItem (see `delete`)
            to = deleted_items_folder(self._account, self.smtp_address)
            return self._batch_call(CountedMoveItem, len(items), items=items, to_folder=to)
        return self._batch_call(
            CountedDeleteItem,
            len(items),
            items=items,
            delete_type=MOVE_TO_DELETED_ITEMS,  # rule 6: the user can restore it
            send_meeting_cancellations="SendToNone",
            affected_task_occurrences="AllOccurrences",
            suppress_read_receipts=True,
        )
