"""The Teams front end against the loopback Bot Connector: every flow of issue 21 item 3,
with what Teams enforces (token audience and signature, activity shape, card version and
size, 429 Retry-After) held by the stand-in (tests/servers/teams)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest
from teams_harness import ALICE, ALICE_AAD, BOB_AAD, GUEST_AAD, Teams, teams_bot, toggles

from sync_engine.crm.embedded import DESIGN_RIGHT


@pytest.fixture
def teams(home, monkeypatch) -> Iterator[Teams]:  # type: ignore[no-untyped-def]
    with teams_bot(home, monkeypatch) as bot:
        yield bot


def test_forged_expired_and_misaddressed_tokens_are_refused_and_logged(teams: Teams, caplog) -> None:  # type: ignore[no-untyped-def]
    c = teams.connector
    chat = c.conversation()
    activity = c.activity(chat, text="help", user=ALICE_AAD)
    caplog.set_level(logging.WARNING)
    for token in (None, c.token(forged=True), c.token(expired=True), c.token(audience="someone-else")):
        response = c.send(teams.url, activity, token=token)
        assert response.status_code == 401, token
    assert len([r for r in caplog.records if "validation failed" in r.getMessage() or "rejected" in r.getMessage()]) >= 3
    assert not c.posted  # nothing answered a refused activity
    assert c.send(teams.url, activity).status_code == 200
    help_card = c.wait_for(chat, "search <query>")
    assert "My CRM Contacts keeps the CRM people you choose" in help_card.text


def test_search_ticks_survive_paging_then_add_selected(teams: Teams) -> None:
    chat = teams.connector.conversation()
    posted = teams.ask(f"search {DESIGN_RIGHT}", chat, "people match")
    card = posted.card
    assert "page 1 of 2" in posted.text
    first = toggles(card)
    assert len(first) == 10
    picked_here = list(first)[:3]
    page2 = teams.click(card, "Next", chat, ticks=dict.fromkeys(picked_here, True))["value"]
    assert "page 2 of 2" in json.dumps(page2)
    assert "3 selected (3 on other pages)" in json.dumps(page2)
    second = toggles(page2)
    assert len(second) == 3 and not set(second) & set(first)
    back = teams.click(page2, "◀ Previous", chat, ticks={list(second)[0]: True})["value"]
    ticked_back = [e for e in back["body"] if e.get("type") == "Input.Toggle" and e["value"] == "true"]
    assert sorted(int(e["id"][2:]) for e in ticked_back) == sorted(picked_here)  # ticks kept
    done = teams.click(back, "Add selected", chat)["value"]
    text = json.dumps(done)
    assert "Added 4 people to My CRM Contacts" in text
    mine = {p.id for p in teams.engine.my_list(teams.engine.user(ALICE))}
    assert mine == {*picked_here, list(second)[0]}
