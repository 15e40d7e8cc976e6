"""One mailbox sync: read the three sides, plan, apply, record the run.

The imperative shell around the pure planner: it holds the mailbox lock, reads the
mailbox listing, the state and the CRM, and hands plain values to `plan_mailbox`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from sync_engine.apply import Applier
from sync_engine.config import Settings
from sync_engine.crm.clock import clock_offset
from sync_engine.crm.source import CrmError, SageCrm
from sync_engine.crm.writer import CrmWriter
from sync_engine.mailbox.base import Mailbox, MailboxError
from sync_engine.masking import mask_urls
from sync_engine.model import CrmPerson, Link, MailboxContact, Outcome, SyncResult
from sync_engine.ops.problems import failure_kind
from sync_engine.people_snapshot import PeopleSnapshot
from sync_engine.plan import (
    CreateContact,
    DeleteContact,
    ForgetPerson,
    LinkContact,
    PlanInput,
    UnlinkContact,
    UpdateContact,
    plan_mailbox,
)
from sync_engine.relink import missing_links, relinked
from sync_engine.standing.state import leaving as departures
from sync_engine.state.rows import StoredUser
from sync_engine.state.targets import TargetState
from sync_engine.store import MailboxBusy, Store, utcnow
from sync_engine.write_back import RecentWriteBack, WriteBackInput, plan_write_back
from sync_engine.write_back_run import write_back

log = logging.getLogger("crm_contacts.sync")

# (status, consecutive failures) -> more mailbox state to record with the run
OnRecord = Callable[[str, int], dict[str, object]]

_DRY_VERBS = {
    CreateContact: "created",
    LinkContact: "linked",
    UpdateContact: "updated",
    UnlinkContact: "unlinked",
    DeleteContact: "deleted",
}


@dataclass(frozen=True)
class Claimed:
    """A mailbox whose lock the caller holds (the scheduler's claim), with the target its
    links belong to as read under that lock (`mailbox reset` takes the lock to change
    it): the sync neither takes the lock again nor reads the target again."""

    mailbox: str
    synced_target: str | None


def sync_mailbox(
    store: Store,
    crm: SageCrm,
    mailbox: Mailbox,
    user: StoredUser,
    settings: Settings,
    *,
    dry_run: bool = False,
    allow_mass_delete: bool = False,
    trigger: str = "manual",
    progress: Callable[[int], None] | None = None,
    writer: CrmWriter | None = None,
    allow_mass_edit: bool = False,
    on_record: OnRecord | None = None,
    snapshot: PeopleSnapshot | None = None,
    claimed: Claimed | None = None,
) -> SyncResult:
    """Sync one mailbox; never raises for mailbox or CRM trouble, it reports it.
    With a `writer`, Outlook edits of linked contacts are written to the CRM first.
    `on_record(status, consecutive failures)` gives more mailbox state to write with the
    run's own (the scheduler's next due times: one write, not two); `snapshot`, the
    cycle's people read at once, used while the CRM has not changed since; `claimed`,
    the mailbox whose lock the caller holds (the scheduler's claim), not taken twice."""
    result = SyncResult(mailbox=user.mailbox, dry_run=dry_run)
    mine = claimed is not None and claimed.mailbox.lower() == user.mailbox.lower()
    try:
        with nullcontext() if mine else store.mailbox_lock(user.mailbox):
            _locked_sync(
                store,
                crm,
                mailbox,
                user,
                settings,
                result,
                dry_run,
                allow_mass_delete,
                trigger,
                progress,
                writer,
                allow_mass_edit,
                on_record,
                snapshot,
                claimed if mine else None,
            )
    except MailboxBusy:
        result.error = "another sync of this mailbox is running; try again in a minute"
        result.busy = True
    result.requests = mailbox.requests
    return result


def _locked_sync(
    store: Store,
    crm: SageCrm,
    mailbox: Mailbox,
    user: StoredUser,
    settings: Settings,
    result: SyncResult,
    dry_run: bool,
    allow_mass_delete: bool,
    trigger: str,
    progress: Callable[[int], None] | None,
    writer: CrmWriter | None,
    allow_mass_edit: bool,
    on_record: OnRecord | None,
    snapshot: PeopleSnapshot | None,
    claimed: Claimed | None,
) -> None:
    started = utcnow()
    try:
        run_id = store.start_run(user.id, trigger, dry_run, abandon_running=True)
    except SQLAlchemyError as exc:
        result.error = (
            f"the state database is busy or unreachable ({type(exc).__name__}); try again"
        )
        return
    watermark = None
    applier = Applier(store, mailbox, user.id, run_id, result, progress)
    targets = TargetState(store.engine)
    synced = mailbox.target_id  # the target the links hold item ids of (known after the read)
    try:
        watermark = crm.latest_change()
        synced = (
            claimed.synced_target if claimed is not None else targets.synced_target(user.mailbox)
        )
        contacts, links = _read_mailbox(store, mailbox, user, synced)
        reads = mailbox.requests
        subscriptions = frozenset(store.subscriptions(user.id))
        relevant = (
            set(subscriptions) | set(links) | {c.crm_id for c in contacts if c.crm_id is not None}
        )
        people = _read_people(crm, mailbox, relevant, snapshot, watermark)
        pending: dict[int, frozenset[str]] = {}
        if writer is not None:
            wb_plan = plan_write_back(
                WriteBackInput(
                    links=links,
                    people=people,
                    contacts=contacts,
                    subscriptions=subscriptions,
                    recent={
                        pid: {name: RecentWriteBack(*v) for name, v in by_field.items()}
                        for pid, by_field in store.recent_write_backs(
                            links, other_than=user.id
                        ).items()
                    },
                    conflict_policy=settings.write_back_conflict,
                    mass_edit_share=settings.mass_edit_share,
                    mass_edit_min=settings.mass_edit_min,
                    allow_mass_edit=allow_mass_edit,
                    crm_clock_offset=(
                        clock_offset(crm)
                        if settings.write_back_conflict == "latest"
                        else timedelta(0)
                    ),
                )
            )
            failed = write_back(
                store,
                crm,
                writer,
                user,
                run_id,
                result,
                wb_plan,
                people,
                settings,
                dry_run=dry_run,
                read_person=lambda pid: _read_people(crm, mailbox, [pid]).get(pid),
            )
            pending = wb_plan.pending(failed)
            if wb_plan.writes and not dry_run and watermark is not None:
                # our own CRM writes must not bring this mailbox back as a CRM change; other
                # people's changes since the start must, so move only past ours
                written = {wb.person_id for wb in wb_plan.writes}
                if set(crm.changes_since(watermark)) <= written:
                    watermark = crm.latest_change()
        plan = plan_mailbox(
            PlanInput(
                category=settings.crm_category,
                subscriptions=subscriptions,
                links=links,
                people=people,
                contacts=contacts,
                crm_is_empty=_crm_is_empty(crm, relevant, people),
                mass_delete_share=settings.mass_delete_share,
                mass_delete_min=settings.mass_delete_min,
                allow_mass_delete=allow_mass_delete,
                pending=pending,
                leaving=departures(store, user.id),  # standing rules let them go
            )
        )
        result.possible_duplicates = [d.describe() for d in plan.possible_duplicates]
        result.warnings += plan.warnings
        if dry_run:
            for action in plan.actions:
                verb = _DRY_VERBS.get(type(action))
                if isinstance(action, ForgetPerson):
                    verb = action.outcome
                if verb:
                    result.outcomes.append(
                        Outcome(action.person_id, getattr(action, "name", ""), verb, "dry run")
                    )
        else:
            try:
                applier.apply(plan)
            finally:
                result.write_requests = mailbox.requests - reads
            if plan.held_back:
                applier.events([(None, "held", w, None) for w in plan.warnings])
    except (MailboxError, CrmError) as exc:
        result.error = mask_urls(str(exc))  # kept in the run history: no credentials
        result.error_kind = failure_kind(exc)
    except Exception as exc:  # one mailbox failing must not stop the others
        log.exception("sync of %s failed", user.mailbox)
        result.error = f"unexpected error ({type(exc).__name__}); see the service log"
    status = "failed" if result.error else ("partial" if result.failed else "ok")
    if dry_run:
        store.finish_run(run_id, status, result.as_json(), result.error)
        return
    state: dict[str, object] = {
        "last_run_at": started,
        "last_status": status,
        "last_error": result.error,
        "last_error_kind": result.error_kind,
    }
    if result.error:
        failures = store.mailbox_state(user.id).consecutive_failures + 1
        state["consecutive_failures"] = failures
    else:
        # a good run ends any back-off: the next due time is the scheduler's to set afresh
        failures = 0
        state.update(
            consecutive_failures=0,
            last_success_at=started,
            crm_watermark=watermark,
            next_due_at=None,
        )
    if on_record is not None:  # the scheduler's next due times, in the same write
        state.update(on_record(status, failures))
    # the run, the mailbox's state and the last batch's state in one transaction
    store.finish_run(
        run_id,
        status,
        result.as_json(),
        result.error,
        state=(user.id, state),
        pending=applier.pending,
    )
    if not result.error and synced != mailbox.target_id:
        # the links hold its ids now: said only once they are written (the last batch's
        # with the run's end), so a sync stopped before that leaves them untrusted
        targets.synced_on(user.mailbox, mailbox.target_id)


def _crm_is_empty(crm: SageCrm, relevant: set[int], people: dict[int, CrmPerson]) -> bool:
    """Rule 8's "the CRM answers with no people at all". A live person among this
    mailbox's own says no without asking: counting a big CRM's people on every sync was
    one full count per mailbox."""
    if not relevant or any(not p.deleted for p in people.values()):
        return False
    return crm.count_live_people() == 0


def _read_mailbox(
    store: Store, mailbox: Mailbox, user: StoredUser, synced: str | None
) -> tuple[list[MailboxContact], dict[int, Link]]:
    """The folder and the links, each link pointing at its contact (relink.py).

    After a change of target (a move to Exchange Online, a new MAILBOX_BACKEND, `mailbox
    reset`) neither the links' item ids nor the target's saved state are trusted: the
    contacts are found again by CRM id before anything is created, unlinked or forgotten.
    `synced`: the target of the last good sync (None: from before issue 20, trusted)."""
    trusted = synced is None or synced == mailbox.target_id
    if not trusted:
        log.info("%s: target changed (%s -> %s)", user.mailbox, synced, mailbox.target_id)
        mailbox.forget_state()
    contacts = [c for page in mailbox.list_contacts() for c in page]
    links = store.links(user.id)
    missing = missing_links(links, contacts, trusted=trusted)
    if missing:
        listed = {c.item_id for c in contacts}
        found = mailbox.find(missing)
        contacts += [c for cs in found.values() for c in cs if c.item_id not in listed]
    return contacts, relinked(links, contacts, trusted=trusted, as_held=mailbox.as_held)


def _read_people(
    crm: SageCrm,
    mailbox: Mailbox,
    ids: Iterable[int],
    snapshot: PeopleSnapshot | None = None,
    latest: datetime | None = None,
) -> dict[int, CrmPerson]:
    """The CRM people as this target holds them (Graph: a lone Private email is email 1);
    from the cycle's `snapshot` while the CRM's latest change is still `latest`."""
    found = (
        snapshot.people_by_ids(crm, ids, latest) if snapshot is not None else crm.people_by_ids(ids)
    )
    return {i: replace(p, fields=mailbox.as_held(p.fields)) for i, p in found.items()}
