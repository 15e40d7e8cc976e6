"""The Sage CRM rows a write-back touches, read through the read-only connection: which
Email/Phone row a person shows for each type, whether another record shares it, the
phone's codes, and how wide each column we write is.

Since 7.1 an Email or Phone row is linked to its records through EmailLink/PhoneLink, and
nothing stops two links naming one row (a person's business phone that is their
company's switchboard): such a row is never changed for one person (row_writes.py
decides it for both writers: the person gets a row of their own). Widths come from the
database's own catalogue (the SQLAlchemy inspector: INFORMATION_SCHEMA.COLUMNS on SQL
Server, pg_catalog on PostgreSQL, the table's declaration on SQLite), readable with the
documented SELECT grants.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from sync_engine.crm import schema as s
from sync_engine.crm.row_writes import LinkedRow
from sync_engine.crm.source import _live, _phone, _typed, chunks, email_query, phone_query
from sync_engine.model import clean


def linked_rows(
    conn: Connection, person_id: int, kinds: Iterable[str] = ("email", "phone")
) -> dict[tuple[str, str], LinkedRow]:
    """("email"|"phone", type) -> the row whose value the person shows, for the `kinds`
    asked: the same pick as source.py's reading (types folded, first non-blank by link
    id), so a write-back changes the row Outlook got."""
    kinds = set(kinds)
    found: dict[tuple[str, str], tuple[Any, ...]] = {}
    if "email" in kinds:
        emails = _typed(
            (
                (r[0], r[1], clean(r[2]) and (r[3], r[4], "", "", clean(r[2])))
                for r in conn.execute(email_query([person_id]))
            ),
            s.EMAIL_TYPES,
        )
        found |= {("email", t): v for t, v in emails.get(person_id, {}).items()}
    if "phone" in kinds:
        phones = _typed(
            (
                (
                    r[0],
                    r[1],
                    _phone(r[2], r[3], r[4])
                    and (r[5], r[6], clean(r[2]), clean(r[3]), clean(r[4])),
                )
                for r in conn.execute(phone_query([person_id]))
            ),
            s.PHONE_TYPES,
        )
        found |= {("phone", t): v for t, v in phones.get(person_id, {}).items()}
    counts = {
        kind: live_links(conn, kind, [v[0] for k, v in found.items() if k[0] == kind])
        for kind in kinds
    }
    return {
        key: LinkedRow(int(row), int(link), counts[key[0]].get(int(row), 1), country, area, value)
        for key, (row, link, country, area, value) in found.items()
    }


def live_links(conn: Connection, kind: str, row_ids: Iterable[int]) -> dict[int, int]:
    """Row id -> how many live links (of any record, person or company) point at it."""
    target, deleted = link_columns(kind)
    out: dict[int, int] = {}
    for chunk in chunks(row_ids):
        query = (
            select(target, func.count()).where(target.in_(chunk), _live(deleted)).group_by(target)
        )
        out.update((int(row), int(n)) for row, n in conn.execute(query))
    return out


def row_is_live(conn: Connection, kind: str, row_id: int) -> bool:
    """Whether the Email/Phone row exists and is not marked deleted."""
    table = s.email if kind == "email" else s.phone
    key, deleted = (
        ("Emai_EmailId", "Emai_Deleted") if kind == "email" else ("Phon_PhoneId", "Phon_Deleted")
    )
    query = select(table.c[key]).where(table.c[key] == row_id, _live(table.c[deleted]))
    return conn.execute(query).first() is not None


def link_columns(kind: str):  # type: ignore[no-untyped-def]
    """The link table's column naming the row, and its Deleted flag."""
    if kind == "email":
        return s.email_link.c.ELink_EmailId, s.email_link.c.ELink_Deleted
    return s.phone_link.c.PLink_PhoneId, s.phone_link.c.PLink_Deleted


def column_widths(engine: Engine, tables: Iterable[str]) -> dict[str, int]:
    """'Table.Column' -> the most characters the column holds, for the text columns of
    `tables` that have a length (nvarchar(max) and text have none: no limit)."""
    out: dict[str, int] = {}
    try:
        inspector = inspect(engine)
        for table in tables:
            for column in inspector.get_columns(table):
                length = getattr(column["type"], "length", None)
                if isinstance(length, int) and length > 0:
                    out[f"{table}.{column['name']}"] = length
    except SQLAlchemyError:
        return out  # no catalogue to read: Sage's own error will say it, per person
    return out
