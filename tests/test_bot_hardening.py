"""The bot against a hostile but legitimate tester: malformed requests, logs, identity,
reply addresses, long queries, repeated sync clicks. Real HTTP, signed requests, the
Slack stand-in; nothing of ours is mocked."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
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


@pytest.fixture
def bot(home: Path, slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bot]:
    """The bot in this process (waitress + Bolt on 127.0.0.1), on the demo CRM."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)
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
