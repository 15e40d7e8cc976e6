"""What the clock does after each cycle: metrics, its health beat, and admin alerts.

`ClockWatch` is one of the scheduler's after-cycle hooks; it looks for open problems
once (`problems.open_problems`, reusing what the cycle read from the CRM) and feeds the
gauges and the `Announcer` from the same findings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sync_engine.ops import metrics
from sync_engine.ops.alerts import Announcer
from sync_engine.ops.health import ClockHealth
from sync_engine.ops.problems import DETECTORS, open_problems

if TYPE_CHECKING:
    from sync_engine.due import Decision, Policy
    from sync_engine.queue import MailboxRow
    from sync_engine.schedule import CycleReport, Scheduler

log = logging.getLogger("crm_contacts.schedule")
T = TypeVar("T")


def due_since(row: MailboxRow, reasons: Sequence[str], policy: Policy) -> datetime | None:
    """When a due mailbox became due, as far as its state says (a CRM change has no time
    in our clock: the first cycle that saw it counts, see `DueAges`)."""
    times: list[datetime] = []
    for reason in reasons:
        if reason in ("list changed", "first sync") and row.list_changed_at is not None:
            times.append(row.list_changed_at)
        elif reason == "retry" and row.next_due_at is not None:
            times.append(row.next_due_at)
        elif reason == "retry" and row.last_run_at is not None:
            wait = (
                policy.backoff(row.consecutive_failures)
                if row.last_status == "failed"
                else policy.partial_retry
            )
            times.append(row.last_run_at + wait)
        elif reason == "reconcile":
            if row.reconcile_at is not None:
                times.append(row.reconcile_at)
            elif row.last_success_at is not None:
                times.append(row.last_success_at + policy.reconcile_every)
    return min(times) if times else None


class DueAges:
    """How long the longest-waiting due mailbox has waited, cycle after cycle: its own
    state's time, or the first cycle of this process that found it due."""

    def __init__(self) -> None:
        self._first_seen: dict[int, datetime] = {}

    def oldest(
        self, due: Sequence[tuple[MailboxRow, Decision]], now: datetime, policy: Policy
    ) -> float:
        seen = {}
        oldest = now
        for row, decision in due:
            first = self._first_seen.get(row.user.id, now)
            seen[row.user.id] = first
            since = due_since(row, decision.reasons, policy)
            oldest = min(oldest, first, since or first)
        self._first_seen = seen  # a mailbox no longer due starts afresh next time
        return max(0.0, (now - oldest).total_seconds())


class ClockWatch:
    """The after-cycle hook: metrics, the health beat, problems, alerts."""

    def __init__(
        self,
        scheduler: Scheduler,
        health: ClockHealth | None = None,
        announcer: Announcer | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.engine: Any = scheduler.engine
        self.health = health
        self.announcer = announcer
        self.ages = DueAges()
        metrics.record_problems({}, tuple(DETECTORS))  # every kind's series, from the start

    def __call__(self, report: CycleReport) -> None:
        now = self.scheduler.now()
        if self.health is not None:
            self.health.beat()
        oldest = self.ages.oldest(report.due_rows, report.started, self.scheduler.policy)
        findings = open_problems(self.engine, now=now, cycle=report)
        scene = findings.scene
        assert scene is not None
        metrics.record_cycle(
            report.seconds,
            now,
            due=report.due,
            oldest_due_age=oldest,
            failing=_quietly(lambda: len(scene.failing)),
            index_lag=_quietly(lambda: scene.index_lag),
        )
        metrics.record_problems(findings.counts(), tuple(DETECTORS))
        if self.announcer is not None and self.announcer.senders:
            self.announcer.announce(findings, now)


def _quietly(read: Callable[[], T]) -> T | None:
    """A fact for a gauge, or None (the gauge keeps its value) when it cannot be read."""
    try:
        return read()
    except Exception:
        return None
