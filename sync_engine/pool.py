"""Connections to the state database are checked for life only after they sat idle.

Why: SQLAlchemy's `pool_pre_ping` sends a round trip before *every* checkout; a sync
checks a connection out about fifteen times, so on PostgreSQL a third of its round trips
were pings. A connection used moments ago is almost surely alive; one idle longer (the
clock between cycles, the bot between clicks, a database restarted meanwhile) is pinged
first and replaced if dead, which is what pre-ping is for. This is SQLAlchemy's own
"pessimistic disconnect handling" recipe: a `checkout` listener that raises
`DisconnectionError` makes the pool discard the connection and try a fresh one.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

# A connection idle longer than this is pinged before use.
IDLE_PING_SECONDS = 2.0
_USED = "crm_contacts_used_at"


def ping_when_idle(engine: Engine, idle_seconds: float | None = None) -> None:
    """Check a pooled connection with a ping when it was idle over `idle_seconds`
    (default IDLE_PING_SECONDS)."""
    idle = IDLE_PING_SECONDS if idle_seconds is None else idle_seconds

    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        used = record.info.get(_USED)
        if used is None or time.monotonic() - used <= idle:
            return  # new (just connected) or used moments ago
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()
        except Exception as exc:
            raise DisconnectionError(f"connection found dead: {type(exc).__name__}") from exc

    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_USED] = time.monotonic()

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)
