"""Issue 20: a mailbox moved from Exchange Server to Exchange Online keeps every link.

Both stand-ins run at once: the EWS server is the organisation's Exchange Server, the Graph
server its Exchange Online. Alice's and Bob's mailboxes are synced over EWS; Alice's moves
to Exchange Online (every contact copied with a new item id and the same named properties,
tests/servers/move.py); Bob's stays on premises. The user's path is the command line, a
fresh process (engine) per command, as an admin runs it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from servers.ews import EwsServer, ews_server
from servers.graph import GraphServer, graph_server
from servers.move import move_to_exchange_online

from sync_engine.config import load_settings
from sync_engine.crm.embedded import seed_demo
from sync_engine.mailbox.graph.mapping import CRM_ID_PROPERTY
from sync_engine.service import Engine

ALICE = "alice@example.com"
BOB = "bob@example.com"
ALICES = list(range(1, 9))  # eight people: more than the mass-loss guard's five
BOBS = list(range(9, 13))


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[EwsServer, GraphServer]]:
    with ews_server() as ews, graph_server() as graph:
        for name, value in {**graph.env(), **ews.env()}.items():
            monkeypatch.setenv(name, value)  # both targets configured
        yield ews, graph


def backend(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    monkeypatch.setenv("MAILBOX_BACKEND", kind)


def sync_all(cli) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    result = cli("sync", "--all", "--json")
    return {m["mailbox"]: m for m in json.loads(result.out)["mailboxes"]}


def crm_ids(graph: GraphServer, address: str) -> Counter[int]:
    """The CRM ids the contacts in Exchange Online carry (a twin would count twice)."""
    out: Counter[int] = Counter()
    for contact in graph.contacts(address):
        for prop in contact["singleValueExtendedProperties"]:
            if prop["id"].lower() == CRM_ID_PROPERTY.lower() and int(prop["value"]):
                out[int(prop["value"])] += 1
    return out


def lists(who: dict[str, list[int]]) -> None:
    """The demo CRM, and each salesperson's picks (the `add` use case, in process)."""
    engine = Engine(load_settings())
    try:
        seed_demo(engine.crm)
        for email, ids in who.items():
            engine.add(engine.user(email), ids)
    finally:
        engine.close()


def synced_over_ews(cli, monkeypatch, ews: EwsServer) -> None:  # type: ignore[no-untyped-def]
    backend(monkeypatch, "ews")
    lists({ALICE: ALICES, BOB: BOBS})
    first = sync_all(cli)
    assert first[ALICE]["created"] == 8 and first[BOB]["created"] == 4
    assert len(ews.contacts(ALICE)) == 8 and len(ews.contacts(BOB)) == 4


def later_crm_changes_reach_the_moved_contacts(cli, graph: GraphServer) -> None:  # type: ignore[no-untyped-def]
    """A CRM edit, a CRM delete and a removal from the list, after the move."""
    cli.ok("crm", "update-person", "1", "--title", "Chief Everything Officer")
    cli.ok("crm", "delete-person", "2")
    cli.ok("remove", "--id", "3", "--as", ALICE)
    after = sync_all(cli)[ALICE]
    assert (after["updated"], after["deleted"], after["unlinked"]) == (1, 1, 1)
    assert after["created"] == after["forgotten"] == 0 and not after["error"]
    by_id = {
        int(p["value"]): c
        for c in graph.contacts(ALICE)
        for p in c["singleValueExtendedProperties"]
        if p["id"].lower() == CRM_ID_PROPERTY.lower() and int(p["value"])
    }
    assert by_id[1]["jobTitle"] == "Chief Everything Officer"
    assert 2 not in by_id and len(graph.contacts(ALICE, folder="deleteditems")) == 1
    assert 3 not in by_id  # unlinked: kept, without our category and CRM id
    assert len(graph.contacts(ALICE)) == 7
    assert all("CRM Contact" in c["categories"] for c in by_id.values())


