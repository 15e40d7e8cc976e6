"""The standing rules' state: which rules are on, whom each brings, who was removed by
hand, why someone a rule let go leaves, and how far the rules follow the CRM.

A rule's people are rows of `subscriptions` (source `rule:<kind>` unless picked by hand),
so the list, the scheduler and the sync read one table; these functions keep the rule
tables and those rows in step, each change in one transaction with its audit events.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)

from sync_engine import tables as t
from sync_engine.bulk import insert_rows
from sync_engine.crm.source import chunks as _chunks
from sync_engine.plan import Leaving
from sync_engine.standing.rules import (
    PICKED,
    RULE_PREFIX,
    Entry,
    Member,
    RuleChanges,
    RuleOn,
    by_rule_only,
    rule_source,
)
from sync_engine.store import MailboxBusy, Store, StoreError, as_utc, utcnow

_CHUNK = 900  # ids per IN (...) list, as the CRM reads cut them


def _ignoring_duplicates(conn: Connection, table):  # type: ignore[no-untyped-def]
    """INSERT that skips rows already there (a concurrent writer got there first)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table).on_conflict_do_nothing()


# -- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeeperStatus:
    rules: int = 0  # rules on, any user
    evaluated: int = 0  # of which evaluated in full at least once
    due: int = 0  # never evaluated, or last evaluated before the cut-off
    watermark: datetime | None = None  # CRM clock, naive


def status(conn: Connection, due_before: datetime) -> KeeperStatus:
    """Everything the clock needs to know whether the rules have work: one statement."""
    r, w = t.standing_rules, t.rules_watermark
    row = conn.execute(
        select(
            select(func.count()).select_from(r).scalar_subquery(),
            select(func.count()).where(r.c.evaluated_at.is_not(None)).scalar_subquery(),
            select(func.count())
            .where(or_(r.c.evaluated_at.is_(None), r.c.evaluated_at < due_before))
            .scalar_subquery(),
            select(w.c.watermark).where(w.c.id == 1).scalar_subquery(),
        )
    ).one()
    return KeeperStatus(int(row[0] or 0), int(row[1] or 0), int(row[2] or 0), row[3])


def evaluated_rules(conn: Connection) -> list[RuleOn]:
    """The rules evaluated in full at least once (they follow the CRM's changes), with
    their users' CRM ids."""
    r, u = t.standing_rules, t.users
    query = (
        select(r.c.user_id, u.c.crm_user_id, r.c.kind)
        .join(u, u.c.id == r.c.user_id)
        .where(r.c.evaluated_at.is_not(None))
    )
    return [RuleOn(int(a), int(b), str(c)) for a, b, c in conn.execute(query)]


def due_rules(conn: Connection, due_before: datetime, daily_users: int) -> list[RuleOn]:
    """The rules to evaluate in full now: every rule never evaluated (just turned on),
    and those not evaluated since `due_before` of at most `daily_users` users, the
    longest waiting first, so the daily evaluation of a big team is spread over cycles."""
    r, u = t.standing_rules, t.users
    rows = conn.execute(
        select(r.c.user_id, u.c.crm_user_id, r.c.kind, r.c.evaluated_at)
        .join(u, u.c.id == r.c.user_id)
        .where(or_(r.c.evaluated_at.is_(None), r.c.evaluated_at < due_before))
    ).all()
    oldest: dict[int, datetime] = {}
    for user_id, _, _, evaluated_at in rows:
        if evaluated_at is not None:
            seen = as_utc(evaluated_at)
            oldest[user_id] = min(oldest.get(user_id, seen), seen)  # type: ignore[type-var]
    daily = set(sorted(oldest, key=lambda uid: (oldest[uid], uid))[:daily_users])
    return [
        RuleOn(int(user_id), int(crm_user_id), str(kind))
        for user_id, crm_user_id, kind, evaluated_at in rows
        if evaluated_at is None or user_id in daily
    ]


@dataclass(frozen=True)
class RuleView:
    """One of a user's rules as the CLI and Slack show it."""

    kind: str
    added_at: datetime
    people: int  # whom it brings now (in the list unless removed by hand)
    evaluated: bool


