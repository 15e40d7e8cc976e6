"""The state statements every mailbox sync runs, built once.

Why: a sync runs a dozen short statements, and building each one anew (its clauses and
the cache key SQLAlchemy looks its compiled form up by) took more of our CPU than running
it; with one process syncing 1,000 mailboxes CPU is what the cycle waits for
(bench/bench_scale.py). A statement built once keeps its cache key; only the values
change, as bound parameters.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.sql.dml import Insert, Update

from sync_engine import tables as t

SUBSCRIPTIONS = select(t.subscriptions.c.person_id, t.subscriptions.c.added_at).where(
    t.subscriptions.c.user_id == bindparam("user_id")
)
LINKS = select(t.links).where(t.links.c.user_id == bindparam("user_id"))
_wb, _users = t.write_backs, t.users
RECENT_WRITE_BACKS = (
    select(_wb.c.person_id, _wb.c.field, _wb.c.value, _users.c.mailbox, _wb.c.edited_at)
    .join(_users, _users.c.id == _wb.c.user_id)
    .where(
        _wb.c.person_id.in_(bindparam("ids", expanding=True)),
        _wb.c.user_id != bindparam("other_than"),
    )
)
EVENTS = insert(t.events)

# -- a run's start and end ----------------------------------------------------------------

ABANDONED = "stopped before it finished (the process died); the next run completed it"
ABANDON = (
    update(t.runs)
    .where(t.runs.c.user_id == bindparam("abandon_user"), t.runs.c.status == "running")
    .values(status="abandoned", finished_at=bindparam("abandoned_at"), error=ABANDONED)
)
RUN = insert(t.runs).values(
    user_id=bindparam("run_user"),
    started_at=bindparam("run_started"),
    status="running",
    trigger=bindparam("run_trigger"),
    dry_run=bindparam("run_dry"),
)
# PostgreSQL: one statement; a data-modifying WITH runs once whether or not the insert
# reads it, and it cannot see the row being inserted
RUN_ABANDONING = RUN.add_cte(ABANDON.cte("abandoned")).returning(t.runs.c.id)
FINISH = (
    update(t.runs)
    .where(t.runs.c.id == bindparam("run_id"))
    .values(
        finished_at=bindparam("run_finished"),
        status=bindparam("run_status"),
        result=bindparam("run_result"),
        error=bindparam("run_error"),
    )
)


@cache
def put_links(dialect: str) -> Insert | None:
    """Insert links, or update the existing ones keeping their `linked_at`: one upsert on
    SQLite and PostgreSQL (None elsewhere: read, delete and insert)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as upsert
    else:
        return None
    statement = upsert(t.links)
    kept = ("user_id", "person_id", "linked_at")
    return statement.on_conflict_do_update(
        index_elements=[t.links.c.user_id, t.links.c.person_id],
        set_={c.name: statement.excluded[c.name] for c in t.links.c if c.name not in kept},
    )


@cache
def state_update(names: tuple[str, ...]) -> Update:
    """Set these mailbox_state columns (parameters `v_<name>`) of user `state_user`: a sync
    writes the same few, so each set is built once."""
    m = t.mailbox_state
    return (
        update(m)
        .where(m.c.user_id == bindparam("state_user"))
        .values({name: bindparam(f"v_{name}") for name in names})
    )
