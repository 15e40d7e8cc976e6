"""Prometheus metrics and health checks (issue 22), read over HTTP as Prometheus and an
orchestrator would: `GET /metrics` and `GET /healthz` of the web process (the same
WSGI app `serve` runs) and of the clock's listener (the wiring `crm-contacts scheduler`
uses, and the real process once). Each metric is shown moving when its event happens,
on the local target and on the Graph stand-in.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers.graph import GraphServer, graph_server
from servers.slack import BOT_TOKEN, SIGNING_SECRET, SlackSender, SlackStandIn
from test_alerts import make_rig
from test_schedule import BIN, Clock, CountingTarget
from test_write_back_on_targets import by_last, outlook_edit, synced

from bot.app import build_app
from bot.ops import watch
from bot.server import HttpServer, web_wsgi
from sync_engine.config import load_settings
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.index.state import claim_build
from sync_engine.schedule import Scheduler
from sync_engine.service import Engine

ALICE, BOB = "alice@example.com", "bob@example.com"

Sample = tuple[str, frozenset[tuple[str, str]]]


def scrape(base: str) -> dict[Sample, float]:
    """Every sample of `GET /metrics`, parsed by Prometheus's own text-format parser."""
    response = httpx.get(base + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


class Metrics:
    """Reads one process's /metrics before and after an event."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.before = scrape(base)

    def now(self, name: str, **labels: str) -> float:
        return scrape(self.base).get((name, frozenset(labels.items())), 0.0)

    def moved(self, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return scrape(self.base).get(key, 0.0) - self.before.get(key, 0.0)

    def mark(self) -> None:
        self.before = scrape(self.base)


@contextlib.contextmanager
def web_process(engine: Engine, app=None) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The web process's HTTP end as `crm-contacts serve` builds it (Bolt optional)."""
    server = HttpServer(web_wsgi(app, engine), "127.0.0.1", 0)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


# -- syncs, round trips, write-backs, throttling ------------------------------------------


@pytest.fixture(params=["local", "graph"])
def target(request, home, monkeypatch) -> Iterator[tuple[Engine, GraphServer | None]]:  # type: ignore[no-untyped-def]
    with graph_server() if request.param == "graph" else contextlib.nullcontext() as server:
        for name, value in (server.env() if server else {}).items():
            monkeypatch.setenv(name, value)
        engine = Engine(load_settings())
        seed_demo(engine.crm)
        yield engine, server
        engine.close()


def test_syncs_round_trips_and_write_backs_move_on_each_target(target):  # type: ignore[no-untyped-def]
    engine, server = target
    name = engine.settings.mailbox_backend
    with web_process(engine) as base:
        m = Metrics(base)
        alice, _ = synced(engine)  # the Design Right people, created in Alice's mailbox
        assert m.moved("crm_contacts_syncs_total", target=name, outcome="ok") == 1
        reads = m.moved("crm_contacts_mailbox_requests_total", target=name, kind="read")
        writes = m.moved("crm_contacts_mailbox_requests_total", target=name, kind="write")
        assert reads >= 1 and writes >= 1  # listed, then created in batches

        m.mark()
        outlook_edit(engine, by_last(engine, "Brontë"), job_title="Head of Design")
        result = engine.sync(alice)
        assert result.count("written_back") == 1
        assert m.moved("crm_contacts_write_backs_total", outcome="written") == 1
        assert m.moved("crm_contacts_syncs_total", target=name, outcome="ok") == 1
        # the counters say what the sync itself counted, round trip for round trip
        assert (
            m.moved("crm_contacts_mailbox_requests_total", target=name, kind="read")
            == result.requests - result.write_requests
        )
        assert (
            m.moved("crm_contacts_mailbox_requests_total", target=name, kind="write")
            == result.write_requests
        )
        text = httpx.get(base + "/metrics").text
        assert ALICE not in text and "alice" not in text.lower()  # counted, never named

        if server is not None:  # Graph: a refused mailbox, and a throttled request
            m.mark()
            server.block_mailbox(ALICE)
            assert engine.sync(alice).error
            assert m.moved("crm_contacts_syncs_total", target=name, outcome="failed") == 1
            server.clear_faults()
            server.unblock_mailbox(ALICE)
            m.mark()
            server.inject("throttle", on="graph", retry_after=1)  # 429, Retry-After: 1
            assert engine.sync(alice).error is None
            assert m.moved("crm_contacts_throttle_wait_seconds_total", service="graph") == 1.0


# -- the web process ----------------------------------------------------------------------


def test_web_process_healthz_checks_the_state_database_and_acks_are_timed(
    home: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
):
    """On PostgreSQL state: /healthz is 200 while the database answers and 503 once it is
    gone; a signed slash command's ack shows in the ack histogram."""
    import psycopg

    monkeypatch.setenv("DATABASE_URL", pg_url)
    with SlackStandIn() as slack:
        slack.add_user("U_ALICE", ALICE)
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
        monkeypatch.setenv("SLACK_API_URL", slack.api_url)
        settings = load_settings()
        engine = Engine(settings)
        seed_demo(engine.crm)
        try:
            with web_process(engine, build_app(settings, engine)) as base:
                healthy = httpx.get(base + "/healthz")
                assert healthy.status_code == 200
                assert healthy.json() == {"ok": True, "database": "ok"}
                m = Metrics(base)
                reply, _ = SlackSender(base + "/slack/events", slack).command("status")
                assert reply.status == 200
                assert m.moved("crm_contacts_chat_ack_seconds_count", front_end="slack") == 1
                assert 0 < m.moved("crm_contacts_chat_ack_seconds_sum", front_end="slack") < 3

                name = pg_url.rsplit("/", 1)[1]
                with psycopg.connect(
                    "host=127.0.0.1 port=5432 dbname=test user=postgres", autocommit=True
                ) as conn:
                    conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                down = httpx.get(base + "/healthz")
                assert down.status_code == 503
                assert down.json()["ok"] is False
                assert down.json()["database"].startswith("unreachable (")
                assert httpx.get(base + "/metrics").status_code == 200  # still scraped
        finally:
            engine.close()


# -- the clock ----------------------------------------------------------------------------


@pytest.fixture
def clock_rig(home: Path) -> Iterator[tuple[Engine, Scheduler, Clock, CountingTarget, str]]:
    """The demo's two lists and a clock with its listener on a free port."""
    counted = CountingTarget()
    engine = Engine(load_settings(), mailbox_factory=counted)
    rig = make_rig(engine, None, port=0)
    assert rig.listener is not None
    try:
        yield engine, rig.scheduler, rig.clock, counted, f"http://127.0.0.1:{rig.listener.port}"
    finally:
        rig.listener.close()
        engine.close()


def test_clock_healthz_fails_once_its_last_cycle_is_older_than_three_intervals(clock_rig):  # type: ignore[no-untyped-def]
    engine, scheduler, clock, _, base = clock_rig
    interval = engine.settings.sync_interval_seconds
    fresh = httpx.get(base + "/healthz")  # a new process has three intervals for its first
    assert fresh.status_code == 200 and fresh.json()["last_cycle_at"] is None
    clock.advance(seconds=3 * interval + 1)
    assert httpx.get(base + "/healthz").status_code == 503  # never ran a cycle
    scheduler.run_cycle()
    assert httpx.get(base + "/healthz").status_code == 200
    clock.advance(seconds=3 * interval)
    assert httpx.get(base + "/healthz").status_code == 200  # exactly three: still fine
    clock.advance(seconds=1)
    stale = httpx.get(base + "/healthz")
    assert stale.status_code == 503
    assert stale.json()["age_seconds"] == 3 * interval + 1
    assert stale.json()["limit_seconds"] == 3 * interval
    assert httpx.get(base + "/nothing-here").status_code == 404


def test_cycle_gauges_move_with_due_failing_and_lagging(clock_rig):  # type: ignore[no-untyped-def]
    engine, scheduler, clock, counted, base = clock_rig
    m = Metrics(base)
    # both lists changed "now"; the clock first looks 5 minutes later
    clock.advance(minutes=5)
    counted.down.add(ALICE)
    report = scheduler.run_cycle()
    assert report.due == 2 and report.failed == [ALICE]
    assert m.moved("crm_contacts_cycle_duration_seconds_count") == 1
    assert m.now("crm_contacts_last_cycle_timestamp_seconds") == clock.t.timestamp()
    assert m.now("crm_contacts_mailboxes_due") == 2
    assert 300 <= m.now("crm_contacts_oldest_due_age_seconds") < 330
    assert m.now("crm_contacts_mailboxes_failing") == 1
    assert m.now("crm_contacts_index_lag_seconds") == 0  # the cycle refreshed it

    # Alice's retry is due in two minutes; the clock looks at minute 3. Her list changed
    # 8 minutes ago and is still not in her mailbox: that is how long her work has waited
    clock.advance(minutes=3)
    counted.down.clear()
    assert scheduler.run_cycle().synced == [ALICE]
    assert m.now("crm_contacts_mailboxes_due") == 1
    assert 480 <= m.now("crm_contacts_oldest_due_age_seconds") < 510
    assert m.now("crm_contacts_mailboxes_failing") == 0

    # another process starts rebuilding the index and a person changes in the CRM
    # meanwhile: the cycle cannot take the change in, and the lag shows it
    claim_build(engine.store.engine)
    time.sleep(0.01)  # the change comes after the index's last look
    EmbeddedCrm(engine.crm).update_person(by_name(engine, "Wei", "Chen"), title="CTO")
    clock.advance(minutes=1)
    scheduler.run_cycle()
    assert 0 < m.now("crm_contacts_index_lag_seconds") < 60


def by_name(engine: Engine, first: str, last: str) -> int:
    user = engine.user(ALICE)
    [person] = [
        p
        for p in engine.search(user, f"{first} {last}").people
        if (p.first_name, p.last_name) == (first, last)
    ]
    return person.id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(0.1)
    raise AssertionError(f"waited {seconds} s for {what}")


def test_the_scheduler_process_serves_metrics_and_healthz_at_metrics_port(
    home: Path, tmp_path: Path
):
    engine = Engine(load_settings())
    seed_demo(engine.crm)  # nobody has a list yet: idle cycles
    engine.close()
    port = free_port()
    env = {
        **os.environ,
        "CRM_CONTACTS_HOME": str(home),
        "METRICS_PORT": str(port),
        "SYNC_INTERVAL_SECONDS": "1",
    }
    process = subprocess.Popen(
        [str(BIN / "crm-contacts"), "scheduler"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(base + "/healthz").status_code == 200, "/healthz")
        wait_for(
            lambda: (
                scrape(base).get(("crm_contacts_cycle_duration_seconds_count", frozenset()), 0) >= 2
            ),
            "two cycles in /metrics",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_the_example_grafana_dashboard_reads_only_metrics_we_export(home: Path):
    """docs/grafana-dashboard.json: valid JSON, and every series it queries exists."""
    import json
    import re

    dashboard = json.loads(
        (Path(__file__).parent.parent / "docs/grafana-dashboard.json").read_text()
    )
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"crm_contacts_[a-z_]+", target["expr"])
    }
    engine = Engine(load_settings())
    listener = watch(Scheduler(engine), listen=True, host="127.0.0.1", port=0)
    assert listener is not None
    try:
        with web_process(engine) as base:  # the web process and the clock
            exported = {name for name, _ in scrape(base)}
        exported |= {name for name, _ in scrape(f"http://127.0.0.1:{listener.port}")}
    finally:
        listener.close()
        engine.close()
    assert len(queried) >= 10 and queried <= exported, queried - exported
