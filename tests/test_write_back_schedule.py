"""Write-back (issue 14) under the scheduler: an Outlook edit written to the CRM reaches
the other mailboxes listing that person in the same cycle (a hand-run sync's write-back
in the next one), and the mailbox it came from is not resynced (its watermark moved past
its own write: no echo)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_schedule import Clock, CountingTarget, contacts

from sync_engine.config import load_settings
from sync_engine.crm.embedded import seed_demo
from sync_engine.mailbox.local import LocalMailbox
from sync_engine.schedule import Scheduler
from sync_engine.service import Engine

ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    target = CountingTarget()
    e = Engine(load_settings(), mailbox_factory=target)
    e.target = target  # type: ignore[attr-defined]
    seed_demo(e.crm)
    yield e
    e.close()


def test_the_other_mailboxes_get_the_edit_in_the_next_cycle_the_editor_is_not_resynced(
    engine: Engine,
):
    """A hand-run sync wrote back: the scheduler's next cycle brings the others."""
    clock = Clock()
    alice, bob = engine.user(ALICE), engine.user(BOB)
    design_right = [p.id for p in engine.search(alice, 'company:"Design Right Inc."').people]
    engine.add(alice, design_right)
    engine.add(bob, design_right)
    scheduler = Scheduler(engine, now=clock)
    assert sorted(scheduler.run_cycle().synced) == [ALICE, BOB]
    clock.advance(seconds=60)
    assert scheduler.run_cycle().due == 0

    # Alice fixes a phone number in Outlook and syncs by hand: it reaches the CRM
    box = LocalMailbox(engine.settings.local_mailbox_url, ALICE)
    item = contacts(engine, ALICE)["John Paul Smith"]
    box.user_edit(item.item_id, fields={"business_phone": "+1 512 555 0123"})
    box.close()
    assert engine.sync(alice).count("written_back") == 1

    clock.advance(seconds=60)
    cycle = scheduler.run_cycle()
    assert cycle.synced == [BOB]  # Bob's copy is out of date; Alice's is not
    assert contacts(engine, BOB)["John Paul Smith"].fields.business_phone == "+1 512 555 0123"
    clock.advance(seconds=60)
    assert scheduler.run_cycle().due == 0


def test_a_cycle_that_writes_back_brings_the_edit_to_the_other_mailboxes_in_that_cycle(
    engine: Engine,
):
    """Issue 14: the latest edit "reaches the other linked mailboxes in the same cycle"."""
    clock = Clock()
    alice, bob = engine.user(ALICE), engine.user(BOB)
    design_right = [p.id for p in engine.search(alice, 'company:"Design Right Inc."').people]
    engine.add(alice, design_right[:-1])
    engine.add(bob, design_right[:-1])
    scheduler = Scheduler(engine, now=clock)
    assert sorted(scheduler.run_cycle().synced) == [ALICE, BOB]
    clock.advance(seconds=60)
    assert scheduler.run_cycle().due == 0

    # Alice fixes a phone number in Outlook, then adds someone: her list changed, so the
    # next cycle syncs her mailbox, which writes the phone back
    box = LocalMailbox(engine.settings.local_mailbox_url, ALICE)
    item = contacts(engine, ALICE)["John Paul Smith"]
    box.user_edit(item.item_id, fields={"business_phone": "+1 512 555 0123"})
    box.close()
    engine.add(alice, design_right[-1:])

    clock.advance(seconds=60)
    cycle = scheduler.run_cycle()
    assert cycle.synced == [ALICE, BOB]  # Bob in the same cycle, after Alice's write-back
    assert contacts(engine, BOB)["John Paul Smith"].fields.business_phone == "+1 512 555 0123"
    clock.advance(seconds=60)
    assert scheduler.run_cycle().due == 0  # each once: nothing left over for the next cycle


def test_fault_run_the_embedded_crm_locked_during_write_back_loses_nothing(engine: Engine):
    """Another process holds the CRM database's write lock past the busy timeout: that
    write-back fails for this run (reported), the edit stays in Outlook, the rest of the
    sync goes on, and the next sync writes it."""
    import sqlite3

    alice = engine.user(ALICE)
    engine.add(alice, [p.id for p in engine.search(alice, 'company:"Design Right Inc."').people])
    assert engine.sync(alice).error is None
    box = LocalMailbox(engine.settings.local_mailbox_url, ALICE)
    item = contacts(engine, ALICE)["John Paul Smith"]
    box.user_edit(item.item_id, fields={"mobile_phone": "+1 512 555 0155"})
    box.close()
    other = sqlite3.connect(engine.settings.crm_url.removeprefix("sqlite:///"))
    other.execute("BEGIN IMMEDIATE")  # the write lock, held
    try:
        locked = engine.sync(alice)
    finally:
        other.rollback()
        other.close()
    assert locked.error is None and locked.count("failed") == 1
    assert "your admin has the details" in locked.failed[0].detail
    assert "busy" in locked.admin_notes[0]
    assert contacts(engine, ALICE)["John Paul Smith"].fields.mobile_phone == "+1 512 555 0155"
    back = engine.sync(alice)
    assert back.count("written_back") == 1
    [pid] = [p.id for p in engine.my_list(alice) if p.last_name == "Smith"]
    assert engine.crm.people_by_ids([pid])[pid].fields.mobile_phone == "+1 512 555 0155"
