"""The standing rules' cost (issue 18, DESIGN rule 11), in one run, against a naive baseline
measured in the same run (one CRM query per salesperson and rule):

A. The first evaluation of `account-manager` and `company-manager` for S salespeople on a
   CRM of N people (default 300 on 1,000,000; every person has one of them as Account
   Manager, every company too), state on SQLite and on PostgreSQL: CRM statements, state
   statements, seconds; then the clock's step after 100 reassignments.
B. The clock with S salespeople, both rules on and every mailbox synced (10,000 people,
   local target): statements and mailbox requests of an idle cycle, and of a cycle after
   one reassignment.

    .venv/bin/python bench/bench_rules.py [--people 1000000] [--salespeople 300]
        [--home DIR] [--pg URL] [--small 10000]

The generated CRM of part A is kept in DIR and reused; state databases are made afresh
(PostgreSQL: database `crm_contacts_bench_rules`, dropped first).
"""

from __future__ import annotations

import argparse
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_search import fresh_pg  # bench/ is on the path of a script run from it
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import event, text, update

from sync_engine.config import load_settings
from sync_engine.crm import ownership
from sync_engine.crm import schema as s
from sync_engine.crm.embedded import EmbeddedCrm, seed_large
from sync_engine.crm.source import SageCrm
from sync_engine.schedule import Scheduler
from sync_engine.service import Engine
from sync_engine.standing import keeper, state
from sync_engine.standing.rules import ACCOUNT_MANAGER, COMPANY_MANAGER, KINDS
from sync_engine.store import Store, utcnow


@dataclass
class Count:
    statements: int = 0
    rules: int = 0  # statements of the rules: their tables, or who owns whom in the CRM


RULE_WORDS = ("standing_rules", "rule_people", "rules_watermark", "list_exclusions")
RULE_WORDS += ("rule_departures", "Comp_PrimaryUserId")


@contextmanager
def counting(*engines: SqlEngine) -> Iterator[list[Count]]:
    counts = [Count() for _ in engines]
    listeners = []
    for db, count in zip(engines, counts, strict=True):

        def record(_c, _cur, statement, *_a, count: Count = count) -> None:  # type: ignore[no-untyped-def]
            count.statements += 1
            if any(w in statement for w in RULE_WORDS):
                count.rules += 1

        event.listen(db, "before_cursor_execute", record)
        listeners.append((db, record))
    try:
        yield counts
    finally:
        for db, record in listeners:
            event.remove(db, "before_cursor_execute", record)


def timed(func: Callable[[], object]) -> tuple[float, object]:
    began = time.perf_counter()
    result = func()
    return time.perf_counter() - began, result


def salespeople_crm(crm: SageCrm, people: int, salespeople: int, rng: random.Random) -> None:
    """S users, then N generated people (each with one of them as Account Manager), and
    every company given one of them as its Account Manager (our generated CRM)."""
    writer = EmbeddedCrm(crm)
    have = len(crm.users())
    for n in range(have, salespeople):
        writer.add_user(f"rep{n:03d}@example.com", "Rep", f"{n:03d}")
    if crm.count_live_people() < people:
        print(f"generating {people - crm.count_live_people():,} people (once) …", flush=True)
        seed_large(crm, people - crm.count_live_people())
    users = [u.id for u in crm.users()][:salespeople]
    first = users[0]
    assert users == list(range(first, first + salespeople)), "a generated CRM's user ids"
    c = s.company
    with crm.engine.begin() as conn:  # spread the companies over the salespeople
        conn.execute(
            update(c)
            .where(c.c.Comp_PrimaryUserId.is_(None))
            .values(
                Comp_PrimaryUserId=first + (c.c.Comp_CompanyId + rng.randrange(7)) % salespeople
            )
        )


def rules_on_for_all(store: Store, crm: SageCrm, salespeople: int) -> None:
    """Every salesperson has both rules on, not evaluated yet (as after a team turned
    them on while the clock was down, or a day after their last full evaluation)."""
    now = utcnow()
    stored = [store.ensure_user(u.id, u.email) for u in crm.users()[:salespeople]]
    with store.engine.begin() as conn:
        for user in stored:
            for kind in KINDS:
                state.turn_on(conn, user.id, kind, now)


