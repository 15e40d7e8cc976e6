"""Building the people index from the CRM and keeping it fresh.

The CRM is read only through `SageCrm`'s public methods (`people_by_ids`,
`latest_change`, `changes_since`), so the index follows whatever layout the CRM reader
understands. A refresh applies the people changed since the last one (soft deletes come
with a new UpdatedDate); once an hour a sweep compares every person id and change time
with the CRM, which finds hard-deleted rows and any change a late commit hid.
"""

from __future__ import annotations

import logging
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, text, update

from sync_engine import tables as t
from sync_engine.crm.search import fold
from sync_engine.crm.source import SageCrm
from sync_engine.index.state import (
    building,
    claim_build,
    lock_writer,
    read_status,
    release_build,
)
from sync_engine.index.words import person_words, typo_keys
from sync_engine.model import CrmPerson
from sync_engine.store import utcnow

log = logging.getLogger("crm_contacts.index")

# How often a refresh is a full sweep (every id and change time compared with the CRM).
SWEEP_EVERY = timedelta(hours=1)
_BATCH = 5000
_CHUNK = 900

# every column of people_index, in the order `_row` fills them
_PEOPLE_COLUMNS = tuple(c.name for c in t.people_index.columns)


@dataclass
class BuildReport:
    people: int
    deleted: int
    terms: int
    seconds: float


@dataclass
class RefreshReport:
    changed: int = 0  # people re-read from the CRM and written
    removed: int = 0  # hard-deleted in the CRM, dropped from the index
    swept: bool = False
    seconds: float = 0.0
    skipped: str | None = None


def _row(
    person: CrmPerson, words: Sequence[str], term_ids: Sequence[int], at: datetime | None
) -> tuple:
    f = person.fields
    return (
        person.id,
        True,
        f.first_name,
        f.middle_name,
        f.last_name,
        f.company,
        f.email,
        f.job_title,
        f.business_phone,
        f.mobile_phone,
        person.manager_name,
        fold(" ".join(p for p in (f.first_name, f.middle_name, f.last_name) if p)),
        fold(f.company),
        fold(f.email),
        " ".join(words),
        " ".join(str(i) for i in term_ids),
        at,
    )


def _deleted_row(person_id: int, at: datetime | None) -> tuple:
    return (person_id, False, *([""] * 14), at)


def _insert(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
    """Bulk insert: COPY on PostgreSQL, executemany on SQLite."""
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:  # type: ignore[union-attr]
            for row in rows:
                cp.write_row(row)
        return
    rows = list(rows)
    if rows:
        marks = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def _clear(conn: Connection) -> None:
    names = ("index_postings", "index_term_keys", "index_terms", "people_index")
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"TRUNCATE {', '.join(names)}"))
    else:
        for name in names:
            conn.execute(text(f"DELETE FROM {name}"))


