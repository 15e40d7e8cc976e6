"""The index's refresh and sweep against writers that overtake them (issue 18, items 1
and 6), on SQLite and PostgreSQL.

A refresh reads the CRM before it takes the index's writer lock, so that nobody waits
for its reading. Meanwhile another process may change the CRM and apply the change
(a search's catch-up); here a hook in the clock's own thread, at the moment it reaches
for the lock (or right after its sweep read the CRM's ids), does exactly that in
another Engine, and the test checks that what the clock then wrote is no older than
what the other one did.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import event
from test_schedule import Clock

from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.schedule import Scheduler
from sync_engine.service import Engine

ALICE = "alice@example.com"


@pytest.fixture
def engine(engine_on_each_db: Engine) -> Engine:
    e = engine_on_each_db
    e.index.LOOK_EVERY = 0  # each search as if seconds after the CRM edit before it
    return e


def names(engine: Engine, query: str) -> list[str]:
    return [p.name for p in engine.search(engine.user(ALICE), query, limit=50).people]


def elsewhere(change: Callable[[EmbeddedCrm], object], query: str) -> list[str]:
    """Another process: a change straight in the CRM, then a search there (which applies
    it to the index); who that search found."""
    other = Engine()
    try:
        change(EmbeddedCrm(other.crm))
        return names(other, query)
    finally:
        other.close()


def run_once_in_this_thread(job: Callable[[], None]) -> Callable[..., None]:
    """A hook that runs `job` on another thread (and waits for it) the first time it is
    called in the calling thread."""
    me, done = threading.current_thread(), []

    def hook() -> None:
        if not done and threading.current_thread() is me:
            done.append(True)
            worker = threading.Thread(target=job)
            worker.start()
            worker.join(60)

    return hook


def takes_the_writer_lock(statement: str) -> bool:
    return "pg_advisory_xact_lock" in statement or statement.startswith("UPDATE index_state")


@pytest.mark.parametrize("sweep", [False, True], ids=["refresh", "hourly sweep"])
def test_a_refresh_overtaken_while_it_read_the_crm_does_not_write_older_rows(  # type: ignore[no-untyped-def]
    engine, sweep
):
    assert names(engine, "Natarajan") == ["Priya Natarajan"]  # the first search's index
    gus = EmbeddedCrm(engine.crm).add_person(first="Gus", last="Hallorann", company="Overlook")
    seen: list[str] = []

    def renamed_and_found_elsewhere() -> None:
        seen.extend(elsewhere(lambda crm: crm.update_person(gus, first="Dick"), "Hallorann"))

    hook = run_once_in_this_thread(renamed_and_found_elsewhere)

    def at_the_lock(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if takes_the_writer_lock(statement):
            hook()

    clock = Clock()
    if sweep:
        clock.advance(hours=1)
    event.listen(engine.store.engine, "before_cursor_execute", at_the_lock)
    try:
        report = Scheduler(engine, now=clock).run_cycle()  # read Gus, then reached for the lock
    finally:
        event.remove(engine.store.engine, "before_cursor_execute", at_the_lock)
    assert seen == ["Dick Hallorann"]  # the other process renamed him and its search found it
    assert report.index is not None and report.index.swept is sweep
    assert names(engine, "Hallorann") == ["Dick Hallorann"]  # not Gus again, for an hour
    assert names(engine, "Gus") == []
    engine.index.refresh(sweep=True)  # nothing was left for a sweep to put right
    assert names(engine, "Hallorann") == ["Dick Hallorann"]


def test_a_person_created_while_the_sweep_runs_is_not_taken_for_a_hard_delete(engine):  # type: ignore[no-untyped-def]
    assert names(engine, "Natarajan") == ["Priya Natarajan"]
    crm = EmbeddedCrm(engine.crm)
    stone = crm.add_person(first="Bob", last="Stone", company="Granite")
    crm.add_person(first="Aiko", last="Tanaka")  # (the embedded CRM reuses a last id)
    assert names(engine, "Stone") == ["Bob Stone"]
    crm.purge_person(stone)  # hard-deleted: the sweep's to find
    seen: list[str] = []

    def created_and_found_elsewhere() -> None:
        seen.extend(
            elsewhere(lambda crm: crm.add_person(first="Wendy", last="Torrance"), "Torrance")
        )

    hook = run_once_in_this_thread(created_and_found_elsewhere)
    read_ids: list[bool] = []

    def crm_ids(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if (
            " ".join(statement.replace('"', "").split())
            == "SELECT Person.Pers_PersonId FROM Person"
        ):
            read_ids.append(True)

    def next_in_the_index(*_args) -> None:  # type: ignore[no-untyped-def]
        if read_ids:
            hook()  # the sweep's first index statement once it has the CRM's ids

    clock = Clock()
    clock.advance(hours=1)
    event.listen(engine.crm.engine, "before_cursor_execute", crm_ids)
    event.listen(engine.store.engine, "before_cursor_execute", next_in_the_index)
    try:
        report = Scheduler(engine, now=clock).run_cycle()
    finally:
        event.remove(engine.crm.engine, "before_cursor_execute", crm_ids)
        event.remove(engine.store.engine, "before_cursor_execute", next_in_the_index)
    assert seen == ["Wendy Torrance"]
    assert report.index is not None and report.index.swept and report.index.removed == 1
    assert names(engine, "Stone") == []  # the hard delete went
    assert names(engine, "Torrance") == ["Wendy Torrance"]  # the newcomer stayed
    assert engine.index.status().people == 14
