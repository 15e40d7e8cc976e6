"""The state changes of one batch of mailbox writes, gathered and written together.

Kept apart from `store.py`: the Store answers queries and runs short transactions of its
own; a StateWriter lives inside one (`Store.writer`) while a batch is carried out (apply,
write-back), so the links, dropped subscriptions, write-backs and audit rows of a batch
commit with a few statements, or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, insert, select

from sync_engine import tables as t
from sync_engine.model import Link
from sync_engine.state import hot
from sync_engine.state.rows import json_of, utcnow

if TYPE_CHECKING:
    from sync_engine.store import Store


class StateWriter:
    """State changes of one batch, gathered and written in one transaction with a few
    statements (see `Store.writer`): a batch of 100 mailbox writes costs ~5 statements."""

    def __init__(
        self, conn: Connection | None, store: Store, user_id: int, run_id: int | None, actor: str
    ) -> None:
        """`conn`: the transaction to write in; None to gather now and write later in
        whichever transaction `flush(conn)` is given (`Store.buffer`)."""
        self.conn, self.store, self.user_id = conn, store, user_id
        self.run_id, self.actor = run_id, actor
        self._links: dict[int, Link] = {}
        self._dropped_links: set[int] = set()
        self._dropped_subscriptions: set[int] = set()
        self._events: list[tuple] = []
        self._write_backs: dict[tuple[int, str], tuple[str, datetime | None]] = {}

    def put_link(self, link: Link) -> None:
        self._dropped_links.discard(link.person_id)
        self._links[link.person_id] = link

    def drop_link(self, person_id: int) -> None:
        self._links.pop(person_id, None)
        self._dropped_links.add(person_id)

    def drop_subscription(self, person_id: int) -> None:
        self._dropped_subscriptions.add(person_id)

    def wrote_back(
        self,
        person_id: int,
        changes: Iterable[tuple[str, str]],
        edited_at: datetime | None = None,
    ) -> None:
        """Remember the Outlook edits this mailbox wrote to the CRM (see recent_write_backs)."""
        for name, value in changes:
            self._write_backs[(person_id, name)] = (value, edited_at)

    def event(
        self,
        person_id: int | None,
        action: str,
        reason: str,
        item_id: str | None = None,
        name: str | None = None,
    ) -> None:
        self._events.append((person_id, action, reason, item_id, name))

    def flush(self, conn: Connection | None = None) -> None:
        conn = conn or self.conn
        assert conn is not None, "a gathered writer is flushed in a transaction given to it"
        links, subs = t.links, t.subscriptions
        mine_l, mine_s = links.c.user_id == self.user_id, subs.c.user_id == self.user_id
        if self._dropped_links:
            gone = sorted(self._dropped_links)
            conn.execute(delete(links).where(mine_l, links.c.person_id.in_(gone)))
        if self._dropped_subscriptions:
            dropped = sorted(self._dropped_subscriptions)
            conn.execute(delete(subs).where(mine_s, subs.c.person_id.in_(dropped)))
        if self._links:
            self._put_links(conn)
        if self._write_backs:
            wb, now = t.write_backs, utcnow()
            for pid, name in self._write_backs:
                conn.execute(delete(wb).where(wb.c.person_id == pid, wb.c.field == name))
            conn.execute(
                insert(wb),
                [
                    {
                        "person_id": pid,
                        "field": name,
                        "value": value,
                        "user_id": self.user_id,
                        "written_at": now,
                        "edited_at": edited_at,
                    }
                    for (pid, name), (value, edited_at) in self._write_backs.items()
                ],
            )
        self.store._events(conn, self.user_id, self.run_id, self.actor, self._events)

    def _put_links(self, conn: Connection) -> None:
        """Write the links, keeping each existing one's `linked_at`: one upsert statement
        on SQLite and PostgreSQL (a read, a delete and an insert were three per batch)."""
        links, now = t.links, utcnow()
        rows = [
            {
                "user_id": self.user_id,
                "person_id": link.person_id,
                "item_id": link.item_id,
                "change_key": link.change_key,
                "fingerprint": link.fingerprint,
                "origin": link.origin,
                "linked_at": now,
                "updated_at": now,
                "crm_values": json_of(link.crm_values),
                "mailbox_values": json_of(link.mailbox_values),
            }
            for link in self._links.values()
        ]
        upsert = hot.put_links(conn.dialect.name)
        if upsert is not None:
            conn.execute(upsert, rows)
            return
        mine = links.c.user_id == self.user_id
        ids = list(self._links)
        found = conn.execute(
            select(links.c.person_id, links.c.linked_at).where(mine, links.c.person_id.in_(ids))
        )
        linked_at = {r[0]: r[1] for r in found}
        conn.execute(delete(links).where(mine, links.c.person_id.in_(ids)))
        conn.execute(
            insert(links), [{**r, "linked_at": linked_at.get(r["person_id"]) or now} for r in rows]
        )
