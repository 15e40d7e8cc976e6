"""The index's one-row state: ready or not, which table set is live, who is building it,
how far it follows the CRM.

A build is claimed with a lock that dies with its holder (`sync_engine.locks`): a build
killed by SIGKILL, the OOM killer or a second SIGTERM leaves no claim behind, whatever
`building_since` still says.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from sync_engine import tables as t
from sync_engine.locks import held, is_held
from sync_engine.store import as_utc, utcnow

_REFRESH_LOCK = 0x63726D2D696E6478  # 'crm-indx': one index writer at a time on PostgreSQL
BUILD_LOCK = "people-index-build"  # one build at a time, held for the build's whole run


class IndexBusy(Exception):
    """Another process is building the index."""


@dataclass(frozen=True)
class IndexStatus:
    ready: bool = False
    building_since: datetime | None = None  # as the last build to start wrote it
    built_at: datetime | None = None
    watermark: datetime | None = None  # CRM clock, naive
    refreshed_at: datetime | None = None
    swept_at: datetime | None = None
    people: int = 0
    live_set: int = 0  # which table set search reads (`sets.SETS`)
    building: bool = False  # a build is running now (its lock is held)


def read_status(conn: Connection) -> IndexStatus:
    """The state row as stored (`building` is not known from the row alone: see
    `build_running`)."""
    row = conn.execute(select(t.index_state).where(t.index_state.c.id == 1)).mappings().first()
    if row is None:
        return IndexStatus()
    return IndexStatus(
        ready=bool(row["ready"]),
        building_since=as_utc(row["building_since"]),
        built_at=as_utc(row["built_at"]),
        watermark=row["watermark"],
        refreshed_at=as_utc(row["refreshed_at"]),
        swept_at=as_utc(row["swept_at"]),
        people=int(row["people"] or 0),
        live_set=int(row["live_set"] or 0),
    )


def build_running(db: Engine, home: Path) -> bool:
    """Whether some process holds the build lock now."""
    return is_held(db, home, BUILD_LOCK)


def lock_writer(conn: Connection) -> None:
    """Serialise index writers: an advisory lock on PostgreSQL; on SQLite the first write
    takes the database's write lock, so write first, then read what to change."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _REFRESH_LOCK})
    else:
        conn.execute(update(t.index_state).where(t.index_state.c.id == 1).values(id=1))


def _insert(conn: Connection):  # type: ignore[no-untyped-def]
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(t.index_state)


@contextmanager
def build_claim(db: Engine, home: Path, now: datetime | None = None) -> Iterator[int]:
    """Hold the build lock for the block and yield the table set to fill (the one search
    is not reading); IndexBusy at once if another build runs. The index stays as it is
    (ready or not) until the build switches sets."""
    busy = IndexBusy("another process is building the people index; wait for it to finish")
    with held(db, home, BUILD_LOCK, busy=lambda: busy):
        with db.begin() as conn:
            lock_writer(conn)  # waits for a refresh that is applying changes
            if conn.execute(select(t.index_state.c.id)).first() is None:
                # two processes may both find no row: the second insert does nothing
                conn.execute(
                    _insert(conn).values(id=1, ready=False, people=0).on_conflict_do_nothing()
                )
            live = read_status(conn).live_set
            conn.execute(
                update(t.index_state)
                .where(t.index_state.c.id == 1)
                .values(building_since=now or utcnow())
            )
        try:
            yield 1 - live
        finally:
            # the lock is what counts; a database gone away must not hide the build's error
            with suppress(SQLAlchemyError), db.begin() as conn:
                conn.execute(
                    update(t.index_state).where(t.index_state.c.id == 1).values(building_since=None)
                )
