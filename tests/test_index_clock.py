"""The index as a good citizen of the clock (issue 18, item 6).

A big CRM's first build (2–3 min at 1,000,000 people) and hourly sweep (15–18 s) run on a
thread of their own, so that cycle's syncs go on; here a hook holds the index's thread
inside its first CRM statement for as long as the test likes, standing for those minutes,
and `IN_LINE_MAX = 0` makes the demo CRM count as big. Words nobody has any more leave
the vocabulary; a build that fails is not retried every cycle.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, text

from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.index.sets import SETS
from sync_engine.schedule import Scheduler
from sync_engine.service import Engine
from sync_engine.store import utcnow

ALICE = "alice@example.com"


@pytest.fixture
def engine(engine_on_each_db: Engine) -> Engine:
    return engine_on_each_db


class HeldIndexThread:
    """Holds the clock's index thread (build or sweep) in its first CRM statement."""

    def __init__(self, engine: Engine) -> None:
        self.crm = engine.crm.engine
        self.release = threading.Event()
        self.held = threading.Event()

    def _hold(self, *_: object) -> None:
        if not self.release.is_set() and threading.current_thread().name.startswith(
            "people-index-"
        ):
            self.held.set()
            self.release.wait(60)

    def __enter__(self) -> HeldIndexThread:
        event.listen(self.crm, "before_cursor_execute", self._hold)
        return self

    def __exit__(self, *_: object) -> None:
        # released, and a no-op from now on: removing a listener while the index's thread
        # runs the engine's listeners would change the list under it
        self.release.set()


def scheduler_of(engine: Engine, clock: list) -> Scheduler:  # type: ignore[type-arg]
    scheduler = Scheduler(engine, now=lambda: clock[0])
    scheduler.index_keeper.IN_LINE_MAX = 0  # the demo CRM counts as big
    return scheduler


def test_the_first_build_of_a_big_crm_does_not_hold_up_the_cycles_syncs(engine):  # type: ignore[no-untyped-def]
    alice = engine.user(ALICE)
    engine.add_group(alice)  # her list; nobody has searched, so there is no index yet
    clock = [utcnow()]
    scheduler = scheduler_of(engine, clock)
    with HeldIndexThread(engine) as held:
        report = scheduler.run_cycle()
        assert held.held.wait(10), "the build did not start"
        assert report.synced == [ALICE] and report.error is None  # synced meanwhile
        status = engine.index.status()
        assert status.building and not status.ready and scheduler.index_keeper.busy
        clock[0] += timedelta(minutes=1)
        assert scheduler.run_cycle().error is None  # the next cycle starts no second build
    scheduler.index_keeper.wait(30)
    status = engine.index.status()
    assert status.ready and not status.building and status.people == 12


def test_the_hourly_sweep_of_a_big_index_does_not_hold_up_the_cycles_syncs(engine):  # type: ignore[no-untyped-def]
    alice = engine.user(ALICE)
    clock = [utcnow()]
    scheduler = scheduler_of(engine, clock)
    scheduler.index_keeper.IN_LINE_MAX = 10_000
    scheduler.run_cycle()  # a small CRM: the first build runs in the cycle
    assert engine.index.status().ready
    scheduler.index_keeper.IN_LINE_MAX = 0
    [priya] = engine.group(alice)[:1]
    EmbeddedCrm(engine.crm).purge_person(priya.id)  # hard-deleted: only a sweep sees it
    engine.add_group(alice)
    clock[0] += timedelta(hours=1)  # the sweep is due
    with HeldIndexThread(engine) as held:
        report = scheduler.run_cycle()
        assert held.held.wait(10), "the sweep did not start"
        assert report.synced == [ALICE] and report.error is None
        assert report.index is not None and not report.index.swept  # the cycle's own refresh
    scheduler.index_keeper.wait(30)
    status = engine.index.status()
    assert status.swept_at == clock[0] and status.people == 11


def test_words_nobody_has_any_more_leave_the_vocabulary(engine):  # type: ignore[no-untyped-def]
    alice = engine.user(ALICE)
    engine.index.LOOK_EVERY = 0  # each search as if seconds after the CRM edit before it
    crm = EmbeddedCrm(engine.crm)
    ingrid = crm.add_person(first="Ingrid", last="Vesterbro", company="Fjord AB")
    assert engine.search(alice, "Vesterbro").total == 1  # the first search builds the index

    def vocabulary() -> set[str]:
        live = SETS[engine.index.status().live_set]
        with engine.store.engine.connect() as conn:
            words = set(conn.execute(text(f"SELECT word FROM {live.terms.name}")).scalars())
            keys = conn.execute(
                text(f"SELECT count(*) FROM {live.keys.name} WHERE key = 'vestrbro'")
            )
            return words | ({"key:vestrbro"} if keys.scalar() else set())

    assert {"vesterbro", "fjord", "key:vestrbro"} <= vocabulary()
    crm.update_person(ingrid, last="Norgaard", company="Acme Corp")
    assert engine.search(alice, "Norgaard").total == 1  # the search takes the rename
    words = vocabulary()
    assert "norgaard" in words and not {"vesterbro", "fjord", "key:vestrbro"} & words
    crm.delete_person(ingrid)
    assert engine.search(alice, "Ingrid").total == 0
    assert not {"norgaard", "ingrid"} & vocabulary()
    assert "acme" in vocabulary()  # still other people's


def test_a_build_that_fails_is_tried_again_after_a_while_not_every_cycle(home, caplog):  # type: ignore[no-untyped-def]
    engine = Engine()
    try:
        seed_demo(engine.crm)
        with engine.store.engine.begin() as conn:  # a state database that refuses the build
            conn.execute(text(f"DROP TABLE {SETS[1].postings.name}"))
        clock = [utcnow()]
        scheduler = Scheduler(engine, now=lambda: clock[0])
        with caplog.at_level(logging.INFO, logger="crm_contacts.index"):
            for _ in range(3):
                assert scheduler.run_cycle().error is None  # the syncs are not stopped
                clock[0] += timedelta(minutes=1)
            clock[0] += scheduler.index_keeper.RETRY_BUILD
            scheduler.run_cycle()
        events = [getattr(r, "event", "") for r in caplog.records]
        assert events.count("index_build") == 2 and events.count("index_build_failed") == 2
    finally:
        engine.close()
