"""Carries a plan out against one mailbox target, in batches, recording every outcome.

Each batch of mailbox writes is followed by one state transaction for exactly the items
that succeeded, so a run killed between the two is finished by the next run: created
items are found again by their CRM id, deleted ones by their absence (DESIGN rule 9).
That transaction is written before the next batch goes to the mailbox; the last one is
left `pending` for the run's end to write in its own transaction (`Store.finish_run`):
one durable commit fewer per sync, and the same order of writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sync_engine.mailbox.base import Mailbox
from sync_engine.model import ContactChange, Link, Outcome, SyncResult, WriteResult
from sync_engine.plan import (
    Action,
    CreateContact,
    DeleteContact,
    ForgetPerson,
    LinkContact,
    Plan,
    RefreshLink,
    UnlinkContact,
    UpdateContact,
)
from sync_engine.state.writer import StateWriter
from sync_engine.store import Store

T = TypeVar("T")
Progress = Callable[[int], None]

# What to tell the user for a failed item, by the target's error kind.
_ADVICE = {
    "not_found": "the contact was deleted in Outlook during the sync; the next sync settles it",
    "conflict": "the contact changed in Outlook at the same moment; the next sync retries",
    "invalid": "the mailbox refused a value; check the person's fields in the CRM",
    "throttled": "the server was busy; the next sync retries",
}


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _failure(result: WriteResult) -> str:
    advice = _ADVICE.get(result.error_kind or "", "the next sync retries")
    return f"{result.error} ({advice})"


class Applier:
    """Runs one plan. Whole-mailbox errors (MailboxError) propagate after what was done
    so far is recorded; per-item errors fail that item only."""

    def __init__(
        self,
        store: Store,
        mailbox: Mailbox,
        user_id: int,
        run_id: int,
        result: SyncResult,
        progress: Progress | None = None,
    ) -> None:
        self.store, self.mailbox, self.user_id, self.run_id = store, mailbox, user_id, run_id
        self.result = result
        self.progress = progress or (lambda _n: None)
        # the state of the last batch (or of the state-only actions), not yet written
        self.pending: StateWriter | None = None

    def apply(self, plan: Plan) -> None:
        state_only = [a for a in plan.actions if isinstance(a, RefreshLink | ForgetPerson)]
        state_only += [
            a
            for a in plan.actions
            if isinstance(a, LinkContact | UnlinkContact) and a.change is None
        ]
        writes = [a for a in plan.actions if isinstance(a, UpdateContact)]
        writes += [
            a
            for a in plan.actions
            if isinstance(a, LinkContact | UnlinkContact) and a.change is not None
        ]
        creates = [a for a in plan.actions if isinstance(a, CreateContact)]
        deletes = [a for a in plan.actions if isinstance(a, DeleteContact)]

        self._record(state_only)
        self.progress(len(state_only))
        size = max(1, self.mailbox.batch_size)
        for batch in _chunks(writes, size):
            changes: list[ContactChange] = [a.change for a in batch]  # type: ignore[misc]
            self._written()
            self._settle(batch, self.mailbox.update(changes))
        for batch in _chunks(creates, size):
            self._written()
            self._settle(batch, self.mailbox.create([a.new for a in batch]))
        for batch in _chunks(deletes, size):
            self._written()
            self._settle(batch, self.mailbox.delete([a.item_id for a in batch]))

    def events(self, rows: Sequence[tuple[int | None, str, str, str | None]]) -> None:
        """More audit rows of this run, written after the plan's (e.g. what was held back)."""
        w = self._writer()
        for pid, action, reason, item_id in rows:
            w.event(pid, action, reason, item_id)

    def _writer(self) -> StateWriter:
        if self.pending is None:
            self.pending = self.store.buffer(self.user_id, self.run_id, "sync")
        return self.pending

    def _written(self) -> None:
        """Write what is pending before the next batch goes to the mailbox."""
        if self.pending is not None:
            self.store.write(self.pending)
            self.pending = None

    def _record(self, actions: Sequence[Action]) -> None:
        if not actions:
            return
        w = self._writer()
        for action in actions:
            self._done(w, action, None)

    def _settle(self, batch: Sequence[Action], results: list[WriteResult]) -> None:
        if len(results) != len(batch):
            raise RuntimeError(f"target answered {len(results)} results for {len(batch)} items")
        w = self._writer()
        for action, outcome in zip(batch, results, strict=True):
            if outcome.ok:
                self._done(w, action, outcome)
            else:
                pid, name = action.person_id, getattr(action, "name", "")
                w.event(pid, "failed", _failure(outcome), getattr(action, "item_id", None), name)
                self.result.outcomes.append(Outcome(pid, name, "failed", _failure(outcome)))
        self.progress(len(batch))

    def _done(self, w: StateWriter, action: Action, outcome: WriteResult | None) -> None:
        """The state change and audit event for one action that reached the mailbox."""
        out = self.result.outcomes
        match action:
            case CreateContact(person_id=pid, name=name, fingerprint=fp):
                assert outcome is not None and outcome.item_id
                w.put_link(
                    Link(
                        pid,
                        outcome.item_id,
                        outcome.change_key or "",
                        fp,
                        "created",
                        action.crm_values,
                        action.mailbox_values,
                    )
                )
                why = "in My CRM Contacts and not in the mailbox"
                w.event(pid, "created", why, outcome.item_id, name)
                out.append(Outcome(pid, name, "created"))
            case LinkContact(
                person_id=pid,
                name=name,
                item_id=item,
                change_key=ck,
                fingerprint=fp,
                origin=origin,
                reason=why,
            ):
                w.put_link(
                    Link(
                        pid,
                        item,
                        (outcome.change_key if outcome else None) or ck,
                        fp,
                        origin,
                        action.crm_values,
                        action.mailbox_values,
                    )
                )
                w.event(pid, "linked", why, item, name)
                out.append(Outcome(pid, name, "linked", why))
            case UpdateContact(
                person_id=pid, name=name, change=change, fingerprint=fp, origin=origin, reason=why
            ):
                ck = (outcome.change_key if outcome else None) or change.change_key
                w.put_link(
                    Link(
                        pid,
                        change.item_id,
                        ck,
                        fp,
                        origin,
                        action.crm_values,
                        action.mailbox_values,
                    )
                )
                fields = ", ".join(k for k, _ in change.set_fields) or "category"
                w.event(pid, "updated", f"{why}: {fields}", change.item_id, name)
                out.append(Outcome(pid, name, "updated", fields))
            case RefreshLink(
                person_id=pid, item_id=item, change_key=ck, fingerprint=fp, origin=origin
            ):
                w.put_link(
                    Link(pid, item, ck, fp, origin, action.crm_values, action.mailbox_values)
                )
            case UnlinkContact(person_id=pid, name=name, item_id=item, reason=why):
                w.drop_link(pid)
                w.event(
                    pid,
                    "unlinked",
                    f"{why}; the contact stays in the mailbox without the category",
                    item,
                    name,
                )
                out.append(Outcome(pid, name, "unlinked"))
            case DeleteContact(person_id=pid, name=name, item_id=item, reason=why):
                w.drop_link(pid)
                w.drop_subscription(pid)
                w.event(pid, "deleted", f"{why}: removed from the mailbox", item, name)
                out.append(Outcome(pid, name, "deleted", why))
            case ForgetPerson(
                person_id=pid, name=name, outcome=kind, drop_subscription=drop, reason=why
            ):
                w.drop_link(pid)
                if drop:
                    w.drop_subscription(pid)
                w.event(pid, kind, why, None, name)
                out.append(Outcome(pid, name, kind, why))
