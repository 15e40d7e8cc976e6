"""Initial sync of 10,000 subscriptions into one local mailbox: calls to the target and
wall time, against a naive one-call-per-contact sync measured in the same run; then a
second sync with no change (it must make 0 writes).

    .venv/bin/python bench/bench_sync.py [--people 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sync_engine.config import Settings
from sync_engine.crm.embedded import EmbeddedCrm, seed_large
from sync_engine.mailbox.local import LocalMailbox
from sync_engine.service import Engine

ME = "rep@example.com"


def run(people: int, batch_size: int, page_size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as root:
        settings = Settings(crm_contacts_home=Path(root))
        engine = Engine(
            settings,
            mailbox_factory=lambda s, a: LocalMailbox(
                s.local_mailbox_url, a, batch_size=batch_size, page_size=page_size
            ),
        )
        EmbeddedCrm(engine.crm).add_user(ME, "Rep", "One")
        seed_large(engine.crm, people)
        user = engine.user(ME)
        ids = [p.id for p in engine.crm.iter_people()][:people]
        engine.add(user, ids)
        started = time.perf_counter()
        first = engine.sync(user)
        first_s = time.perf_counter() - started
        assert first.error is None and first.count("created") == people, first.as_json()
        started = time.perf_counter()
        second = engine.sync(user)
        second_s = time.perf_counter() - started
        engine.close()
        return {
            "calls": first.requests,
            "writes": first.write_requests,
            "seconds": first_s,
            "second_calls": second.requests,
            "second_writes": second.write_requests,
            "second_seconds": second_s,
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=10_000)
    args = parser.parse_args()
    ours = run(args.people, batch_size=100, page_size=500)
    naive = run(args.people, batch_size=1, page_size=1)
    n = args.people
    print(f"initial sync of {n:,} subscriptions into an empty local mailbox")
    print(
        f"  ours : {ours['calls']:>6.0f} calls to the target ({ours['writes']:.0f} write batches), {ours['seconds']:6.2f} s"
    )
    print(
        f"  naive: {naive['calls']:>6.0f} calls (one per contact),            {naive['seconds']:6.2f} s"
    )
    print(
        f"  ratio: {naive['calls'] / ours['calls']:.0f}x fewer calls, {naive['seconds'] / ours['seconds']:.1f}x faster"
    )
    print("second sync, no change")
    print(
        f"  ours : {ours['second_calls']:.0f} calls ({ours['second_writes']:.0f} writes), {ours['second_seconds']:.2f} s"
    )
    print(
        f"  naive: {naive['second_calls']:.0f} calls ({naive['second_writes']:.0f} writes), {naive['second_seconds']:.2f} s"
    )
    assert ours["second_writes"] == 0 and naive["second_writes"] == 0


if __name__ == "__main__":
    main()