def test_a_move_to_exchange_online_in_hybrid_mode_keeps_every_link(
    cli, servers, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    ews, graph = servers
    synced_over_ews(cli, monkeypatch, ews)

    move_to_exchange_online(ews, graph, ALICE)
    graph.host_on_premises(BOB)  # Bob's mailbox stays on Exchange Server
    backend(monkeypatch, "hybrid")
    ews.reset_counts()
    graph.reset_counts()

    moved = sync_all(cli)

    alice, bob = moved[ALICE], moved[BOB]
    assert not alice["error"] and not bob["error"]
    assert alice["created"] == alice["forgotten"] == alice["linked"] == 0
    assert alice["write_requests"] == 0 and alice["warnings"] == []  # no mass-loss guard
    assert crm_ids(graph, ALICE) == Counter(ALICES)  # no twin
    assert bob["created"] == bob["forgotten"] == 0 and bob["requests"] >= 1  # over EWS
    assert len(ews.contacts(BOB)) == 4 and ews.requests_by_operation["FindItem"] >= 1
    listed = json.loads(cli.ok("list", "--as", ALICE, "--json"))
    assert {p["status"] for p in listed} == {"synced"} and len(listed) == 8

    status = {s["mailbox"]: s for s in json.loads(cli.ok("status", "--json"))["mailboxes"]}
    assert (
        status[ALICE]["target"] == "graph"
        and "Exchange Online holds it" in (status[ALICE]["target_reason"])
    )
    assert (
        status[BOB]["target"] == "ews"
        and "MailboxNotEnabledForRESTAPI" in (status[BOB]["target_reason"])
    )
    table = cli.ok("status")  # the table names each target, and says why under it
    assert f"{ALICE}: graph, hybrid: Exchange Online holds it" in table
    assert f"{BOB}: ews, hybrid: Graph answered MailboxNotEnabledForRESTAPI" in table
    assert "Served by Exchange Online (Microsoft Graph)" in cli.ok("check-mailbox", "--as", ALICE)
    assert "Served by Exchange Server (EWS)" in cli.ok("check-mailbox", "--as", BOB)

    steady = sync_all(cli)
    assert steady[ALICE]["write_requests"] == 0 and steady[ALICE]["requests"] == 1
    later_crm_changes_reach_the_moved_contacts(cli, graph)
    assert len(ews.contacts(BOB)) == 4


def test_the_same_move_with_a_switch_to_graph_for_everyone(cli, servers, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ews, graph = servers
    synced_over_ews(cli, monkeypatch, ews)
    move_to_exchange_online(ews, graph, ALICE)
    graph.host_on_premises(BOB)
    backend(monkeypatch, "graph")

    moved = cli("sync", "--all", "--json")

    assert moved.code == 1  # Bob cannot be served over Graph
    runs = {m["mailbox"]: m for m in json.loads(moved.out)["mailboxes"]}
    alice, bob = runs[ALICE], runs[BOB]
    assert not alice["error"]
    assert alice["created"] == alice["forgotten"] == alice["linked"] == 0
    assert alice["warnings"] == [] and crm_ids(graph, ALICE) == Counter(ALICES)
    # one line naming what to do; nothing of Bob's list is forgotten meanwhile
    assert "MailboxNotEnabledForRESTAPI" in bob["error"] and "hybrid" in bob["error"]
    assert bob["forgotten"] == 0 and len(ews.contacts(BOB)) == 4
    assert len(json.loads(cli.ok("list", "--as", BOB, "--json"))) == 4
    later_crm_changes_reach_the_moved_contacts(cli, graph)


def test_a_mailbox_that_moves_later_switches_by_itself(cli, servers, monkeypatch, pg_url) -> None:  # type: ignore[no-untyped-def]
    """Placed on EWS by hybrid mode, then moved: the next sync fails (nothing forgotten),
    the one after asks Graph again and carries on there with every link. (PostgreSQL state.)"""
    ews, graph = servers
    monkeypatch.setenv("DATABASE_URL", pg_url)
    graph.host_on_premises(ALICE)
    backend(monkeypatch, "hybrid")
    lists({ALICE: ALICES})
    assert sync_all(cli)[ALICE]["created"] == 8
    assert json.loads(cli.ok("status", "--json"))["mailboxes"][0]["target"] == "ews"

    move_to_exchange_online(ews, graph, ALICE)
    failed = sync_all(cli)[ALICE]  # the decision is a day old at most: EWS, gone there
    assert failed["error"] and failed["forgotten"] == 0
    switched = sync_all(cli)[ALICE]

    assert not switched["error"]
    assert switched["created"] == switched["forgotten"] == 0 and switched["warnings"] == []
    assert crm_ids(graph, ALICE) == Counter(ALICES)
    assert json.loads(cli.ok("status", "--json"))["mailboxes"][0]["target"] == "graph"


def test_a_moved_sync_that_dies_at_its_end_leaves_the_links_untrusted(
    cli, servers, monkeypatch, home
) -> None:  # type: ignore[no-untyped-def]
    """The sync after the move finds every contact again by CRM id and writes the links
    with their Exchange Online ids; the state database fails as it records the run's end
    (a trigger refuses it, as a dead process or a lost connection would). Whatever was
    written by then, the links must not be trusted as Exchange Online's while they still
    hold Exchange Server's ids: the next sync finds them again, writes nothing, no twin."""
    import sqlite3

    ews, graph = servers
    synced_over_ews(cli, monkeypatch, ews)
    move_to_exchange_online(ews, graph, ALICE)
    graph.host_on_premises(BOB)
    backend(monkeypatch, "hybrid")
    with sqlite3.connect(home / "state.sqlite") as db:
        db.execute(
            "CREATE TRIGGER fail_the_end BEFORE UPDATE OF status ON runs "
            "WHEN NEW.status = 'ok' BEGIN SELECT RAISE(ABORT, 'the disk is gone'); END"
        )
    cli("sync", "--as", ALICE)  # dies recording its end
    with sqlite3.connect(home / "state.sqlite") as db:
        db.execute("DROP TRIGGER fail_the_end")
        target = db.execute(
            "SELECT synced_target FROM mailbox_targets WHERE address = ?", (ALICE,)
        ).fetchone()
        held = {
            r[0]
            for r in db.execute(
                "SELECT item_id FROM links l JOIN users u ON u.id = l.user_id WHERE u.mailbox = ?",
                (ALICE,),
            )
        }
    online = {c["id"] for c in graph.contacts(ALICE)}
    trusted = target is not None and target[0].startswith("graph")
    assert not trusted or held <= online, (target, "trusted with Exchange Server's ids")

    again = sync_all(cli)[ALICE]
    assert not again["error"] and again["warnings"] == []
    assert again["created"] == again["forgotten"] == again["updated"] == 0
    assert again["write_requests"] == 0
    assert crm_ids(graph, ALICE) == Counter(ALICES)