def part_a(args: argparse.Namespace, crm: SageCrm, url: str, label: str) -> None:
    home = args.home / f"state-{label}"
    shutil.rmtree(home, ignore_errors=True)
    if url.startswith("sqlite"):
        url = f"sqlite:///{home / 'state.sqlite'}"
    store = Store.open(url, home)
    rules_on_for_all(store, crm, args.salespeople)
    with counting(crm.engine, store.engine) as (crm_count, state_count):
        seconds, report = timed(lambda: keeper.keep(store, crm))
    assert isinstance(report, keeper.KeepReport)
    with store.engine.connect() as conn:
        members = conn.execute(text("SELECT count(*) FROM rule_people")).scalar_one()
        listed = conn.execute(text("SELECT count(*) FROM subscriptions")).scalar_one()
    print(
        f"[{label}] first evaluation, {args.salespeople} salespeople x 2 kinds: "
        f"{seconds:.1f} s; CRM statements {crm_count.statements} "
        f"(of which by owner {report.crm_queries}); state statements {state_count.statements}; "
        f"{members:,} rule members, {listed:,} people listed"
    )

    # the clock's step after 100 reassignments (Person rows changed in the CRM)
    rng = random.Random()  # a fresh draw each run: the CRM file is reused
    users = [u.id for u in crm.users()][: args.salespeople]
    with crm.engine.connect() as conn:
        top = int(conn.execute(text('SELECT max("Pers_PersonId") FROM "Person"')).scalar_one())
    with crm.engine.begin() as conn:
        for pid in rng.sample(range(1, top + 1), 100):
            conn.execute(
                update(s.person)
                .where(s.person.c.Pers_PersonId == pid)
                .values(Pers_PrimaryUserId=rng.choice(users), Pers_UpdatedDate=_crm_now())
            )
    with counting(crm.engine, store.engine) as (crm_count, state_count):
        seconds, report = timed(lambda: keeper.keep(store, crm))
    assert isinstance(report, keeper.KeepReport)
    print(
        f"[{label}] after 100 reassignments: {seconds * 1000:.0f} ms; CRM statements "
        f"{crm_count.statements}; state statements {state_count.statements}; "
        f"joined {sum(report.joined.values())}, left {sum(report.left.values())}"
    )
    with counting(crm.engine, store.engine) as (crm_count, state_count):
        seconds, _ = timed(lambda: keeper.keep(store, crm))
    print(
        f"[{label}] nothing changed since: {seconds * 1000:.1f} ms; CRM statements "
        f"{crm_count.statements} (latest change), state statements {state_count.statements}"
    )
    a_day_on = utcnow() + timedelta(hours=25)
    cycles: list[float] = []
    evaluated = 0
    with counting(crm.engine, store.engine) as (crm_count, state_count):
        while True:  # one keep per clock cycle until every rule had its daily evaluation
            seconds, report = timed(lambda: keeper.keep(store, crm, now=a_day_on))
            assert isinstance(report, keeper.KeepReport)
            if not report.evaluated:
                break
            cycles.append(seconds)
            evaluated += report.evaluated
    print(
        f"[{label}] a day on, all {evaluated} rules evaluated in full again (nothing to "
        f"change) over {len(cycles)} cycles: {sum(cycles):.1f} s in all, at most "
        f"{max(cycles):.1f} s a cycle; CRM statements {crm_count.statements}; state "
        f"statements {state_count.statements}"
    )
    store.close()


def _crm_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def naive_baseline(crm: SageCrm, salespeople: int) -> None:
    """One query per salesperson and kind: what the first evaluation would cost done
    salesperson by salesperson (CRM reads only, no state written)."""
    users = [u.id for u in crm.users()][:salespeople]
    with counting(crm.engine) as (count,):
        seconds, rows = timed(
            lambda: sum(
                len(list(ownership.owned_by(crm, kind, [uid])))
                for kind in (ACCOUNT_MANAGER, COMPANY_MANAGER)
                for uid in users
            )
        )
    with counting(crm.engine) as (ours,):
        ours_seconds, ours_rows = timed(
            lambda: sum(
                len(list(ownership.owned_by(crm, kind, users)))
                for kind in (ACCOUNT_MANAGER, COMPANY_MANAGER)
            )
        )
    assert rows == ours_rows
    print(
        f"CRM reads alone: ours {ours.statements} statements, {ours_seconds:.1f} s; naive "
        f"{count.statements} statements, {seconds:.1f} s ({rows:,} rows each); "
        f"{count.statements / max(ours.statements, 1):.0f}x fewer statements, "
        f"{seconds / ours_seconds:.1f}x the time"
    )


