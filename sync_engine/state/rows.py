"""Row helpers the state store and its satellite modules share."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, Table, and_, insert, update
from sqlalchemy.exc import IntegrityError


def upsert(conn: Connection, table: Table, key: Mapping[str, object], values: dict) -> None:
    """Update the row with this key, or insert it; a concurrent first insert that wins the
    race is updated with ours (works the same on SQLite and PostgreSQL)."""
    where = and_(*(table.c[name] == value for name, value in key.items()))
    if conn.execute(update(table).where(where).values(**values)).rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(insert(table).values(**key, **values))
    except IntegrityError:
        conn.execute(update(table).where(where).values(**values))
