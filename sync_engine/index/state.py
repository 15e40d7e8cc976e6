"""The index's one-row state: ready or not, who is building it, how far it follows the CRM."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, or_, select, text, update

from sync_engine import tables as t
from sync_engine.store import as_utc, utcnow

# A build that has not finished after this long died with its process; another may start.
BUILD_CLAIM_TTL = timedelta(hours=2)

_REFRESH_LOCK = 0x63726D2D696E6478  # 'crm-indx': one index writer at a time on PostgreSQL


class IndexBusy(Exception):
    """Another process is building the index."""


@dataclass(frozen=True)
class IndexStatus:
    ready: bool = False
    building_since: datetime | None = None
    built_at: datetime | None = None
    watermark: datetime | None = None  # CRM clock, naive
    refreshed_at: datetime | None = None
    swept_at: datetime | None = None
    people: int = 0


def read_status(conn: Connection) -> IndexStatus:
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
    )


def building(status: IndexStatus, now: datetime | None = None) -> bool:
    """A build claimed the index and has not finished (nor outlived its claim)."""
    since = status.building_since
    return since is not None and since >= (now or utcnow()) - BUILD_CLAIM_TTL


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


def claim_build(db: Engine, now: datetime | None = None) -> None:
    """Mark the index as being built (not ready) by us; IndexBusy if another build runs."""
    now = now or utcnow()
    with db.begin() as conn:
        lock_writer(conn)  # waits for a refresh that is applying changes, which then skip
        if conn.execute(select(t.index_state.c.id)).first() is None:
            # two processes may both find no row: the second insert does nothing
            conn.execute(_insert(conn).values(id=1, ready=False, people=0).on_conflict_do_nothing())
        claimed = conn.execute(
            update(t.index_state)
            .where(
                t.index_state.c.id == 1,
                or_(
                    t.index_state.c.building_since.is_(None),
                    t.index_state.c.building_since < now - BUILD_CLAIM_TTL,
                ),
            )
            .values(building_since=now, ready=False)
        ).rowcount
    if not claimed:
        raise IndexBusy("another process is building the people index; wait for it to finish")


def release_build(db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(
            update(t.index_state).where(t.index_state.c.id == 1).values(building_since=None)
        )
