"""Carrying out a write-back plan in one mailbox's sync (issues 14 and 19): the imperative
shell around the pure planner (write_back.py) and the checks (write_back_checks.py).

Per person, in order: write-back must not be paused (a refused login); the values must
be sane for their fields; under WRITE_BACK_SCOPE=managed the salesperson must manage the
person or their company; then the writer writes, and every write is proven: the person
is read back through the read-only database connection and only what the CRM holds is
recorded as the CRM's (links, `why`, the plan that follows). A field the CRM did not
keep is a failed write-back for that person: the Outlook value stays (the CRM ->
Exchange plan does not overwrite it), the next sync tries again, and it is reported.

What a salesperson reads (the outcome, `list`, their DM and digest) is their own
outcome in plain words; the CRM's own error text, which can name install paths, SQL
logins and servers, goes to the admin (`result.admin_notes`, shown by `status`) and
the service log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from sync_engine.config import Settings
from sync_engine.crm.scope import managed_by
from sync_engine.crm.source import SageCrm
from sync_engine.crm.writer import CrmUnavailable, CrmWriter, CrmWriteResult
from sync_engine.masking import mask_urls
from sync_engine.model import CrmPerson, Outcome, SyncResult
from sync_engine.state.rows import StoredUser
from sync_engine.state.writer import StateWriter
from sync_engine.store import Store
from sync_engine.write_back import WriteBack, WriteBackPlan
from sync_engine.write_back_checks import held_as_written, label, refusals
from sync_engine.write_back_state import (
    PAUSED_FOR_SALESPERSON,
    pause_write_back,
    write_back_paused,
)

log = logging.getLogger("crm_contacts.write_back")

ADMIN_HAS_DETAILS = "not written to the CRM; your admin has the details. The next sync tries again"
NOT_MANAGED = (
    "not written to the CRM: here only the people you are Account Manager for, or whose "
    "company you manage, are written back (WRITE_BACK_SCOPE=managed)"
)


@dataclass
class _Run:
    """One mailbox's write-back: where outcomes, events and admin notes go."""

    store: Store
    user: StoredUser
    result: SyncResult
    state: StateWriter
    people: dict[int, CrmPerson]
    failed: list[WriteBack]

    def fail(self, wb: WriteBack, reason: str, admin: str | None = None) -> None:
        """The person's edit is not (all) in the CRM: kept in Outlook, retried, reported."""
        self.failed.append(wb)
        self.state.event(wb.person_id, "failed", reason, wb.item_id, wb.name)
        self.result.outcomes.append(Outcome(wb.person_id, wb.name, "failed", reason))
        if admin:
            note = f"{self.user.mailbox}: {wb.name} (person {wb.person_id}): {mask_urls(admin)}"
            self.result.admin_notes.append(note)
            log.warning("write-back not done: %s", note)

    def written(self, wb: WriteBack, held: list[tuple[str, str]]) -> None:
        """Record what the CRM holds now as written back by this salesperson."""
        self.state.wrote_back(wb.person_id, held, wb.edited_at)
        names = ", ".join(name for name, _ in held)
        why = f"changed in Outlook by {self.user.email}, written to the CRM: {names}"
        if wb.replaces:
            why += "; newer than the edit from " + ", ".join(
                f"{mailbox} ({name})" for name, mailbox in wb.replaces
            )
        self.state.event(wb.person_id, "written_back", why, wb.item_id, wb.name)
        self.result.outcomes.append(Outcome(wb.person_id, wb.name, "written_back", names))