def part_b(args: argparse.Namespace) -> None:
    home = args.home / "clock"
    shutil.rmtree(home, ignore_errors=True)
    engine = Engine(load_settings(crm_contacts_home=home))
    salespeople_crm(engine.crm, args.small, args.salespeople, random.Random(5))
    began = time.perf_counter()
    for user in engine.crm.users()[: args.salespeople]:
        engine.rules.add(user, ACCOUNT_MANAGER)
        engine.rules.add(user, COMPANY_MANAGER)
    print(
        f"[clock] {args.salespeople} salespeople turned both rules on one by one: "
        f"{time.perf_counter() - began:.1f} s"
    )
    clock = [utcnow()]
    scheduler = Scheduler(engine, now=lambda: clock[0])
    first = scheduler.run_cycle()
    print(
        f"[clock] first cycle: {len(first.synced)} mailboxes synced, {first.requests} "
        f"mailbox requests, {first.seconds:.1f} s"
    )
    totals = []
    for _ in range(3):
        clock[0] = clock[0] + timedelta(seconds=60)
        with counting(engine.store.engine, engine.crm.engine) as (st, cr):
            idle = scheduler.run_cycle()
        assert idle.due == 0, idle
        totals.append((st, cr, idle))
    st, cr, idle = totals[-1]
    print(
        f"[clock] idle cycle: {idle.requests} mailbox requests; {st.statements} state + "
        f"{cr.statements} CRM statements, of which the rules' {st.rules + cr.rules}; "
        f"{idle.seconds * 1000:.0f} ms"
    )
    naive_seconds, _ = timed(
        lambda: [
            list(ownership.owned_by(engine.crm, kind, [u.id]))
            for kind in KINDS
            for u in engine.crm.users()[: args.salespeople]
        ]
    )
    print(
        f"[clock] naive: re-evaluating every rule each cycle = {2 * args.salespeople} CRM "
        f"statements, {naive_seconds * 1000:.0f} ms per cycle"
    )
    # one reassignment: the two mailboxes concerned, nobody else
    crm = EmbeddedCrm(engine.crm)
    users = engine.crm.users()
    with engine.crm.engine.connect() as conn:
        pid = int(
            conn.execute(
                text('SELECT "Pers_PersonId" FROM "Person" WHERE "Pers_PrimaryUserId" = :u'),
                {"u": users[0].id},
            ).first()[0]  # type: ignore[index]
        )
    crm.update_person(pid, manager=users[1].email)
    clock[0] = clock[0] + timedelta(seconds=60)
    with counting(engine.store.engine, engine.crm.engine) as (st, cr):
        changed = scheduler.run_cycle()
    print(
        f"[clock] after one reassignment: {len(changed.synced)} mailboxes synced, "
        f"{changed.requests} mailbox requests; the rules' statements {st.rules + cr.rules} "
        f"of {st.statements + cr.statements}; {changed.seconds * 1000:.0f} ms"
    )
    engine.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--salespeople", type=int, default=300)
    parser.add_argument("--small", type=int, default=10_000, help="people for part B")
    parser.add_argument("--home", type=Path, default=Path("/tmp/crm-contacts-bench-rules"))
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--skip", default="", help="a, b or pg to skip parts")
    args = parser.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    if "a" not in args.skip:
        path = args.home / f"crm-{args.people}-{args.salespeople}.sqlite"
        crm = SageCrm(f"sqlite:///{path}", writable=True)
        salespeople_crm(crm, args.people, args.salespeople, random.Random(3))
        print(f"CRM: {crm.count_live_people():,} people, {args.salespeople} salespeople")
        naive_baseline(crm, args.salespeople)
        part_a(args, crm, "sqlite", "sqlite")
        if "pg" not in args.skip:
            part_a(args, crm, fresh_pg(args.pg, "crm_contacts_bench_rules"), "postgresql")
        crm.close()
    if "b" not in args.skip:
        part_b(args)


if __name__ == "__main__":
    main()
