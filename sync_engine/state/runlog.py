"""Runs and the audit trail of events: a part of `Store` (its base class), kept apart.

Why apart: the run's start and end are the statements every sync runs around its work,
tuned for it (one statement, one durable commit at the end, the last batch's state in
it); the store's other parts (users, lists, links, scheduling state) do not need to be
read to follow them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, select, text

from sync_engine import tables as t
from sync_engine.bulk import insert_rows
from sync_engine.masking import mask_urls
from sync_engine.state import hot
from sync_engine.state.rows import Event, RunRecord, event_of, masked_state, run_record, utcnow
from sync_engine.state.writer import StateWriter


class RunLog:
    """The `runs` and `events` tables (`Store` is one)."""

    engine: Engine

    if TYPE_CHECKING:  # given by Store

        def reading(self) -> Connection: ...

        def _upsert_state(
            self, conn: Connection, user_id: int, values: dict[str, object]
        ) -> None: ...

    def abandon_runs(self, user_id: int) -> int:
        """Mark runs left 'running' by a process that died. Call only while holding the
        mailbox lock: then no run of this mailbox can really be running."""
        with self.engine.begin() as conn:
            return self._abandon_runs(conn, user_id)

    def _abandon_runs(self, conn: Connection, user_id: int) -> int:
        return conn.execute(
            hot.ABANDON, {"abandon_user": user_id, "abandoned_at": utcnow()}
        ).rowcount

    def start_run(
        self, user_id: int, trigger: str, dry_run: bool, *, abandon_running: bool = False
    ) -> int:
        """Record a run as started; with `abandon_running` (only under the mailbox lock),
        first mark the runs a dead process left 'running', in the same transaction.

        On PostgreSQL this commit does not wait for the disk (`synchronous_commit` off for
        this transaction only): the row is seen by everyone at once, and it is on disk by
        the time the run writes anything else, because a later commit that waits flushes
        the log up to itself. Only a crash of the database server in between can lose it:
        the run's line in the history, not its work (the next run finishes that, as after
        any crash). One disk flush (2-5 ms here) fewer per sync."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
            now = utcnow()
            run = {
                "run_user": user_id,
                "run_started": now,
                "run_trigger": trigger,
                "run_dry": dry_run,
            }
            if abandon_running and conn.dialect.name == "postgresql":  # one statement
                both = {**run, "abandon_user": user_id, "abandoned_at": now}
                return int(conn.execute(hot.RUN_ABANDONING, both).scalar_one())
            if abandon_running:
                self._abandon_runs(conn, user_id)
            return int(conn.execute(hot.RUN, run).inserted_primary_key[0])

    def finish_run(
        self,
        run_id: int,
        status: str,
        result: dict,
        error: str | None,
        *,
        state: tuple[int, dict[str, object]] | None = None,
        pending: StateWriter | None = None,
    ) -> None:
        """Record how a run ended; with `state` (user id, values), the mailbox's state is
        written in the same transaction (one commit, not two, at the end of every sync),
        and so is `pending`, the state of the run's last batch of mailbox writes."""
        now = utcnow()
        with self.engine.begin() as conn:
            if pending is not None:
                pending.flush(conn)
            if state is not None:
                self._upsert_state(conn, state[0], masked_state(state[1]))
            conn.execute(
                hot.FINISH,
                {
                    "run_id": run_id,
                    "run_finished": now,
                    "run_status": status,
                    # the run history is shown by status, digests and DMs: no credential
                    "run_result": mask_urls(json.dumps(result, ensure_ascii=False)),
                    "run_error": mask_urls(error) if error else error,
                },
            )

    def runs(
        self, user_id: int, since: datetime | None = None, limit: int = 100
    ) -> list[RunRecord]:
        query = (
            select(t.runs)
            .where(t.runs.c.user_id == user_id)
            .order_by(t.runs.c.id.desc())
            .limit(limit)
        )
        if since is not None:
            query = query.where(t.runs.c.started_at >= since)
        with self.reading() as conn:
            rows = conn.execute(query).mappings().all()
        return [run_record(r) for r in rows]

    def events(
        self,
        user_id: int,
        person_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Event]:
        query = select(t.events).where(t.events.c.user_id == user_id).order_by(t.events.c.id)
        if person_id is not None:
            query = query.where(t.events.c.person_id == person_id)
        if since is not None:
            query = query.where(t.events.c.at >= since)
        if until is not None:
            query = query.where(t.events.c.at < until)
        with self.reading() as conn:
            rows = conn.execute(query).mappings().all()
        return [event_of(r) for r in rows]

    def record_events(
        self,
        user_id: int,
        run_id: int | None,
        actor: str,
        rows: list[tuple[int | None, str, str, str | None]],
    ) -> None:
        with self.engine.begin() as conn:
            self._events(conn, user_id, run_id, actor, rows)

    def record_events_in(
        self, conn: Connection, user_id: int, actor: str, rows: list[tuple]
    ) -> None:
        """Audit rows (person_id, action, reason, item_id[, person_name]) inside another
        state module's transaction, many at once (a standing rule's first evaluation)."""
        now = utcnow()
        columns = ("at", "user_id", "person_id", "action", "actor", "reason", "item_id")
        insert_rows(
            conn,
            t.events,
            (*columns, "person_name"),
            [
                (now, user_id, r[0], r[1], actor, r[2], r[3], r[4] if len(r) > 4 else None)
                for r in rows
            ],
        )

    def _events(
        self,
        conn: Connection,
        user_id: int,
        run_id: int | None,
        actor: str,
        rows: list[tuple],
    ) -> None:
        """Rows are (person_id, action, reason, item_id[, person_name])."""
        if not rows:
            return
        now = utcnow()
        conn.execute(
            hot.EVENTS,
            [
                {
                    "at": now,
                    "user_id": user_id,
                    "run_id": run_id,
                    "person_id": pid,
                    "action": action,
                    "actor": actor,
                    "reason": reason,
                    "item_id": row[3],
                    "person_name": row[4] if len(row) > 4 else None,
                }
                for row in rows
                for pid, action, reason in [row[:3]]
            ],
        )
