"""The scheduler's queries: which mailboxes have work, and who gets to do it.

Kept apart from `store.py` so the store stays the engine's; everything here is a read
of a few rows or a small conditional write, so an idle cycle costs a handful of queries
and no mailbox request.

One sync per mailbox across processes and machines uses the database's own machinery:
a *claim* is the mailbox's own lock (`sync_engine.locks`): a PostgreSQL session advisory
lock (released by the server when the holder's connection dies, so a killed process never
blocks the others) or, on SQLite, an flock (released by the kernel when the holder dies;
one machine only).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from sync_engine import tables as t
from sync_engine.crm.source import SageCrm
from sync_engine.files import open_lock_file
from sync_engine.model import DigestPrefs
from sync_engine.state.rows import StoredUser, as_utc, digest_prefs_of, state_fields, stored_user
from sync_engine.store import MailboxBusy, Store

_CHUNK = 900  # ids per IN (...) list, under every database's parameter limit


@dataclass(frozen=True)
class MailboxRow:
    """One mailbox as the scheduler sees it: the user and its scheduling state."""

    user: StoredUser
    list_changed_at: datetime | None
    last_run_at: datetime | None
    last_status: str | None
    last_error: str | None
    last_success_at: datetime | None
    crm_watermark: datetime | None  # naive, in the CRM's clock (Pers_UpdatedDate)
    consecutive_failures: int
    next_due_at: datetime | None
    reconcile_at: datetime | None
    summary_until: datetime | None
    digest: DigestPrefs = field(
        default_factory=DigestPrefs
    )  # the user's digest settings (defaults: none set)
    # the target the links hold item ids of (`state.targets`), read with the row: under
    # a claim nothing else changes it, so the sync need not ask again
    synced_target: str | None = None


def _columns():  # type: ignore[no-untyped-def]
    u, m, d, mt = t.users, t.mailbox_state, t.digest_prefs, t.mailbox_targets
    return select(
        u.c.id,
        u.c.crm_user_id,
        u.c.email,
        u.c.mailbox,
        u.c.slack_user_id,
        u.c.slack_tz,
        u.c.slack_checked_at,
        m.c.list_changed_at,
        m.c.last_run_at,
        m.c.last_status,
        m.c.last_error,
        m.c.last_success_at,
        m.c.crm_watermark,
        m.c.consecutive_failures,
        m.c.next_due_at,
        m.c.reconcile_at,
        m.c.summary_until,
        d.c.time,
        d.c.frequency,
        d.c.weekday,
        d.c.snoozed_until,
        d.c.off,
        d.c.changed_at,
        mt.c.synced_target,
    ).select_from(
        u.join(m, m.c.user_id == u.c.id)
        .outerjoin(d, d.c.user_id == u.c.id)
        .outerjoin(mt, mt.c.address == func.lower(func.trim(u.c.mailbox)))
    )


def _row(r) -> MailboxRow:  # type: ignore[no-untyped-def]
    return MailboxRow(
        user=stored_user(r),
        **state_fields(r),
        reconcile_at=as_utc(r["reconcile_at"]),
        summary_until=as_utc(r["summary_until"]),
        digest=digest_prefs_of(r),
        synced_target=r["synced_target"],
    )


def mailboxes(store: Store) -> list[MailboxRow]:
    """Every mailbox that ever had a list or a run (a state row); one query.

    A user with no state row has never had anyone in My CRM Contacts, so has no work."""
    with store.reading() as conn:
        rows = conn.execute(_columns().order_by(t.users.c.id)).mappings().all()
    return [_row(r) for r in rows]


def mailbox(store: Store, user_id: int) -> MailboxRow | None:
    """One mailbox, read fresh (after a claim, to decide again with current data)."""
    with store.reading() as conn:
        r = conn.execute(_ONE_MAILBOX, {"user_id": user_id}).mappings().first()
    return _row(r) if r else None


# read once per claimed mailbox: built once (building it cost more CPU than running it)
_ONE_MAILBOX = _columns().where(t.users.c.id == bindparam("user_id"))


def crm_changes(crm: SageCrm, since: datetime | None) -> dict[int, datetime]:
    """Person id -> when that person last changed, for changes after `since`: their Person
    row, company, default address, or any email, phone or link row (`SageCrm.changes_since`),
    so an email-only edit is found in the next cycle. The time of each change comes back,
    so one look serves mailboxes whose watermarks differ. Hard-deleted rows leave no trace
    here; the daily full reconcile finds them. `since=None` means every person (a mailbox
    that last synced against an empty CRM)."""
    return crm.changes_since(since)


def interested(store: Store, person_ids: Iterable[int]) -> dict[int, set[int]]:
    """Mailbox (user id) -> the people among `person_ids` it subscribes to or links."""
    ids = sorted(set(person_ids))
    out: dict[int, set[int]] = {}
    with store.reading() as conn:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            for table in (t.subscriptions, t.links):
                rows = conn.execute(
                    select(table.c.user_id, table.c.person_id).where(table.c.person_id.in_(chunk))
                )
                for user_id, person_id in rows:
                    out.setdefault(user_id, set()).add(person_id)
    return out


def _watched():  # type: ignore[no-untyped-def]
    """SQL for `due.watched`: synced before and not failing."""
    m = t.mailbox_state
    return and_(m.c.last_success_at.is_not(None), func.coalesce(m.c.last_status, "") != "failed")


def _may_be_due(now: datetime, reconcile_before: datetime):  # type: ignore[no-untyped-def]
    """SQL for a superset of the mailboxes `due.decide` finds due for a reason other
    than a CRM change (those come from `interested`): every row `decide` could call due
    passes it, so the idle rest is never read into Python. `decide` has the last word.
    A failed mailbox whose retry time is still to come is never due (`_backing_off`)."""
    m = t.mailbox_state
    return and_(
        ~_backing_off(now),
        or_(
            m.c.last_status == "failed",
            and_(
                m.c.last_status == "partial",
                or_(m.c.next_due_at.is_(None), m.c.next_due_at <= now),
            ),
            m.c.last_success_at.is_(None),
            m.c.list_changed_at > m.c.last_success_at,
            m.c.reconcile_at <= now,
            and_(m.c.reconcile_at.is_(None), m.c.last_success_at <= reconcile_before),
        ),
    )


def _backing_off(now: datetime):  # type: ignore[no-untyped-def]
    """SQL: failed, with a retry time still to come. True or false, never NULL (the
    IS NOT NULL terms), so that its negation keeps the rows with no status or time."""
    m = t.mailbox_state
    return and_(
        m.c.last_status.is_not(None),
        m.c.last_status == "failed",
        m.c.next_due_at.is_not(None),
        m.c.next_due_at > now,
    )


@dataclass(frozen=True)
class Overview:
    """What one aggregate query says about every mailbox, so that an idle cycle reads no
    mailbox row: how many there are, where the oldest CRM watermark of the watched ones
    is, how many back off, and how many may be due."""

    mailboxes: int = 0
    watched: int = 0
    oldest_watermark: datetime | None = None  # of the watched ones (naive, CRM clock)
    unwatermarked: int = 0  # watched ones with no watermark yet
    backing_off: int = 0  # failed, with a retry time still to come
    may_be_due: int = 0

    def since(self) -> datetime | None:
        """Where the cycle's CRM change query starts (None: from the beginning)."""
        return None if self.unwatermarked else self.oldest_watermark

    def behind(self, latest: datetime) -> bool:
        """Whether some watched mailbox's watermark is older than `latest`."""
        return bool(self.unwatermarked) or (
            self.oldest_watermark is not None and self.oldest_watermark < latest
        )