def build(
    db: Engine,
    crm: SageCrm,
    *,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> BuildReport:
    """Rebuild the index from every CRM person. Search falls back to the CRM meanwhile."""
    started = time.monotonic()
    claim_build(db, now)
    try:
        watermark = crm.latest_change()  # before reading: later changes are refreshed
        stamps = crm.changes_since(None)  # every person id, soft-deleted ones too
        ids = sorted(stamps)
        if total:
            total(len(ids))
        with db.begin() as conn:
            _clear(conn)
        vocab: dict[str, int] = {}
        postings: dict[int, array] = {}
        live: set[int] = set()
        deleted: list[tuple] = []
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start : start + _BATCH]
            people = crm.people_by_ids(chunk)
            rows = []
            for pid in chunk:
                person = people.get(pid)
                if person is None:  # hard-deleted since: the next sweep agrees
                    continue
                if person.deleted:
                    deleted.append(_deleted_row(pid, stamps[pid]))
                    continue
                words = person_words(person)
                term_ids = []
                for w in words:
                    tid = vocab.get(w)
                    if tid is None:
                        tid = vocab[w] = len(vocab) + 1
                    term_ids.append(tid)
                    postings.setdefault(tid, array("i")).append(pid)
                live.add(pid)
                rows.append(_row(person, words, term_ids, stamps[pid]))
            with db.begin() as conn:
                _insert(conn, "people_index", _PEOPLE_COLUMNS, rows)
            if progress:
                progress(len(chunk))
        with db.begin() as conn:
            _insert(conn, "people_index", _PEOPLE_COLUMNS, deleted)
            _insert(
                conn,
                "index_terms",
                ("id", "word", "people"),
                sorted((i, w, len(postings[i])) for w, i in vocab.items()),
            )
            _insert(
                conn,
                "index_term_keys",
                ("key", "term_id"),
                sorted((k, i) for w, i in vocab.items() for k in typo_keys(w)),
            )
            _insert(
                conn,
                "index_postings",
                ("term_id", "person_id"),
                ((tid, pid) for tid in sorted(postings) for pid in sorted(postings[tid])),
            )
            now = now or utcnow()
            conn.execute(
                update(t.index_state)
                .where(t.index_state.c.id == 1)
                .values(
                    ready=True,
                    building_since=None,
                    built_at=now,
                    refreshed_at=now,
                    swept_at=now,
                    watermark=watermark,
                    people=len(live),
                )
            )
        if db.dialect.name == "postgresql":
            # fresh statistics for the planner, and a visibility map so postings are read
            # from the index alone (VACUUM runs outside a transaction)
            with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(
                    text(
                        "VACUUM ANALYZE people_index, index_terms, index_term_keys, index_postings"
                    )
                )
    except BaseException:
        release_build(db)
        raise
    seconds = time.monotonic() - started
    log.info(
        "people index built",
        extra={
            "event": "index_built",
            "people": len(live),
            "terms": len(vocab),
            "s": round(seconds),
        },
    )
    return BuildReport(people=len(live), deleted=len(deleted), terms=len(vocab), seconds=seconds)


def refresh(
    db: Engine,
    crm: SageCrm,
    *,
    now: datetime | None = None,
    sweep_every: timedelta = SWEEP_EVERY,
    sweep: bool | None = None,
    latest: datetime | None,
) -> RefreshReport:
    """Apply the CRM's changes since the last refresh; a full id sweep when one is due.
    `latest` is the CRM's latest change time, read before this call."""
    started = time.monotonic()
    now = now or utcnow()
    with db.connect() as conn:
        state = read_status(conn)
    if not state.ready:
        return RefreshReport(skipped="the people index is not built yet")
    if building(state, now):
        return _skipped("the people index is being built", started)
    if sweep is None:
        sweep = state.swept_at is None or now - state.swept_at >= sweep_every
    gone: list[int] = []
    if sweep:
        stamps = crm.changes_since(None)
        with db.connect() as conn:
            indexed = dict(
                conn.execute(select(t.people_index.c.person_id, t.people_index.c.changed_at)).all()
            )
        changed = [pid for pid, at in stamps.items() if pid not in indexed or indexed[pid] != at]
        gone = [pid for pid in indexed if pid not in stamps]
    elif latest is None or (state.watermark is not None and latest <= state.watermark):
        return RefreshReport(seconds=time.monotonic() - started)
    else:
        # strictly after the watermark: an import stamps thousands of rows with one time,
        # and re-listing them every cycle would cost seconds. A transaction that commits
        # after a later one stamped its rows is caught by the hourly sweep instead.
        stamps = crm.changes_since(state.watermark)
        indexed = _changed_at(db, list(stamps))
        changed = [pid for pid, at in stamps.items() if pid not in indexed or indexed[pid] != at]
    people = crm.people_by_ids(changed) if changed else {}
    # no Person row (hard-deleted; its email or phone links may still carry change times):
    # not in the index at all
    vanished = [pid for pid in changed if pid not in people]
    if vanished:
        changed = [pid for pid in changed if pid in people]
        gone = sorted(set(gone) | set(vanished))
    with db.begin() as conn:
        lock_writer(conn)
        # a build may have claimed the index since the status was read: it rewrites every
        # row, so these changes are its to read; writing them now would mix the two
        state = read_status(conn)
        if not state.ready or building(state, now):
            return _skipped("a build of the people index started", started)
        live_delta, removed = _apply(conn, changed, people, stamps, gone)
        values: dict[str, object] = {
            "refreshed_at": now,
            "people": t.index_state.c.people + live_delta,
        }
        if latest is not None and (state.watermark is None or latest > state.watermark):
            values["watermark"] = latest
        if sweep:
            values["swept_at"] = now
        conn.execute(update(t.index_state).where(t.index_state.c.id == 1).values(**values))
    report = RefreshReport(
        changed=len(changed), removed=removed, swept=sweep, seconds=time.monotonic() - started
    )
    if changed or removed or sweep:
        log.info(
            "people index refreshed",
            extra={
                "event": "index_refreshed",
                "changed": report.changed,
                "removed": report.removed,
                "swept": sweep,
                "ms": round(report.seconds * 1000),
            },
        )
    return report


