"""Standing rules (issue 18, DESIGN rule 11) end to end: a salesperson turns a rule on, the
CRM assigns and reassigns people, and the clock (`Scheduler.run_cycle`, time moved by the
test) keeps My CRM Contacts and the mailbox current. State on SQLite and on PostgreSQL;
the embedded CRM in Sage's layout; the local mailbox target, its requests counted."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from test_schedule import Clock

from sync_engine.config import Settings, load_settings
from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.crm.scope import managed_by
from sync_engine.crm.source import SageCrm
from sync_engine.mailbox import open_mailbox
from sync_engine.mailbox.base import Mailbox
from sync_engine.mailbox.local import LocalMailbox
from sync_engine.model import MailboxContact
from sync_engine.schedule import Scheduler
from sync_engine.service import Engine

ALICE, BOB = "alice@example.com", "bob@example.com"
CAT = "CRM Contact"


class Counting:
    """A mailbox_factory: the real local target, every request counted."""

    def __init__(self) -> None:
        self.requests = 0

    def __call__(self, settings: Settings, address: str) -> Mailbox:
        box = open_mailbox(settings, address)
        close = box.close

        def counted_close() -> None:
            self.requests += box.requests
            close()

        box.close = counted_close  # type: ignore[method-assign]
        return box


@pytest.fixture
def engine(state_db: str) -> Iterator[Engine]:
    counting = Counting()
    e = Engine(load_settings(), mailbox_factory=counting)
    e.counting = counting  # type: ignore[attr-defined]
    crm = EmbeddedCrm(e.crm)
    crm.add_user(ALICE, "Alice", "Walker")
    crm.add_user(BOB, "Bob", "Marsh")
    yield e
    e.close()


def contacts(engine: Engine) -> dict[str, MailboxContact]:
    box = LocalMailbox(engine.settings.local_mailbox_url, ALICE)
    try:
        return {c.fields.full_name(): c for page in box.list_contacts() for c in page}
    finally:
        box.close()


def ours(engine: Engine) -> set[str]:
    """The names of Alice's contacts that carry our category and a CRM id."""
    return {n for n, c in contacts(engine).items() if CAT in c.categories and c.crm_id}


def sources(engine: Engine) -> dict[str, list[str]]:
    alice = engine.user(ALICE)
    return {p.name: list(p.sources or ()) for p in engine.my_list(alice) if p.in_list}


def last_reason(engine: Engine, person_id: int) -> str:
    return engine.why(engine.user(ALICE), person_id)[-1].reason


def test_account_manager_rule_kept_by_the_clock(engine: Engine):
    crm = EmbeddedCrm(engine.crm)
    ann = crm.add_person(first="Ann", last="Able", company="Acme", manager=ALICE)
    ben = crm.add_person(first="Ben", last="Baker", company="Acme", manager=ALICE)
    bob_s = crm.add_person(first="Cy", last="Cole", company="Acme", manager=BOB)
    picked = crm.add_person(first="Pia", last="Picked", company="Other", manager=BOB)
    alice = engine.user(ALICE)
    engine.add(alice, [picked])
    added = engine.rules.add(alice, "account-manager")
    assert (added.new, added.people, added.joined) == (True, 2, 2)
    clock = Clock()
    scheduler = Scheduler(engine, now=clock)
    first = scheduler.run_cycle()
    assert first.synced == [ALICE] and first.error is None
    assert ours(engine) == {"Ann Able", "Ben Baker", "Pia Picked"}
    assert sources(engine) == {
        "Ann Able": ["rule:account-manager"],
        "Ben Baker": ["rule:account-manager"],
        "Pia Picked": ["picked"],
    }

    # a person given to Alice later (created, or reassigned to her) arrives after one cycle
    lena = crm.add_person(first="Lena", last="Later", company="Acme", manager=ALICE)
    crm.update_person(bob_s, manager=ALICE)
    clock.advance(seconds=60)
    given = scheduler.run_cycle()
    assert given.synced == [ALICE] and given.rules is not None
    assert ours(engine) == {"Ann Able", "Ben Baker", "Cy Cole", "Lena Later", "Pia Picked"}
    assert "by your rule account-manager" in engine.why(alice, lena)[0].reason

    # reassigned away: unlinked at the next cycle with a reason naming the rule; the
    # contact stays, without the category and the CRM id (rule 5)
    crm.update_person(ben, manager=BOB)
    clock.advance(seconds=60)
    assert scheduler.run_cycle().synced == [ALICE]
    kept = contacts(engine)["Ben Baker"]
    assert CAT not in kept.categories and kept.crm_id is None
    assert [e.action for e in engine.why(alice, ben)][-2:] == ["unsubscribed", "unlinked"]
    assert "no longer matches your rule account-manager" in last_reason(engine, ben)
    assert "Ben Baker" not in sources(engine)

    # removed by hand: stays out, whatever the CRM does to the person, until added again
    engine.remove(alice, [ann])
    clock.advance(seconds=60)
    scheduler.run_cycle()
    assert "Ann Able" not in ours(engine)
    crm.update_person(ann, title="Buyer")  # the rule sees her again: still out
    crm.update_person(ann, manager=ALICE)
    clock.advance(seconds=60)
    scheduler.run_cycle()
    assert "Ann Able" not in ours(engine) and "Ann Able" not in sources(engine)
    engine.add(alice, [ann])
    assert sources(engine)["Ann Able"] == ["picked", "rule:account-manager"]

    # turning the rule off lets go of whom only it brought; the hand-picked stay
    removed = engine.rules.remove(alice, "account-manager")
    assert (removed.leaving, removed.staying) == (2, 1)  # Cy and Lena go; Ann stays
    clock.advance(seconds=60)
    off = scheduler.run_cycle()
    assert off.synced == [ALICE]
    assert ours(engine) == {"Ann Able", "Pia Picked"}
    assert last_reason(engine, lena).startswith("your rule account-manager was turned off")
    assert sources(engine) == {"Ann Able": ["picked"], "Pia Picked": ["picked"]}
    assert engine.rules.of(alice) == []