def overview(store: Store, now: datetime, reconcile_before: datetime) -> Overview:
    """One aggregate over the mailbox state (no rows come back): see `Overview`."""
    m = t.mailbox_state
    watched = _watched()

    def count(condition):  # type: ignore[no-untyped-def]
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    query = select(
        func.count(),
        count(watched),
        func.min(case((watched, m.c.crm_watermark))),
        count(and_(watched, m.c.crm_watermark.is_(None))),
        count(_backing_off(now)),
        count(_may_be_due(now, reconcile_before)),
    ).select_from(m)
    with store.reading() as conn:
        row = conn.execute(query).one()
    oldest = row[2]
    if isinstance(oldest, str):  # SQLite: MIN over a CASE loses the column's type
        oldest = datetime.fromisoformat(oldest)
    return Overview(*(int(v or 0) for v in row[:2]), oldest, *(int(v or 0) for v in row[3:]))


def candidates(
    store: Store, now: datetime, reconcile_before: datetime, changed_for: Iterable[int] = ()
) -> list[MailboxRow]:
    """The mailboxes that may be due (`_may_be_due`) and the watched ones among
    `changed_for` (mailboxes listing a person the CRM changed), by user id."""
    ids = sorted(set(changed_for))
    found: dict[int, MailboxRow] = {}
    with store.reading() as conn:
        queries = [_columns().where(_may_be_due(now, reconcile_before))]
        queries += [
            _columns().where(_watched(), t.users.c.id.in_(ids[start : start + _CHUNK]))
            for start in range(0, len(ids), _CHUNK)
        ]
        for query in queries:
            for r in conn.execute(query).mappings():
                found.setdefault(r["id"], _row(r))
    return [found[k] for k in sorted(found)]


