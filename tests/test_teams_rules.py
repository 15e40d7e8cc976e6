"""Standing rules in Teams, against the loopback Bot Connector (tests/servers/teams), as
test_bot_rules.py shows them in Slack: add-group offers to keep the group, `rules` lists
the rules with a button each, `status` shows them (Teams has no App Home), the list says
why each person is in it, and card data cannot reach another user's rules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers.teams.connector import all_text
from teams_harness import ALICE, BOB, BOB_AAD, Teams, teams_bot, toggles

from chat.rules import KEEP_GROUP, TURN_ON_TITLE
from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.schedule import Scheduler


@pytest.fixture
def teams(home, monkeypatch) -> Iterator[Teams]:  # type: ignore[no-untyped-def]
    with teams_bot(home, monkeypatch) as bot:
        yield bot


def titles(card: dict) -> list[str]:  # type: ignore[type-arg]
    return [str(a.get("title")) for a in card.get("actions", [])]


def test_add_group_keeps_the_group_and_turning_the_rule_off_keeps_the_picked(
    teams: Teams,
) -> None:
    chat = teams.connector.conversation()
    engine = teams.engine
    alice = engine.user(ALICE)
    assert "standing rules" in teams.ask("help", chat, "search <query>").text

    confirm = teams.ask("add-group", chat, "you as Account Manager").card
    assert titles(confirm)[1] == KEEP_GROUP
    question = teams.click(confirm, KEEP_GROUP, chat)["value"]
    assert TURN_ON_TITLE in all_text(question) and engine.rules.of(alice) == []  # asks first
    assert "Nothing changed" in all_text(teams.click(question, "Cancel", chat)["value"])
    assert engine.rules.of(alice) == []
    on = all_text(teams.click(question, "Keep them", chat)["value"])
    assert "Rule on:" in on and "4 people now" in on
    assert [r.kind for r in engine.rules.of(alice)] == ["account-manager"]
    again = all_text(teams.click(question, "Keep them", chat)["value"])  # a second click
    assert "Rule already on" in again and "Nobody new joined" in again
    kept = teams.ask("add-group", chat, "`account-manager` keeps").card
    assert KEEP_GROUP not in titles(kept)

    # one person picked by hand from their card; one given to Alice later in the CRM
    maria = teams.ask("person Maria Lopez", chat, "Add to My Contacts").card
    teams.click(maria, "Add to My Contacts", chat)
    EmbeddedCrm(engine.crm).add_person(first="Lena", last="Later", manager=ALICE)
    assert Scheduler(engine).run_cycle().error is None  # the clock's next cycle
    listed = {
        t.split(" — ")[0]: t for t in toggles(teams.ask("list", chat, "My CRM").card).values()
    }
    assert "you're their Account Manager" in listed["Lena Later"]
    assert "picked by you" in listed["Maria Lopez"]

    # `status` (Slack's App Home) and `rules` show the rule with a button to turn it off
    status = teams.ask("status", chat, "Standing rules").card
    assert "Turn off account-manager" in titles(status)
    card = teams.ask("rules", chat, "Standing rules").card
    text = all_text(card)
    assert "everyone whose Account Manager you are" in text and "5 people" in text
    assert titles(card) == ["Turn off account-manager", "Turn on company-manager"]
    ask = teams.click(card, "Turn off account-manager", chat)["value"]
    assert "Turn this rule off?" in all_text(ask) and engine.rules.of(alice)
    off = all_text(teams.click(ask, "Turn off", chat)["value"])
    assert "Rule off:" in off and "5 people only it brought leave" in off
    assert engine.rules.of(alice) == []
    assert [p.name for p in engine.my_list(alice) if p.in_list] == ["Maria Lopez"]


def test_card_data_cannot_turn_off_another_users_rule(teams: Teams) -> None:
    chat = teams.connector.conversation()
    engine = teams.engine
    bob = engine.user(BOB)
    engine.rules.add(bob, "account-manager")
    bobs_card = teams.ask("rules", chat, "Standing rules", user=BOB_AAD).card
    ask = teams.click(bobs_card, "Turn off account-manager", chat, user=BOB_AAD)["value"]
    # Alice clicks Bob's confirmation, and adds whatever might name Bob to its data
    forged = {"user": BOB_AAD, "email": BOB, "user_id": bob.id, "aadObjectId": BOB_AAD}
    refused = all_text(teams.click(ask, "Turn off", chat, data=forged)["value"])
    assert "the rule account-manager is not on for alice@example.com" in refused
    assert [r.kind for r in engine.rules.of(bob)] == ["account-manager"]
    bogus = teams.click(ask, "Turn off", chat, data={"kind": "boss"})["value"]
    assert "'boss' is not a rule kind" in all_text(bogus)
    assert engine.rules.of(engine.user(ALICE)) == []
