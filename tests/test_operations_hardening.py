"""What operations must not allow (issue 22, item 5), found by a hostile tester: idle
connections that crowd Slack out of `serve`, a home someone else could have planted
files in, and a Slack user who stopped being a member but kept acting.

Real processes and sockets: the waitress server with the Bolt app on 127.0.0.1, signed
requests, the Slack stand-in, the CLI in process. Nothing of ours is mocked.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import test_bot_http
from servers.slack import all_text
from sqlalchemy import update
from test_bot_http import Bot

from bot import server as bot_server
from bot.server import HttpServer, SlackWsgi
from sync_engine import tables as t

ALICE = "alice@example.com"


# the running bot (waitress + Bolt) and the Slack stand-in it talks to: test_bot_http's
bot = test_bot_http.bot
slack = test_bot_http.slack


# -- idle connections ---------------------------------------------------------------------


def idle_connections(port: int, count: int) -> list[socket.socket]:
    """`count` TCP connections that say nothing, as a careless or hostile client keeps."""
    opened = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        opened.append(s)
    return opened


def test_a_signed_request_is_answered_while_200_idle_connections_are_open(bot: Bot) -> None:
    port = int(bot.url.rsplit(":", 1)[1])
    idle = idle_connections(port, 200)
    try:
        time.sleep(0.5)  # the server has accepted what it will accept
        reply, _ = bot.send.command("list")
        assert reply.status == 200
        assert bot.send.last_elapsed < 3.0, "Slack needs the ack within 3 seconds"
    finally:
        for s in idle:
            s.close()


def test_a_quiet_connection_is_closed_after_the_channel_timeout(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot_server, "CHANNEL_TIMEOUT", 1)
    monkeypatch.setattr(bot_server, "CLEANUP_INTERVAL", 1)
    server = HttpServer(SlackWsgi(None), "127.0.0.1", 0)
    server.start()
    try:
        [quiet] = idle_connections(server.port, 1)
        quiet.settimeout(10)
        began = time.monotonic()
        assert quiet.recv(1) == b""  # the server hung up on it
        assert time.monotonic() - began < 5
        quiet.close()
    finally:
        server.close()


# -- the home -----------------------------------------------------------------------------


def refused(result, *words: str) -> str:  # type: ignore[no-untyped-def]
    assert result.code == 1, result.out
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_a_home_owned_by_another_user_is_refused(cli, home: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a directory to another user")
    home.mkdir(mode=0o700)
    (home / ".env").write_text("CRM_CATEGORY=Planted\n")
    os.chown(home, 65534, 65534)
    refused(cli("crm", "seed"), str(home), "another user")
    assert sorted(p.name for p in home.iterdir()) == [".env"]  # nothing made there


def test_a_world_writable_home_is_refused(cli, home: Path) -> None:
    home.mkdir()
    home.chmod(0o777)
    refused(cli("crm", "seed"), str(home), "writable by every user")
    assert list(home.iterdir()) == []
    home.chmod(0o755)  # ours, only readable: made private and used, as before
    cli.ok("crm", "seed")
    assert home.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("planted", ["state.sqlite", "mailboxes.sqlite-wal", "crm.sqlite"])
def test_a_planted_database_link_is_refused_and_never_followed(
    cli, home: Path, tmp_path: Path, planted: str
) -> None:
    home.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    (home / planted).symlink_to(victim)
    result = cli("demo")
    refused(result, planted, "symbolic link")
    assert not victim.exists()


def test_a_planted_lock_link_is_refused_and_never_followed(cli, home: Path, tmp_path: Path) -> None:
    cli.ok("crm", "seed")
    victim = tmp_path / "victim"
    (home / "locks").mkdir(mode=0o700, exist_ok=True)
    (home / "locks" / "scheduler.lock").symlink_to(victim)
    refused(cli("scheduler", "--once"), "scheduler.lock", "symbolic link")
    assert not victim.exists()


# -- a Slack user who changed -------------------------------------------------------------


def set_checked(bot: Bot, slack_user_id: str, at: datetime) -> None:
    with bot.engine.store.engine.begin() as conn:
        conn.execute(
            update(t.users)
            .where(t.users.c.slack_user_id == slack_user_id)
            .values(slack_checked_at=at)
        )


def wait_for(condition, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_member_made_a_guest_is_refused_at_the_next_command_after_user_change(bot: Bot) -> None:
    assert "My CRM Contacts" in all_text(bot.shown("list"))
    bot.slack.add_user("U_ALICE", ALICE, guest="multi")  # an admin makes Alice a guest
    reply = bot.send.event(
        {
            "type": "user_change",
            "user": bot.slack.users["U_ALICE"],
            "event_ts": f"{time.time():.6f}",
        }
    )
    assert reply.status == 200
    wait_for(lambda: bot.engine.slack_email("U_ALICE") is None, "the mapping to be checked again")
    assert "Guest accounts can't have a My CRM Contacts list" in all_text(bot.shown("list"))
    assert len(bot.slack.of("users.info")) == 2


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"guest": "single"}, "Guest accounts"),
        ({"deleted": True}, "deactivated"),
        ({"team_id": "T_OTHER"}, "another workspace"),
        ({"email": "alice.new@example.com"}, "no CRM user has the email alice.new@example.com"),
    ],
    ids=["guest", "left the workspace", "moved to another workspace", "changed email"],
)
def test_without_an_event_a_changed_member_is_checked_again_within_the_hour(
    bot: Bot, change: dict[str, object], words: str
) -> None:
    assert "My CRM Contacts" in all_text(bot.shown("list"))
    bot.slack.add_user("U_ALICE", str(change.pop("email", ALICE)), **change)  # type: ignore[arg-type]
    set_checked(bot, "U_ALICE", datetime.now(UTC) - timedelta(minutes=50))
    assert "My CRM Contacts" in all_text(bot.shown("list"))  # still inside the hour: cached
    set_checked(bot, "U_ALICE", datetime.now(UTC) - timedelta(minutes=61))
    shown = all_text(bot.shown("list")).replace("No CRM", "no CRM")
    assert words in shown, shown
