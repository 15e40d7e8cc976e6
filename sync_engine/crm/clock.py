"""The CRM database's clock against UTC (issue 19).

Sage CRM stamps `*_UpdatedDate` with the database server's clock (SQL Server's
GETDATE(): local time, no zone), while Outlook's modified times are UTC. For
`WRITE_BACK_CONFLICT=latest` the two are compared after taking off the measured
difference (`crm check` prints it). Measured with one query, re-measured every hour
(a daylight-saving change moves it).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, func, select

from sync_engine.crm.source import SageCrm

REMEASURE_SECONDS = 3600
_measured: dict[str, tuple[float, timedelta]] = {}


def database_now(conn: Connection) -> datetime:
    """The database server's own clock, as its UpdatedDate columns are stamped."""
    dialect = conn.dialect.name
    if dialect == "mssql":
        now = func.getdate()
    elif dialect == "postgresql":
        now = func.localtimestamp()  # the session's zone, no zone attached: like GETDATE()
    else:  # SQLite: CURRENT_TIMESTAMP is UTC text
        now = func.current_timestamp()
    value = conn.execute(select(now)).scalar()
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def measure_offset(conn: Connection) -> timedelta:
    """The database clock minus UTC, to the second."""
    before = datetime.now(UTC).replace(tzinfo=None)
    there = database_now(conn)
    after = datetime.now(UTC).replace(tzinfo=None)
    here = before + (after - before) / 2
    return timedelta(seconds=round((there - here).total_seconds()))


def clock_offset(crm: SageCrm) -> timedelta:
    """The measured offset of `crm`'s database clock, remeasured after an hour."""
    now = time.monotonic()
    found = _measured.get(crm.url)
    if found is None or now - found[0] > REMEASURE_SECONDS:
        with crm._connect() as conn:
            found = (now, measure_offset(conn))
        _measured[crm.url] = found
    return found[1]


def describe_offset(offset: timedelta) -> str:
    seconds = int(offset.total_seconds())
    if abs(seconds) < 2:
        return "the same as UTC"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours} h" if hours else "",
        f"{minutes} min" if minutes else "",
        f"{secs} s" if secs else "",
    ]
    return f"{' '.join(p for p in parts if p)} {'ahead of' if seconds > 0 else 'behind'} UTC"
