"""Search latency on a 1,000,000-person CRM: our indexed search against a naive baseline
(rapidfuzz over every row, with the rows already in memory), measured in the same run.

    .venv/bin/python bench/bench_search.py [--people 1000000] [--home DIR]

The generated CRM is kept in DIR (default /tmp/crm-contacts-bench) and reused.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from rapidfuzz import fuzz, process

from sync_engine.crm.embedded import EmbeddedCrm, seed_large
from sync_engine.crm.search import search_people
from sync_engine.crm.source import SageCrm

QUERIES = [
    "Smith",
    "John Smith",
    "maria garcia",
    "Natarajan",
    "Zoë",
    "O'Brien",
    "Design Right",
    'company:"Design Right Inc. 7"',
    "Harbour",
    "Chen Wei",
    "Kowalski",
    "Andersson Björn",
    "james.wilson",
    "Tanaka Aiko",
    "Okafor",
    "Smiht",  # typo
    "Natarjan",  # typo
    "Dubois Chloé",
    "Summit Partners",
    "Müller",
    "Ivanova Nadia",
    "Rossi",
    "Nguyen",
    "Pioneer",
    "Al-Sayed Fatima",
]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--home", type=Path, default=Path("/tmp/crm-contacts-bench"))
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    crm = SageCrm(f"sqlite:///{args.home / f'crm-{args.people}.sqlite'}", writable=True)
    have = crm.count_live_people()
    if have < args.people:
        EmbeddedCrm(crm)  # writable check
        print(f"generating {args.people - have:,} people (once) …", flush=True)
        started = time.perf_counter()
        seed_large(crm, args.people - have)
        print(f"  done in {time.perf_counter() - started:.0f} s")
    print(f"CRM: {crm.count_live_people():,} live people")

    search_people(crm, "warm up")
    ours: list[float] = []
    for _ in range(args.rounds):
        for q in QUERIES:
            started = time.perf_counter()
            found = search_people(crm, q)
            ours.append((time.perf_counter() - started) * 1000)
            assert found or q.startswith("company:"), q

    print("loading every row for the naive baseline (not timed) …", flush=True)
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
        for p in crm.iter_people()
    ]
    naive: list[float] = []
    for q in QUERIES[:8]:
        started = time.perf_counter()
        process.extract(q, rows, scorer=fuzz.WRatio, limit=20)
        naive.append((time.perf_counter() - started) * 1000)

    p50, p95 = statistics.median(ours), percentile(ours, 95)
    n50, n95 = statistics.median(naive), percentile(naive, 95)
    print(f"queries: {len(ours)} ours, {len(naive)} naive, over {len(rows):,} people")
    print(f"ours : p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   (target p95 < 50 ms)")
    print(f"naive: p50 {n50:8.1f} ms   p95 {n95:8.1f} ms")
    print(f"ratio naive/ours: p50 {n50 / p50:6.1f}x   p95 {n95 / p95:6.1f}x")


if __name__ == "__main__":
    main()
