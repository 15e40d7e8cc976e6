"""Sage's Email/Phone rows and their links in the embedded demo CRM's own database: the
row writes row_writes.py decides (the same decisions the REST writer sends to a real
Sage), carried out in the caller's transaction with Sage's bookkeeping: each row or link
written gets its `*_UpdatedDate`, a removal is a soft delete (`*_Deleted = 1`). One
transaction per person, so a new row is never left without its link.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, Table, insert, update

from sync_engine.crm import schema as s
from sync_engine.crm.row_writes import Action, RowWrite


def link_tables(kind: str) -> tuple[Table, Table, str, str, str]:
    """(link table, row table, link id, row id, the row's value column)."""
    if kind == "email":
        return s.email_link, s.email, "ELink_LinkID", "Emai_EmailId", "Emai_EmailAddress"
    return s.phone_link, s.phone, "PLink_LinkID", "Phon_PhoneId", "Phon_Number"


def link_col(kind: str, name: str) -> str:
    return f"{'ELink' if kind == 'email' else 'PLink'}_{name}"


def row_col(kind: str, name: str) -> str:
    return f"{'Emai' if kind == 'email' else 'Phon'}_{name}"


def link_target(kind: str) -> str:
    return "ELink_EmailId" if kind == "email" else "PLink_PhoneId"


def insert_row(conn: Connection, kind: str, columns: Mapping[str, str], now: datetime) -> int:
    """A new Email/Phone row holding `columns` (blanks as NULL); its id."""
    _, row, _, _, _ = link_tables(kind)
    values = _stored(columns) | {
        row_col(kind, "CreatedDate"): now,
        row_col(kind, "UpdatedDate"): now,
    }
    return int(conn.execute(insert(row).values(values)).inserted_primary_key[0])


def insert_link(
    conn: Connection,
    kind: str,
    entity_id: int,
    record_id: int,
    link_type: str,
    row_id: int,
    now: datetime,
) -> int:
    """A new link from a record (entity 5 = Company, 13 = Person) to a row; its id."""
    link = link_tables(kind)[0]
    result = conn.execute(
        insert(link).values(
            {
                link_col(kind, "EntityID"): entity_id,
                link_col(kind, "RecordID"): record_id,
                link_col(kind, "Type"): link_type,
                link_target(kind): row_id,
                link_col(kind, "CreatedDate"): now,
                link_col(kind, "UpdatedDate"): now,
            }
        )
    )
    return int(result.inserted_primary_key[0])


def apply_row_write(conn: Connection, person_id: int, write: RowWrite, now: datetime) -> None:
    """Carry out one decided row write for the person."""
    kind, row = write.kind, write.row
    link, table, link_id, row_id, _ = link_tables(kind)
    if write.action is Action.CHANGE and row is not None:
        conn.execute(
            update(table)
            .where(table.c[row_id] == row.row_id)
            .values(_stored(write.changed) | {row_col(kind, "UpdatedDate"): now})
        )
    elif write.action is Action.OWN_ROW and row is not None:  # shared: move only this link
        own = insert_row(conn, kind, write.columns, now)
        conn.execute(
            update(link)
            .where(link.c[link_id] == row.link_id)
            .values({link_target(kind): own, link_col(kind, "UpdatedDate"): now})
        )
    elif write.action is Action.NEW_ROW:
        own = insert_row(conn, kind, write.columns, now)
        insert_link(conn, kind, s.PERSON_ENTITY_ID, person_id, write.link_type, own, now)
    elif write.action is Action.UNLINK and row is not None:
        conn.execute(
            update(link)
            .where(link.c[link_id] == row.link_id)
            .values({link_col(kind, "Deleted"): 1, link_col(kind, "UpdatedDate"): now})
        )
        if write.drops_row:
            conn.execute(
                update(table)
                .where(table.c[row_id] == row.row_id)
                .values({row_col(kind, "Deleted"): 1, row_col(kind, "UpdatedDate"): now})
            )


def _stored(columns: Mapping[str, str]) -> dict[str, object]:
    """Column values as Sage stores them: a blank is NULL."""
    return {k: v.strip() or None for k, v in columns.items()}
