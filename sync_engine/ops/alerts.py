"""Admin alerts: one message when a problem starts and one when it clears.

The clock hands each cycle's `Findings` to an `Announcer`, which compares them with the
`alerts` table and posts through every `AlertSender` (Slack today; a Teams sender is a
class with the same `send`). The rules, whichever clock process sees the change first:

- a problem is announced when it is first found, with its fix;
- its clear is announced when it is no longer found, only if its start was;
- a problem announced in the last 24 hours that comes back is not announced again: it
  is announced once the day has passed, if it is still open then, so at most one start
  (and one clear) per problem a day;
- more than `rollup` starts (or clears) at once go out as one message listing the first
  few and how many more, so an outage of every mailbox is one message, not a thousand.

Each change is claimed with a conditional UPDATE before anything is posted, so two
processes never post the same message; a post that fails everywhere gives its claim
back and is tried again next cycle. A post that one sender missed while another took
it (Slack posted, the Teams app not yet in its team) is owed to that sender alone and
tried again each cycle for a day, by the process that posted it (kept in memory).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from sync_engine import tables as t
from sync_engine.ops.problems import Findings, Problem
from sync_engine.store import Store, as_utc

log = logging.getLogger("crm_contacts.alerts")

REPEAT_AFTER = timedelta(days=1)
ROLLUP = 5


@dataclass(frozen=True)
class Notice:
    """One admin message: problems that started (with their fixes) or that cleared."""

    started: bool
    problems: tuple[Problem, ...]
    more: int = 0  # further problems of the same message, not listed

    @property
    def title(self) -> str:
        if len(self.problems) == 1 and not self.more:
            word = "Problem" if self.started else "Resolved"
            return f"crm-contacts: {word}: {self.problems[0].summary}"
        count = len(self.problems) + self.more
        word = "problems started" if self.started else "problems cleared"
        return f"crm-contacts: {count} {word}"

    def lines(self) -> list[str]:
        """The message as plain lines (a sender escapes and formats them)."""
        if len(self.problems) == 1 and not self.more:
            p = self.problems[0]
            return [self.title, f"Fix: {p.fix}"] if self.started else [self.title]
        lines = [self.title]
        for p in self.problems:
            lines.append(f"• {p.summary}" + (f" Fix: {p.fix}" if self.started else ""))
        if self.more:
            lines.append(f"…and {self.more} more; `crm-contacts status` lists every open problem.")
        return lines


class AlertSender(Protocol):
    """Where admin alerts go (Slack's ADMIN_CHANNEL; a Teams channel the same way).
    `send` raises when the message did not go out."""

    name: str

    def send(self, notice: Notice) -> None: ...


@dataclass
class _Row:
    kind: str
    key: str
    open: bool
    summary: str
    started_posted_at: datetime | None
    clear_pending: bool


def _where(kind: str, key: str):  # type: ignore[no-untyped-def]
    return (t.alerts.c.kind == kind, t.alerts.c.key == key)


class Announcer:
    """Posts the starts and clears of problems to the admins, once each (see the module)."""

    def __init__(
        self,
        store: Store,
        senders: Sequence[AlertSender],
        *,
        repeat_after: timedelta = REPEAT_AFTER,
        rollup: int = ROLLUP,
    ) -> None:
        self.store = store
        self.senders = list(senders)
        self.repeat_after = repeat_after
        self.rollup = max(1, rollup)
        # notices one sender missed while another took them: (sender, notice, when)
        self._owed: list[tuple[AlertSender, Notice, datetime]] = []

    def announce(self, findings: Findings, now: datetime) -> list[Notice]:
        """Bring the alerts table in line with `findings` and post what changed; returns
        the notices that went out."""
        self._pay_owed(now)
        with self.store.engine.begin() as conn:
            tracked = self._tracked(conn)
            found = {(p.kind, p.key): p for p in findings.problems}
            clears_due = any(row.clear_pending for row in tracked.values())
            for (kind, key), row in tracked.items():
                if kind in findings.unknown or (kind, key) in found:
                    continue
                if row.open:  # no longer found: closed, its clear due if its start went out
                    # ...as the row says now, not as read above: another clock may have
                    # posted the start in between, and then its clear is owed
                    closed = conn.execute(
                        update(t.alerts)
                        .where(*_where(kind, key), t.alerts.c.open.is_(True))
                        .values(open=False, closed_at=now, clear_pending=t.alerts.c.start_posted)
                    ).rowcount
                    clears_due = clears_due or bool(closed)
            for ident, problem in found.items():
                row = tracked.get(ident)
                if row is None:
                    self._open(conn, problem, now)
                elif not row.open and row.clear_pending:
                    # back before its clear went out: for the admins it never cleared
                    conn.execute(
                        update(t.alerts)
                        .where(*_where(*ident), t.alerts.c.clear_pending.is_(True))
                        .values(open=True, closed_at=None, clear_pending=False)
                    )
        starts = self._claim_starts(list(found.values()), now)
        clears = self._claim_clears() if clears_due else []  # no query on a quiet cycle
        sent: list[Notice] = []
        for claimed, started in ((starts, True), (clears, False)):
            for notice in self._notices(claimed, started):
                if self._post(notice, now):
                    sent.append(notice)
                else:
                    self._give_back(notice, claimed)
        return sent

    # -- the table ------------------------------------------------------------------------

    def _tracked(self, conn: Connection) -> dict[tuple[str, str], _Row]:
        """The alerts open now or with a clear still to post (few rows)."""
        a = t.alerts
        rows = conn.execute(
            select(a).where(or_(a.c.open.is_(True), a.c.clear_pending.is_(True)))
        ).mappings()
        return {
            (r["kind"], r["key"]): _Row(
                r["kind"],
                r["key"],
                bool(r["open"]),
                r["summary"] or "",
                as_utc(r["started_posted_at"]),
                bool(r["clear_pending"]),
            )
            for r in rows
        }

    def _open(self, conn: Connection, problem: Problem, now: datetime) -> None:
        """A problem found now: a new row, or a closed one opened again."""
        values = {
            "open": True,
            "opened_at": now,
            "closed_at": None,
            "summary": problem.summary,
            "start_posted": False,
            "clear_pending": False,
        }
        try:
            with conn.begin_nested():
                conn.execute(insert(t.alerts).values(kind=problem.kind, key=problem.key, **values))
        except IntegrityError:
            conn.execute(
                update(t.alerts)
                .where(*_where(problem.kind, problem.key), t.alerts.c.open.is_(False))
                .values(**values)
            )

    def _claim_starts(self, problems: list[Problem], now: datetime) -> list[Problem]:
        """The open problems whose start this process posts now (not yet posted, and no
        start of the same problem in the last day)."""
        if not problems:
            return []
        claimed = []
        a = t.alerts
        with self.store.engine.begin() as conn:
            for p in problems:
                done = conn.execute(
                    update(a)
                    .where(
                        *_where(p.kind, p.key),
                        a.c.open.is_(True),
                        a.c.start_posted.is_(False),
                        or_(
                            a.c.started_posted_at.is_(None),
                            a.c.started_posted_at <= now - self.repeat_after,
                        ),
                    )
                    .values(start_posted=True, started_posted_at=now, summary=p.summary)
                ).rowcount
                if done:
                    claimed.append(p)
        return claimed

    def _claim_clears(self) -> list[Problem]:
        a = t.alerts
        with self.store.engine.begin() as conn:
            pending = conn.execute(
                select(a.c.kind, a.c.key, a.c.summary).where(a.c.clear_pending.is_(True))
            ).all()
            claimed = []
            for kind, key, summary in pending:
                done = conn.execute(
                    update(a)
                    .where(*_where(kind, key), a.c.clear_pending.is_(True))
                    .values(clear_pending=False)
                ).rowcount
                if done:
                    claimed.append(Problem(kind, key, summary or f"{kind} {key}", ""))
        return claimed

    def _give_back(self, notice: Notice, claimed: list[Problem]) -> None:
        """Nobody took the message: the next cycle tries it again."""
        listed = {(p.kind, p.key) for p in notice.problems}
        if notice.more:  # a rollup stands for every claimed problem of its kind of message
            listed = {(p.kind, p.key) for p in claimed}
        a = t.alerts
        with self.store.engine.begin() as conn:
            for kind, key in listed:
                if notice.started:
                    conn.execute(
                        update(a)
                        .where(*_where(kind, key))
                        .values(start_posted=False, started_posted_at=None)
                    )
                else:
                    conn.execute(
                        update(a)
                        .where(*_where(kind, key), a.c.open.is_(False))
                        .values(clear_pending=True)
                    )

    # -- the messages ---------------------------------------------------------------------

    def _notices(self, problems: list[Problem], started: bool) -> list[Notice]:
        if len(problems) <= self.rollup:
            return [Notice(started, (p,)) for p in problems]
        shown = tuple(problems[: self.rollup])
        return [Notice(started, shown, more=len(problems) - len(shown))]

    def _post(self, notice: Notice, now: datetime) -> bool:
        """Send to every sender; True when at least one took it (then the others owe it)."""
        took = False
        missed: list[AlertSender] = []
        for sender in self.senders:
            try:
                sender.send(notice)
                took = True
            except Exception as exc:
                missed.append(sender)
                _said_not_sent(sender, exc)
        if took:
            self._owed += [(sender, notice, now) for sender in missed]
            log.info(
                notice.title,
                extra={
                    "event": "alert",
                    "started": notice.started,
                    "kinds": sorted({p.kind for p in notice.problems}),
                    "problems": len(notice.problems) + notice.more,
                },
            )
        return took

    def _pay_owed(self, now: datetime) -> None:
        """Send what a sender missed while another took it; a day late it is dropped
        (`crm-contacts status` still lists what is open)."""
        owed, self._owed = self._owed, []
        for sender, notice, since in owed:
            if now - since > self.repeat_after:
                continue
            try:
                sender.send(notice)
            except Exception as exc:
                self._owed.append((sender, notice, since))
                _said_not_sent(sender, exc)


def _said_not_sent(sender: AlertSender, exc: Exception) -> None:
    log.warning(
        "admin alert not sent through %s; retrying next cycle",
        sender.name,
        extra={"event": "alert_failed", "error": f"{type(exc).__name__}: {exc}"[:300]},
    )
