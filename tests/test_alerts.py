"""Admin alerts (issue 22): posted to ADMIN_CHANNEL through the Slack stand-in when a
problem starts and when it clears, at most once a day per problem, and `status` exits 1
while one is open. The clock is wired as `crm-contacts scheduler` wires it (`bot.ops.watch`)
and reads the test's time; the mailboxes are the local target and the Graph stand-in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from servers.graph import GraphServer, graph_server
from servers.slack import BOT_TOKEN, SlackStandIn, all_text
from test_schedule import Clock, CountingTarget, state

from bot.ops import watch
from bot.server import HttpServer
from sync_engine.config import load_settings
from sync_engine.crm.embedded import seed_demo
from sync_engine.schedule import CycleReport, Scheduler
from sync_engine.service import Engine

ALICE, BOB = "alice@example.com", "bob@example.com"
ADMIN = "C_ADMIN"


@dataclass
class Rig:
    engine: Engine
    scheduler: Scheduler
    clock: Clock
    slack: SlackStandIn | None
    listener: HttpServer | None = None  # the clock's /metrics and /healthz, when asked for

    def alerts(self) -> list[str]:
        """The text of every message posted to the admin channel, oldest first."""
        assert self.slack is not None
        return [
            all_text(c.blocks)
            for c in self.slack.of("chat.postMessage")
            if c.params["channel"] == ADMIN
        ]

    def retry(self, email: str = ALICE) -> CycleReport:
        """The clock at the mailbox's next retry, and its cycle."""
        self.clock.t = state(self.engine, email).next_due_at  # type: ignore[assignment]
        return self.scheduler.run_cycle()


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackStandIn]:
    with SlackStandIn() as stand_in:
        stand_in.add_channel(ADMIN, private=True, member=True)
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_API_URL", stand_in.api_url)
        monkeypatch.setenv("ADMIN_CHANNEL", ADMIN)
        yield stand_in
        assert stand_in.violations == []


def make_rig(engine: Engine, slack: SlackStandIn | None, port: int | None = None) -> Rig:
    """The demo (Alice lists Acme, Bob Design Right) and a clock watched as `crm-contacts
    scheduler` watches it; with `port`, its listener too."""
    seed_demo(engine.crm)
    alice, bob = engine.user(ALICE), engine.user(BOB)
    engine.add(alice, [p.id for p in engine.search(alice, 'company:"Acme Corp"').people])
    engine.add(bob, [p.id for p in engine.search(bob, 'company:"Design Right Inc."').people])
    clock = Clock()
    scheduler = Scheduler(engine, now=clock)
    listener = watch(scheduler, listen=port is not None, host="127.0.0.1", port=port)
    return Rig(engine, scheduler, clock, slack, listener)


def status(cli: Any) -> tuple[int, dict[str, Any]]:
    result = cli("status", "--json")
    return result.code, json.loads(result.out)


def test_a_mailbox_failing_three_cycles_is_posted_once_and_its_recovery_once_not_again_that_day(
    home: Path, slack: SlackStandIn, cli: Any
):
    counted = CountingTarget()
    engine = Engine(load_settings(), mailbox_factory=counted)
    rig = make_rig(engine, slack)
    counted.down.add(ALICE)
    assert rig.scheduler.run_cycle().failed == [ALICE]
    assert rig.retry().failed == [ALICE]
    assert rig.alerts() == []  # two failures: not yet
    assert status(cli)[0] == 0
    assert rig.retry().failed == [ALICE]
    (started,) = rig.alerts()
    assert ALICE in started and "failed 3 syncs in a row" in started
    assert "did not answer" in started  # the error itself
    assert f"check-mailbox --as {ALICE}" in started  # and the fix
    code, shown = status(cli)
    assert code == 1
    assert [(p["kind"], p["mailbox"]) for p in shown["problems"]] == [("mailbox_failing", ALICE)]
    text = cli("status")
    assert text.code == 1 and "problem: " in text.out and "1 problem open" in text.err

    rig.retry()
    rig.retry()
    assert len(rig.alerts()) == 1  # still failing: said once

    counted.down.clear()
    assert rig.retry().synced == [ALICE]
    assert len(rig.alerts()) == 2
    assert "Resolved" in rig.alerts()[1] and ALICE in rig.alerts()[1]
    assert status(cli) == (0, status(cli)[1]) and status(cli)[1]["problems"] == []

    # the same day it fails three times again, then recovers: nothing more is posted
    alice = engine.user(ALICE)
    extra = engine.search(alice, 'company:"Design Right Inc."').people
    counted.down.add(ALICE)
    engine.add(alice, [extra[0].id])  # a list change makes it due
    assert rig.scheduler.run_cycle().failed == [ALICE]
    rig.retry()
    rig.retry()
    assert status(cli)[0] == 1  # open, and status says so
    counted.down.clear()
    assert rig.retry().synced == [ALICE]
    assert len(rig.alerts()) == 2

    # a day after the first message it happens again: posted again
    rig.clock.advance(days=1)
    counted.down.add(ALICE)
    engine.add(alice, [extra[1].id])
    rig.scheduler.run_cycle()
    rig.retry()
    rig.retry()
    assert len(rig.alerts()) == 3 and "failed 3 syncs in a row" in rig.alerts()[2]
    assert [c.error for c in slack.refused()] == []


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphServer]:
    with graph_server() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server


