"""Rows of the state database as values, and the row helpers the store and its satellite
modules share.

Kept apart from `store.py` so that the store holds the queries and transactions, and the
shape of what they hand back (StoredUser, Event, RunRecord, MailboxState, a Link's stored
values) is read in one place, the same for the store, the scheduler's queue and the
state modules that join the same tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, insert, update
from sqlalchemy.exc import IntegrityError

from sync_engine.masking import mask_urls
from sync_engine.model import DigestPrefs, Link


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they are UTC, as everything we store."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class StoredUser:
    id: int
    crm_user_id: int
    email: str
    mailbox: str
    slack_user_id: str | None = None
    slack_tz: str | None = None
    slack_checked_at: datetime | None = None


@dataclass(frozen=True)
class Event:
    at: datetime
    person_id: int | None
    action: str
    actor: str
    reason: str
    item_id: str | None
    run_id: int | None
    person_name: str | None = None


@dataclass(frozen=True)
class RunRecord:
    id: int
    user_id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    trigger: str
    dry_run: bool
    result: dict | None
    error: str | None


@dataclass(frozen=True)
class MailboxState:
    user_id: int
    list_changed_at: datetime | None = None
    last_run_at: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    last_success_at: datetime | None = None
    crm_watermark: datetime | None = None
    consecutive_failures: int = 0
    next_due_at: datetime | None = None


def link_of(row) -> Link:  # type: ignore[no-untyped-def]
    """A `links` row as a Link."""
    return Link(
        row["person_id"],
        row["item_id"],
        row["change_key"],
        row["fingerprint"],
        row["origin"],
        values_of(row["crm_values"]),
        values_of(row["mailbox_values"]),
    )


def run_record(row) -> RunRecord:  # type: ignore[no-untyped-def]
    """A `runs` row as a value, its result decoded."""
    return RunRecord(
        id=row["id"],
        user_id=row["user_id"],
        started_at=as_utc(row["started_at"]),  # type: ignore[arg-type]
        finished_at=as_utc(row["finished_at"]),
        status=row["status"],
        trigger=row["trigger"],
        dry_run=bool(row["dry_run"]),
        result=json.loads(row["result"]) if row["result"] else None,
        error=row["error"],
    )


def event_of(row) -> Event:  # type: ignore[no-untyped-def]
    """An `events` row as a value."""
    return Event(
        as_utc(row["at"]),  # type: ignore[arg-type]
        row["person_id"],
        row["action"],
        row["actor"],
        row["reason"],
        row["item_id"],
        row["run_id"],
        row["person_name"],
    )


def json_of(values: Mapping[str, str] | None) -> str | None:
    return None if values is None else json.dumps(dict(values), sort_keys=True)


def values_of(text_: str | None) -> dict[str, str] | None:
    return None if text_ is None else dict(json.loads(text_))


def state_fields(row) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The columns of `mailbox_state` that MailboxState and the scheduler's rows share."""
    return {
        "list_changed_at": as_utc(row["list_changed_at"]),
        "last_run_at": as_utc(row["last_run_at"]),
        "last_status": row["last_status"],
        "last_error": row["last_error"],
        "last_success_at": as_utc(row["last_success_at"]),
        "crm_watermark": row["crm_watermark"],
        "consecutive_failures": row["consecutive_failures"] or 0,
        "next_due_at": as_utc(row["next_due_at"]),
    }


def stored_user(row) -> StoredUser:  # type: ignore[no-untyped-def]
    """A `users` row (or a join holding its columns) as a value."""
    return StoredUser(
        id=row["id"],
        crm_user_id=row["crm_user_id"],
        email=row["email"],
        mailbox=row["mailbox"],
        slack_user_id=row["slack_user_id"],
        slack_tz=row["slack_tz"],
        slack_checked_at=as_utc(row["slack_checked_at"]),
    )


def digest_prefs_of(row) -> DigestPrefs:  # type: ignore[no-untyped-def]
    """A digest_prefs row (or None: never set) as a value; columns may be NULL in a join."""
    if row is None or row.get("changed_at") is None:
        return DigestPrefs()
    return DigestPrefs(
        time=row["time"],
        frequency=row["frequency"] or "daily",
        weekday=int(row["weekday"] or 0),
        snoozed_until=row["snoozed_until"],
        off=bool(row["off"]),
        chosen_time=row["time"] is not None,
        changed_at=as_utc(row["changed_at"]),
    )


def masked_state(values: dict[str, object]) -> dict[str, object]:
    """Mailbox state as stored: its error is shown by status, so no credential in it,
    whoever wrote it."""
    if values.get("last_error"):
        return {**values, "last_error": mask_urls(str(values["last_error"]))}
    return values


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