def user_rules(conn: Connection, user_id: int) -> list[RuleView]:
    """The user's rules, each with how many people it brings now."""
    r, rp = t.standing_rules, t.rule_people
    people = (
        select(func.count())
        .where(rp.c.user_id == r.c.user_id, rp.c.kind == r.c.kind)
        .scalar_subquery()
    )
    rows = conn.execute(
        select(r.c.kind, r.c.added_at, r.c.evaluated_at, people)
        .where(r.c.user_id == user_id)
        .order_by(r.c.kind)
    )
    return [RuleView(k, as_utc(a), int(n or 0), e is not None) for k, a, e, n in rows]  # type: ignore[arg-type]


def members_of_people(conn: Connection, person_ids: Iterable[int]) -> set[Member]:
    rp = t.rule_people
    out: set[Member] = set()
    for chunk in _chunks(person_ids):
        rows = conn.execute(
            select(rp.c.user_id, rp.c.kind, rp.c.person_id).where(rp.c.person_id.in_(chunk))
        )
        out.update((int(u), str(k), int(p)) for u, k, p in rows)
    return out


def members_of_user(conn: Connection, user_id: int) -> set[Member]:
    rp = t.rule_people
    rows = conn.execute(select(rp.c.kind, rp.c.person_id).where(rp.c.user_id == user_id))
    return {(user_id, str(k), int(p)) for k, p in rows}


def entries(conn: Connection, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], Entry]:
    """Where each (user, person) stands in the user's list: subscribed, by hand or by a
    rule, or removed by hand. Per user, a chunk of ids per statement (or the whole list
    when that is fewer statements)."""
    s, x = t.subscriptions, t.list_exclusions
    by_user: dict[int, set[int]] = defaultdict(set)
    for user_id, person_id in pairs:
        by_user[user_id].add(person_id)
    out: dict[tuple[int, int], Entry] = {}
    for user_id, wanted in by_user.items():
        subs: dict[int, str] = {}
        excluded: set[int] = set()
        every = [None] if len(wanted) > _CHUNK else list(_chunks(wanted))
        for chunk in every:
            sq = select(s.c.person_id, s.c.source).where(s.c.user_id == user_id)
            xq = select(x.c.person_id).where(x.c.user_id == user_id)
            if chunk is not None:
                sq, xq = sq.where(s.c.person_id.in_(chunk)), xq.where(x.c.person_id.in_(chunk))
            subs.update((int(p), str(src)) for p, src in conn.execute(sq))
            excluded.update(int(p) for (p,) in conn.execute(xq))
        for pid in wanted:
            source = subs.get(pid)
            out[(user_id, pid)] = Entry(
                subscribed=source is not None,
                picked=source is not None and not by_rule_only(source),
                excluded=pid in excluded,
            )
    return out


def sources(store: Store, user_id: int) -> dict[int, tuple[str, ...]]:
    """Person id -> why they are in the user's list: `picked`, `rule:<kind>` (sorted)."""
    s, rp = t.subscriptions, t.rule_people
    with store.engine.connect() as conn:
        rows = conn.execute(select(s.c.person_id, s.c.source).where(s.c.user_id == user_id))
        subs = {int(pid): str(source) for pid, source in rows}
        kinds: dict[int, list[str]] = defaultdict(list)
        for pid, kind in conn.execute(
            select(rp.c.person_id, rp.c.kind).where(rp.c.user_id == user_id)
        ):
            kinds[int(pid)].append(rule_source(kind))
    out: dict[int, tuple[str, ...]] = {}
    for pid, source in subs.items():
        rules = sorted(kinds.get(int(pid), ()))
        if by_rule_only(source):
            out[int(pid)] = tuple(rules) or (str(source),)
        else:
            out[int(pid)] = (PICKED, *rules)
    return out


def _departures():  # type: ignore[no-untyped-def]
    d, lk = t.rule_departures, t.links
    user = bindparam("user_id")
    linked = exists(
        select(lk.c.person_id).where(lk.c.user_id == user, lk.c.person_id == d.c.person_id)
    )
    return select(d.c.person_id, d.c.reason, d.c.guarded, linked.label("linked")).where(
        d.c.user_id == user
    )


_DEPARTURES = _departures()  # every sync reads it: built once


