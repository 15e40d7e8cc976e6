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
from sync_engine.state.rows import json_of, utcnow

if TYPE_CHECKING:
    from sync_engine.store import Store


class StateWriter:
    """State changes of one batch, gathered and written in one transaction with a few
    statements (see `Store.writer`): a batch of 100 mailbox writes costs ~5 statements."""

    def __init__(
        self, conn: Connection, store: Store, user_id: int, run_id: int | None, actor: str
    ) -> None:
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

    def flush(self) -> None:
        links, subs = t.links, t.subscriptions
        mine_l, mine_s = links.c.user_id == self.user_id, subs.c.user_id == self.user_id
        gone = sorted(self._dropped_links | set(self._links))
        linked_at: dict[int, datetime] = {}
        if self._links:
            rows = self.conn.execute(
                select(links.c.person_id, links.c.linked_at).where(
                    mine_l, links.c.person_id.in_(list(self._links))
                )
            )
            linked_at = {r[0]: r[1] for r in rows}
        if gone:
            self.conn.execute(delete(links).where(mine_l, links.c.person_id.in_(gone)))
        if self._dropped_subscriptions:
            dropped = sorted(self._dropped_subscriptions)
            self.conn.execute(delete(subs).where(mine_s, subs.c.person_id.in_(dropped)))
        if self._links:
            now = utcnow()
            self.conn.execute(
                insert(links),
                [
                    {
                        "user_id": self.user_id,
                        "person_id": link.person_id,
                        "item_id": link.item_id,
                        "change_key": link.change_key,
                        "fingerprint": link.fingerprint,
                        "origin": link.origin,
                        "linked_at": linked_at.get(link.person_id) or now,
                        "updated_at": now,
                        "crm_values": json_of(link.crm_values),
                        "mailbox_values": json_of(link.mailbox_values),
                    }
                    for link in self._links.values()
                ],
            )
        if self._write_backs:
            wb, now = t.write_backs, utcnow()
            for pid, name in self._write_backs:
                self.conn.execute(delete(wb).where(wb.c.person_id == pid, wb.c.field == name))
            self.conn.execute(
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
        self.store._events(self.conn, self.user_id, self.run_id, self.actor, self._events)
