"""The bot against a hostile but legitimate tester: malformed requests, logs, identity,
reply addresses, long queries, repeated sync clicks. Real HTTP, signed requests, the
Slack stand-in; nothing of ours is mocked."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from servers.slack import (
    BOT_TOKEN,
    SIGNING_SECRET,
    SlackSender,
    SlackStandIn,
    all_text,
    sign,
)
from test_bot_http import Bot, serving

from bot import blocks as ui
from bot.app import build_app
from bot.flows import slack_hook
from bot.server import HttpServer, SlackWsgi
from sync_engine.config import load_settings
from sync_engine.crm.embedded import seed_demo
from sync_engine.service import Engine


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as stand_in:
        stand_in.add_user("U_ALICE", "alice@example.com")
        stand_in.add_user("U_BOB", "bob@example.com")
        yield stand_in


@contextmanager
def running_bot(home: Path, slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch, **env: str):  # type: ignore[no-untyped-def]
    """The bot in this process (waitress + Bolt on 127.0.0.1), on the demo CRM."""
    for name, value in {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        **env,
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    engine = Engine(settings)
    seed_demo(engine.crm)
    server = HttpServer(SlackWsgi(build_app(settings, engine)), "127.0.0.1", 0)
    server.start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        yield Bot(engine, slack, SlackSender(url + "/slack/events", slack), url, home)
    finally:
        server.close()
        engine.close()


@pytest.fixture
def bot(home: Path, slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bot]:
    with running_bot(home, slack, monkeypatch) as running:
        yield running


def signed_payload(send: SlackSender, payload: dict[str, Any]) -> int:
    return send.post(urlencode({"payload": json.dumps(payload)})).status


def raw_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


# ---------------------------------------------------------------- 5: logs and bad requests


def test_serve_logs_json_lines_and_refuses_malformed_requests_in_one_line_each(
    home: Path, slack: SlackStandIn
) -> None:
    env = {"SLACK_SIGNING_SECRET": SIGNING_SECRET, "LOG_FORMAT": "json"}
    with serving(home, slack, **env) as url:
        events = url + "/slack/events"
        send = SlackSender(events, slack)
        body = b"command=%2Fcrm-contacts&text=list&user_id=U_ALICE"
        for stamp in ("abc", "", "1.5", "1e9"):
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": "v0=" + "0" * 64,
            }
            assert raw_post(events, body, headers) == 401, stamp
        user = {"id": "U_ALICE", "team_id": "T0LOOP"}
        malformed = [
            {"type": "block_actions", "actions": "x", "user": user},
            {
                "type": "block_actions",
                "user": user,
                "response_url": slack.response_url("inf"),
                "actions": [
                    {
                        "type": "button",
                        "action_id": ui.ACTION_NEXT,
                        "value": '{"m":"add","o":Infinity}',
                    }
                ],
            },
            {"type": "view_submission", "view": "x", "user": user},
            {"type": "block_actions", "actions": [1], "user": "x"},
        ]
        for payload in malformed:
            assert signed_payload(send, payload) == 400, payload
        assert signed_payload(send, {"type": "event_callback", "event": "x"}) == 400
        # the server is fine afterwards
        reply, name = send.command("list")
        assert reply.status == 200
        slack.wait_for("response_url", name=name)
    log = (home.parent / "serve.log").read_text()
    lines = [line for line in log.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert "Traceback" not in log
    refused = [r for r in records if "refused" in r["msg"]]
    assert len(refused) == 4 + len(malformed) + 1, [r["msg"] for r in records]
    assert {r["level"] for r in refused} <= {"info", "warning"}
    assert BOT_TOKEN not in log and SIGNING_SECRET not in log


def test_a_stale_or_forged_request_with_a_good_timestamp_is_still_401(
    home: Path, slack: SlackStandIn
) -> None:
    with serving(home, slack, SLACK_SIGNING_SECRET=SIGNING_SECRET) as url:
        send = SlackSender(url + "/slack/events", slack)
        body = "command=%2Fcrm-contacts&text=list&user_id=U_ALICE"
        old = int(time.time()) - 600
        assert (
            send.post(body, timestamp=old, signature=sign(SIGNING_SECRET, old, body)).status == 401
        )
        assert send.post(body, signature="v0=" + "1" * 64).status == 401


# ---------------------------------------------------------------- 4: what salespeople are told


def test_a_failed_sync_dm_says_what_happened_without_server_or_account(
    home: Path, slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ews = {
        "MAILBOX_BACKEND": "ews",
        "EWS_URL": f"http://svc:hunter2@127.0.0.1:{port}/EWS/Exchange.asmx",
        "EWS_USERNAME": "svc-crm-internal",
        "EWS_PASSWORD": "hunter2",
        "EWS_RETRY_MAX_WAIT": "0",
        "EWS_TIMEOUT": "2",
    }
    with running_bot(home, slack, monkeypatch, **ews) as bot:
        alice = bot.user("alice@example.com")
        bot.engine.add(alice, [bot.engine.search(alice, "Priya").people[0].id])
        bot.command("sync")
        dm = bot.slack.wait_for("chat.postMessage", timeout=30)[0]
        status = bot.shown("status")
    for shown in (dm.params["text"], all_text(dm.blocks), all_text(status)):
        assert "didn't go through" in shown or "failed" in shown
        for internal in ("127.0.0.1", "EWS", "svc-crm-internal", "hunter2", "Exchange.asmx"):
            assert internal not in shown, (internal, shown)
    assert "admin" in all_text(dm.blocks) and "crm-contacts status" in all_text(dm.blocks)
    assert "admin" in all_text(status)


# ---------------------------------------------------------------- 7: who may act as whom


def test_only_confirmed_full_members_of_our_workspace_are_mapped(bot: Bot) -> None:
    slack = bot.slack
    slack.add_user("U_STRANGER", "alice@example.com", team_id="T0THER")
    slack.add_user("U_GUEST", "alice@example.com", guest="multi")
    slack.add_user("U_SINGLE", "alice@example.com", guest="single")
    slack.add_user("U_UNCONFIRMED", "alice@example.com", email_confirmed=False)
    expected = {
        "U_STRANGER": "another workspace",
        "U_GUEST": "Guest accounts",
        "U_SINGLE": "Guest accounts",
        "U_UNCONFIRMED": "isn't confirmed",
    }
    for slack_id, words in expected.items():
        assert words in all_text(bot.shown("list", user=slack_id)), slack_id
        assert bot.engine.store.user_by_slack(slack_id) is None
    assert bot.engine.slack_email("U_ALICE") is None  # nobody took Alice's place
    assert "My CRM Contacts" in all_text(bot.shown("list", user="U_ALICE"))


def test_a_second_slack_account_with_bobs_email_is_refused_and_the_admin_told(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    bob = bot.user("bob@example.com")
    bot.shown("list", user="U_BOB")
    bot.slack.add_user("U_BOB2", "bob@example.com")
    with caplog.at_level("WARNING", logger="bot.identity"):
        refused = all_text(bot.shown("add Priya", user="U_BOB2"))
    assert "already linked to another Slack account" in refused
    assert bot.engine.my_list(bob) == []  # the newcomer changed nothing
    assert bot.engine.store.user_by_slack("U_BOB").crm_user_id == bob.id  # type: ignore[union-attr]
    assert bot.engine.store.user_by_slack("U_BOB2") is None  # Bob's DMs stay Bob's
    told = [r for r in caplog.records if getattr(r, "event", "") == "slack_identity_conflict"]
    assert len(told) == 1 and "U_BOB2" in told[0].getMessage()
    assert "bob@example.com" in told[0].getMessage()

    # once the old account is deactivated in Slack, the new one may take over
    bot.slack.add_user("U_BOB", "bob@example.com", deleted=True)
    assert "My CRM Contacts" in all_text(bot.shown("list", user="U_BOB2"))
    assert bot.engine.store.user_by_slack("U_BOB2").crm_user_id == bob.id  # type: ignore[union-attr]
    # so may one whose old account now carries another email
    bot.slack.add_user("U_BOB3", "bob@example.com")
    bot.slack.add_user("U_BOB2", "robert@example.com")
    assert "My CRM Contacts" in all_text(bot.shown("list", user="U_BOB3"))
    assert bot.engine.store.user_by_slack("U_BOB3").crm_user_id == bob.id  # type: ignore[union-attr]


# ---------------------------------------------------------------- 8: the smaller things


def test_replies_go_only_to_slacks_own_response_urls(bot: Bot) -> None:
    """A payload's response_url elsewhere is not used: the answer comes as a DM."""
    with SlackStandIn() as elsewhere:
        form = {
            "team_id": "T0LOOP",
            "user_id": "U_ALICE",
            "command": "/crm-contacts",
            "text": "person Priya",
            "response_url": elsewhere.response_url("steal"),
            "trigger_id": "trigger-steal",
        }
        reply = bot.send.post(urlencode(form))
        assert reply.status == 200
        dm = bot.slack.wait_for("chat.postMessage")[0]
        assert dm.params["channel"] == "DU_ALICE" and "Priya Natarajan" in all_text(dm.blocks)
        time.sleep(0.3)
        assert elsewhere.calls == []
    for url in (
        "https://hooks.slack.com.evil.example/commands/T/1/x",
        "http://hooks.slack.com/commands/T/1/x",
        "https://user:pw@hooks.slack.com/commands/T/1/x",
        "https://hooks.slack.com:x/commands/T/1/x",
    ):
        assert not slack_hook(url, bot_client(bot)), url
    assert slack_hook("https://hooks.slack.com/commands/T0/1/abc", bot_client(bot))
    assert slack_hook(bot.slack.response_url("ok"), bot_client(bot))