def test_a_graph_401_with_its_aadsts_code_is_one_credentials_alert_for_every_mailbox(
    home: Path, graph: GraphServer, slack: SlackStandIn, cli: Any
):
    """The client secret expires: Entra ID answers the token request with 401
    invalid_client AADSTS7000222. Every mailbox fails; the admins get one message naming
    the code and the fix (the words check-mailbox prints), and one when it is fixed."""
    engine = Engine(load_settings())
    rig = make_rig(engine, slack)
    assert sorted(rig.scheduler.run_cycle().synced) == [ALICE, BOB]

    graph.expire_secret()
    rig.clock.advance(hours=25)  # the daily reconcile of both mailboxes
    assert sorted(rig.scheduler.run_cycle().failed) == [ALICE, BOB]
    (alert,) = rig.alerts()
    assert "refused our sign-in (AADSTS7000222): 2 mailboxes cannot be synced" in alert
    assert "client secret" in alert and "Certificates &amp; secrets" in alert  # escaped
    assert "check-mailbox --as" in alert
    checked = cli("check-mailbox", "--as", ALICE)
    assert checked.code == 1 and "AADSTS7000222" in checked.err
    code, shown = status(cli)
    assert code == 1
    (problem,) = shown["problems"]
    assert (problem["kind"], problem["key"]) == ("credentials", "graph")
    assert "AADSTS7000222" in problem["summary"] and "GRAPH_CLIENT_SECRET" in problem["fix"]

    rig.retry()  # still refused: nothing more
    assert len(rig.alerts()) == 1

    graph.renew_secret()
    rig.clock.t = max(state(engine, e).next_due_at for e in (ALICE, BOB))  # type: ignore[type-var]
    assert sorted(rig.scheduler.run_cycle().synced) == [ALICE, BOB]
    assert len(rig.alerts()) == 2 and "Resolved" in rig.alerts()[1]
    assert status(cli)[0] == 0


def test_a_refused_sign_in_in_hybrid_names_the_service_that_refused_it(
    home: Path, graph: GraphServer, slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch
):
    """MAILBOX_BACKEND=hybrid: the mailboxes Exchange Online serves fail when Graph's
    secret expires; the admins are told Graph refused (with its code), not "hybrid"."""
    from servers.ews import ews_server

    with ews_server() as ews:
        for name, value in {**ews.env(), "MAILBOX_BACKEND": "hybrid"}.items():
            monkeypatch.setenv(name, value)
        engine = Engine(load_settings())
        rig = make_rig(engine, slack)
        assert sorted(rig.scheduler.run_cycle().synced) == [ALICE, BOB]  # both in Graph
        graph.expire_secret()
        rig.clock.advance(hours=25)
        assert sorted(rig.scheduler.run_cycle().failed) == [ALICE, BOB]
        (alert,) = rig.alerts()
        assert "Microsoft Entra ID / Graph refused our sign-in (AADSTS7000222)" in alert
        engine.close()


def test_status_exit_codes_for_cron(home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch):
    assert cli("status").code == 0  # nothing set up: nothing wrong
    monkeypatch.setenv("CRM_DATABASE_URL", "postgresql://crm@127.0.0.1:1/CRM")  # nothing listens
    result = cli("status", "--json")
    assert result.code == 1
    (problem,) = json.loads(result.out)["problems"]
    assert problem["kind"] == "crm_unreachable" and "crm check" in problem["fix"]
    assert "1 problem open" in result.err and "Traceback" not in result.err


def test_two_clocks_deciding_at_once_never_lose_a_clear(
    home: Path, slack: SlackStandIn, pg_url: str
) -> None:
    """Two clock processes on PostgreSQL: one posts a problem's start (its day of quiet
    has passed) while the other, which no longer finds the problem, is closing it from
    what it read a moment before ("start not posted"). The admins saw the start, so they
    must see the clear; nothing of ours is replaced, the second process's whole turn
    runs between the first one's read and its write (a database event)."""
    from datetime import timedelta

    from sqlalchemy import event

    from bot.alerts import SlackAlerts
    from bot.app import web_client
    from sync_engine.ops.alerts import Announcer
    from sync_engine.ops.problems import Findings, Problem
    from sync_engine.store import Store

    down = Problem("crm_unreachable", "crm", "The CRM database cannot be read", "crm check")
    sender = SlackAlerts(web_client(load_settings()), ADMIN)
    one, other = Store.open(pg_url, home), Store.open(pg_url, home)
    first, second = Announcer(one, [sender]), Announcer(other, [sender])
    t0 = Clock()()
    try:
        second.announce(Findings([down]), t0)  # posted
        second.announce(Findings([]), t0 + timedelta(hours=1))  # cleared, posted
        second.announce(Findings([down]), t0 + timedelta(hours=2))  # back: quiet that day
        later = t0 + timedelta(hours=25)
        turns: list[str] = []

        def second_turn(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
            if not turns and statement.lstrip().startswith("SELECT") and "alerts" in statement:
                turns.append("second")
                second.announce(Findings([down]), later)  # a day on: its start goes out

        event.listen(one.engine, "after_cursor_execute", second_turn)
        first.announce(Findings([]), later)  # no longer found here
        event.remove(one.engine, "after_cursor_execute", second_turn)
        first.announce(Findings([]), later + timedelta(minutes=1))
        assert turns == ["second"]
        posted = [text.split(":", 2)[1].strip() for text in _admin_texts(slack)]
        assert posted == ["Problem", "Resolved", "Problem", "Resolved"], posted
    finally:
        one.close()
        other.close()


def _admin_texts(slack: SlackStandIn) -> list[str]:
    return [
        str(c.params.get("text") or "")
        for c in slack.of("chat.postMessage")
        if c.params["channel"] == ADMIN
    ]
