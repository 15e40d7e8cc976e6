"""When a mailbox is due a sync and when a user is due a digest: pure rules.

They are functions of plain values and an injected clock, with no database, CRM or
mailbox behind them, so tests drive time and the purity contract (pyproject) keeps them
so; the clock process (`schedule.py`) feeds them the rows it reads and acts on the answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sync_engine.model import DigestPrefs

Clock = Callable[[], datetime]


class DueRow(Protocol):
    """What the rules read of a mailbox's scheduling state (a `queue.MailboxRow`)."""

    @property
    def list_changed_at(self) -> datetime | None: ...
    @property
    def last_run_at(self) -> datetime | None: ...
    @property
    def last_status(self) -> str | None: ...
    @property
    def last_success_at(self) -> datetime | None: ...
    @property
    def crm_watermark(self) -> datetime | None: ...
    @property
    def consecutive_failures(self) -> int: ...
    @property
    def next_due_at(self) -> datetime | None: ...
    @property
    def reconcile_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Policy:
    """How often things happen. Defaults follow the issue: back-off interval × 2^n, ≤ 1 h."""

    interval: timedelta = timedelta(seconds=60)
    backoff_cap: timedelta = timedelta(hours=1)
    reconcile_every: timedelta = timedelta(hours=24)
    # Reconciles are spread over this much before the 24 h mark (stable per mailbox), so
    # a team first synced in one cycle does not reconcile all in one cycle a day later.
    reconcile_spread: timedelta = timedelta(hours=1)
    # A run where some people failed (the rest synced) is retried after this.
    partial_retry: timedelta = timedelta(minutes=15)
    # A digest more than this late (scheduler down at SUMMARY_TIME) waits for the next day,
    # which then covers the gap: nobody wants yesterday's digest at midnight.
    summary_grace: timedelta = timedelta(hours=4)

    def backoff(self, failures: int) -> timedelta:
        """interval × 2^failures, capped; 1 failure waits two intervals."""
        exponent = min(max(failures, 0), 30)
        return min(self.interval * (2**exponent), self.backoff_cap)

    def reconcile_after(self, mailbox: str, now: datetime) -> datetime:
        spread = int(self.reconcile_spread.total_seconds())
        digest = hashlib.blake2b(mailbox.lower().encode(), digest_size=4).digest()
        jitter = int.from_bytes(digest, "big") % spread if spread > 0 else 0
        return now + self.reconcile_every - timedelta(seconds=jitter)


@dataclass(frozen=True)
class Decision:
    reasons: tuple[str, ...] = ()
    backing_off_until: datetime | None = None

    @property
    def due(self) -> bool:
        return bool(self.reasons)


# Change-driven work goes first in a cycle; retries and reconciles after it.
PRIORITY = {"list changed": 0, "crm changed": 0, "first sync": 0, "retry": 1, "reconcile": 2}


def decide(row: DueRow, now: datetime, crm_changed: bool, policy: Policy) -> Decision:
    """Why this mailbox should be synced now (no reasons = idle or backing off)."""
    if row.last_status == "failed":
        base = row.last_run_at or now
        retry_at = row.next_due_at or (base + policy.backoff(row.consecutive_failures))
        if now < retry_at:
            return Decision(backing_off_until=retry_at)
        reasons = ["retry"]
    else:
        reasons = []
    if row.last_success_at is None and not reasons:
        reasons.append("first sync")
    if row.list_changed_at is not None and (
        row.last_success_at is None or row.list_changed_at > row.last_success_at
    ):
        reasons.append("list changed")
    if crm_changed:
        reasons.append("crm changed")
    if row.last_status == "partial":  # some people failed, in a scheduled or a hand-run sync
        retry_at = row.next_due_at or ((row.last_run_at or now) + policy.partial_retry)
        if now >= retry_at:
            reasons.append("retry")
    if row.last_success_at is not None:
        reconcile_at = row.reconcile_at or (row.last_success_at + policy.reconcile_every)
        if now >= reconcile_at:
            reasons.append("reconcile")
    return Decision(reasons=tuple(dict.fromkeys(reasons)))


def zone(name: str | None) -> ZoneInfo:
    """The user's Slack time zone (IANA name); UTC when missing or unknown."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo("UTC")


def summary_slot(
    now: datetime, tz_name: str | None, hhmm: str, grace: timedelta
) -> datetime | None:
    """The latest SUMMARY_TIME in the user's zone at or before `now` (UTC), if within `grace`."""
    tz = zone(tz_name)
    hour, minute = (int(p) for p in hhmm.split(":"))
    local = now.astimezone(tz)
    for days in (0, 1):
        day = local.date() - timedelta(days=days)
        slot = datetime.combine(day, dtime(hour, minute), tzinfo=tz).astimezone(UTC)
        if slot <= now:
            return slot if now - slot <= grace else None
    return None


def digest_slot(
    now: datetime,
    tz_name: str | None,
    prefs: DigestPrefs,
    default_time: str,
    grace: timedelta,
    last_until: datetime | None,
) -> datetime | None:
    """The end of the digest period due now for one user, or None (SLACK_UX 9).

    The user's own time (or SUMMARY_TIME) in their zone; weekly only on its weekday;
    nothing while off or before the snooze date; at most one per local day (a time moved
    later the same day does not send a second digest), and no slot that passed before
    the settings last changed (setting 08:00 at 09:00 means tomorrow, not at once).
    """
    if prefs.off:
        return None
    slot = summary_slot(now, tz_name, prefs.time or default_time, grace)
    if slot is None:
        return None
    day = slot.astimezone(zone(tz_name)).date()
    if prefs.weekly and day.weekday() != prefs.weekday:
        return None
    if prefs.snoozed_until is not None and day < prefs.snoozed_until:
        return None
    if prefs.changed_at is not None and slot < prefs.changed_at:
        return None
    if last_until is not None and (
        last_until >= slot or last_until.astimezone(zone(tz_name)).date() == day
    ):
        return None
    return slot


def digest_since(until: datetime, last_until: datetime | None, prefs: DigestPrefs) -> datetime:
    """Where a digest ending `until` starts: the end of the last one, at most a week back.

    The first digest covers a day (a week if weekly). A week is the cap either way, so a
    user back from a long break is not handed a month at once."""
    span = timedelta(days=7) if prefs.weekly else timedelta(days=1)
    return max(last_until or until - span, until - timedelta(days=7))


def crm_changed(row: DueRow, changes: dict[int, datetime], people: set[int]) -> bool:
    """Whether one of the mailbox's people changed in the CRM after its watermark."""
    mark = row.crm_watermark or datetime.min
    return any(changes.get(pid, datetime.min) > mark for pid in people)


def watched(row: DueRow) -> bool:
    """Watched for CRM changes: synced before and not failing (a failing mailbox is
    retried whatever changed, when its back-off ends)."""
    return row.last_success_at is not None and row.last_status != "failed"
