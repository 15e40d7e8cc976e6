"""Write-back (issue 14) end to end through the engine on every mailbox target (local,
EWS and Graph loopback servers) with the embedded CRM: an Outlook edit reaches the CRM,
nothing echoes, the conflict rules, several mailboxes, and the mass-edit guard."""

from __future__ import annotations

import time

import pytest
from outlook import ALICE, by_last, contacts, outlook_edit

from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.service import Engine

BOB = "bob@example.com"


@pytest.fixture
def engine(engine_on_each_target: Engine) -> Engine:
    return engine_on_each_target


def crm_person(engine: Engine, pid: int):  # type: ignore[no-untyped-def]
    return engine.crm.people_by_ids([pid])[pid]


def synced(engine: Engine, address: str = ALICE):  # type: ignore[no-untyped-def]
    """Alice (or Bob) with the Design Right people in their list, synced once."""
    user = engine.user(address)
    people = engine.search(user, 'company:"Design Right Inc."', limit=50).people
    engine.add(user, [p.id for p in people])
    first = engine.sync(user)
    assert first.error is None, first.error
    return user, {p.last_name: p.id for p in people}


def test_an_outlook_phone_edit_reaches_the_crm_and_never_echoes(engine: Engine):
    alice, ids = synced(engine)
    zoe = by_last(engine, "Brontë")
    outlook_edit(engine, zoe, business_phone="+44 20 7946 0999")

    result = engine.sync(alice)
    assert result.error is None, result.error
    assert result.count("written_back") == 1 and result.as_json()["written_back"] == 1
    assert crm_person(engine, ids["Brontë"]).fields.business_phone == "+44 20 7946 0999"
    # the write-back costs one CRM write and no mailbox write
    assert (result.crm_requests, result.write_requests) == (1, 0)
    [event] = [e for e in engine.why(alice, ids["Brontë"]) if e.action == "written_back"]
    assert "business_phone" in event.reason
    # our own CRM write does not bring this mailbox back as a CRM change
    state = engine.store.mailbox_state(engine.store.user_by_email(ALICE).id)
    assert state.crm_watermark == engine.crm.latest_change()

    for _ in range(2):  # no echo: two more syncs write nothing either way
        again = engine.sync(alice)
        assert not again.outcomes, again.outcomes
        assert (again.crm_requests, again.write_requests) == (0, 0)


def test_formatting_noise_and_the_company_never_reach_the_crm(engine: Engine):
    alice, ids = synced(engine)
    zoe = by_last(engine, "Brontë")
    before = crm_person(engine, ids["Brontë"]).fields
    outlook_edit(
        engine,
        zoe,
        email=zoe.fields.email.upper(),
        company="Somewhere Else Ltd",
        city="Leeds",
    )
    result = engine.sync(alice)
    assert result.count("written_back") == 0 and result.crm_requests == 0
    after = crm_person(engine, ids["Brontë"]).fields
    assert (after.email, after.company, after.city) == (before.email, before.company, before.city)


def test_conflict_the_crm_wins_and_outlook_gets_the_crm_value(engine: Engine):
    alice, ids = synced(engine)
    zoe = by_last(engine, "Brontë")
    outlook_edit(engine, zoe, mobile_phone="+44 7700 900111")
    EmbeddedCrm(engine.crm).update_person(ids["Brontë"], mobile="+44 7700 900222")

    result = engine.sync(alice)
    assert result.count("conflict") == 1 and result.count("written_back") == 0
    assert result.as_json()["conflicts"] == 1
    assert crm_person(engine, ids["Brontë"]).fields.mobile_phone == "+44 7700 900222"
    assert by_last(engine, "Brontë").fields.mobile_phone == "+44 7700 900222"
    [event] = [e for e in engine.why(alice, ids["Brontë"]) if e.action == "conflict"]
    assert "mobile_phone" in event.reason and "the CRM wins" in event.reason
    assert not engine.sync(alice).outcomes


def test_conflict_latest_lets_the_outlook_edit_win(engine: Engine, monkeypatch):  # type: ignore[no-untyped-def]
    engine.settings.write_back_conflict = "latest"
    alice, ids = synced(engine)
    zoe = by_last(engine, "Brontë")
    outlook_edit(engine, zoe, mobile_phone="+44 7700 900111")
    EmbeddedCrm(engine.crm).update_person(ids["Brontë"], mobile="+44 7700 900222")
    result = engine.sync(alice)
    assert result.count("written_back") == 1 and result.count("conflict") == 0
    assert crm_person(engine, ids["Brontë"]).fields.mobile_phone == "+44 7700 900111"