def listed_people(store: Store, user_ids: Iterable[int]) -> set[int]:
    """Every person these mailboxes subscribe to or link (their syncs' CRM people)."""
    ids = sorted(set(user_ids))
    out: set[int] = set()
    with store.reading() as conn:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            for table in (t.subscriptions, t.links):
                out.update(
                    conn.execute(
                        select(table.c.person_id).where(table.c.user_id.in_(chunk))
                    ).scalars()
                )
    return out


def advance_watermarks(store: Store, watermark: datetime, except_ids: Iterable[int] = ()) -> int:
    """Move the CRM watermark of every watched mailbox but `except_ids` forward to
    `watermark`, never backward.

    For mailboxes none of whose people changed up to `watermark` (the caller leaves out
    those that did, and those it syncs): their state is as good as a sync at that moment,
    and keeping every watermark close to the CRM's latest change keeps the next cycle's
    change query small. One statement, whatever the number of mailboxes. A sync finishing
    meanwhile may write an older watermark over this one; older only means a change is
    looked at again."""
    m = t.mailbox_state
    skip = sorted(set(except_ids))
    query = (
        update(m)
        .where(
            _watched(),
            or_(m.c.crm_watermark.is_(None), m.c.crm_watermark < watermark),
        )
        .values(crm_watermark=watermark)
    )
    if skip:  # a busy cycle's own mailboxes: at most the ones it syncs
        query = query.where(m.c.user_id.not_in(skip))
    with store.engine.begin() as conn:
        return conn.execute(query).rowcount or 0


def claim_summary(store: Store, user_id: int, previous: datetime | None, until: datetime) -> bool:
    """Take the right to send one user's digest for the period ending `until`.

    A conditional update: of several scheduler processes exactly one sees a row change,
    so a digest goes out at most once."""
    m = t.mailbox_state
    condition = m.c.summary_until.is_(None) if previous is None else m.c.summary_until == previous
    with store.engine.begin() as conn:
        result = conn.execute(
            update(m).where(m.c.user_id == user_id, condition).values(summary_until=until)
        )
    return result.rowcount == 1


def release_summary(store: Store, user_id: int, previous: datetime | None, until: datetime) -> None:
    """Give a claimed digest back (posting failed), so the next tick tries again."""
    m = t.mailbox_state
    with store.engine.begin() as conn:
        conn.execute(
            update(m)
            .where(m.c.user_id == user_id, m.c.summary_until == until)
            .values(summary_until=previous)
        )


def mark(store: Store, name: str) -> datetime | None:
    with store.reading() as conn:
        found = conn.execute(
            select(t.schedule_marks.c.at).where(t.schedule_marks.c.name == name)
        ).scalar()
    return as_utc(found)


def claim_mark(store: Store, name: str, previous: datetime | None, at: datetime) -> bool:
    """Move a shared mark from `previous` to `at`; True for exactly one of racing processes."""
    sm = t.schedule_marks
    with store.engine.begin() as conn:
        if previous is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(sm).values(name=name, at=at))
                return True
            except IntegrityError:
                return False
        result = conn.execute(
            update(sm).where(sm.c.name == name, sm.c.at == previous).values(at=at)
        )
    return result.rowcount == 1


@contextmanager
def claim(store: Store, mailbox: str) -> Iterator[bool]:
    """Claim a mailbox for one scheduled sync; yields False at once if another process has it.

    The claim is the engine's own mailbox lock (`Store.mailbox_lock`), held across the
    sync *and* the scheduler's bookkeeping after it, so a process that claims next sees
    the finished state; the sync is told it holds it (`claimed=`) and does not take it
    again. One lock, not a claim and a lock: two statements and a connection fewer per
    sync. A hand-run sync holding the lock makes the claim say no, as its own lock did."""
    lock = ExitStack()
    try:
        lock.enter_context(store.mailbox_lock(mailbox))
    except MailboxBusy:
        yield False
        return
    with lock:
        yield True


class SchedulerLock:
    """On SQLite, one scheduler process per state database: an flock held for life.

    SQLite serialises writers and its file locks do not reach across machines, so a second
    scheduler is refused with a clear message instead of competing; PostgreSQL needs none
    of this (claims are per mailbox)."""

    def __init__(self, store: Store) -> None:
        self.path = store.home / "locks" / "scheduler.lock"
        self.fd: int | None = None

    def acquire(self) -> bool:
        fd = open_lock_file(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