def leaving(store: Store, user_id: int) -> dict[int, Leaving]:
    """Why people a rule let go leave this mailbox's list (for its sync). Departures of
    people no longer linked here are done with and dropped first."""
    d = t.rule_departures
    # One autocommit read (no BEGIN and COMMIT round trips on every sync); a transaction
    # only when some departures are done with.
    with store.reading() as conn:
        rows = conn.execute(_DEPARTURES, {"user_id": user_id}).all()
    done = [int(r[0]) for r in rows if not r[3]]
    if done:
        with store.engine.begin() as conn:
            for chunk in _chunks(done):
                conn.execute(delete(d).where(d.c.user_id == user_id, d.c.person_id.in_(chunk)))
    return {int(p): Leaving(str(why), bool(guarded)) for p, why, guarded, on in rows if on}


# -- writing --------------------------------------------------------------------------------


def set_watermark(conn: Connection, value: datetime | None) -> None:
    w = t.rules_watermark
    if conn.execute(update(w).where(w.c.id == 1).values(watermark=value)).rowcount == 0:
        conn.execute(_ignoring_duplicates(conn, w).values(id=1, watermark=value))


def turn_on(conn: Connection, user_id: int, kind: str, now: datetime) -> bool:
    """Turn a rule on (due a full evaluation); False when it already was."""
    r = t.standing_rules
    inserted = conn.execute(
        _ignoring_duplicates(conn, r)
        .values(user_id=user_id, kind=kind, added_at=now, evaluated_at=None)
        .returning(r.c.kind)
    )
    return inserted.first() is not None


def turn_off(conn: Connection, user_id: int, kind: str) -> bool:
    """Turn a rule off and forget whom it brought; False when it was not on."""
    r, rp = t.standing_rules, t.rule_people
    gone = conn.execute(delete(r).where(r.c.user_id == user_id, r.c.kind == kind)).rowcount
    conn.execute(delete(rp).where(rp.c.user_id == user_id, rp.c.kind == kind))
    return bool(gone)


def mark_evaluated(conn: Connection, user_id: int, kinds: Iterable[str], now: datetime) -> None:
    r = t.standing_rules
    conn.execute(
        update(r)
        .where(r.c.user_id == user_id, r.c.kind.in_(sorted(set(kinds))))
        .values(evaluated_at=now)
    )


def apply(conn: Connection, store: Store, changes: RuleChanges, actor: str = "") -> RuleChanges:
    """Store an evaluation: the members, and the joins and leaves in the subscriptions,
    with their audit events; marks each changed list so its mailbox syncs. Returns the
    joins and leaves that really happened (a concurrent hand pick or add wins). Stamped
    with the wall clock, as the syncs that compare with them are."""
    now = utcnow()
    rp, s, d = t.rule_people, t.subscriptions, t.rule_departures
    insert_rows(
        conn, rp, ("user_id", "kind", "person_id"), sorted(changes.added), skip_duplicates=True
    )
    dropped: dict[tuple[int, str], list[int]] = defaultdict(list)
    for u, k, p in changes.dropped:
        dropped[(u, k)].append(p)
    for (u, k), pids in dropped.items():
        for chunk in _chunks(pids):
            conn.execute(
                delete(rp).where(rp.c.user_id == u, rp.c.kind == k, rp.c.person_id.in_(chunk))
            )
    done = RuleChanges(added=changes.added, dropped=changes.dropped)
    joins: dict[int, list] = defaultdict(list)
    for join in changes.joins:
        joins[join.user_id].append(join)
    for user_id, group in joins.items():
        inserted = insert_rows(
            conn,
            s,
            ("user_id", "person_id", "added_at", "source"),
            [(user_id, j.person_id, now, rule_source(j.kind)) for j in group],
            skip_duplicates=True,
            returning="person_id",
        )
        if inserted is None:  # SQLite: this transaction writes alone; all were missing
            inserted = {j.person_id for j in group}
        _forget_departures(conn, user_id, inserted)
        joined = [j for j in group if j.person_id in inserted]
        for kind in sorted({j.kind for j in joined}):
            store.record_events_in(
                conn,
                user_id,
                actor or rule_source(kind),
                [
                    (j.person_id, "subscribed", j.reason, None, j.name or None)
                    for j in joined
                    if j.kind == kind
                ],
            )
        done.joins += joined
    leaves: dict[int, list] = defaultdict(list)
    for leave in changes.leaves:
        leaves[leave.user_id].append(leave)
    for user_id, group in leaves.items():
        left: set[int] = set()
        for chunk in _chunks(lv.person_id for lv in group):
            left.update(
                int(r[0])
                for r in conn.execute(
                    delete(s)
                    .where(
                        s.c.user_id == user_id,
                        s.c.person_id.in_(chunk),
                        s.c.source.like(RULE_PREFIX + "%"),  # picked meanwhile: stays
                    )
                    .returning(s.c.person_id)
                )
            )
        gone = [lv for lv in group if lv.person_id in left]
        _forget_departures(conn, user_id, left)
        insert_rows(
            conn,
            d,
            ("user_id", "person_id", "reason", "guarded", "left_at"),
            [(user_id, lv.person_id, lv.reason, lv.guarded, now) for lv in gone],
        )
        for kinds in sorted({lv.kinds for lv in gone}):
            store.record_events_in(
                conn,
                user_id,
                actor or rule_source("+".join(kinds)),
                [
                    (lv.person_id, "unsubscribed", lv.reason, None, lv.name or None)
                    for lv in gone
                    if lv.kinds == kinds
                ],
            )
        done.leaves += gone
    for user_id in done.users:
        store.mark_list_changed(conn, user_id, now)
    return done