def _skipped(why: str, started: float) -> RefreshReport:
    log.info(
        "people index refresh skipped: %s",
        why,
        extra={"event": "index_refresh_skipped", "reason": why},
    )
    return RefreshReport(skipped=why, seconds=time.monotonic() - started)


def _changed_at(db: Engine, ids: list[int]) -> dict[int, datetime | None]:
    out: dict[int, datetime | None] = {}
    pi = t.people_index
    with db.connect() as conn:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            out.update(
                conn.execute(
                    select(pi.c.person_id, pi.c.changed_at).where(pi.c.person_id.in_(chunk))
                ).all()
            )
    return out


def _apply(
    conn: Connection,
    changed: list[int],
    people: dict[int, CrmPerson],
    stamps: dict[int, datetime],
    gone: list[int],
) -> tuple[int, int]:
    """Replace the rows of `changed` (live or soft-deleted) and drop `gone`; returns the
    change in the number of live people and how many rows of `gone` were there."""
    pi, postings = t.people_index, t.index_postings
    ids = sorted(set(changed) | set(gone))
    was_live = removed = 0
    leaving = set(gone)
    old_postings: list[dict[str, int]] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for pid, live, term_ids in conn.execute(
            select(pi.c.person_id, pi.c.live, pi.c.term_ids).where(pi.c.person_id.in_(chunk))
        ):
            was_live += bool(live)
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
    live_people = [people[pid] for pid in changed if pid in people and not people[pid].deleted]
    words_of = {p.id: person_words(p) for p in live_people}
    term_of = _term_ids(conn, {w for ws in words_of.values() for w in ws})
    rows, new_postings = [], []
    for person in live_people:
        ids_ = [term_of[w] for w in words_of[person.id]]
        rows.append(_row(person, words_of[person.id], ids_, stamps.get(person.id)))
        new_postings += [(tid, person.id) for tid in ids_]
    rows += [
        _deleted_row(pid, stamps.get(pid))
        for pid in changed
        if pid in stamps and (pid not in people or people[pid].deleted)
    ]
    _insert(conn, "people_index", _PEOPLE_COLUMNS, rows)
    _insert(conn, "index_postings", ("term_id", "person_id"), sorted(new_postings))
    counts = Counter(tid for tid, _ in new_postings)
    counts.subtract(Counter(p["t"] for p in old_postings))
    changed_counts = [{"i": tid, "d": d} for tid, d in sorted(counts.items()) if d]
    if changed_counts:  # how many people each word has: search plans by it
        terms = t.index_terms
        conn.execute(
            update(terms)
            .where(terms.c.id == bindparam("i"))
            .values(people=terms.c.people + bindparam("d")),
            changed_counts,
        )
    return len(live_people) - was_live, removed


def _term_ids(conn: Connection, words: set[str]) -> dict[str, int]:
    """Ids of these words, adding the new ones (and their typo keys) to the vocabulary.
    Runs under the writer lock, so the next id is ours."""
    terms = t.index_terms
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
        _insert(conn, "index_terms", ("id", "word"), [(found[w], w) for w in new])
        _insert(
            conn,
            "index_term_keys",
            ("key", "term_id"),
            sorted({(k, found[w]) for w in new for k in typo_keys(w)}),
        )
    return found
