"""Issue 22, item 4 (the mechanism of issue 20's item 2): `crm-contacts mailbox reset --as
EMAIL` forgets the target's saved state for the mailbox (Graph's delta link and picture,
the links' item ids); the next sync finds its contacts again by CRM id: no twin, nothing
forgotten. On each target: local, and EWS and Graph as loopback servers."""

from __future__ import annotations

from collections import Counter

import pytest

from sync_engine.config import load_settings
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.mailbox import open_mailbox
from sync_engine.service import Engine, EngineError

ALICE = "alice@example.com"
PEOPLE = [1, 2, 3, 4, 5, 6]  # more than the mass-loss guard's five


def crm_ids(engine: Engine) -> Counter[int]:
    box = open_mailbox(engine.settings, ALICE)
    try:
        return Counter(c.crm_id for page in box.list_contacts() for c in page if c.crm_id)
    finally:
        box.close()


def test_a_reset_mailbox_finds_its_contacts_again_by_crm_id(engine_on_each_target, cli) -> None:  # type: ignore[no-untyped-def]
    engine = engine_on_each_target
    alice = engine.user(ALICE)
    engine.add(alice, PEOPLE)
    assert engine.sync(alice).count("created") == 6
    saved = list((engine.settings.crm_contacts_home / "graph-delta").glob("*.json"))
    assert bool(saved) == (engine.settings.mailbox_backend == "graph")

    out = cli.ok("mailbox", "reset", "--as", ALICE)

    assert "Forgot the saved sync state of alice@example.com" in out
    assert not list((engine.settings.crm_contacts_home / "graph-delta").glob("*.json"))
    again = engine.sync(alice)
    assert not again.error and again.warnings == []  # no mass-loss guard involved
    assert again.count("created") == again.count("forgotten") == again.count("linked") == 0
    assert again.write_requests == 0
    assert crm_ids(engine) == Counter(PEOPLE)  # no twin
    EmbeddedCrm(engine.crm).update_person(2, title="Head of Buying")
    later = engine.sync(alice)
    assert later.count("updated") == 1 and crm_ids(engine) == Counter(PEOPLE)


def test_no_reset_while_a_sync_of_the_mailbox_runs(home) -> None:  # type: ignore[no-untyped-def]
    """The lock is the state store's, the same for every target."""
    engine = Engine(load_settings())
    try:
        seed_demo(engine.crm)
        alice = engine.user(ALICE)
        with (
            engine.store.mailbox_lock(ALICE),
            pytest.raises(EngineError, match=r"a sync of alice@example\.com is running"),
        ):
            engine.reset_mailbox(alice)
    finally:
        engine.close()