def write_back(
    store: Store,
    crm: SageCrm,
    writer: CrmWriter,
    user: StoredUser,
    run_id: int,
    result: SyncResult,
    plan: WriteBackPlan,
    people: dict[int, CrmPerson],
    settings: Settings,
    *,
    dry_run: bool,
    read_person: Callable[[int], CrmPerson | None],
) -> list[WriteBack]:
    """Write the Outlook edits to the CRM, one person at a time; return those (and the
    fields) not in the CRM afterwards. `people` is updated with what the CRM holds, so
    the CRM -> Exchange plan that follows sees it and the links remember it (no echo)."""
    result.warnings += plan.warnings
    failed: list[WriteBack] = []
    if not (plan.writes or plan.conflicts or plan.held):
        return failed  # nothing to write or record: no transaction (most syncs)
    managed = (
        managed_by(crm, user.crm_user_id, [wb.person_id for wb in plan.writes])
        if settings.write_back_scope == "managed" and plan.writes
        else None
    )
    paused = write_back_paused(store) if plan.writes and not dry_run else None
    with store.writer(user.id, None if dry_run else run_id, "sync") as w:
        run = _Run(store, user, result, w, people, failed)
        if paused:
            result.warnings.append(PAUSED_FOR_SALESPERSON)
            log.warning("write-back of %s skipped: %s", user.mailbox, paused)
        for i, wb in enumerate(plan.writes):
            why_not = refusals(wb.changes)
            if why_not:
                run.fail(wb, "not written to the CRM: " + "; ".join(why_not))
            elif managed is not None and wb.person_id not in managed:
                run.fail(wb, NOT_MANAGED)
            elif dry_run:  # shown, and the plan below sees the CRM as it would be
                result.outcomes.append(Outcome(wb.person_id, wb.name, "written_back", "dry run"))
                _took(people, wb)
            elif paused:
                run.fail(wb, ADMIN_HAS_DETAILS)
            else:
                try:
                    written = writer.write(wb.person_id, dict(wb.changes))
                except CrmUnavailable as exc:
                    result.crm_requests += exc.requests
                    _unavailable(run, settings, exc, plan.writes[i:])
                    break
                result.crm_requests += written.requests
                _prove(run, wb, written, read_person(wb.person_id))
        _conflicts(run, plan, dry_run)
        if plan.held and not dry_run:
            for warning in plan.warnings:
                w.event(None, "held", warning, None, None)
    return failed


def _prove(run: _Run, wb: WriteBack, written: CrmWriteResult, now: CrmPerson | None) -> None:
    """Compare what the CRM holds with what was written; record only what it holds."""
    held: list[tuple[str, str]] = []
    missing: list[tuple[str, str]] = []
    for name, value in wb.changes:
        there = getattr(now.fields, name) if now is not None else ""
        if now is not None and held_as_written(name, written.expected.get(name, value), there):
            held.append((name, there))
        else:
            missing.append((name, value))
    if now is not None:
        run.people[wb.person_id] = now
    if held:
        run.written(wb, held)
    if not missing:
        return
    rest = replace(wb, changes=tuple(missing))
    if written.refused:
        run.fail(rest, f"not written to the CRM: {written.refused}")
    elif written.error:
        run.fail(rest, ADMIN_HAS_DETAILS, written.error)
    else:
        names = ", ".join(label(name) for name, _ in missing)
        kept = "; ".join(
            f"{label(name)} {getattr(now.fields, name)!r}" if now else f"{label(name)} (gone)"
            for name, _ in missing
        )
        run.fail(
            rest,
            f"the CRM did not keep your {names} (it holds {kept}); your Outlook value is kept "
            "and the next sync tries again",
            f"Sage CRM answered success but its database holds {kept}, not the Outlook value",
        )


def _unavailable(run: _Run, settings: Settings, exc: CrmUnavailable, rest: list[WriteBack]) -> None:
    """No write can succeed now: this person and the rest wait for the next sync; a
    refused login pauses write-back (Sage locks an account out after failed logons)."""
    said = mask_urls(str(exc))
    if exc.pause:
        pause_write_back(run.store, settings, said)
        run.result.warnings.append(PAUSED_FOR_SALESPERSON)
    run.result.admin_notes.append(f"{run.user.mailbox}: write-back stopped: {said}")
    log.warning("write-back of %s stopped: %s", run.user.mailbox, said)
    for wb in rest:
        run.fail(wb, ADMIN_HAS_DETAILS)


def _conflicts(run: _Run, plan: WriteBackPlan, dry_run: bool) -> None:
    for lost in plan.conflicts:
        if lost.newer_from:
            why = (
                f"{lost.field} was edited here before {lost.newer_from} edited it in "
                "Outlook; the latest edit wins, so this contact gets that value"
            )
        elif lost.policy == "latest":
            why = (
                f"{lost.field} changed in the CRM after it was edited in Outlook; the "
                "latest edit wins (WRITE_BACK_CONFLICT=latest), so Outlook gets the CRM's value"
            )
        else:
            why = (
                f"{lost.field} changed in Outlook and in the CRM since the last sync; the "
                "CRM wins (WRITE_BACK_CONFLICT=crm), so Outlook gets the CRM's value"
            )
        if not dry_run:
            run.state.event(lost.person_id, "conflict", why, lost.item_id, lost.name)
        run.result.outcomes.append(Outcome(lost.person_id, lost.name, "conflict", lost.field))


def _took(people: dict[int, CrmPerson], wb: WriteBack) -> None:
    """The CRM person as it would be once it took the write-back (dry runs only)."""
    person = people[wb.person_id]
    fields = replace(person.fields, **dict(wb.changes)).with_derived()
    people[wb.person_id] = replace(person, fields=fields)