def bot_client(bot: Bot) -> Any:
    from bot.app import web_client

    return web_client(bot.engine.settings)


@pytest.mark.parametrize("sub", ["add", "person", "remove"])
def test_a_20000_word_query_is_cut_as_search_cuts_it(bot: Bot, sub: str) -> None:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = [a + b + c for a in letters for b in letters for c in letters][:20_000]
    started = time.monotonic()
    reply, name = bot.send.command(f"{sub} {' '.join(words)}")
    assert reply.status == 200 and bot.send.last_elapsed < 3.0
    answer = bot.slack.wait_for("response_url", name=name, timeout=20)[0]
    assert time.monotonic() - started < 20
    assert len(answer.params["text"]) < 4000


def test_removing_someone_not_in_your_list_says_so(bot: Bot) -> None:
    card = bot.shown("person Priya")
    added = bot.click(card, ui.ACTION_PERSON_ADD)
    removed = bot.click(added.blocks, ui.ACTION_PERSON_REMOVE)
    assert "Removed from My CRM Contacts" in all_text(removed.blocks)
    again = bot.click(added.blocks, ui.ACTION_PERSON_REMOVE)  # the stale card, clicked again
    text = all_text(again.blocks)
    assert "Removed" not in text and "nothing to remove" in text


def test_fifty_sync_clicks_run_one_sync_and_at_most_one_more(bot: Bot) -> None:
    from sqlalchemy import select

    from sync_engine.crm import schema as s
    from sync_engine.crm.embedded import seed_large

    seed_large(bot.engine.crm, 5000)  # a first sync long enough for the clicks to overlap
    alice = bot.user("alice@example.com")
    with bot.engine.crm.engine.connect() as conn:
        ids = list(conn.execute(select(s.person.c.Pers_PersonId)).scalars())
    bot.engine.add(alice, ids)
    _, name = bot.send.command("status")
    blocks = bot.reply(name).blocks
    with ThreadPoolExecutor(max_workers=25) as pool:
        clicks = list(pool.map(lambda _: bot.send.click(blocks, ui.ACTION_SYNC_NOW), range(50)))
    clicked = datetime.now(UTC)
    assert all(reply.status == 200 for reply, _ in clicks)
    for _, name in clicks:
        bot.reply(name)  # every click is answered
    stored = bot.engine.store.user_by_crm_id(alice.id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = bot.engine.store.runs(stored.id)  # type: ignore[union-attr]
        if runs and all(r.finished_at for r in runs):
            time.sleep(1.0)
            if len(bot.engine.store.runs(stored.id)) == len(runs):  # type: ignore[union-attr]
                break
        time.sleep(0.2)
    runs = bot.engine.store.runs(stored.id)  # type: ignore[union-attr]
    first = min(runs, key=lambda r: r.id)
    print(f"first sync {(first.finished_at - first.started_at).total_seconds():.2f} s")  # type: ignore[operator]
    assert first.finished_at > clicked, "the clicks did not all come during the first sync"  # type: ignore[operator]
    assert 1 <= len(runs) <= 2, f"{len(runs)} syncs for 50 clicks"
    assert len(bot.slack.of("chat.postMessage")) == len(runs)  # one DM per sync, no more
    notes = [" ".join(c.params["text"] for c in bot.slack.of("response_url", n)) for _, n in clicks]
    assert sum("lined up" in n or "once more" in n for n in notes) >= 50 - len(runs)
