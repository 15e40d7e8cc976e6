"""Keeping the people index fresh: apply the CRM's changes to the live table set.

The CRM is read only through `SageCrm`'s public methods (`people_by_ids`,
`latest_change`, `changes_since`), so the index follows whatever layout the CRM reader
understands. A refresh applies the people changed since the index's watermark (soft
deletes come with a new UpdatedDate); a sweep compares every person id and change time
with the CRM, which finds hard-deleted rows and any change a late commit hid. A refresh
runs alongside a rebuild (which fills the other set) and stops if that rebuild switched
sets under it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, update

from sync_engine import tables as t
from sync_engine.crm.source import SageCrm
from sync_engine.index import rows
from sync_engine.index.sets import SETS, TableSet
from sync_engine.index.state import IndexStatus, lock_writer, read_status
from sync_engine.index.words import person_words, typo_keys
from sync_engine.model import CrmPerson
from sync_engine.store import utcnow

log = logging.getLogger("crm_contacts.index")

# How often the clock's refresh is a full sweep (every id and change time compared).
SWEEP_EVERY = timedelta(hours=1)
_CHUNK = 900


@dataclass
class RefreshReport:
    changed: int = 0  # people re-read from the CRM and written
    removed: int = 0  # hard-deleted in the CRM, dropped from the index
    swept: bool = False
    seconds: float = 0.0
    skipped: str | None = None
    words_dropped: int = 0  # words no live person has any more, taken out of the vocabulary


def refresh(
    db: Engine,
    crm: SageCrm,
    *,
    now: datetime | None = None,
    sweep_every: timedelta = SWEEP_EVERY,
    sweep: bool | None = None,
    latest: datetime | None,
) -> RefreshReport:
    """Apply the CRM's changes since the last refresh; a full id sweep when one is due
    (`sweep=None`) or asked for. `latest` is the CRM's latest change time, read before.

    The CRM is read before the writer lock is taken, so searches and other refreshes
    are not held up by it; when another writer applied changes meanwhile (a search's
    catch-up, the clock's refresh beside a sweep), what this one read may be older than
    what that one wrote, and it reads again under the lock instead."""
    started = time.monotonic()
    now = now or utcnow()
    with db.connect() as conn:
        state = read_status(conn)
    if not state.ready:
        return RefreshReport(skipped="the people index is not built yet")
    live = SETS[state.live_set]
    if sweep is None:
        sweep = state.swept_at is None or now - state.swept_at >= sweep_every
    if not sweep and (
        latest is None or (state.watermark is not None and latest <= state.watermark)
    ):
        return RefreshReport(seconds=time.monotonic() - started)
    with db.connect() as conn:
        read = _read(conn, crm, live, since=state.watermark, latest=latest, sweep=sweep)
    with db.begin() as conn:
        lock_writer(conn)
        # a rebuild may have switched sets since the status was read: the new set is
        # behind its own watermark, and the next refresh brings it forward
        seen = read_status(conn)
        if not seen.ready or seen.live_set != live.number:
            return _skipped("the people index was rebuilt meanwhile", started)
        if _overtaken(state, seen):
            read = _read_again(conn, crm, live, seen, read, sweep=sweep)
        applied = _apply(conn, live, read.changed, read.people, read.stamps, read.gone)
        values: dict[str, object] = {
            "refreshed_at": now,
            "people": t.index_state.c.people + applied.live_delta,
        }
        if read.latest is not None and (seen.watermark is None or read.latest > seen.watermark):
            values["watermark"] = read.latest
        if sweep:
            values["swept_at"] = now
        conn.execute(update(t.index_state).where(t.index_state.c.id == 1).values(**values))
    report = RefreshReport(
        changed=len(read.changed),
        removed=applied.removed,
        swept=sweep,
        seconds=time.monotonic() - started,
        words_dropped=applied.words_dropped,
    )
    if read.changed or applied.removed or sweep:
        log.info(
            "people index refreshed",
            extra={
                "event": "index_refreshed",
                "changed": report.changed,
                "removed": report.removed,
                "words_dropped": report.words_dropped,
                "swept": sweep,
                "ms": round(report.seconds * 1000),
            },
        )
    return report


@dataclass
class _Read:
    """What a refresh read from the CRM: whom to write, and whom to drop."""

    changed: list[int]  # people to re-write (live or soft-deleted)
    people: dict[int, CrmPerson]
    stamps: dict[int, datetime]  # their CRM change times
    gone: list[int]  # no Person row any more: hard-deleted
    latest: datetime | None  # the CRM's latest change time, read before the rest


def _read(
    conn: Connection,
    crm: SageCrm,
    live: TableSet,
    *,
    since: datetime | None,
    latest: datetime | None,
    sweep: bool,
    ids: list[int] | None = None,
) -> _Read:
    """The people whose CRM change time differs from their row's (among `ids` if given):
    those changed after `since`, or for a sweep every id and change time compared.

    A full sweep reads the index's ids before the CRM's: a person indexed meanwhile was
    in the CRM before its ids were read, so only a person really gone from the CRM is
    taken for a hard delete, never one created while the sweep runs."""
    if sweep and ids is None:
        pi = live.people
        with conn.engine.connect() as own:  # not held open through the CRM's long read
            indexed = dict(own.execute(select(pi.c.person_id, pi.c.changed_at)).all())
        stamps = crm.changes_since(None)
    else:
        # strictly after the watermark: an import stamps thousands of rows with one time,
        # and re-listing them every cycle would cost seconds. A transaction that commits
        # after a later one stamped its rows is caught by the hourly sweep instead.
        stamps = crm.changes_since(None if sweep else since, ids=ids)
        indexed = _changed_at(conn, live, list(stamps) if ids is None else ids)
    changed = [pid for pid, at in stamps.items() if pid not in indexed or indexed[pid] != at]
    gone = [pid for pid in indexed if pid not in stamps] if sweep else []
    people = crm.people_by_ids(changed) if changed else {}
    # no Person row (hard-deleted; its email or phone links may still carry change times):
    # not in the index at all
    vanished = [pid for pid in changed if pid not in people]
    if vanished:
        changed = [pid for pid in changed if pid in people]
        gone = sorted(set(gone) | set(vanished))
    return _Read(changed, people, stamps, gone, latest)


def _overtaken(before: IndexStatus, now: IndexStatus) -> bool:
    """Another writer applied the CRM's changes since `before` was read."""
    return (before.watermark, before.refreshed_at, before.swept_at, before.people) != (
        now.watermark,
        now.refreshed_at,
        now.swept_at,
        now.people,
    )


def _read_again(
    conn: Connection, crm: SageCrm, live: TableSet, seen: IndexStatus, first: _Read, *, sweep: bool
) -> _Read:
    """Read again under the writer lock, where no other writer can overtake: the changes
    since the watermark that writer left, or for a sweep the people it meant to write
    (its hard deletes stand: a person gone from the CRM does not come back)."""
    latest = crm.latest_change()
    if not sweep:
        return _read(conn, crm, live, since=seen.watermark, latest=latest, sweep=False)
    again = _read(conn, crm, live, since=None, latest=latest, sweep=True, ids=first.changed)
    again.gone = sorted(set(again.gone) | set(first.gone))
    return again


def _skipped(why: str, started: float) -> RefreshReport:
    log.info(
        "people index refresh skipped: %s",
        why,
        extra={"event": "index_refresh_skipped", "reason": why},
    )
    return RefreshReport(skipped=why, seconds=time.monotonic() - started)


def _changed_at(conn: Connection, live: TableSet, ids: list[int]) -> dict[int, datetime | None]:
    out: dict[int, datetime | None] = {}
    pi = live.people
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        out.update(
            conn.execute(
                select(pi.c.person_id, pi.c.changed_at).where(pi.c.person_id.in_(chunk))
            ).all()
        )
    return out


@dataclass
class _Applied:
    live_delta: int  # the change in the number of live people
    removed: int  # rows of hard-deleted people that were there
    words_dropped: int


def _apply(
    conn: Connection,
    live: TableSet,
    changed: list[int],
    people: dict[int, CrmPerson],
    stamps: dict[int, datetime],
    gone: list[int],
) -> _Applied:
    """Replace the rows of `changed` (live or soft-deleted) and drop `gone`."""
    pi, postings = live.people, live.postings
    ids = sorted(set(changed) | set(gone))
    was_live = removed = 0
    leaving = set(gone)
    old_postings: list[dict[str, int]] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for pid, is_live, term_ids in conn.execute(
            select(pi.c.person_id, pi.c.live, pi.c.term_ids).where(pi.c.person_id.in_(chunk))
        ):
            was_live += bool(is_live)
            removed += pid in leaving
            old_postings += [{"t": int(x), "p": pid} for x in term_ids.split()]
        conn.execute(delete(pi).where(pi.c.person_id.in_(chunk)))
    if old_postings:
        conn.execute(
            delete(postings).where(
                postings.c.term_id == bindparam("t"), postings.c.person_id == bindparam("p")
            ),
            old_postings,
        )
    new_rows, shown = [], []
    for pid in changed:
        person = people.get(pid)
        if person is None or person.deleted:
            if pid in stamps:
                new_rows.append(rows.not_live_row(pid, stamps[pid]))
            continue
        try:
            shown.append((person, rows.person_cells(person)))
        except rows.Unstorable as exc:
            log.warning(
                "person %s left out of the people index: %s",
                pid,
                exc,
                extra={"event": "index_person_skipped", "person": pid, "reason": str(exc)},
            )
            new_rows.append(rows.not_live_row(pid, stamps.get(pid)))
    words_of = {p.id: person_words(p) for p, _ in shown}
    term_of = _term_ids(conn, live, {w for ws in words_of.values() for w in ws})
    new_postings = []
    for person, cells in shown:
        ids_ = [term_of[w] for w in words_of[person.id]]
        new_rows.append(
            rows.live_row(person.id, cells, words_of[person.id], ids_, stamps.get(person.id))
        )
        new_postings += [(tid, person.id) for tid in ids_]
    rows.insert(conn, pi.name, rows.PEOPLE_COLUMNS, new_rows)
    rows.insert(conn, postings.name, ("term_id", "person_id"), sorted(new_postings))
    counts = Counter(tid for tid, _ in new_postings)
    counts.subtract(Counter(p["t"] for p in old_postings))
    changed_counts = [{"i": tid, "d": d} for tid, d in sorted(counts.items()) if d]
    dropped = 0
    if changed_counts:  # how many people each word has: search plans by it
        terms = live.terms
        conn.execute(
            update(terms)
            .where(terms.c.id == bindparam("i"))
            .values(people=terms.c.people + bindparam("d")),
            changed_counts,
        )
        dropped = _drop_dead_words(conn, live, [c["i"] for c in changed_counts if c["d"] < 0])
    return _Applied(len(shown) - was_live, removed, dropped)


def _drop_dead_words(conn: Connection, live: TableSet, fewer: list[int]) -> int:
    """Take the words no live person has any more (of those that just lost people) out of
    the vocabulary and its typo keys, so neither grows with every rename."""
    terms, keys = live.terms, live.keys
    dead: list[int] = []
    for start in range(0, len(fewer), _CHUNK):
        chunk = fewer[start : start + _CHUNK]
        dead += conn.execute(
            select(terms.c.id).where(terms.c.id.in_(chunk), terms.c.people <= 0)
        ).scalars()
    for start in range(0, len(dead), _CHUNK):
        chunk = dead[start : start + _CHUNK]
        conn.execute(delete(keys).where(keys.c.term_id.in_(chunk)))
        conn.execute(delete(terms).where(terms.c.id.in_(chunk)))
    return len(dead)


def _term_ids(conn: Connection, live: TableSet, words: set[str]) -> dict[str, int]:
    """Ids of these words, adding the new ones (and their typo keys) to the vocabulary.
    Runs under the writer lock, so the next id is ours."""
    terms = live.terms
    found: dict[str, int] = {}
    wanted = sorted(words)
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        found.update(
            (w, i)
            for i, w in conn.execute(
                select(terms.c.id, terms.c.word).where(terms.c.word.in_(chunk))
            )
        )
    new = [w for w in wanted if w not in found]
    if new:
        next_id = (conn.execute(select(func.max(terms.c.id))).scalar() or 0) + 1
        for n, w in enumerate(new):
            found[w] = next_id + n
        rows.insert(conn, terms.name, ("id", "word"), [(found[w], w) for w in new])
        rows.insert(
            conn,
            live.keys.name,
            ("key", "term_id"),
            sorted({(k, found[w]) for w in new for k in typo_keys(w)}),
        )
    return found