def test_company_manager_rule_follows_the_company_s_account_manager(engine: Engine):
    crm = EmbeddedCrm(engine.crm)
    dora = crm.add_person(first="Dora", last="Dane", company="Globex", manager=BOB)
    eli = crm.add_person(first="Eli", last="Eddy", company="Globex", manager=BOB)
    fay = crm.add_person(first="Fay", last="Ford", company="Initech", manager=BOB)
    alice = engine.user(ALICE)
    assert engine.rules.add(alice, "company-manager").people == 0
    clock = Clock()
    scheduler = Scheduler(engine, now=clock)
    scheduler.run_cycle()
    assert ours(engine) == set()

    crm.update_company("Globex", manager=ALICE)  # Alice takes the account over
    assert managed_by(engine.crm, alice.id, [dora, eli, fay]) == {dora, eli}
    clock.advance(seconds=60)
    assert scheduler.run_cycle().synced == [ALICE]
    assert ours(engine) == {"Dora Dane", "Eli Eddy"}
    assert sources(engine)["Dora Dane"] == ["rule:company-manager"]

    # moved to another company, or deleted in the CRM: leaves, unlinked (not deleted)
    crm.update_person(dora, company="Initech")
    crm.delete_person(eli)
    clock.advance(seconds=60)
    assert scheduler.run_cycle().synced == [ALICE]
    assert ours(engine) == set()
    assert set(contacts(engine)) == {"Dora Dane", "Eli Eddy"}  # both still in the mailbox
    assert "company-manager" in last_reason(engine, dora)
    assert "deleted in the CRM" in engine.why(alice, eli)[-2].reason


def test_a_mass_reassignment_is_held_by_the_guard(engine: Engine):
    crm = EmbeddedCrm(engine.crm)
    ids = [
        crm.add_person(first=f"P{n:02d}", last="Pupil", company="Acme", manager=ALICE)
        for n in range(12)
    ]
    alice = engine.user(ALICE)
    engine.rules.add(alice, "account-manager")
    clock = Clock()
    scheduler = Scheduler(engine, now=clock)
    scheduler.run_cycle()
    assert len(ours(engine)) == 12

    for pid in ids[:8]:  # Bob gets 8 of Alice's 12 at once (a mistake in the CRM?)
        crm.update_person(pid, manager=BOB)
    clock.advance(seconds=60)
    held = scheduler.run_cycle()
    assert held.synced == [ALICE]
    [run] = engine.store.runs(engine.store.user_by_email(ALICE).id, limit=1)  # type: ignore[union-attr]
    assert run.result is not None and run.result["unlinked"] == 0
    [warning] = run.result["warnings"]
    assert "Held back 8 unlinks: 8 of 12 linked contacts no longer match" in warning
    assert len(ours(engine)) == 12  # nothing unlinked
    clock.advance(seconds=60)
    assert scheduler.run_cycle().due == 0  # held, not retried every cycle

    accepted = engine.sync(alice, allow_mass_delete=True)
    assert accepted.count("unlinked") == 8 and not accepted.warnings
    assert len(ours(engine)) == 4 and len(contacts(engine)) == 12


