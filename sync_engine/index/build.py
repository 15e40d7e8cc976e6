"""Building the people index from every CRM person, into the table set search is not
reading; the finished build switches sets in one transaction.

Until then search keeps the old index (or, on a first build, reads the CRM), and a build
that dies half-way leaves the old index in place and no claim behind (`state`).
"""

from __future__ import annotations

import logging
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path

from sqlalchemy import Engine, text, update

from sync_engine import tables as t
from sync_engine.crm.source import SageCrm
from sync_engine.index import rows
from sync_engine.index.sets import SETS, TableSet
from sync_engine.index.state import build_claim, lock_writer
from sync_engine.index.words import person_words, typo_keys
from sync_engine.store import utcnow

log = logging.getLogger("crm_contacts.index")

_BATCH = 5000  # people read from the CRM at a time
_WRITE = 200_000  # vocabulary and postings rows per transaction (SQLite's writers wait less)


class BuildStopped(Exception):
    """The process is stopping: the build gave up and the old index stays."""


@dataclass
class BuildReport:
    people: int
    deleted: int
    terms: int
    seconds: float
    skipped: int = 0  # people whose values the index cannot hold (logged one by one)


def build(
    db: Engine,
    crm: SageCrm,
    home: Path,
    *,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
    now: datetime | None = None,
    stopping: Callable[[], bool] | None = None,
) -> BuildReport:
    """Rebuild the index from every CRM person. Search keeps the old index meanwhile."""
    started = time.monotonic()
    with build_claim(db, home, now) as number:
        target = SETS[number]
        watermark = crm.latest_change()  # before reading: later changes are refreshed
        stamps = crm.changes_since(None)  # every person id, soft-deleted ones too
        ids = sorted(stamps)
        if total:
            total(len(ids))
        with db.begin() as conn:
            rows.clear(conn, target)
        vocab: dict[str, int] = {}
        postings: dict[int, array] = {}
        live = deleted = skipped = 0
        for start in range(0, len(ids), _BATCH):
            if stopping and stopping():
                raise BuildStopped("the people index build stopped; the old index stays")
            chunk = ids[start : start + _BATCH]
            people = crm.people_by_ids(chunk)
            batch = []
            for pid in chunk:
                person = people.get(pid)
                if person is None:  # hard-deleted since: the next sweep agrees
                    continue
                if person.deleted:
                    deleted += 1
                    batch.append(rows.not_live_row(pid, stamps[pid]))
                    continue
                try:
                    cells = rows.person_cells(person)
                except rows.Unstorable as exc:
                    skipped += 1
                    _say_skipped(pid, exc)
                    batch.append(rows.not_live_row(pid, stamps[pid]))
                    continue
                words = person_words(person)
                term_ids = []
                for w in words:
                    tid = vocab.get(w)
                    if tid is None:
                        tid = vocab[w] = len(vocab) + 1
                    term_ids.append(tid)
                    postings.setdefault(tid, array("i")).append(pid)
                live += 1
                batch.append(rows.live_row(pid, cells, words, term_ids, stamps[pid]))
            with db.begin() as conn:
                rows.insert(conn, target.people.name, rows.PEOPLE_COLUMNS, batch)
            if progress:
                progress(len(chunk))
        _write_vocabulary(db, target, vocab, postings)
        if db.dialect.name == "postgresql":
            # fresh statistics for the planner, and a visibility map so postings are read
            # from the index alone, before search reads these tables (VACUUM runs outside
            # a transaction)
            with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f"VACUUM ANALYZE {', '.join(target.names)}"))
        now = now or utcnow()
        with db.begin() as conn:
            lock_writer(conn)  # a refresh applying changes to the old set finishes first
            conn.execute(
                update(t.index_state)
                .where(t.index_state.c.id == 1)
                .values(
                    ready=True,
                    live_set=number,
                    building_since=None,
                    built_at=now,
                    refreshed_at=now,
                    swept_at=now,
                    watermark=watermark,
                    people=live,
                )
            )
        with db.begin() as conn:
            # the old set's space back. A search that read the old set's number just
            # before the switch may find it empty once; the next one reads the new set.
            rows.clear(conn, SETS[1 - number])
    seconds = time.monotonic() - started
    log.info(
        "people index built",
        extra={
            "event": "index_built",
            "people": live,
            "terms": len(vocab),
            "skipped": skipped,
            "s": round(seconds),
        },
    )
    return BuildReport(live, deleted, len(vocab), seconds, skipped)


def _write_vocabulary(
    db: Engine, target: TableSet, vocab: dict[str, int], postings: dict[int, array]
) -> None:
    """The words, their typo keys and their postings, in transactions of _WRITE rows."""

    def in_parts(table: str, columns: tuple[str, ...], every: Iterable[tuple]) -> None:
        every = iter(every)
        while part := list(islice(every, _WRITE)):
            with db.begin() as conn:
                rows.insert(conn, table, columns, part)

    in_parts(
        target.terms.name,
        ("id", "word", "people"),
        sorted((i, w, len(postings[i])) for w, i in vocab.items()),
    )
    in_parts(
        target.keys.name,
        ("key", "term_id"),
        sorted((k, i) for w, i in vocab.items() for k in typo_keys(w)),
    )
    in_parts(
        target.postings.name,
        ("term_id", "person_id"),
        ((tid, pid) for tid in sorted(postings) for pid in sorted(postings[tid])),
    )


def _say_skipped(person_id: int, why: Exception) -> None:
    log.warning(
        "person %s left out of the people index: %s",
        person_id,
        why,
        extra={"event": "index_person_skipped", "person": person_id, "reason": str(why)},
    )
