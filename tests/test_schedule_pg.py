"""Several `clock` processes on PostgreSQL share the work, each mailbox synced once per
change, and a process killed mid-sync leaves its mailboxes to the others.

Real processes on a throw-away database (the `pg_url` fixture); the embedded CRM and the
local target live in a temporary CRM_CONTACTS_HOME the processes share.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from test_schedule import (
    BIN,
    SLOW_WORKER,
    _env,
    log_lines,
    team_sharing_one_person,
    wait_until,
)

from sync_engine.config import load_settings
from sync_engine.service import Engine

pytestmark = pytest.mark.postgres

MAILBOXES = 50


@pytest.fixture
def team(home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """50 salespeople, each listing their own person and one person they all share."""
    monkeypatch.setenv("DATABASE_URL", pg_url)
    engine = Engine(load_settings())  # migrates the database before the processes start
    crm, shared, emails = team_sharing_one_person(engine, MAILBOXES)
    state = create_engine(engine.settings.state_url)
    try:
        yield {
            "engine": engine,
            "crm": crm,
            "shared": shared,
            "emails": emails,
            "state": state,
            "url": pg_url,
        }
    finally:
        state.dispose()
        engine.close()


def finished_runs(state) -> Counter[str]:  # type: ignore[no-untyped-def]
    with state.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT u.mailbox, count(*) FROM runs r JOIN users u ON u.id = r.user_id "
                "WHERE r.status NOT IN ('running', 'abandoned') GROUP BY u.mailbox"
            )
        )
        return Counter({mailbox: n for mailbox, n in rows})


def orphaned_runs(state, status: str = "running") -> list[str]:  # type: ignore[no-untyped-def]
    """Mailboxes with runs in `status`: 'running' now, or 'abandoned' once the next run
    of that mailbox found the dead one."""
    with state.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT u.mailbox FROM runs r JOIN users u ON u.id = r.user_id "
                "WHERE r.status = :status"
            ),
            {"status": status},
        )
        return [r[0] for r in rows]


def check_mailboxes(engine: Engine, emails: list[str], title: str) -> None:
    """Every mailbox holds exactly its two people, once each, linked, up to date."""
    target = create_engine(engine.settings.local_mailbox_url)
    with target.connect() as conn:
        rows = conn.execute(
            text("SELECT mailbox, crm_id, job_title, last_name FROM contacts")
        ).all()
    target.dispose()
    per_box = Counter(r[0] for r in rows)
    assert per_box == Counter({e: 2 for e in emails}), "a missing or duplicate contact"
    assert len({(r[0], r[1]) for r in rows}) == len(rows)
    assert {r[2] for r in rows if r[3] == "Customer"} == {title}
    for email in emails:
        user = engine.store.user_by_email(email)
        assert user is not None and len(engine.store.links(user.id)) == 2


def start(team: dict[str, Any], home: Path, tmp_path: Path, name: str, *command: str):  # type: ignore[no-untyped-def]
    err = tmp_path / f"{name}.err"
    process = subprocess.Popen(
        list(command),
        env=_env(home, DATABASE_URL=team["url"]),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=err.open("w"),
    )
    return process, err


def synced_by(err: Path) -> Counter[str]:
    return Counter(line["mailbox"] for line in log_lines(err) if line.get("event") == "sync")


def problems(*logs: Path) -> list[dict[str, Any]]:
    """Log lines worth seeing when a count is off: failures, errors, warnings."""
    return [
        line
        for log in logs
        for line in log_lines(log)
        if line.get("level") in ("warning", "error") or line.get("status") not in (None, "ok")
    ]


def settle(state, expected: int, emails: list[str]) -> Counter[str]:  # type: ignore[no-untyped-def]
    """Wait until every mailbox has `expected` finished runs, then two more cycles."""
    wait_until(
        lambda: all(finished_runs(state)[e] >= expected for e in emails),
        timeout=60,
        what=f"{expected} runs per mailbox",
    )
    time.sleep(2.0)  # two more 1 s cycles in each process: a duplicate would show
    return finished_runs(state)


def test_two_scheduler_processes_sync_each_mailbox_exactly_once_per_change(
    team: dict[str, Any], home: Path, tmp_path: Path
):
    engine, crm, shared, emails, state = (
        team["engine"],
        team["crm"],
        team["shared"],
        team["emails"],
        team["state"],
    )
    command = (str(BIN / "crm-contacts"), "scheduler")
    a, a_err = start(team, home, tmp_path, "a", *command)
    b, b_err = start(team, home, tmp_path, "b", *command)
    try:
        rounds = settle(state, 1, emails)
        assert rounds == Counter({e: 1 for e in emails}), problems(a_err, b_err)
        check_mailboxes(engine, emails, "Buyer")
        for n, title in enumerate(("Head of Buying", "CPO", "COO"), start=2):
            crm.update_person(shared, title=title)
            rounds = settle(state, n, emails)
            assert rounds == Counter({e: n for e in emails}), (n, problems(a_err, b_err))
            check_mailboxes(engine, emails, title)
        for process in (a, b):
            process.send_signal(signal.SIGTERM)
        assert a.wait(timeout=20) == 0 and b.wait(timeout=20) == 0
    finally:
        for process in (a, b):
            if process.poll() is None:
                process.kill()
    by_a, by_b = synced_by(a_err), synced_by(b_err)
    assert by_a + by_b == Counter({e: 4 for e in emails})  # 4 rounds, once each, in all
    assert sum(by_a.values()) > 0 and sum(by_b.values()) > 0, "both processes took work"
    print(f"\nshared: process A {sum(by_a.values())} syncs, process B {sum(by_b.values())}")


def test_a_process_killed_mid_sync_leaves_its_mailboxes_to_the_other(
    team: dict[str, Any], home: Path, tmp_path: Path
):
    engine, emails, state = team["engine"], team["emails"], team["state"]
    command = (sys.executable, "-c", SLOW_WORKER, "0.1")
    a, a_err = start(team, home, tmp_path, "a", *command)
    b, b_err = start(team, home, tmp_path, "b", *command)
    try:
        wait_until(lambda: sum(synced_by(a_err).values()) >= 3, what="A at work")
        # both processes are in the middle of a sync: kill A now
        wait_until(lambda: len(orphaned_runs(state)) == 2, what="two syncs running")
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=10)
        done_by_a = synced_by(a_err)

        rounds = settle(state, 1, emails)
        # B is idle now; A's interrupted run was marked abandoned when B synced that mailbox
        assert orphaned_runs(state) == []
        orphans = orphaned_runs(state, "abandoned")
        assert len(orphans) == 1, "A was killed in the middle of a sync"
        # each mailbox was synced once; A's interrupted one once more, by B
        assert rounds == Counter({e: 1 for e in emails}), problems(a_err, b_err)
        assert not set(done_by_a) & set(synced_by(b_err))
        assert orphans[0] in synced_by(b_err)
        check_mailboxes(engine, emails, "Buyer")
        b.send_signal(signal.SIGTERM)
        assert b.wait(timeout=20) == 0
    finally:
        for process in (a, b):
            if process.poll() is None:
                process.kill()
    print(f"\nA synced {sum(done_by_a.values())} before SIGKILL; B took over {orphans[0]}")