def _forget_departures(conn: Connection, user_id: int, person_ids: Iterable[int]) -> None:
    """Drop the departures of these people (back in the list, or leaving afresh); one
    look when the user has none, as after a first evaluation."""
    d = t.rule_departures
    if conn.execute(select(d.c.person_id).where(d.c.user_id == user_id).limit(1)).first():
        for chunk in _chunks(person_ids):
            conn.execute(delete(d).where(d.c.user_id == user_id, d.c.person_id.in_(chunk)))


def picked_by_hand(store: Store, user_id: int, person_ids: Iterable[int], source: str) -> None:
    """People the user adds by hand: picked from now on (removing a rule keeps them), and
    no longer kept out of the rules or leaving."""
    s, x, d = t.subscriptions, t.list_exclusions, t.rule_departures
    with store.engine.begin() as conn:
        for chunk in _chunks(person_ids):
            conn.execute(
                update(s)
                .where(
                    s.c.user_id == user_id,
                    s.c.person_id.in_(chunk),
                    s.c.source.like(RULE_PREFIX + "%"),
                )
                .values(source=source)
            )
            conn.execute(delete(x).where(x.c.user_id == user_id, x.c.person_id.in_(chunk)))
            conn.execute(delete(d).where(d.c.user_id == user_id, d.c.person_id.in_(chunk)))


def removed_by_hand(store: Store, user_id: int, person_ids: Iterable[int], now: datetime) -> None:
    """People the user took out of the list: those a rule brings stay out of it."""
    rp, x = t.rule_people, t.list_exclusions
    with store.engine.begin() as conn:
        for chunk in _chunks(person_ids):
            ruled = sorted(
                {
                    int(p)
                    for (p,) in conn.execute(
                        select(rp.c.person_id).where(
                            rp.c.user_id == user_id, rp.c.person_id.in_(chunk)
                        )
                    )
                }
            )
            if ruled:
                conn.execute(
                    _ignoring_duplicates(conn, x),
                    [{"user_id": user_id, "person_id": p, "removed_at": now} for p in ruled],
                )


# -- one keeper at a time ----------------------------------------------------------------------


# The keeper's lock is a mailbox sync's own lock (Store.mailbox_lock: a PostgreSQL advisory
# lock, or an flock in the home; either dies with its holder) under a name no mailbox has.
KEEPER_LOCK = "standing rules keeper"


@contextmanager
def exclusive(store: Store, wait: float = 120.0) -> Iterator[None]:
    """Hold the rules' keeper lock, waiting up to `wait` seconds for another holder (a
    first evaluation on a big CRM takes a while); StoreError after that."""
    deadline = time.monotonic() + wait
    while True:
        held = ExitStack()
        try:
            held.enter_context(store.mailbox_lock(KEEPER_LOCK))
        except MailboxBusy:
            if time.monotonic() > deadline:
                raise StoreError(
                    "another process has been keeping the standing rules for "
                    f"{wait:.0f} s; try again in a minute"
                ) from None
            time.sleep(0.2)
            continue
        with held:
            yield
        return
