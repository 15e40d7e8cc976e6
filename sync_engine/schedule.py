"""The `clock` process: change-driven sync cycles, a daily full reconcile, daily digests.

Every SYNC_INTERVAL_SECONDS a cycle asks the database which mailboxes have work — the
list changed since the last good sync, one of their people changed in the CRM since the
mailbox's watermark, a failed sync's back-off expired, or the daily reconcile is due —
and syncs only those. An idle cycle is a few database queries and no mailbox request.

Several processes (PostgreSQL) share the work: each due mailbox is *claimed* first
(`queue.claim`) and decided again with fresh data, so each is synced once per change,
whoever gets there first. A killed process's claims die with its connection; the engine
is crash-safe, so the next cycle completes an abandoned sync.

This module is the process: the cycles, each claimed mailbox's sync, and running the
jobs until a signal. The rules of when a mailbox or a digest is due are pure and live in
`due.py`; the digests and the team summary, the clock's second job, in `digests.py`.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sync_engine import queue
from sync_engine.crm.source import CrmError
from sync_engine.digests import (
    KNOWN_ERRORS,
    AccountPoster,
    DigestJobs,
    SummaryPoster,
    TeamPoster,
)
from sync_engine.due import PRIORITY, Clock, Decision, Policy, crm_changed, decide, watched
from sync_engine.index import RefreshReport
from sync_engine.index.clock import IndexKeeper
from sync_engine.model import SyncResult
from sync_engine.people_snapshot import PeopleSnapshot
from sync_engine.queue import MailboxRow
from sync_engine.standing.keeper import KeepReport
from sync_engine.store import utcnow
from sync_engine.sync import Claimed

log = logging.getLogger("crm_contacts.schedule")

_ACTIONS = (
    "created",
    "linked",
    "updated",
    "unlinked",
    "deleted",
    "forgotten",
    "written_back",
    "conflict",
)


# -- reports ------------------------------------------------------------------------------


@dataclass
class CycleReport:
    started: datetime
    mailboxes: int = 0
    due: int = 0
    synced: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    taken_by_others: int = 0  # claimed elsewhere, or already done by another process
    backing_off: int = 0
    requests: int = 0  # mailbox round trips made by this cycle's syncs
    index: RefreshReport | None = None  # the people index's refresh (None: built or failed)
    rules: KeepReport | None = None  # the standing rules kept (None: failed, see the log)
    seconds: float = 0.0
    error: str | None = None
    # For the after-cycle hooks (ops.clock: metrics, health, alerts): what the cycle read.
    crm_latest: datetime | None = None  # the CRM's latest change time, CRM clock
    crm_error: str | None = None  # the cycle could not read the CRM
    due_rows: list[tuple[MailboxRow, Decision]] = field(default_factory=list)


# -- the process --------------------------------------------------------------------------


class Scheduler(DigestJobs):
    """One scheduler process's work; `run_cycle` and `run_summaries` (`DigestJobs`) are its
    two jobs."""

    def __init__(
        self,
        engine: Any,
        *,
        now: Clock = utcnow,
        summary_poster: SummaryPoster | None = None,
        team_poster: TeamPoster | None = None,
        account_poster: AccountPoster | None = None,
        team_channel: str | None = None,
        policy: Policy | None = None,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
        after_cycle: Sequence[Callable[[CycleReport], None]] = (),
    ) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.now = now
        self.summary_poster = summary_poster
        self.team_poster = team_poster
        self.account_poster = account_poster
        # another front end's channel for the team summary when SUMMARY_CHANNEL is not set
        self._other_channel = team_channel
        self.policy = policy or Policy(
            interval=timedelta(seconds=self.settings.sync_interval_seconds)
        )
        self.stop = stop or threading.Event()
        self.rng = rng or random.Random()
        self.after_cycle = list(after_cycle)  # metrics, health and alerts (ops.clock)
        # SUMMARY_CHANNEL as it was when the chat service refused it (no retry until it changes)
        self._refused_channel: str | None = None
        self.index_keeper = IndexKeeper(engine.index, now=self.now, stopping=self.stop.is_set)

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.engine.store

    @property
    def crm(self):  # type: ignore[no-untyped-def]
        return self.engine.crm

    # -- sync cycles ----------------------------------------------------------------------

    def run_cycle(self) -> CycleReport:
        """Find the mailboxes with work and sync each one this process can claim."""
        report = CycleReport(started=self.now())
        began = time.monotonic()
        try:
            latest = self.crm.latest_change()  # one look serves the index and the mailboxes
            report.crm_latest = latest
            self._refresh_index(report, latest)
            report.rules = self.engine.rules.keep(latest=latest, now=self.now())  # rule 11
            self._cycle(report, latest)
        except KNOWN_ERRORS as exc:  # the CRM or the state database is down: try next cycle
            report.error = str(exc)
            report.crm_error = str(exc) if isinstance(exc, CrmError) else None
            log.error("cycle failed", extra={"event": "cycle_failed", "error": str(exc)})
        except Exception as exc:
            report.error = f"unexpected error ({type(exc).__name__})"
            log.exception("cycle failed", extra={"event": "cycle_failed"})
        report.seconds = time.monotonic() - began
        level = logging.INFO if report.due or report.error else logging.DEBUG
        log.log(
            level,
            "cycle done",
            extra={
                "event": "cycle",
                "mailboxes": report.mailboxes,
                "due": report.due,
                "synced": len(report.synced),
                "failed": len(report.failed),
                "taken_by_others": report.taken_by_others,
                "backing_off": report.backing_off,
                "requests": report.requests,
                "ms": round(report.seconds * 1000),
            },
        )
        for hook in self.after_cycle:
            try:
                hook(report)
            except Exception:  # watching the clock never stops it
                log.exception("after-cycle hook failed", extra={"event": "hook_failed"})
        return report

    def _refresh_index(self, report: CycleReport, latest: datetime | None) -> None:
        """Bring search's people index up to date with the CRM; its long jobs (first build,
        hourly sweep) run beside the syncs (`index.clock`)."""
        report.index = self.index_keeper.tick(latest)

    def _cycle(self, report: CycleReport, latest: datetime | None) -> None:
        now = self.now()
        # One aggregate first: an idle cycle reads no mailbox row (10,000 rows made Python
        # objects cost 100-250 ms a cycle); only the mailboxes that may be due come back.
        reconcile_before = now - self.policy.reconcile_every
        overview = queue.overview(self.store, now, reconcile_before)
        report.mailboxes = overview.mailboxes
        report.backing_off = overview.backing_off
        if not overview.mailboxes:
            return
        # Watched for CRM changes: mailboxes synced before and not failing. A failing one is
        # retried when its back-off ends whatever changed (a full sync), so its old
        # watermark must not widen every cycle's change query while it is down.
        changes: dict[int, datetime] = {}
        interest: dict[int, set[int]] = {}
        behind = latest is not None and overview.watched > 0 and overview.behind(latest)
        if behind:
            changes = queue.crm_changes(self.crm, overview.since())
            if changes:
                interest = queue.interested(self.store, changes)
        rows = (
            queue.candidates(self.store, now, reconcile_before, interest)
            if overview.may_be_due or interest
            else []
        )
        due: list[tuple[MailboxRow, Decision]] = []
        busy: list[int] = []  # changed or due: their own syncs move their watermarks
        for row in rows:
            changed = watched(row) and crm_changed(row, changes, interest.get(row.user.id, set()))
            decision = decide(row, now, changed, self.policy)
            if decision.due:
                due.append((row, decision))
            elif decision.backing_off_until is not None:
                report.backing_off += 1
            if changed or decision.due:
                busy.append(row.user.id)
        if behind:
            queue.advance_watermarks(self.store, latest, busy)  # type: ignore[arg-type]
        report.due = len(due)
        report.due_rows = due
        # Shuffled within a priority so processes starting together spread over the work.
        self.rng.shuffle(due)
        due.sort(key=lambda item: min(PRIORITY[r] for r in item[1].reasons))
        snapshot = self._people_snapshot(due, latest)
        stale: set[int] = set()  # mailboxes listing a person an earlier sync wrote back
        for row, _ in due:
            if self.stop.is_set():
                log.info("stopping: the rest of the cycle is left to the next run")
                return
            result = self._claim_and_sync(row, changes, interest, report, snapshot)
            stale.discard(row.user.id)
            stale |= self._listing_written(result, row.user.id)
        self._sync_written(stale, report)

    # A cycle due to read more people than this reads them mailbox by mailbox instead.
    SNAPSHOT_MAX_PEOPLE = 50_000

    def _people_snapshot(
        self, due: list[tuple[MailboxRow, Decision]], latest: datetime | None
    ) -> PeopleSnapshot | None:
        """The CRM people of this cycle's syncs, read at once (people_snapshot.py); not for
        a daily reconcile, which must read the CRM itself to find hard deletes."""
        ids = [row.user.id for row, decision in due if "reconcile" not in decision.reasons]
        if len(ids) < 2 or latest is None:
            return None
        people = queue.listed_people(self.store, ids)
        if len(people) > self.SNAPSHOT_MAX_PEOPLE:
            return None
        return PeopleSnapshot.read(self.crm, people, latest)

    def _listing_written(self, result: SyncResult | None, writer: int) -> set[int]:
        """The other mailboxes that list a person this sync wrote back to the CRM."""
        if result is None:
            return set()
        written = {o.person_id for o in result.outcomes if o.action == "written_back"}
        if not written:
            return set()
        return {uid for uid in queue.interested(self.store, written) if uid != writer}

    def _sync_written(self, stale: set[int], report: CycleReport) -> None:
        """Issue 14: the latest Outlook edit reaches the other linked mailboxes in the same
        cycle. Bounded: only mailboxes listing a written person and not synced since the
        write, each once; what their own syncs write back waits for the next cycle."""
        for user_id in sorted(stale):
            if self.stop.is_set():
                log.info("stopping: the rest of the cycle is left to the next run")
                return
            row = queue.mailbox(self.store, user_id)
            if row is None:
                continue
            with queue.claim(self.store, row.user.mailbox) as mine:
                if not mine:
                    report.taken_by_others += 1
                    continue
                fresh = queue.mailbox(self.store, user_id)
                if fresh is None:
                    continue
                # the CRM changed for it (the write-back), unless it is failing and backing off
                decision = decide(fresh, self.now(), watched(fresh), self.policy)
                if not decision.due:
                    continue
                report.due += 1
                self._sync(fresh, (*decision.reasons, "written back"), report, row.user.mailbox)

    def _claim_and_sync(
        self,
        row: MailboxRow,
        changes: dict[int, datetime],
        interest: dict[int, set[int]],
        report: CycleReport,
        snapshot: PeopleSnapshot | None = None,
    ) -> SyncResult | None:
        with queue.claim(self.store, row.user.mailbox) as mine:
            if not mine:
                report.taken_by_others += 1
                return None
            # Decide again on fresh data: another process may have synced it meanwhile.
            fresh = queue.mailbox(self.store, row.user.id)
            if fresh is None:
                return None
            people = interest.get(row.user.id, set())
            changed = watched(fresh) and crm_changed(fresh, changes, people)
            decision = decide(fresh, self.now(), changed, self.policy)
            if not decision.due:
                report.taken_by_others += 1
                return None
            if "reconcile" in decision.reasons:
                snapshot = None  # a reconcile reads the CRM itself (hard deletes)
            return self._sync(fresh, decision.reasons, report, row.user.mailbox, snapshot)

    def _sync(
        self,
        row: MailboxRow,
        reasons: tuple[str, ...],
        report: CycleReport,
        claimed: str,
        snapshot: PeopleSnapshot | None = None,
    ) -> SyncResult | None:
        """Sync one claimed mailbox and record the outcome; the result, or None if none.
        `claimed`: the address whose lock the claim holds, as read before the claim; the
        fresh `row` may name another (the user's email changed meanwhile), whose lock the
        sync then takes itself (busy while a hand-run sync of it runs)."""
        began = time.monotonic()
        mailbox = row.user.mailbox
        error: str | None = None
        result = None
        recorded: dict[str, Any] = {}

        def on_record(status: str, failures: int) -> dict[str, object]:
            """The sync records its run: the next due times go into that same write."""
            recorded.update(
                status=status, failures=failures, values=self._next(mailbox, status, failures)
            )
            return recorded["values"]

        user = self.crm.user_by_id(row.user.crm_user_id)
        if user is None or user.inactive:
            error = (
                f"the CRM user {row.user.email} is gone or "
                f"{user.inactive if user else 'deactivated'}; nothing synced "
                "(reactivate the user in Sage CRM, or ignore this mailbox)"
            )
        else:
            trigger = "reconcile" if reasons == ("reconcile",) else "schedule"
            try:
                result = self.engine.sync(
                    user,
                    trigger=trigger,
                    stored=row.user,
                    on_record=on_record,
                    snapshot=snapshot,
                    # the claim is the mailbox's lock (queue.claim), the row read under it
                    claimed=Claimed(claimed, row.synced_target),
                )
            except KNOWN_ERRORS as exc:
                error = str(exc)
            except Exception as exc:  # one mailbox failing never stops the others
                log.exception("sync crashed", extra={"event": "sync_crashed", "mailbox": mailbox})
                error = f"unexpected error ({type(exc).__name__}); see the scheduler log"
        ms = round((time.monotonic() - began) * 1000)
        if result is not None:
            report.requests += result.requests
        if (result is not None and result.busy) or (not recorded and error is None):
            # The engine's own lock said another sync (a hand-run one) is on it.
            report.taken_by_others += 1
            log.info("mailbox busy", extra={"event": "sync_busy", "mailbox": mailbox})
            return None
        if recorded:
            status, failures = recorded["status"], recorded["failures"]
            values = recorded["values"]
            error = result.error if result is not None and status == "failed" else None
        else:  # the engine recorded nothing (no mailbox, no CRM user): record it here
            status, failures = "failed", row.consecutive_failures + 1
            values = self._next(mailbox, status, failures)
            self.store.update_mailbox_state(
                row.user.id,
                last_run_at=self.now(),
                last_status="failed",
                last_error=error,
                last_error_kind=None,
                consecutive_failures=failures,
                **values,
            )
        (report.failed if status == "failed" else report.synced).append(mailbox)
        extra: dict[str, object] = {
            "event": "sync",
            "mailbox": mailbox,
            "reasons": list(reasons),
            "status": status,
            "ms": ms,
        }
        if result is not None:
            extra["requests"] = result.requests
            extra["outcomes"] = {
                action: result.count(action)
                for action in (*_ACTIONS, "failed")
                if result.count(action)
            }
        if status == "failed":
            extra.update(
                error=error,
                consecutive_failures=failures,
                next_due_at=values["next_due_at"].isoformat(),  # type: ignore[union-attr]
            )
            log.warning("mailbox sync failed", extra=extra)
        else:
            log.info("mailbox synced", extra=extra)
        return result

    def _next(self, mailbox: str, status: str, failures: int) -> dict[str, object]:
        """When a mailbox is next due after a run with this status: a failed one backs off;
        a partial one is retried soon; a good one waits for a change or its reconcile."""
        now = self.now()
        if status == "failed":
            return {"next_due_at": now + self.policy.backoff(failures)}
        return {
            "next_due_at": now + self.policy.partial_retry if status == "partial" else None,
            "reconcile_at": self.policy.reconcile_after(mailbox, now),
        }


# -- running it ---------------------------------------------------------------------------


def run_forever(scheduler: Scheduler, *, summary_every: float = 60.0) -> None:
    """Run the jobs with APScheduler until SIGTERM/SIGINT; returns after a clean stop.

    First signal: finish the mailbox being synced, then stop. Second signal: abandon it
    at once (the engine is crash-safe, so the next run completes it)."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    interval = scheduler.policy.interval.total_seconds()
    jobs = BackgroundScheduler(timezone=UTC)
    jobs.add_job(
        scheduler.run_cycle,
        IntervalTrigger(seconds=interval),
        id="sync_cycle",
        next_run_time=datetime.now(UTC),
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    posters = (scheduler.summary_poster, scheduler.account_poster, scheduler.team_poster)
    if any(poster is not None for poster in posters):  # Teams alone is enough
        jobs.add_job(
            scheduler.run_summaries,
            IntervalTrigger(seconds=min(summary_every, interval)),
            id="summaries",
            next_run_time=datetime.now(UTC) + timedelta(seconds=1),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
    signals = {"count": 0}

    def on_signal(signum: int, _frame: object) -> None:
        signals["count"] += 1
        if signals["count"] > 1:
            log.warning(
                "second signal: abandoning the running sync; the next run completes it",
                extra={"event": "abandon"},
            )
            os._exit(128 + signum)
        log.info(
            "stopping after the mailbox being synced",
            extra={"event": "stopping", "signal": signal.Signals(signum).name},
        )
        scheduler.stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    jobs.start()
    try:
        while not scheduler.stop.wait(1.0):
            pass
    finally:
        jobs.shutdown(wait=True)
        scheduler.index_keeper.wait(timeout=30)  # a build stops between batches
        for s, handler in previous.items():
            signal.signal(s, handler)
    log.info("scheduler stopped", extra={"event": "stopped"})
