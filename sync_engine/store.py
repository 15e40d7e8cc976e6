"""The state store (SQLAlchemy 2 Core): users, subscriptions (My CRM Contacts), links,
runs and the audit trail of events. SQLite by default, PostgreSQL in production.

Every write that belongs together commits together, so a run killed at any point
leaves the store consistent with what reached the mailbox (DESIGN rule 9).

What the queries hand back, and the row helpers other state modules share (`utcnow`,
`as_utc`, many modules take them from here), are in `state/rows.py`; a batch's
gathered writes in `state/writer.py`; runs and events in `state/runlog.py` (a base class).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from sync_engine import migrate
from sync_engine import tables as t
from sync_engine.files import SYNCHRONOUS_NORMAL, private_dir, private_sqlite
from sync_engine.locks import held
from sync_engine.masking import mask_urls
from sync_engine.model import DigestPrefs, Link
from sync_engine.pool import ping_when_idle
from sync_engine.state import hot
from sync_engine.state.rows import (
    MailboxState,
    StoredUser,
    as_utc,
    digest_prefs_of,
    link_of,
    masked_state,
    state_fields,
    stored_user,
    upsert,
    utcnow,
)
from sync_engine.state.runlog import RunLog
from sync_engine.state.writer import StateWriter


class StoreError(Exception):
    """The state database cannot be used; the message says what to check."""


class EmailTaken(Exception):
    """Another CRM user's state row still holds this email or mailbox."""

    def __init__(self, crm_user_id: int) -> None:
        super().__init__(crm_user_id)
        self.crm_user_id = crm_user_id


class MailboxBusy(Exception):
    """Another sync of this mailbox is running (in this or another process or machine)."""


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(SYNCHRONOUS_NORMAL)
    cursor.close()