def test_the_latest_of_two_mailboxes_wins_and_reaches_the_other(engine: Engine):
    alice, ids = synced(engine)
    bob, _ = synced(engine, BOB)
    pid = ids["Brontë"]
    outlook_edit(engine, by_last(engine, "Brontë", BOB), BOB, job_title="Head of Design")
    outlook_edit(engine, by_last(engine, "Brontë"), job_title="Design Director")

    assert engine.sync(bob).count("written_back") == 1  # Bob's edit first
    later = engine.sync(alice)  # Alice's edit is seen later: it replaces Bob's
    assert later.count("written_back") == 1 and later.count("conflict") == 0
    [event] = [e for e in engine.why(alice, pid) if e.action == "written_back"]
    assert BOB in event.reason
    assert crm_person(engine, pid).fields.job_title == "Design Director"
    # Bob's next sync brings Alice's value to his mailbox, and writes nothing back
    to_bob = engine.sync(bob)
    assert to_bob.count("updated") == 1 and to_bob.count("written_back") == 0
    assert by_last(engine, "Brontë", BOB).fields.job_title == "Design Director"
    assert not engine.sync(alice).outcomes and not engine.sync(bob).outcomes


def test_the_later_edit_wins_even_when_its_mailbox_syncs_first(engine: Engine):
    """Bob edits first, Alice later; Alice's sync runs first. Her edit is the latest (by
    the contacts' modified times), so it stays in the CRM and reaches Bob's mailbox."""
    alice, ids = synced(engine)
    bob, _ = synced(engine, BOB)
    pid = ids["Brontë"]
    outlook_edit(engine, by_last(engine, "Brontë", BOB), BOB, job_title="Head of Design")
    time.sleep(1.1)  # EWS LastModifiedTime has whole seconds
    outlook_edit(engine, by_last(engine, "Brontë"), job_title="Design Director")

    assert engine.sync(alice).count("written_back") == 1  # Alice's later edit first
    earlier = engine.sync(bob)  # Bob's earlier edit is seen later: it loses
    assert earlier.count("written_back") == 0 and earlier.count("conflict") == 1
    assert earlier.crm_requests == 0
    [event] = [e for e in engine.why(bob, pid) if e.action == "conflict"]
    assert ALICE in event.reason and "latest edit wins" in event.reason
    assert crm_person(engine, pid).fields.job_title == "Design Director"
    assert by_last(engine, "Brontë", BOB).fields.job_title == "Design Director"
    assert by_last(engine, "Brontë").fields.job_title == "Design Director"
    assert not engine.sync(alice).outcomes and not engine.sync(bob).outcomes


def test_mass_edit_guard_holds_then_lets_through(engine: Engine):
    engine.settings.mass_edit_min = 2  # MASS_EDIT_MIN: the demo list has 5 people
    alice, ids = synced(engine)
    mine = [c for c in contacts(engine) if c.crm_id]
    assert len(mine) > 2
    for c in mine:  # a phone app rewrites every contact
        outlook_edit(engine, c, home_phone="+1 555 0000")
    held = engine.sync(alice)
    assert held.count("written_back") == 0 and held.crm_requests == 0
    assert any("--allow-mass-edit" in w for w in held.warnings)
    assert all(c.fields.home_phone == "+1 555 0000" for c in contacts(engine) if c.crm_id)
    assert engine.sync(alice).count("written_back") == 0  # still held, still kept
    allowed = engine.sync(alice, allow_mass_edit=True)
    assert allowed.count("written_back") == len(mine)
    assert crm_person(engine, ids["Brontë"]).fields.home_phone == "+1 555 0000"
    assert not engine.sync(alice).outcomes


def test_links_from_before_write_back_are_recorded_first_then_edits_flow(engine: Engine):
    """Migration 0011 leaves existing links without remembered values: their first sync
    only records both sides (an edit made before it is taken as the starting point, not
    sent), and from then on Outlook edits flow back."""
    from sqlalchemy import update

    from sync_engine import tables as t

    alice, ids = synced(engine)
    with engine.store.engine.begin() as conn:  # what the migration leaves behind
        conn.execute(update(t.links).values(crm_values=None, mailbox_values=None))
    outlook_edit(engine, by_last(engine, "Brontë"), job_title="Before the upgrade")
    first = engine.sync(alice)
    assert first.count("written_back") == 0 and first.write_requests == 0
    assert all(
        link.mailbox_values is not None
        for link in engine.store.links(engine.store.user_by_email(ALICE).id).values()
    )
    outlook_edit(engine, by_last(engine, "Brontë"), job_title="After the upgrade")
    assert engine.sync(alice).count("written_back") == 1
    assert crm_person(engine, ids["Brontë"]).fields.job_title == "After the upgrade"
