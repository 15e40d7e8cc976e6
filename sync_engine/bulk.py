"""Many rows into one state table at once, for writes that can reach a million rows (a
standing rule's first evaluation on a big CRM): COPY on PostgreSQL, the driver's own
executemany on SQLite. SQLAlchemy's per-row parameter processing, and psycopg's pipelined
executemany, would take most of the time at that size (bench/bench_rules.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Table


def insert_rows(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple],
    *,
    skip_duplicates: bool = False,
    returning: str | None = None,
) -> set | None:
    """Insert `rows` (tuples in `columns` order). `skip_duplicates` leaves rows whose key
    is there already. With `returning`, the values of that column of the rows inserted,
    on PostgreSQL; None on SQLite, where a writer holds the database alone, so the rows
    the caller read as missing are the ones inserted."""
    if not rows:
        return set() if returning else None
    names = ", ".join(f'"{c}"' for c in columns)
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        target = table.name
        if skip_duplicates or returning:
            target = f"bulk_{table.name}"
            conn.exec_driver_sql(
                f'CREATE TEMP TABLE IF NOT EXISTS "{target}" '
                f'(LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
            )
            conn.exec_driver_sql(f'TRUNCATE "{target}"')
        with raw.cursor() as cur, cur.copy(f'COPY "{target}" ({names}) FROM STDIN') as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(row)
        if target == table.name:
            return None
        tail = " ON CONFLICT DO NOTHING" if skip_duplicates else ""
        if returning:
            tail += f' RETURNING "{returning}"'
        result = conn.exec_driver_sql(
            f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM "{target}"{tail}'
        )
        return {r[0] for r in result} if returning else None
    verb = "INSERT OR IGNORE" if skip_duplicates else "INSERT"
    marks = ", ".join("?" for _ in columns)
    stamps = [i for i, v in enumerate(rows[0]) if isinstance(v, datetime)]
    if stamps:  # SQLAlchemy's own SQLite text for datetimes (rows share a few moments)
        texts: dict[datetime, str] = {}

        def text_of(moment: datetime) -> str:
            if moment not in texts:
                texts[moment] = moment.strftime("%Y-%m-%d %H:%M:%S.%f")
            return texts[moment]

        for i in stamps:
            rows = [(*r[:i], None if r[i] is None else text_of(r[i]), *r[i + 1 :]) for r in rows]
    conn.exec_driver_sql(f'{verb} INTO "{table.name}" ({names}) VALUES ({marks})', list(rows))
    return None
