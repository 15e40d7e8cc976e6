"""Search on a 1,000,000-person CRM, in one run: our people index (state database on SQLite
and on PostgreSQL) against the CRM prefix search it replaces and against a naive baseline
(rapidfuzz over every row, the rows already in memory).

    .venv/bin/python bench/bench_search.py [--people 1000000] [--home DIR] [--pg URL]

Prints p50/p95/p99 latency for exact, prefix and typo queries — measured while the CRM
changes under the index (a writer thread re-emails --changes-per-second people; each
search first applies the CRM's changes when its last look is older than LOOK_EVERY) —
the extra cost per search of that look when nothing changed, the typo queries' recall in
the top 10, the index's build time and size, the cost of a refresh after 100 people
changed and of the hourly sweep, and how many of the typo words pg_trgm's similarity
(default threshold 0.3) would have missed. The generated CRM is kept in DIR and reused;
the state databases are made afresh (PostgreSQL: database --pg-db, dropped first).
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from rapidfuzz import fuzz, process
from sqlalchemy import text

from sync_engine.crm import schema
from sync_engine.crm.embedded import EmbeddedCrm, seed_large
from sync_engine.crm.search import fold, parse_query, search_people
from sync_engine.crm.source import SageCrm
from sync_engine.index import PeopleIndex
from sync_engine.index.sets import SETS
from sync_engine.model import CrmPerson
from sync_engine.store import Store

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Query:
    kind: str  # exact, prefix, typo
    text: str
    target: CrmPerson
    same: str = "name"  # who else counts as found: the same "name", the same "last" name

    def found(self, people: list[tuple[int, str, str]]) -> bool:
        """Found when the target, or someone the query cannot tell apart from it (the same
        folded first and last name: the generated CRM has ~230 of each; for a last name
        alone, the same last name), is in the top 10. (id, folded first, folded last)"""
        f = self.target.fields
        want = (fold(f.first_name), fold(f.last_name))
        for pid, first, last in people[:10]:
            if pid == self.target.id or (self.same == "name" and (first, last) == want):
                return True
            if self.same == "last" and last == want[1]:
                return True
        return False


def typo(word: str, rng: random.Random) -> tuple[str, str]:
    """One edit of a kind a typist makes; the first letter is as likely as any other."""
    w = word
    kind = rng.choice(("substitute", "delete", "double", "transpose", "insert"))
    i = rng.randrange(len(w))
    if kind == "substitute":
        c = rng.choice([x for x in _LETTERS if x != w[i].lower()])
        return kind, w[:i] + c + w[i + 1 :]
    if kind == "delete" and len(w) > 3:
        return kind, w[:i] + w[i + 1 :]
    if kind == "double":
        return kind, w[:i] + w[i] + w[i:]
    if kind == "transpose" and len(w) > 2:
        i = min(i, len(w) - 2)
        if w[i] != w[i + 1]:
            return kind, w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    return "insert", w[:i] + rng.choice(_LETTERS) + w[i:]


def make_queries(people: list[CrmPerson], rng: random.Random) -> list[Query]:
    out: list[Query] = []
    sample = rng.sample(people, 420)
    for p in sample[:60]:
        f = p.fields
        shape = rng.choice(("first last", "last", "last, first", "company word last"))
        words = {
            "first last": f"{f.first_name} {f.last_name}",
            "last": f.last_name,
            "last, first": f"{f.last_name}, {f.first_name}",
            "company word last": f"{f.company.split()[0]} {f.last_name}",
        }
        out.append(Query("exact", words[shape], p))
    for p in sample[60:120]:
        f = p.fields
        shape = rng.choice(("first prefix", "email prefix"))
        if shape == "email prefix":
            local = f.email.split("@")[0]
            out.append(Query("prefix", local[: max(len(local) - 2, 6)], p, same="id"))
        else:
            out.append(
                Query("prefix", f"{f.first_name} {f.last_name[: max(3, len(f.last_name) - 2)]}", p)
            )
    for p in sample[120:]:
        f = p.fields
        shape = rng.choice(("last", "first", "last, first", "last alone"))
        if shape == "last alone":
            out.append(Query("typo", typo(f.last_name, rng)[1], p, same="last"))
        elif shape == "first":
            out.append(Query("typo", f"{typo(f.first_name, rng)[1]} {f.last_name}", p))
        elif shape == "last":
            out.append(Query("typo", f"{f.first_name} {typo(f.last_name, rng)[1]}", p))
        else:
            out.append(Query("typo", f"{typo(f.last_name, rng)[1]}, {f.first_name}", p))
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def line(label: str, values: list[float]) -> str:
    return (
        f"{label:<34} p50 {statistics.median(values):8.1f}   p95 {percentile(values, 95):8.1f}"
        f"   p99 {percentile(values, 99):8.1f} ms   (n={len(values)})"
    )


def timed(func: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = func()
    return (time.perf_counter() - started) * 1000, result


class CrmChanger(threading.Thread):
    """A Sage user at work during the run: re-emails `rate` people a second (words of the
    index change), none of them a query's target."""

    def __init__(self, crm: SageCrm, ids: list[int], rate: float) -> None:
        super().__init__(daemon=True)
        self.writer = EmbeddedCrm(crm)
        self.ids = ids
        self.rate = rate
        self.done = threading.Event()
        self.changed = 0

    def run(self) -> None:
        while not self.done.wait(1 / self.rate):
            pid = self.ids[self.changed % len(self.ids)]
            self.writer.update_person(pid, email=f"moved{self.changed}.{pid}@bench.example")
            self.changed += 1


