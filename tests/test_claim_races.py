"""The clock's claim is the mailbox's own lock (issue 22): whatever it claimed is what it
syncs, and the state a sync leaves is consistent wherever it stops.

On PostgreSQL (the `pg_url` fixture), where several clock processes and hand-run syncs
share one state database; the embedded CRM and the local target in a temporary home.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from sync_engine.config import Settings, load_settings
from sync_engine.crm import schema as s
from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.mailbox import open_mailbox
from sync_engine.mailbox.local import LocalMailbox
from sync_engine.schedule import Scheduler
from sync_engine.service import Engine

pytestmark = pytest.mark.postgres

ALICE, ALICE_NEW, BOB = "alice@example.com", "alice.walker@example.com", "bob@example.com"


class Gated:
    """The real local target; at the gate's step (listing, or creating) one address stops
    until the test lets it go on: after the listing is read, before the create is sent."""

    def __init__(self, inner: LocalMailbox, gate: Gate) -> None:
        self.inner, self.gate = inner, gate
        self.address, self.batch_size = inner.address, inner.batch_size

    @property
    def requests(self) -> int:
        return self.inner.requests

    def list_contacts(self):  # type: ignore[no-untyped-def]
        pages = list(self.inner.list_contacts())
        self._wait("list")
        yield from pages

    def create(self, items):  # type: ignore[no-untyped-def]
        self._wait("create")
        return self.inner.create(items)

    def _wait(self, step: str) -> None:
        if self.address == self.gate.address and step == self.gate.step:
            self.gate.reached.set()
            assert self.gate.go.wait(30), "the test never let the sync go on"

    def update(self, changes):  # type: ignore[no-untyped-def]
        return self.inner.update(changes)

    def delete(self, item_ids):  # type: ignore[no-untyped-def]
        return self.inner.delete(item_ids)

    def __getattr__(self, name: str) -> Any:  # kind, target_id, find, as_held, forget_state
        return getattr(self.inner, name)

    def close(self) -> None:
        self.inner.close()


class Gate:
    """A `mailbox_factory` whose syncs of `address` wait at the gate, at `step`."""

    def __init__(self, address: str, step: str) -> None:
        self.address, self.step = address, step
        self.reached, self.go = threading.Event(), threading.Event()

    def __call__(self, settings: Settings, address: str) -> Gated:
        inner = open_mailbox(settings, address)
        assert isinstance(inner, LocalMailbox)
        return Gated(inner, self)


class BobFirst(random.Random):
    """The clock's order within a priority: Bob's mailbox first (else shuffled)."""

    def shuffle(self, x):  # type: ignore[no-untyped-def, override]
        x.sort(key=lambda item: item[0].user.mailbox != BOB)


def in_mailbox(engine: Engine, address: str) -> Counter[int | None]:
    box = LocalMailbox(engine.settings.local_mailbox_url, address)
    try:
        return Counter(c.crm_id for page in box.list_contacts() for c in page)
    finally:
        box.close()


@pytest.fixture
def engines(home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The clock's engine (its syncs of Bob wait at a gate) and a hand-run sync's engine
    (its syncs of Alice's new address wait before they create), on one state database."""
    monkeypatch.setenv("DATABASE_URL", pg_url)
    clock_gate, hand_gate = Gate(BOB, "list"), Gate(ALICE_NEW, "create")
    clock = Engine(load_settings(), mailbox_factory=clock_gate)
    hand = Engine(load_settings(), mailbox_factory=hand_gate)
    try:
        yield {"clock": clock, "hand": hand, "clock_gate": clock_gate, "hand_gate": hand_gate}
    finally:
        clock_gate.go.set()
        hand_gate.go.set()
        clock.close()
        hand.close()


def test_a_clock_whose_due_row_moved_to_another_address_does_not_sync_it_unlocked(engines):
    """The clock read its due list, then Alice's email changed in the CRM and a hand-run
    sync of her new address started. The clock claims the address it read (free); the row
    it reads again under that claim names the new address, held by the hand-run sync: the
    clock must leave it alone, not sync it beside the hand-run one (a twin)."""
    clock, hand = engines["clock"], engines["hand"]
    crm = EmbeddedCrm(clock.crm)
    alice_id = crm.add_user(ALICE, "Alice", "Walker")
    crm.add_user(BOB, "Bob", "Stone")
    ann = crm.add_person(first="Ann", last="Lee", company="Acme")
    ben = crm.add_person(first="Ben", last="Ode", company="Acme")
    clock.add(clock.user(ALICE), [ann])
    clock.add(clock.user(BOB), [ben])

    scheduler = Scheduler(clock, rng=BobFirst())
    reports: list[Any] = []
    cycle = threading.Thread(target=lambda: reports.append(scheduler.run_cycle()))
    cycle.start()
    try:
        # the clock has its due list (Bob, then Alice at alice@) and is syncing Bob
        assert engines["clock_gate"].reached.wait(30)
        with clock.crm.engine.begin() as conn:
            conn.execute(
                update(s.users)
                .where(s.users.c.User_UserId == alice_id)
                .values(User_EmailAddress=ALICE_NEW)
            )
        # Alice's hand-run sync: her row moves to the new address, it reads her (empty)
        # mailbox and is about to create Ann
        by_hand: dict[str, Any] = {}
        manual = threading.Thread(
            target=lambda: by_hand.update(result=hand.sync(hand.user(ALICE_NEW)))
        )
        manual.start()
        assert engines["hand_gate"].reached.wait(30)
        engines["clock_gate"].go.set()  # the clock goes on: Bob done, then Alice's stale row
        cycle.join(30)
        assert not cycle.is_alive()
        engines["hand_gate"].go.set()
        manual.join(30)
    finally:
        engines["clock_gate"].go.set()
        engines["hand_gate"].go.set()
        cycle.join(30)
    assert by_hand["result"].error is None, by_hand["result"].error
    assert in_mailbox(clock, ALICE_NEW) == Counter({ann: 1}), "Ann twice: two syncs at once"
    assert in_mailbox(clock, BOB) == Counter({ben: 1})
    assert reports[0].synced == [BOB] and reports[0].taken_by_others == 1