def test_one_crm_statement_per_kind_for_many_salespeople_and_idle_cycles_cost_nothing(
    engine: Engine,
):
    crm = EmbeddedCrm(engine.crm)
    reps = []
    for n in range(10):
        email = f"rep{n:02d}@example.com"
        crm.add_user(email, "Rep", str(n))
        crm.add_person(first="Own", last=f"Client{n:02d}", company=f"Co {n}", manager=email)
        crm.update_company(f"Co {n}", manager=email)
        reps.append(engine.user(email))
    for rep in reps:
        engine.rules.add(rep, "account-manager")
        engine.rules.add(rep, "company-manager")
    clock = Clock()
    scheduler = Scheduler(engine, now=clock)
    assert len(scheduler.run_cycle().synced) == 10

    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine.crm.engine, "before_cursor_execute", record)
    state: list[str] = []
    event.listen(engine.store.engine, "before_cursor_execute", lambda *a: state.append(a[2]))
    before = engine.counting.requests  # type: ignore[attr-defined]
    for _ in range(3):  # idle: the rules cost no statement, the mailboxes no request
        clock.advance(seconds=60)
        idle = scheduler.run_cycle()
        assert idle.due == 0 and idle.requests == 0
    assert engine.counting.requests == before  # type: ignore[attr-defined]
    assert not [s for s in statements + state if "rule" in s.lower() or "Comp_Primary" in s]

    # a day on, every rule is evaluated in full again: one CRM statement per kind for all 20
    statements.clear()
    clock.advance(hours=25)
    daily = scheduler.run_cycle()
    assert daily.rules is not None and daily.rules.evaluated == 20
    by_owner = [s for s in statements if "PrimaryUserId IN" in s.replace('"', "")]
    assert len(by_owner) == 2, by_owner
    assert daily.rules.crm_queries == 2


def test_bad_kinds_are_refused_and_a_hand_run_sync_follows_the_crm_without_a_clock(
    engine: Engine,
):
    from sync_engine.errors import EngineError

    alice = engine.user(ALICE)
    with pytest.raises(EngineError, match="'boss' is not a rule kind; choose account-manager"):
        engine.rules.add(alice, "boss")
    with pytest.raises(EngineError, match="the rule company-manager is not on"):
        engine.rules.remove(alice, "company-manager")
    again: Any = engine.rules.add(alice, "account-manager")
    assert again.new and engine.rules.add(alice, "account-manager").new is False
    # a hand-run sync follows the CRM first (no clock running): the person arrives
    crm = EmbeddedCrm(engine.crm)
    crm.add_person(first="Gus", last="Hallorann", company="Overlook", manager=ALICE)
    result = engine.sync(alice)
    assert result.count("created") == 1 and ours(engine) == {"Gus Hallorann"}


def test_a_crm_that_answers_a_rule_with_nobody_takes_no_one_out(  # type: ignore[no-untyped-def]
    engine: Engine, home: Path, monkeypatch, caplog
):
    crm = EmbeddedCrm(engine.crm)
    for n in range(3):
        crm.add_person(first=f"P{n}", last="Pupil", company="Acme", manager=ALICE)
    alice = engine.user(ALICE)
    engine.rules.add(alice, "account-manager")
    clock = Clock()
    Scheduler(engine, now=clock).run_cycle()
    assert len(ours(engine)) == 3
    # a day on, the clock runs against a CRM that answers with nobody: CRM_DATABASE_URL
    # points at another database with the same users and no people (a test system)
    url = f"sqlite:///{home.parent / 'empty-crm.db'}"
    empty = SageCrm(url, writable=True)
    EmbeddedCrm(empty).add_user(ALICE, "Alice", "Walker")
    empty.close()
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    misconnected = Engine(load_settings(), mailbox_factory=Counting())
    clock.advance(hours=25)
    try:
        with caplog.at_level(logging.WARNING, logger="crm_contacts.rules"):
            daily = Scheduler(misconnected, now=clock).run_cycle()
    finally:
        misconnected.close()
    assert daily.rules is not None and daily.rules.evaluated == 1 and not daily.rules.left
    assert sources(engine) == {f"P{n} Pupil": ["rule:account-manager"] for n in range(3)}
    [said] = [r for r in caplog.records if getattr(r, "event", "") == "rules_unproven"]
    assert "answered the rule account-manager with nobody at all; 3 people stay" in said.message
    # and with the right CRM again, the rule goes on as before
    crm.add_person(first="P3", last="Pupil", company="Acme", manager=ALICE)
    clock.advance(seconds=60)
    Scheduler(engine, now=clock).run_cycle()
    assert len(ours(engine)) == 4