def fresh_pg(admin: str, name: str) -> str:
    conninfo = admin.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + f"/{name}"


def size_mb(store: Store) -> float:
    tables = [name for tables in SETS for name in tables.names]  # the old set is emptied
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "postgresql":
            total = sum(
                conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": t}).scalar_one()
                for t in tables
            )
        else:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            total = conn.exec_driver_sql(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
            ).scalar_one()
    return total / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--home", type=Path, default=Path("/tmp/crm-contacts-bench"))
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--naive", type=int, default=6, help="naive queries per kind (~2 s each)")
    parser.add_argument("--pg-db", default="crm_contacts_bench_search")
    parser.add_argument("--changes-per-second", type=float, default=5.0)
    args = parser.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    rng = random.Random(13)

    crm = SageCrm(f"sqlite:///{args.home / f'crm-{args.people}.sqlite'}", writable=True)
    have = crm.count_live_people()
    if have < args.people:
        EmbeddedCrm(crm)  # writable check
        print(f"generating {args.people - have:,} people (once) …", flush=True)
        seed_large(crm, args.people - have)
    with crm.engine.begin() as conn:  # a CRM kept from an older seed: today's indexes, statistics
        for table in schema.metadata.sorted_tables:
            for index in table.indexes:
                index.create(conn, checkfirst=True)
        conn.exec_driver_sql("ANALYZE")
    print("loading every row (for the queries and the naive baseline; not timed) …", flush=True)
    people = list(crm.iter_people())
    print(f"CRM: {len(people):,} live people")
    queries = make_queries(people, rng)
    kinds = ("exact", "prefix", "typo")

    # -- the current CRM prefix search and the naive baseline ---------------------------------
    current: dict[str, list[float]] = {k: [] for k in kinds}
    current_found = 0
    search_people(crm, "warm up")
    for q in queries:
        ms, found = timed(lambda q=q: search_people(crm, q.text))
        current[q.kind].append(ms)
        if q.kind == "typo":
            current_found += q.found(
                [(p.id, fold(p.fields.first_name), fold(p.fields.last_name)) for p in found]  # type: ignore[union-attr]
            )
    rows = [
        " ".join(
            x
            for x in (
                p.fields.first_name,
                p.fields.middle_name,
                p.fields.last_name,
                p.fields.company,
                p.fields.email,
            )
            if x
        )
        for p in people
    ]
    naive: dict[str, list[float]] = {k: [] for k in kinds}
    for kind in kinds:
        for q in [q for q in queries if q.kind == kind][: args.naive]:
            ms, _ = timed(
                lambda q=q, rows=rows: process.extract(q.text, rows, scorer=fuzz.WRatio, limit=20)
            )
            naive[kind].append(ms)
    del rows

    # -- our index on SQLite and PostgreSQL ------------------------------------------------
    state_db = args.home / "bench-state.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state_db}{suffix}").unlink(missing_ok=True)
    backends = {
        "sqlite": f"sqlite:///{state_db}",
        "postgresql": fresh_pg(args.pg, args.pg_db),
    }
    ours: dict[str, dict[str, list[float]]] = {}
    recall: dict[str, float] = {}
    report: list[str] = []
    targets = {q.target.id for q in queries}
    bystanders = [p.id for p in rng.sample(people, 5000) if p.id not in targets]
    changed_ids = bystanders[:100]
    look: dict[str, tuple[list[float], list[float], list[float]]] = {}
    for name, url in backends.items():
        store = Store.open(url, args.home)
        index = PeopleIndex(store.engine, crm, args.home)
        print(f"[{name}] building the index …", flush=True)
        started = time.perf_counter()
        built = index.build()
        build_s = time.perf_counter() - started
        report.append(
            f"[{name}] build: {built.people:,} people, {built.terms:,} words in {build_s:.0f} s; "
            f"size {size_mb(store):,.0f} MB"
        )
        index.search(parse_query("warm up"))
        times: dict[str, list[float]] = {k: [] for k in kinds}
        hits = 0
        changer = CrmChanger(crm, bystanders[100:], args.changes_per_second)
        changer.start()
        started = time.perf_counter()
        for round_ in range(args.rounds):
            for q in queries:
                ms, found = timed(lambda q=q, index=index: index.search(parse_query(q.text)))
                times[q.kind].append(ms)
                if round_ == 0 and q.kind == "typo":
                    hits += q.found(
                        [(p.id, fold(p.first_name), fold(p.last_name)) for p in found]  # type: ignore[union-attr]
                    )
        changer.done.set()
        changer.join()
        report.append(
            f"[{name}] searches ran {time.perf_counter() - started:.0f} s while {changer.changed} "
            f"people were re-emailed in the CRM ({args.changes_per_second:g}/s); "
            f"a search looks at the CRM when its last look is {index.LOOK_EVERY:g} s old"
        )
        ours[name] = times
        recall[name] = hits / sum(q.kind == "typo" for q in queries)
        look[name] = look_cost(index, crm, queries)
        store.close()

    # -- refresh after 100 people changed, and the hourly sweep ------------------------------
    for url in backends.values():  # every index level with the CRM first (not timed)
        store = Store.open(url, args.home)
        PeopleIndex(store.engine, crm, args.home).refresh(sweep=False)
        store.close()
    writer = EmbeddedCrm(crm)
    for n, pid in enumerate(changed_ids):
        writer.update_person(pid, title=f"Changed {n}")
    for name, url in backends.items():
        store = Store.open(url, args.home)
        index = PeopleIndex(store.engine, crm, args.home)
        ms, result = timed(index.refresh)
        report.append(
            f"[{name}] refresh after 100 changed people: {ms:,.0f} ms ({result.changed} re-read)"
        )  # type: ignore[union-attr]
        ms, result = timed(lambda index=index: index.refresh(sweep=True))
        report.append(
            f"[{name}] hourly sweep (every id compared): {ms:,.0f} ms ({result.changed} re-read, {result.removed} removed)"
        )  # type: ignore[union-attr]
        store.close()

    # -- why not pg_trgm: its similarity of each typo word to the word meant ------------------
    pairs = []
    for q in queries:
        if q.kind != "typo":
            continue
        typed = {fold(w) for w in q.text.replace(",", " ").split()}
        meant = {fold(q.target.fields.first_name), fold(q.target.fields.last_name)}
        for a in typed - meant:
            b = min(meant, key=lambda m: abs(len(m) - len(a)) + (m[0] != a[0]))
            pairs.append((a, b))
    with psycopg.connect(args.pg.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        missed = sum(
            conn.execute("SELECT similarity(%s, %s) < 0.3", (a, b)).fetchone()[0]  # type: ignore[index]
            for a, b in pairs
        )

    print()
    print(
        f"queries: {len(queries)} ({', '.join(f'{sum(q.kind == k for q in queries)} {k}' for k in kinds)}), "
        f"{args.rounds} rounds on the index, 1 on the CRM, {args.naive} per kind naive"
    )
    for kind in kinds:
        print(f"-- {kind}")
        for name in backends:
            print(line(f"index on {name}", ours[name][kind]))
        print(line("current CRM prefix search", current[kind]))
        print(line("naive: rapidfuzz over every row", naive[kind]))
    print("-- all queries")
    for name in backends:
        every = [ms for k in kinds for ms in ours[name][k]]
        naive_all = [ms for k in kinds for ms in naive[k]]
        crm_all = [ms for k in kinds for ms in current[k]]
        print(line(f"index on {name}", every))
        print(
            f"   ratio at p95: naive/ours {percentile(naive_all, 95) / percentile(every, 95):,.0f}x, "
            f"current/ours {percentile(crm_all, 95) / percentile(every, 95):.1f}x"
        )
    typo_n = sum(q.kind == "typo" for q in queries)
    print("-- a search's look at the CRM when nothing changed (one statement)")
    for name in backends:
        always, never, statement = look[name]
        print(line(f"index on {name}, look every search", always))
        print(line(f"index on {name}, never look", never))
        print(
            f"   extra per search: p50 {statistics.median(always) - statistics.median(never):+.2f} ms, "
            f"p95 {percentile(always, 95) - percentile(never, 95):+.2f} ms; "
            f"the statement alone: p50 {statistics.median(statement):.2f} ms, "
            f"p95 {percentile(statement, 95):.2f} ms"
        )
    print("-- typo recall in the top 10")
    for name in backends:
        print(f"index on {name}: {recall[name]:.1%}")
    print(f"current CRM prefix search: {current_found / typo_n:.1%}")
    print(
        f"pg_trgm similarity < 0.3 (default threshold) for {missed} of {len(pairs)} typo words ({missed / len(pairs):.0%})"
    )
    for r in report:
        print(r)


def look_cost(
    index: PeopleIndex, crm: SageCrm, queries: list[Query]
) -> tuple[list[float], list[float], list[float]]:
    """Every query with a look at the CRM before each search and with none, the CRM quiet
    (its last changes applied first), interleaved so load and caches favour neither; and
    the look's one statement alone."""
    index.LOOK_EVERY = 0
    index.search(parse_query("catch up"))
    always: list[float] = []
    never: list[float] = []
    for n, q in enumerate(queries):  # which goes first alternates: the second finds warm caches
        for look in (True, False) if n % 2 else (False, True):
            index.LOOK_EVERY = 0 if look else float("inf")
            (always if look else never).append(
                timed(lambda q=q: index.search(parse_query(q.text)))[0]
            )
    statement = [timed(crm.latest_change)[0] for _ in range(200)]
    index.LOOK_EVERY = PeopleIndex.LOOK_EVERY
    return always, never, statement


if __name__ == "__main__":
    main()
