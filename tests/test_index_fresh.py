"""Search is never staler than the CRM (issue 18, item 1), on SQLite and PostgreSQL.

No clock runs and nothing refreshes the index by hand: the only index a test has is the
one the salesperson's first search made (the demo CRM is small enough to be indexed on
a first search). People change the way a Sage user changes them — straight in the CRM
database — or through our own `crm` commands, and the very next search, `add QUERY`,
`person` and Slack picker see it. In a long-running process (the bot) seconds pass
between a change in Sage and the next search; the tests advance the index's monotonic
clock by LOOK_EVERY for that instead of sleeping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.slack import SlackStandIn, all_text, checkbox_options
from test_bot_hardening import running_bot

from sync_engine.config import load_settings
from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.crm.source import SageCrm

ALICE = "alice@example.com"


class Sage:
    """A Sage CRM user at work: writes straight into the CRM database, not through us."""

    def __init__(self) -> None:
        self._crm: SageCrm | None = None

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        if self._crm is None:  # opened on first use, once the CRM exists
            self._crm = SageCrm(load_settings().crm_url, writable=True)
        return getattr(EmbeddedCrm(self._crm), name)

    def close(self) -> None:
        if self._crm is not None:
            self._crm.close()


@pytest.fixture
def sage(home: Path) -> Iterator[Sage]:
    editor = Sage()
    yield editor
    editor.close()


def found(cli, query: str) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    result = cli("search", query, "--as", ALICE, "--json")
    if result.code == 1 and "nobody matches" in result.err:
        return []
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_the_next_cli_search_and_add_see_each_crm_change(cli, state_db, sage):  # type: ignore[no-untyped-def]
    cli.ok("crm", "seed")
    assert [p["last_name"] for p in found(cli, "Natarajan")] == ["Natarajan"]  # indexes the CRM

    gus = sage.add_person(
        first="Gus", last="Hallorann", company="Overlook", email="g.hallorann@ovl.example"
    )
    assert [(p["id"], p["email"]) for p in found(cli, "Gus Hallorann")] == [
        (gus, "g.hallorann@ovl.example")
    ]

    sage.update_person(gus, first="Dick")  # renamed
    assert [p["first_name"] for p in found(cli, "Hallorann")] == ["Dick"]
    assert found(cli, "Gus Hallorann") == []

    sage.update_person(gus, email="dick@overlook.example")  # re-emailed
    assert [p["email"] for p in found(cli, "Dick Hallorann")] == ["dick@overlook.example"]
    assert [p["id"] for p in found(cli, "dick@overl")] == [gus]

    assert "Added" in cli.ok("add", "Dick Hallorann", "--as", ALICE)
    assert "Hallorann" in cli.ok("list", "--as", ALICE)

    sage.delete_person(gus)  # soft delete, as Sage does
    assert found(cli, "Hallorann") == []
    refused = cli("add", "Dick Hallorann", "--as", ALICE)
    assert refused.code == 1 and "nobody matches" in refused.err


def test_our_crm_commands_update_the_index_at_once(cli, state_db):  # type: ignore[no-untyped-def]
    from sync_engine.service import Engine

    cli.ok("crm", "seed")
    engine = Engine()  # a long-running process (the bot) that searched a moment ago
    try:
        alice = engine.user(ALICE)
        engine.index.monotonic = lambda: 0.0  # no time passes: its last look stays fresh
        assert engine.search(alice, "Smith").total >= 1
        pid = int(cli.ok("crm", "add-person", "--first", "Wendy", "--last", "Torrance"))
        assert [p.id for p in engine.search(alice, "Wendy Torrance").people] == [pid]
        cli.ok(
            "crm", "update-person", str(pid), "--last", "Torrance-King", "--email", "w@o.example"
        )
        [wendy] = engine.search(alice, "Wendy").people
        assert (wendy.last_name, wendy.email) == ("Torrance-King", "w@o.example")
        cli.ok("crm", "delete-person", str(pid))
        assert engine.search(alice, "Wendy").total == 0
    finally:
        engine.close()


def test_the_slack_picker_and_person_see_each_crm_change(  # type: ignore[no-untyped-def]
    home, state_db, sage, monkeypatch
) -> None:
    with SlackStandIn() as slack:
        slack.add_user("U_ALICE", ALICE)
        with running_bot(home, slack, monkeypatch) as bot:
            clock = [0.0]
            bot.engine.index.monotonic = lambda: clock[0]

            def later() -> None:  # the seconds between an edit in Sage and the next search
                clock[0] += bot.engine.index.LOOK_EVERY

            def picker(query: str) -> list[str]:
                return [
                    o["text"]["text"].strip("*")
                    for o in checkbox_options(bot.shown(f"search {query}"))
                ]

            assert "John Smith" in picker("Smith")  # the first search indexes the CRM
            gus = sage.add_person(
                first="Gus", last="Hallorann", company="Overlook", email="g.hallorann@ovl.example"
            )
            later()
            assert picker("Gus Hallorann") == ["Gus Hallorann"]
            assert "g.hallorann@ovl.example" in all_text(bot.shown("person Gus Hallorann"))

            sage.update_person(gus, first="Dick", email="dick@overlook.example")
            later()
            assert picker("Hallorann") == ["Dick Hallorann"]
            card = all_text(bot.shown("person Hallorann"))
            assert "Dick Hallorann" in card and "dick@overlook.example" in card
            assert "g.hallorann@ovl.example" not in card

            sage.delete_person(gus)
            later()
            assert picker("Hallorann") == []
            assert "No one in the CRM matches" in all_text(bot.shown("person Hallorann"))
