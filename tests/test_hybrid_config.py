"""Issue 20, items 3 and 6: MAILBOX_BACKEND=hybrid's settings, decisions and bad input.

Hybrid without the settings of both targets, and a mailbox neither target serves, are one
clear line naming what is missing, and nothing of the user's list is lost meanwhile; the
decision is stored and asked again a day later. Both stand-ins run; the CLI is the path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from servers.ews import EwsServer, ews_server
from servers.graph import GraphServer, graph_server

from sync_engine.config import load_settings
from sync_engine.crm.embedded import seed_demo
from sync_engine.service import Engine
from sync_engine.state.targets import TargetState
from sync_engine.store import utcnow

ALICE = "alice@example.com"


@pytest.fixture
def servers(cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[EwsServer, GraphServer]]:  # type: ignore[no-untyped-def]
    with ews_server() as ews, graph_server() as graph:
        for name, value in {**graph.env(), **ews.env(), "MAILBOX_BACKEND": "hybrid"}.items():
            monkeypatch.setenv(name, value)
        engine = Engine(load_settings())
        try:
            seed_demo(engine.crm)
            engine.add(engine.user(ALICE), [1, 2, 3])
        finally:
            engine.close()
        yield ews, graph


def test_hybrid_without_both_targets_names_what_is_missing(
    servers, cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("EWS_URL")
    monkeypatch.delenv("GRAPH_CLIENT_SECRET")

    for args in (("sync", "--as", ALICE), ("check-mailbox", "--as", ALICE)):
        result = cli(*args)
        assert result.code == 1 and "Traceback" not in result.err
        [line] = result.err.strip().splitlines()
        assert "MAILBOX_BACKEND=hybrid needs the settings of both targets" in line
        assert "GRAPH_CLIENT_SECRET" in line and "EWS_URL" in line
    listed = json.loads(cli.ok("list", "--as", ALICE, "--json"))
    assert {p["status"] for p in listed} == {"pending add"} and len(listed) == 3


def test_a_mailbox_neither_target_serves_is_one_line_and_loses_nothing(servers, cli) -> None:  # type: ignore[no-untyped-def]
    ews, graph = servers
    graph.roles = ["Contacts.ReadWrite", "User.Read.All"]  # the app may look addresses up
    assert json.loads(cli.ok("sync", "--as", ALICE, "--json"))["mailboxes"][0]["created"] == 3
    graph.remove_mailbox(ALICE)  # no such user in the tenant
    ews.remove_mailbox(ALICE)  # and none on Exchange Server
    first = cli("sync", "--as", ALICE)  # the stored decision (Graph) fails: asked again next
    assert first.code == 1 and "no Exchange Online mailbox" in first.err

    result = cli("sync", "--as", ALICE)

    assert result.code == 1 and "Traceback" not in result.err
    [line] = result.err.strip().splitlines()
    assert "Neither target serves alice@example.com" in line
    assert "Exchange Online has no mailbox" in line and "Exchange has no mailbox" in line
    listed = json.loads(cli.ok("list", "--as", ALICE, "--json"))
    assert {p["status"] for p in listed} == {"synced"} and len(listed) == 3  # nothing forgotten


def test_the_decision_is_kept_a_day_then_checked_again(servers, cli) -> None:  # type: ignore[no-untyped-def]
    ews, graph = servers
    cli.ok("sync", "--as", ALICE)
    status = json.loads(cli.ok("status", "--json"))["mailboxes"][0]
    assert status["target"] == "graph" and "Exchange Online holds it" in status["target_reason"]

    graph.reset_counts()
    cli.ok("sync", "--as", ALICE)
    assert graph.requests_by_kind["list"] == 0  # no question to Graph: the decision stands

    engine = Engine(load_settings())
    try:
        placed = TargetState(engine.store.engine).placement(ALICE)
        assert placed is not None
        TargetState(engine.store.engine).place(
            ALICE, placed.kind, placed.why, utcnow() - timedelta(days=1, minutes=1)
        )
    finally:
        engine.close()
    graph.reset_counts()
    cli.ok("sync", "--as", ALICE)
    assert graph.requests_by_kind["list"] == 1  # asked again: still in Exchange Online
    assert ews.request_count == 0


def with_bob() -> str:
    """Bob, a second salesperson, with two people of his own in his list."""
    bob = "bob@example.com"
    engine = Engine(load_settings())
    try:
        engine.add(engine.user(bob), [9, 10])
    finally:
        engine.close()
    return bob


def test_a_mailbox_neither_target_serves_stops_no_other_mailbox(servers, cli) -> None:  # type: ignore[no-untyped-def]
    """DESIGN rule 10: one mailbox failing does not stop the others. Where hybrid mode
    cannot place a mailbox at all, `sync --all` still syncs the rest, prints its JSON, and
    the failure is the mailbox's own run: `status` shows it, like any failed sync."""
    ews, graph = servers
    bob = with_bob()
    graph.roles = ["Contacts.ReadWrite", "User.Read.All"]
    graph.remove_mailbox(ALICE)  # Alice is in neither Exchange
    ews.remove_mailbox(ALICE)
    graph.host_on_premises(bob)  # Bob is on Exchange Server

    result = cli("sync", "--all", "--json")

    assert result.code == 1 and "Traceback" not in result.err
    runs = {m["mailbox"]: m for m in json.loads(result.out)["mailboxes"]}
    assert "Neither target serves alice@example.com" in runs[ALICE]["error"]
    assert not runs[bob]["error"] and runs[bob]["created"] == 2
    status = {s["mailbox"]: s for s in json.loads(cli("status", "--json").out)["mailboxes"]}
    assert "Neither target serves" in (status[ALICE]["last_error"] or "")
    assert status[ALICE]["last_status"] == "failed"


def test_a_passing_graph_error_at_the_daily_check_moves_no_mailbox(servers, cli) -> None:  # type: ignore[no-untyped-def]
    """The daily question to Graph fails (HTTP 500): each mailbox stays where it was served,
    is synced there, and is asked again at the next sync; a cloud mailbox is never tried on
    Exchange Server for it, nor an on-premises one on Graph."""
    ews, graph = servers
    bob = with_bob()
    graph.host_on_premises(bob)
    placed = {m["mailbox"]: m for m in json.loads(cli("sync", "--all", "--json").out)["mailboxes"]}
    assert not placed[ALICE]["error"] and not placed[bob]["error"]
    engine = Engine(load_settings())
    try:
        targets = TargetState(engine.store.engine)
        for who in (ALICE, bob):
            before = targets.placement(who)
            assert before is not None
            targets.place(who, before.kind, before.why, utcnow() - timedelta(days=2))
    finally:
        engine.close()

    for who, kind in ((ALICE, "graph"), (bob, "ews")):
        ews.reset_counts()
        graph.inject("status", status=500, on="list")  # the placement question fails
        result = json.loads(cli("sync", "--as", who, "--json").out)["mailboxes"][0]
        assert not result["error"] and result["created"] == result["forgotten"] == 0
        if kind == "graph":
            assert ews.request_count == 0  # not tried on Exchange Server
        status = {s["mailbox"]: s for s in json.loads(cli("status", "--json").out)["mailboxes"]}
        assert status[who]["target"] == kind
