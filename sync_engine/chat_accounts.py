"""Chat accounts of front ends other than Slack: who they are and where to reach them.

Slack's own columns sit on `users` (older than this table); a front end added later
(Microsoft Teams, issue 21) keeps its accounts here, named only by a `front_end` string,
so the engine holds addresses without knowing any chat product. A user account maps
one CRM user (by the email it was matched with); a channel is a place to post.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, insert, select, update

from sync_engine import tables as t
from sync_engine.model import CrmUser
from sync_engine.store import as_utc, utcnow

if TYPE_CHECKING:
    from sync_engine.service import Engine


@dataclass(frozen=True)
class ChatAccount:
    front_end: str
    kind: str  # "user" or "channel"
    account_id: str
    user_id: int | None  # the state store's user (users.id); None for a channel
    email: str | None
    tenant_id: str | None
    conversation_id: str | None
    service_url: str | None
    tz: str | None
    checked_at: datetime | None


def _account(row: dict[str, object]) -> ChatAccount:
    return ChatAccount(
        front_end=str(row["front_end"]),
        kind=str(row["kind"]),
        account_id=str(row["account_id"]),
        user_id=row["user_id"],  # type: ignore[arg-type]
        email=row["email"],  # type: ignore[arg-type]
        tenant_id=row["tenant_id"],  # type: ignore[arg-type]
        conversation_id=row["conversation_id"],  # type: ignore[arg-type]
        service_url=row["service_url"],  # type: ignore[arg-type]
        tz=row["tz"],  # type: ignore[arg-type]
        checked_at=as_utc(row["checked_at"]),  # type: ignore[arg-type]
    )


def find(engine: Engine, front_end: str, kind: str, account_id: str) -> ChatAccount | None:
    c = t.chat_accounts.c
    query = select(t.chat_accounts).where(
        c.front_end == front_end, c.kind == kind, c.account_id == account_id
    )
    with engine.store.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return _account(dict(row)) if row else None


def of_user(engine: Engine, user_id: int, front_end: str | None = None) -> list[ChatAccount]:
    """The accounts of one state-store user (users.id), of one front end or all."""
    c = t.chat_accounts.c
    query = select(t.chat_accounts).where(c.user_id == user_id, c.kind == "user")
    if front_end:
        query = query.where(c.front_end == front_end)
    with engine.store.engine.connect() as conn:
        return [_account(dict(r)) for r in conn.execute(query.order_by(c.id)).mappings()]


def remember_user(
    engine: Engine,
    front_end: str,
    account_id: str,
    user: CrmUser,
    *,
    tenant_id: str | None,
    conversation_id: str | None,
    service_url: str | None,
    tz: str | None,
    checked: bool,
) -> ChatAccount:
    """Map `account_id` to the CRM user (matched by email) and keep where to reach it.

    `checked`: the email was just read from the directory (starts a new day of trust).
    Any other account of this front end that had the user lets go of it: one list, one
    owner (DESIGN 2.10) per front end."""
    stored = engine._stored(user)  # the state row, created on first use
    c = t.chat_accounts.c
    values: dict[str, object] = {
        "user_id": stored.id,
        "email": user.email,
        "tenant_id": tenant_id,
    }
    if conversation_id:
        values.update(conversation_id=conversation_id, service_url=service_url)
    if tz:
        values["tz"] = tz
    if checked:
        values["checked_at"] = utcnow()
    with engine.store.engine.begin() as conn:
        conn.execute(
            delete(t.chat_accounts).where(
                c.front_end == front_end,
                c.kind == "user",
                c.user_id == stored.id,
                c.account_id != account_id,
            )
        )
        _upsert(conn, front_end, "user", account_id, values)
    found = find(engine, front_end, "user", account_id)
    assert found is not None
    return found


def remember_channel(
    engine: Engine,
    front_end: str,
    channel_id: str,
    *,
    tenant_id: str | None,
    service_url: str | None,
) -> None:
    """A channel the app was installed in: where a team summary can be posted."""
    values = {"tenant_id": tenant_id, "service_url": service_url, "conversation_id": channel_id}
    with engine.store.engine.begin() as conn:
        _upsert(conn, front_end, "channel", channel_id, values)


def time_zone(engine: Engine, user_id: int) -> str | None:
    """The user's time zone as another front end last gave it (for a user with no Slack
    zone: the digest comes at their local hour wherever they chat)."""
    for account in of_user(engine, user_id):
        if account.tz:
            return account.tz
    return None


def _upsert(
    conn: Connection, front_end: str, kind: str, account_id: str, values: dict[str, object]
) -> None:
    """Update the account's row, or add it (the unique index keeps it one row)."""
    c = t.chat_accounts.c
    done = conn.execute(
        update(t.chat_accounts)
        .where(c.front_end == front_end, c.kind == kind, c.account_id == account_id)
        .values(**values)
    )
    if not done.rowcount:
        conn.execute(
            insert(t.chat_accounts).values(
                front_end=front_end, kind=kind, account_id=account_id, **values
            )
        )
