"""bot.work: the pools the bot's work runs in after the ack are bounded and say where a
job stands (started, queued behind N, refused), and repeated syncs coalesce."""

from __future__ import annotations

import threading
import time

from bot.work import Coalescer, WorkPool


def test_a_full_pool_queues_then_refuses_and_tells_who_waits() -> None:
    pool = WorkPool("test-pool", workers=2, max_waiting=3)
    release = threading.Event()
    waited: list[int] = []
    ran: list[int] = []

    def job(n: int):  # type: ignore[no-untyped-def]
        def run() -> None:
            release.wait(10)
            ran.append(n)

        return run

    ahead = [pool.submit(job(n), on_wait=waited.append) for n in range(6)]
    assert ahead == [0, 0, 1, 2, 3, None]  # two run, three wait, the sixth is refused
    time.sleep(1.5)  # past NOTICE_AFTER: the waiting ones are told, the running ones not
    assert sorted(waited) == [1, 2, 3]
    release.set()
    deadline = time.monotonic() + 10
    while len(ran) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(ran) == [0, 1, 2, 3, 4]
    assert pool.busy() == (0, 0)


def test_syncs_coalesce_to_one_running_and_one_waiting() -> None:
    syncs = Coalescer()
    assert [syncs.claim("alice") for _ in range(5)] == [
        "run",
        "queued",
        "joined",
        "joined",
        "joined",
    ]
    assert syncs.claim("bob") == "run"  # mailboxes are independent
    assert syncs.again("alice") is True  # the waiting run takes over
    assert syncs.claim("alice") == "queued"  # a click during that run waits for one more
    assert syncs.again("alice") is True
    assert syncs.again("alice") is False  # nothing waits: done
    assert syncs.claim("alice") == "run"
    syncs.release("alice")  # a failed run frees the mailbox for the next click
    assert syncs.claim("alice") == "run"
