"""A CRM person as the index stores them, and the bulk writes of the index's rows.

Every value is made storable (`words.storable`), every key cut to its column (`words.key`)
and every shown value too (ending in "…"), but an email: a person whose email is longer
than an address can be is refused (`Unstorable`), so the caller skips that one person,
logs it, and keeps the batch. (Sage holds at most 255 characters of an email; only a CRM
that checks nothing can hold more.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime

from sqlalchemy import Connection, String, text

from sync_engine import tables as t
from sync_engine.index.sets import TableSet
from sync_engine.index.words import key, storable
from sync_engine.model import CrmPerson, PersonView

# every column of a people_index table, in the order the rows below fill them
PEOPLE_COLUMNS = tuple(c.name for c in t.people_index.columns)
# what a card shows (PersonView's fields the index keeps, but its id), in column order
_SHOWN = tuple(f.name for f in fields(PersonView) if f.name != "id" and f.name in t.people_index.c)
assert PEOPLE_COLUMNS[2 : 2 + len(_SHOWN)] == _SHOWN  # `live_row` fills them by position
_LIMITS = {c.name: c.type.length for c in t.people_index.columns if isinstance(c.type, String)}


class Unstorable(ValueError):
    """A person the index cannot show truthfully (an email longer than its column)."""


def person_cells(person: CrmPerson) -> tuple[str, ...]:
    """The shown values and the folded keys of a live person, storable as they are."""
    card = PersonView.of(person)
    cells = []
    for name in _SHOWN:
        value = storable(getattr(card, name) or "")
        limit = _LIMITS[name]
        if limit is not None and len(value) > limit:
            if name == "email":  # cut short it would be another address: shown whole or not
                raise Unstorable(
                    f"its email is {len(value)} characters, more than the {limit} kept"
                )
            value = value[: limit - 1] + "…"  # a list shows the start; the card reads the CRM
        cells.append(value)
    f = person.fields
    name = " ".join(p for p in (f.first_name, f.middle_name, f.last_name) if p)
    return (*cells, key(name), key(f.company), key(f.email))


def live_row(
    person_id: int,
    cells: Sequence[str],
    words: Sequence[str],
    term_ids: Sequence[int],
    at: datetime | None,
) -> tuple:
    return (person_id, True, *cells, " ".join(words), " ".join(map(str, term_ids)), at)


def not_live_row(person_id: int, at: datetime | None) -> tuple:
    """A person search must not show: deleted in the CRM, or refused as unstorable. The
    change time stays, so a sweep does not read them again until they change."""
    return (person_id, False, *([""] * (len(PEOPLE_COLUMNS) - 3)), at)


def insert(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
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


def clear(conn: Connection, tables: TableSet) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"TRUNCATE {', '.join(tables.names)}"))
    else:
        for name in tables.names:
            conn.execute(text(f"DELETE FROM {name}"))