class Store(RunLog):
    """One state database. Open with `Store.open(url, home)`; the schema is migrated on open."""

    def __init__(self, engine: Engine, home: Path) -> None:
        self.engine = engine
        self.home = home

    @classmethod
    def open(cls, url: str, home: Path) -> Store:
        if url.startswith("sqlite"):
            private_dir(home)
            private_sqlite(url)
        try:
            engine = create_engine(url, future=True)
        except (SQLAlchemyError, ModuleNotFoundError, ValueError) as exc:
            raise StoreError(f"DATABASE_URL is not usable: {exc}") from None
        ping_when_idle(engine)  # not before every checkout: see pool.py
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        try:
            migrate.upgrade(engine)
        except OperationalError as exc:
            raise StoreError(
                f"cannot open the state database ({_where(url)}): {_reason(exc)}"
            ) from None
        except SQLAlchemyError as exc:
            raise StoreError(
                f"the state database ({_where(url)}) is not usable: {_reason(exc)}"
            ) from None
        return cls(engine, home)

    def close(self) -> None:
        self.engine.dispose()

    def reading(self) -> Connection:
        """A connection for reads: autocommit, so a SELECT is one round trip, not three
        (BEGIN, the SELECT, the ROLLBACK when the connection goes back to the pool). The
        same answers: under READ COMMITTED each statement takes its own snapshot anyway,
        and SQLite's driver opens no transaction for a SELECT. A sync makes a handful of
        reads; on PostgreSQL these round trips were a quarter of its time."""
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    # -- users -------------------------------------------------------------------------

    def ensure_user(self, crm_user_id: int, email: str, mailbox: str | None = None) -> StoredUser:
        """The state row of a CRM user, created on first use (mailbox = email by default).

        When the user's email changed in the CRM, a mailbox that followed the old email
        follows the new one. Raises `EmailTaken` when another CRM user's row still holds
        the email (the caller knows the CRM and can settle it)."""
        email = email.strip().lower()
        found = self.user_by_crm_id(crm_user_id)
        if found and found.email == email:
            return found
        try:
            with self.engine.begin() as conn:
                if found:
                    values = {"email": email}
                    if found.mailbox == found.email:
                        values["mailbox"] = email
                    conn.execute(update(t.users).where(t.users.c.id == found.id).values(**values))
                else:
                    conn.execute(
                        insert(t.users).values(
                            crm_user_id=crm_user_id,
                            email=email,
                            mailbox=(mailbox or email).lower(),
                            created_at=utcnow(),
                        )
                    )
        except IntegrityError:
            holder = self.user_by_email(email) or self._one_user(t.users.c.mailbox == email)
            if holder is not None and holder.crm_user_id != crm_user_id:
                raise EmailTaken(holder.crm_user_id) from None
            # else: the same user was created by a concurrent request
        return self.user_by_crm_id(crm_user_id)  # type: ignore[return-value]

    def user_by_crm_id(self, crm_user_id: int) -> StoredUser | None:
        return self._one_user(t.users.c.crm_user_id == crm_user_id)

    def user_by_email(self, email: str) -> StoredUser | None:
        return self._one_user(t.users.c.email == email.strip().lower())

    def user_by_slack(self, slack_user_id: str) -> StoredUser | None:
        return self._one_user(t.users.c.slack_user_id == slack_user_id)

    def users(self) -> list[StoredUser]:
        with self.reading() as conn:
            rows = conn.execute(select(t.users).order_by(t.users.c.id)).mappings().all()
        return [stored_user(r) for r in rows]

    def set_slack_user(self, user_id: int, slack_user_id: str, tz: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(t.users)
                .where(t.users.c.slack_user_id == slack_user_id, t.users.c.id != user_id)
                .values(slack_user_id=None)
            )
            conn.execute(
                update(t.users)
                .where(t.users.c.id == user_id)
                .values(slack_user_id=slack_user_id, slack_tz=tz, slack_checked_at=utcnow())
            )

    def expire_slack_check(self, slack_user_id: str) -> bool:
        """Make the next request of this Slack user ask Slack again (Slack said the user
        changed); False when no CRM user is mapped to it."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t.users)
                .where(t.users.c.slack_user_id == slack_user_id)
                .values(slack_checked_at=None)
            )
        return bool(done.rowcount)

    def _one_user(self, condition) -> StoredUser | None:  # type: ignore[no-untyped-def]
        with self.reading() as conn:
            row = conn.execute(select(t.users).where(condition)).mappings().first()
        return stored_user(row) if row else None

    # -- My CRM Contacts ---------------------------------------------------------------

    def subscriptions(self, user_id: int) -> dict[int, datetime]:
        with self.reading() as conn:
            rows = conn.execute(hot.SUBSCRIPTIONS, {"user_id": user_id})
            return {r[0]: as_utc(r[1]) for r in rows}  # type: ignore[misc]

    def add_subscriptions(
        self, user_id: int, names: dict[int, str], source: str, actor: str
    ) -> list[int]:
        """Add people (id -> name) to the list; those already there are left alone.

        Returns the ids that were new."""
        wanted = list(names)
        now = utcnow()
        with self.engine.begin() as conn:
            have = self._subscribed(conn, user_id, wanted)
            candidates = [pid for pid in wanted if pid not in have]
            new: list[int] = []
            if candidates:
                # A second click racing this one may insert the same rows first: skip those
                # (ON CONFLICT DO NOTHING) and count only the rows this call inserted.
                inserted = conn.execute(
                    self._insert_ignoring_duplicates(t.subscriptions).returning(
                        t.subscriptions.c.person_id
                    ),
                    [
                        {"user_id": user_id, "person_id": pid, "added_at": now, "source": source}
                        for pid in candidates
                    ],
                )
                done = {row[0] for row in inserted}
                new = [pid for pid in candidates if pid in done]
            if new:
                self._events(
                    conn,
                    user_id,
                    None,
                    actor,
                    [
                        (
                            pid,
                            "subscribed",
                            f"added to My CRM Contacts ({source})",
                            None,
                            names[pid],
                        )
                        for pid in new
                    ],
                )
                self._mark_list_changed(conn, user_id, now)
        return new

    def _insert_ignoring_duplicates(self, table):  # type: ignore[no-untyped-def]
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        elif self.engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            return insert(table)
        return dialect_insert(table).on_conflict_do_nothing()

    def remove_subscriptions(
        self, user_id: int, person_ids: Iterable[int], actor: str
    ) -> list[int]:
        wanted = list(dict.fromkeys(person_ids))
        now = utcnow()
        with self.engine.begin() as conn:
            have = self._subscribed(conn, user_id, wanted)
            gone = [pid for pid in wanted if pid in have]
            if gone:
                conn.execute(
                    delete(t.subscriptions).where(
                        t.subscriptions.c.user_id == user_id, t.subscriptions.c.person_id.in_(gone)
                    )
                )
                self._events(
                    conn,
                    user_id,
                    None,
                    actor,
                    [(pid, "unsubscribed", "removed from My CRM Contacts", None) for pid in gone],
                )
                self._mark_list_changed(conn, user_id, now)
        return gone

    def _subscribed(self, conn: Connection, user_id: int, person_ids: list[int]) -> set[int]:
        have: set[int] = set()
        for start in range(0, len(person_ids), 900):
            chunk = person_ids[start : start + 900]
            have.update(
                r[0]
                for r in conn.execute(
                    select(t.subscriptions.c.person_id).where(
                        t.subscriptions.c.user_id == user_id, t.subscriptions.c.person_id.in_(chunk)
                    )
                )
            )
        return have

    # -- links -------------------------------------------------------------------------

    def links(self, user_id: int) -> dict[int, Link]:
        with self.reading() as conn:
            rows = conn.execute(hot.LINKS, {"user_id": user_id}).mappings().all()
        return {r["person_id"]: link_of(r) for r in rows}

    def recent_write_backs(
        self, person_ids: Iterable[int], *, other_than: int
    ) -> dict[int, dict[str, tuple[str, str, datetime | None]]]:
        """person -> field -> (value, mailbox, edited at): the last Outlook edit another
        mailbox wrote to the CRM, so this mailbox can tell it from an edit made in the CRM
        and the later of two mailboxes' edits wins."""
        ids = sorted(set(person_ids))
        out: dict[int, dict[str, tuple[str, str, datetime | None]]] = {}
        if not ids:
            return out
        with self.reading() as conn:
            for start in range(0, len(ids), 500):
                rows = conn.execute(
                    hot.RECENT_WRITE_BACKS,
                    {"ids": ids[start : start + 500], "other_than": other_than},
                )
                for pid, name, value, mailbox, edited_at in rows:
                    out.setdefault(pid, {})[name] = (value, mailbox, edited_at)
        return out

    @contextmanager
    def writer(self, user_id: int, run_id: int | None, actor: str) -> Iterator[StateWriter]:
        """One transaction for the state changes that follow one batch of mailbox writes."""
        with self.engine.begin() as conn:
            writer = StateWriter(conn, self, user_id, run_id, actor)
            yield writer
            writer.flush()

    def buffer(self, user_id: int, run_id: int | None, actor: str) -> StateWriter:
        """State changes gathered now, written later: by `write`, or with the run's end
        (`finish_run(pending=...)`), so a sync's last batch costs no commit of its own."""
        return StateWriter(None, self, user_id, run_id, actor)

    def write(self, writer: StateWriter) -> None:
        with self.engine.begin() as conn:
            writer.flush(conn)

    def mark_list_changed(self, conn: Connection, user_id: int, now: datetime) -> None:
        """The user's list changed (in another module's transaction): the mailbox has work."""
        self._mark_list_changed(conn, user_id, now)

    # -- per-mailbox scheduling state --------------------------------------------------

    def mailbox_state(self, user_id: int) -> MailboxState:
        with self.reading() as conn:
            row = (
                conn.execute(select(t.mailbox_state).where(t.mailbox_state.c.user_id == user_id))
                .mappings()
                .first()
            )
        if row is None:
            return MailboxState(user_id=user_id)
        return MailboxState(user_id=user_id, **state_fields(row))

    def update_mailbox_state(self, user_id: int, **values: object) -> None:
        with self.engine.begin() as conn:
            self._upsert_state(conn, user_id, masked_state(values))

    def _mark_list_changed(self, conn: Connection, user_id: int, now: datetime) -> None:
        self._upsert_state(conn, user_id, {"list_changed_at": now})

    def _upsert_state(self, conn: Connection, user_id: int, values: dict[str, object]) -> None:
        names = tuple(sorted(values))
        params = {"state_user": user_id, **{f"v_{name}": values[name] for name in names}}
        done = conn.execute(hot.state_update(names), params)
        if done.rowcount == 0:
            try:
                with conn.begin_nested():
                    row = {"consecutive_failures": 0, **values, "user_id": user_id}
                    conn.execute(insert(t.mailbox_state).values(**row))
            except IntegrityError:
                conn.execute(
                    update(t.mailbox_state)
                    .where(t.mailbox_state.c.user_id == user_id)
                    .values(**values)
                )

    # -- what mailbox targets learned about addresses (MailboxIdentities) ----------------

    def mailbox_identity(self, target: str, address: str) -> str | None:
        """The object id / primary address a target stored for `address`, or None."""
        m = t.mailbox_identities
        with self.reading() as conn:
            return conn.execute(
                select(m.c.value).where(
                    m.c.target == target, m.c.address == address.strip().lower()
                )
            ).scalar_one_or_none()

    def remember_mailbox_identity(self, target: str, address: str, value: str) -> None:
        key = {"target": target, "address": address.strip().lower()}
        with self.engine.begin() as conn:
            upsert(conn, t.mailbox_identities, key, {"value": value, "resolved_at": utcnow()})

    # -- digest settings ----------------------------------------------------------------

    def digest_prefs(self, user_id: int) -> DigestPrefs:
        """The user's stored digest settings; the defaults when they never changed one."""
        with self.reading() as conn:
            row = (
                conn.execute(select(t.digest_prefs).where(t.digest_prefs.c.user_id == user_id))
                .mappings()
                .first()
            )
        return digest_prefs_of(row)

    def set_digest_prefs(self, user_id: int, changed_at: datetime, **values: object) -> None:
        """Write some of the settings (time, frequency, weekday, snoozed_until, off)."""
        values = {**values, "changed_at": changed_at}
        with self.engine.begin() as conn:
            upsert(conn, t.digest_prefs, {"user_id": user_id}, values)

    # -- one sync at a time per mailbox ------------------------------------------------

    @contextmanager
    def mailbox_lock(self, mailbox: str) -> Iterator[None]:
        """Hold the mailbox's lock for a sync, or raise MailboxBusy at once. It dies with
        its holder (`sync_engine.locks`), so a killed sync never blocks the next one."""
        with held(self.engine, self.home, mailbox.lower(), busy=lambda: MailboxBusy(mailbox)):
            yield

    def counts(self, user_id: int) -> tuple[int, int]:
        with self.reading() as conn:
            subs = conn.execute(
                select(func.count())
                .select_from(t.subscriptions)
                .where(t.subscriptions.c.user_id == user_id)
            ).scalar_one()
            links = conn.execute(
                select(func.count()).select_from(t.links).where(t.links.c.user_id == user_id)
            ).scalar_one()
        return int(subs), int(links)


def _where(url: str) -> str:
    """The URL without its password, for messages."""
    return mask_urls(url)


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).strip().splitlines()[0]
