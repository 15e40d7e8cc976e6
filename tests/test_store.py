"""The state store on SQLite and on PostgreSQL: the same behaviour on both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from sync_engine import migrate, queue
from sync_engine.model import DigestPrefs, Link
from sync_engine.store import MailboxBusy, Store


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(state_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    s = Store.open(state_url, tmp_path / "home")
    yield s
    s.close()


def test_schema_is_migrated_to_head_on_open(store: Store):
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    assert migrate.upgrade(store.engine) is False  # nothing left to run


def test_users_are_created_once(store: Store):
    a = store.ensure_user(7, "Alice@Example.com")
    b = store.ensure_user(7, "alice@example.com")
    assert a == b and a.email == "alice@example.com" and a.mailbox == "alice@example.com"
    store.set_slack_user(a.id, "U123", "Europe/Berlin")
    assert store.user_by_slack("U123").slack_tz == "Europe/Berlin"  # type: ignore[union-attr]


def test_subscriptions_are_idempotent_and_audited(store: Store):
    u = store.ensure_user(1, "a@example.com")
    assert store.add_subscriptions(u.id, {1: "One", 2: "Two"}, "cli", "a@example.com") == [1, 2]
    assert store.add_subscriptions(u.id, {2: "Two", 3: "Three"}, "cli", "a@example.com") == [3]
    assert set(store.subscriptions(u.id)) == {1, 2, 3}
    assert store.remove_subscriptions(u.id, [2, 9], "a@example.com") == [2]
    assert set(store.subscriptions(u.id)) == {1, 3}
    actions = [(e.person_id, e.action) for e in store.events(u.id)]
    assert actions == [(1, "subscribed"), (2, "subscribed"), (3, "subscribed"), (2, "unsubscribed")]
    assert store.events(u.id, person_id=1)[0].person_name == "One"
    assert store.mailbox_state(u.id).list_changed_at is not None


def test_a_batch_of_state_changes_commits_together_or_not_at_all(store: Store):
    u = store.ensure_user(1, "a@example.com")
    store.add_subscriptions(u.id, {1: "One"}, "cli", "x")
    with store.writer(u.id, None, "sync") as w:
        w.put_link(Link(1, "item-1", "ck1", "fp1", "created"))
    with pytest.raises(RuntimeError), store.writer(u.id, None, "sync") as w:
        w.drop_link(1)
        w.drop_subscription(1)
        raise RuntimeError("killed mid-batch")
    assert store.links(u.id) == {1: Link(1, "item-1", "ck1", "fp1", "created")}
    assert set(store.subscriptions(u.id)) == {1}
    with store.writer(u.id, None, "sync") as w:
        w.put_link(Link(1, "item-1", "ck2", "fp2", "created"))
    assert store.links(u.id)[1].change_key == "ck2"


def test_links_rewritten_moved_and_written_with_the_runs_end(store: Store):
    """One upsert writes links on SQLite and PostgreSQL: a rewritten link keeps when it
    was made and takes the rest; an item handed from one person to another in one batch
    (a CRM merge) is one link; the last batch's state is written with the run's end, or
    not at all."""
    from sqlalchemy import select

    from sync_engine import tables as t

    u = store.ensure_user(1, "a@example.com")

    def linked_at() -> dict[int, datetime]:
        with store.engine.connect() as conn:
            rows = conn.execute(select(t.links.c.person_id, t.links.c.linked_at))
            return {r[0]: r[1] for r in rows}

    with store.writer(u.id, None, "sync") as w:
        w.put_link(Link(1, "item-1", "ck1", "fp1", "created", {"job_title": "A"}))
        w.put_link(Link(2, "item-2", "ck1", "fp1", "created"))
    made = linked_at()
    with store.writer(u.id, None, "sync") as w:
        w.drop_link(1)
        w.put_link(Link(2, "item-1", "ck2", "fp2", "linked", None, {"job_title": "B"}))
        w.put_link(Link(3, "item-2", "ck3", "fp3", "created"))
    assert store.links(u.id) == {
        2: Link(2, "item-1", "ck2", "fp2", "linked", None, {"job_title": "B"}),
        3: Link(3, "item-2", "ck3", "fp3", "created"),
    }
    assert linked_at()[2] == made[2]

    run = store.start_run(u.id, "schedule", False, abandon_running=True)
    last = store.buffer(u.id, run, "sync")
    last.put_link(Link(4, "item-4", "ck4", "fp4", "created"))
    last.event(4, "created", "in the list", "item-4")
    assert 4 not in store.links(u.id)  # gathered, not written yet
    store.finish_run(run, "ok", {}, None, state=(u.id, {"last_status": "ok"}), pending=last)
    assert store.links(u.id)[4].item_id == "item-4"
    assert [e.action for e in store.events(u.id) if e.person_id == 4] == ["created"]


def test_runs_and_mailbox_state(store: Store):
    u = store.ensure_user(1, "a@example.com")
    run = store.start_run(u.id, "manual", False)
    store.finish_run(run, "ok", {"created": 2}, None)
    [record] = store.runs(u.id)
    assert (
        record.status == "ok" and record.result == {"created": 2} and record.finished_at is not None
    )
    store.update_mailbox_state(
        u.id, last_status="failed", last_error="server down", consecutive_failures=2
    )
    state = store.mailbox_state(u.id)
    assert (state.last_status, state.last_error, state.consecutive_failures) == (
        "failed",
        "server down",
        2,
    )


def test_one_sync_per_mailbox_at_a_time(store: Store, state_url: str, tmp_path: Path):
    other = Store.open(state_url, tmp_path / "home")  # a second process would open its own
    try:
        with store.mailbox_lock("a@example.com"):
            with pytest.raises(MailboxBusy), other.mailbox_lock("A@example.com"):
                pass
            with other.mailbox_lock("b@example.com"):
                pass  # another mailbox is not held up
        with other.mailbox_lock("a@example.com"):
            pass
    finally:
        other.close()


def test_a_killed_holder_releases_the_lock(store: Store, state_url: str, tmp_path: Path):
    holder = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from sync_engine.store import Store
        s = Store.open({state_url!r}, Path({str(tmp_path / "home")!r}))
        with s.mailbox_lock("a@example.com"):
            print("held", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(MailboxBusy), store.mailbox_lock("a@example.com"):
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while True:  # PostgreSQL notices the dead connection a moment later
        try:
            with store.mailbox_lock("a@example.com"):
                break
        except MailboxBusy:
            assert time.monotonic() < deadline, "the lock outlived its holder"
            time.sleep(0.1)


def test_the_whole_story_runs_with_postgresql_state(cli, pg_url: str, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", pg_url.replace("postgresql+psycopg://", "postgresql://"))
    cli.ok("crm", "seed")
    cli.ok("add-group", "--as", "alice@example.com")
    first = json.loads(cli.ok("sync", "--as", "alice@example.com", "--json"))["mailboxes"][0]
    assert first["created"] == 4
    again = json.loads(cli.ok("sync", "--as", "alice@example.com", "--json"))["mailboxes"][0]
    assert again["write_requests"] == 0
    [status] = json.loads(cli.ok("status", "--json"))["mailboxes"]
    assert status["linked"] == 4 and status["last_status"] == "ok"


def test_processes_starting_together_on_a_new_postgresql_database(pg_url: str, tmp_path: Path):
    start = time.time() + 3  # every process imports first, then all open at this moment
    opener = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from sync_engine.store import Store
        time.sleep(max(0, {start} - time.time()))
        Store.open({pg_url!r}, Path("."))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", opener], stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    errors = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    store = Store.open(pg_url, tmp_path)
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    store.close()


def test_a_run_left_running_by_a_dead_process_is_marked_abandoned(store: Store):
    u = store.ensure_user(1, "a@example.com")
    dead = store.start_run(u.id, "manual", False)
    assert store.abandon_runs(u.id) == 1
    [record] = store.runs(u.id)
    assert record.id == dead and record.status == "abandoned" and "died" in (record.error or "")


def test_digest_settings_default_stored_and_seen_by_the_scheduler(store: Store):
    u = store.ensure_user(1, "a@example.com")
    other = store.ensure_user(2, "b@example.com")
    assert store.digest_prefs(u.id) == DigestPrefs()
    at = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    store.set_digest_prefs(
        u.id,
        at,
        time="17:30",
        frequency="weekly",
        weekday=4,
        snoozed_until=date(2026, 3, 17),
        off=True,
    )
    weekly = DigestPrefs(
        time="17:30",
        frequency="weekly",
        weekday=4,
        snoozed_until=date(2026, 3, 17),
        off=True,
        chosen_time=True,
        changed_at=at,
    )
    assert store.digest_prefs(u.id) == weekly
    store.set_digest_prefs(u.id, at + timedelta(hours=1), time=None, off=False)
    later = store.digest_prefs(u.id)
    assert (later.time, later.chosen_time, later.off, later.weekday) == (None, False, False, 4)
    assert store.digest_prefs(other.id) == DigestPrefs()
    # the scheduler reads them with the mailbox rows, in the same query
    for user in (u, other):
        store.update_mailbox_state(user.id, list_changed_at=at)
    rows = {row.user.id: row.digest for row in queue.mailboxes(store)}
    assert rows == {u.id: later, other.id: DigestPrefs()}


def test_the_same_people_added_by_racing_clicks_are_added_once(
    store: Store, state_url: str, tmp_path: Path
):
    import threading

    user = store.ensure_user(1, "a@example.com")
    names = {pid: f"P{pid}" for pid in range(1, 21)}
    stores = [Store.open(state_url, tmp_path / "home") for _ in range(4)]  # as four web processes
    results: list[list[int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def click(s: Store) -> None:
        try:
            start.wait()
            results.append(s.add_subscriptions(user.id, names, "slack", "U1"))
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=click, args=(s,)) for s in stores]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for s in stores:
        s.close()
    assert errors == []
    assert sorted(pid for r in results for pid in r) == list(names)  # each added by one click
    assert set(store.subscriptions(user.id)) == set(names)
    assert len([e for e in store.events(user.id) if e.action == "subscribed"]) == 20
