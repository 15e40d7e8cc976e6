"""The embedded target: a Contacts folder per mailbox in a SQLite file, behaving like
Exchange's (stable item ids, a new change key on every write, categories, an extended
property for the CRM id, fields we don't map such as notes left alone)."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from sync_engine.files import SYNCHRONOUS_NORMAL, private_sqlite
from sync_engine.model import (
    FIELD_NAMES,
    ContactChange,
    ContactFields,
    MailboxContact,
    NewContact,
    WriteResult,
)

metadata = MetaData()


def _contact_columns() -> list[Column]:  # type: ignore[type-arg]
    return [
        Column("mailbox", String(255), primary_key=True),
        Column("item_id", String(64), primary_key=True),
        Column("change_key", String(64), nullable=False),
        *(Column(name, Text, nullable=False, default="") for name in FIELD_NAMES),
        Column("categories", Text, nullable=False, default="[]"),
        Column("crm_id", Integer),
        Column("notes", Text, nullable=False, default=""),
        Column("created_at", String(40), nullable=False),
        # ISO 8601, set on every write (ours and `mailbox update`, the stand-in for an
        # Outlook edit), like Exchange's LastModifiedTime: which mailbox edited last
        Column("modified_at", String(40), nullable=False, default=""),
        Column("seq", Integer, nullable=False),
    ]


contacts = Table("contacts", metadata, *_contact_columns())
# The mailbox's Deleted Items: a deleted contact moves here, whole (notes included), where
# the user could restore it, as Exchange does with MoveToDeletedItems (DESIGN rule 6).
deleted_items = Table(
    "deleted_items",
    metadata,
    *_contact_columns(),
    Column("deleted_at", String(40), nullable=False),
)


# What every sync runs, built once (building a statement cost more CPU than running it)
_PAGE = (
    select(contacts)
    .where(contacts.c.mailbox == bindparam("address"), contacts.c.seq > bindparam("after"))
    .order_by(contacts.c.seq)
    .limit(bindparam("size"))
)
_ONE = select(contacts).where(
    contacts.c.mailbox == bindparam("address"), contacts.c.item_id == bindparam("item_id")
)
_UPDATE = (
    update(contacts)
    .where(contacts.c.mailbox == bindparam("address"), contacts.c.item_id == bindparam("the_item"))
    .values(
        {
            name: bindparam(f"new_{name}")
            for name in ("change_key", "modified_at", "categories", "crm_id", *FIELD_NAMES)
        }
    )
)


def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(SYNCHRONOUS_NORMAL)
    cursor.close()


_SETUP = threading.Lock()  # first use from many threads: one creates the tables


def _create_tables(engine: Engine) -> None:
    """Create the folder table, or add the mapped fields a file made by an older version
    lacks (email 2, fax, home phone); another process doing it at the same moment is fine."""
    for attempt in range(6):
        try:
            metadata.create_all(engine)
            _add_new_fields(engine)
            return
        except OperationalError as exc:
            if "already exists" in str(exc) or "duplicate column" in str(exc):
                return
            if "locked" not in str(exc) or attempt == 5:
                raise
            time.sleep(0.05 * (attempt + 1))


def _add_new_fields(engine: Engine) -> None:
    with engine.begin() as conn:
        have = {c["name"] for c in inspect(conn).get_columns("contacts")}
        for name in (*FIELD_NAMES, "modified_at"):
            if name not in have:
                conn.exec_driver_sql(
                    f"ALTER TABLE contacts ADD COLUMN {name} TEXT NOT NULL DEFAULT ''"
                )
        if "modified_at" not in {c["name"] for c in inspect(conn).get_columns("deleted_items")}:
            conn.exec_driver_sql(
                "ALTER TABLE deleted_items ADD COLUMN modified_at TEXT NOT NULL DEFAULT ''"
            )


# One engine per folder file for the life of the process: opening one per mailbox (an
# engine, its tables checked, its pool disposed at close) was a sixth of a 1,000-mailbox
# cycle. Keyed by the file's identity too, so a file deleted and made anew (a fresh home
# under the same path) gets a fresh engine; the least recently used few stay open.
_ENGINES: OrderedDict[tuple[str, int, int], Engine] = OrderedDict()
_KEEP_ENGINES = 4


def _folder_engine(url: str) -> Engine:
    with _SETUP:
        key = _file_key(url)
        engine = _ENGINES.get(key)
        if engine is not None:
            _ENGINES.move_to_end(key)
            return engine
        # Only here, while this process holds no connection to the file: opening and
        # closing any descriptor of a SQLite file drops every POSIX lock the process holds
        # on it (sqlite.org/howtocorrupt.html, 2.2), and with them a pooled connection's.
        private_sqlite(url)  # contacts are personal data: 0600 whatever the umask
        key = _file_key(url)
        engine = create_engine(url, future=True)
        event.listen(engine, "connect", _pragmas)
        _create_tables(engine)
        _ENGINES[key] = engine
        while len(_ENGINES) > _KEEP_ENGINES:
            _ENGINES.popitem(last=False)[1].dispose()
        return engine


def _file_key(url: str) -> tuple[str, int, int]:
    try:
        info = os.stat(make_url(url).database or "")  # a stat opens no descriptor
    except OSError:  # not there yet: opening it makes it, or says what is wrong
        return (url, 0, 0)
    return (url, info.st_dev, info.st_ino)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _new_change_key() -> str:
    return uuid.uuid4().hex[:16]


class LocalMailbox:
    """One mailbox of the local target. Counts every call as one request, like a round trip."""

    kind = "local"
    target_id = "local"  # one embedded folder file per home: item ids are valid for it only

    def __init__(
        self, url: str, address: str, *, page_size: int = 200, batch_size: int = 100
    ) -> None:
        self.address = address.strip().lower()
        self.page_size = page_size
        self.batch_size = batch_size
        self.requests = 0
        self.engine = _folder_engine(url)

    def close(self) -> None:
        """Nothing to let go: the file's engine serves the process's next mailbox."""

    def list_contacts(self) -> Iterator[list[MailboxContact]]:
        last_seq = -1
        while True:
            self.requests += 1
            with self.engine.connect() as conn:
                rows = (
                    conn.execute(
                        _PAGE,
                        {"address": self.address, "after": last_seq, "size": self.page_size},
                    )
                    .mappings()
                    .all()
                )
            if not rows:
                return
            yield [_contact(r) for r in rows]
            if len(rows) < self.page_size:
                return
            last_seq = rows[-1]["seq"]

    def find(self, crm_ids: Sequence[int]) -> dict[int, list[MailboxContact]]:
        """The contacts carrying these CRM ids, oldest first (one call)."""
        self.requests += 1
        ids = list(dict.fromkeys(int(i) for i in crm_ids))
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(contacts)
                    .where(contacts.c.mailbox == self.address, contacts.c.crm_id.in_(ids))
                    .order_by(contacts.c.created_at, contacts.c.item_id)
                )
                .mappings()
                .all()
            )
        found: dict[int, list[MailboxContact]] = {}
        for row in rows:
            found.setdefault(row["crm_id"], []).append(_contact(row))
        return found

    @staticmethod
    def as_held(fields: ContactFields) -> ContactFields:
        """Every mapped field has a column of its own here."""
        return fields

    def forget_state(self) -> None:
        """Nothing is kept between runs beyond the folder itself."""

    def get(self, item_id: str) -> MailboxContact | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(contacts).where(
                        contacts.c.mailbox == self.address, contacts.c.item_id == item_id
                    )
                )
                .mappings()
                .first()
            )
        return _contact(row) if row else None

    def notes(self, item_id: str) -> str:
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(contacts.c.notes).where(
                        contacts.c.mailbox == self.address, contacts.c.item_id == item_id
                    )
                ).scalar()
                or ""
            )

    def create(self, items: Sequence[NewContact], *, notes: str = "") -> list[WriteResult]:
        self._check_batch(items)
        self.requests += 1
        results = []
        now = _now()
        rows = []
        with self.engine.begin() as conn:
            seq = (
                conn.execute(
                    select(contacts.c.seq).order_by(contacts.c.seq.desc()).limit(1)
                ).scalar()
                or 0
            )
            for item in items:
                seq += 1
                item_id, change_key = uuid.uuid4().hex, _new_change_key()
                rows.append(
                    {
                        "mailbox": self.address,
                        "item_id": item_id,
                        "change_key": change_key,
                        "categories": json.dumps(list(item.categories), ensure_ascii=False),
                        "crm_id": item.crm_id,
                        "notes": notes,
                        "created_at": now,
                        "modified_at": now,
                        "seq": seq,
                        **item.fields.as_dict(),
                    }
                )
                results.append(WriteResult(item_id=item_id, change_key=change_key))
            if rows:
                conn.execute(insert(contacts), rows)
        return results

    def update(self, changes: Sequence[ContactChange]) -> list[WriteResult]:
        self._check_batch(changes)
        self.requests += 1
        results = []
        with self.engine.begin() as conn:
            for change in changes:
                row = (
                    conn.execute(_ONE, {"address": self.address, "item_id": change.item_id})
                    .mappings()
                    .first()
                )
                if row is None:
                    results.append(
                        WriteResult(
                            item_id=change.item_id,
                            error="the contact no longer exists",
                            error_kind="not_found",
                        )
                    )
                    continue
                # A stale change key is not refused: only the named fields are written,
                # so a newer Outlook edit of anything else is kept (CRM wins on mapped fields).
                after = change.applied_to(_contact(row))
                change_key = _new_change_key()
                conn.execute(
                    _UPDATE,
                    {
                        "address": self.address,
                        "the_item": change.item_id,
                        "new_change_key": change_key,
                        "new_modified_at": _now(),
                        "new_categories": json.dumps(list(after.categories), ensure_ascii=False),
                        "new_crm_id": after.crm_id,
                        **{f"new_{k}": v for k, v in after.fields.as_dict().items()},
                    },
                )
                results.append(WriteResult(item_id=change.item_id, change_key=change_key))
        return results

    def delete(self, item_ids: Sequence[str]) -> list[WriteResult]:
        self._check_batch(item_ids)
        self.requests += 1
        where = (contacts.c.mailbox == self.address) & contacts.c.item_id.in_(list(item_ids))
        now = datetime.now(UTC).isoformat()
        with self.engine.begin() as conn:
            rows = conn.execute(select(contacts).where(where)).mappings().all()
            if rows:  # moved to Deleted Items, never destroyed (DESIGN rule 6)
                conn.execute(
                    delete(deleted_items).where(
                        deleted_items.c.mailbox == self.address,
                        deleted_items.c.item_id.in_([r["item_id"] for r in rows]),
                    )
                )
                conn.execute(insert(deleted_items), [{**r, "deleted_at": now} for r in rows])
            conn.execute(delete(contacts).where(where))
        return [WriteResult(item_id=i) for i in item_ids]

    def deleted(self) -> list[MailboxContact]:
        """The contacts in this mailbox's Deleted Items, oldest deletion first."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(deleted_items)
                    .where(deleted_items.c.mailbox == self.address)
                    .order_by(deleted_items.c.deleted_at, deleted_items.c.seq)
                )
                .mappings()
                .all()
            )
        return [_contact(r) for r in rows]

    def check(self) -> list[str]:
        count = sum(len(page) for page in self.list_contacts())
        return [f"local mailbox {self.address}: Contacts folder readable, {count} contacts"]

    # -- what a person does in Outlook (the `mailbox` CLI commands) --------------------

    def user_edit(
        self,
        item_id: str,
        *,
        fields: dict[str, str] | None = None,
        categories: tuple[str, ...] | None = None,
        notes: str | None = None,
    ) -> MailboxContact | None:
        """Edit a contact as a user in Outlook would: any field, including unmapped ones."""
        current = self.get(item_id)
        if current is None:
            return None
        new_fields = current.fields
        if fields:
            new_fields = replace(new_fields, **fields)
            if (
                any(k in fields for k in ("first_name", "middle_name", "last_name"))
                and "display_name" not in fields
            ):
                new_fields = replace(
                    new_fields,
                    display_name=new_fields.full_name(),
                    file_as=new_fields.file_as_name(),
                )
        values: dict[str, object] = {
            "change_key": _new_change_key(),
            "modified_at": _now(),
            **new_fields.as_dict(),
        }
        if categories is not None:
            values["categories"] = json.dumps(list(categories), ensure_ascii=False)
        if notes is not None:
            values["notes"] = notes
        with self.engine.begin() as conn:
            conn.execute(
                update(contacts)
                .where(contacts.c.mailbox == self.address, contacts.c.item_id == item_id)
                .values(**values)
            )
        return self.get(item_id)

    def _check_batch(self, items: Sequence[object]) -> None:
        if len(items) > self.batch_size:
            raise ValueError(
                f"batch of {len(items)} is over the target's batch size {self.batch_size}"
            )


def _contact(row) -> MailboxContact:  # type: ignore[no-untyped-def]
    return MailboxContact(
        item_id=row["item_id"],
        change_key=row["change_key"],
        fields=ContactFields(**{name: row[name] or "" for name in FIELD_NAMES}),
        categories=tuple(json.loads(row["categories"] or "[]")),
        crm_id=row["crm_id"],
        created_at=row["created_at"],
        modified_at=row["modified_at"] or "",
    )
