"""The running bot over real HTTP: signed requests in, Web API calls out to the stand-in.

Each test starts the real server (waitress + Bolt) on 127.0.0.1, with the engine on the
embedded demo CRM in a temporary CRM_CONTACTS_HOME, and plays Slack with correctly
signed slash commands and block_actions. Nothing of ours is mocked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from servers.slack import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    Call,
    SlackSender,
    SlackStandIn,
    all_text,
    checkbox_options,
    find_element,
    has_element,
    sign,
)

from bot import blocks as ui
from bot.app import build_app, web_client
from bot.server import HttpServer, SlackWsgi
from bot.summary import post_daily_summary
from sync_engine.config import ConfigError, load_settings
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.mailbox.local import LocalMailbox
from sync_engine.model import CrmUser
from sync_engine.service import Engine

DESIGN_RIGHT = 'company:"Design Right Inc."'


@dataclass
class Bot:
    """The bot under test and everything around it."""

    engine: Engine
    slack: SlackStandIn
    send: SlackSender
    url: str
    home: Path

    def user(self, email: str) -> CrmUser:
        return self.engine.user(email)

    def reply(self, name: str, count: int = 1, **kw: Any) -> Call:
        """The `count`-th message posted to response_url `name`."""
        return self.slack.wait_for("response_url", count, name=name, **kw)[count - 1]

    def command(self, text: str, user: str = "U_ALICE") -> tuple[Any, str]:
        reply, name = self.send.command(text, user)
        assert reply.status == 200, reply
        assert self.send.last_elapsed < 3.0, "Slack needs the ack within 3 seconds"
        return reply, name

    def shown(self, text: str, user: str = "U_ALICE") -> list[dict[str, Any]]:
        """Run a command and return the blocks of the message it shows."""
        _, name = self.command(text, user)
        return self.reply(name).blocks

    def click(
        self, blocks: list[dict[str, Any]], action_id: str, count: int = 1, **kw: Any
    ) -> Call:
        reply, name = self.send.click(blocks, action_id, **kw)
        assert reply.status == 200, reply
        assert self.send.last_elapsed < 3.0
        call = self.reply(name, count)
        return call

    def mailbox(self, email: str) -> LocalMailbox:
        return LocalMailbox(self.engine.settings.local_mailbox_url, email)

    def contacts(self, email: str) -> dict[str, Any]:
        box = self.mailbox(email)
        try:
            return {c.fields.full_name(): c for batch in box.list_contacts() for c in batch}
        finally:
            box.close()


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as stand_in:
        stand_in.add_user("U_ALICE", "alice@example.com")
        stand_in.add_user("U_BOB", "Bob@Example.com", tz="America/Chicago")
        stand_in.add_user("U_NOBODY", "nobody@example.com")
        stand_in.add_user("U_GONE", "carol@example.com", deleted=True)
        stand_in.add_user("U_HIDDEN", None)
        yield stand_in
        assert stand_in.violations == [], "a message broke Slack's Block Kit limits"


@pytest.fixture
def bot(home: Path, slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bot]:
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


def buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        e["action_id"]: e
        for b in blocks
        for e in [*b.get("elements", []), b.get("accessory") or {}]
        if e.get("type") == "button"
    }


def mrkdwn_texts(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        own = [str(obj["text"])] if obj.get("type") == "mrkdwn" else []
        return own + [t for v in obj.values() for t in mrkdwn_texts(v)]
    if isinstance(obj, list):
        return [t for v in obj for t in mrkdwn_texts(v)]
    return []


def option_names(blocks: list[dict[str, Any]]) -> list[str]:
    return [o["text"]["text"].strip("*") for o in checkbox_options(blocks)]


def initial_ids(blocks: list[dict[str, Any]]) -> set[int]:
    return {
        int(o["value"])
        for b in blocks
        for e in b.get("elements", [])
        if e.get("type") == "checkboxes"
        for o in e.get("initial_options", [])
    }


# ---------------------------------------------------------------- the seed story


def test_seed_story_search_select_all_add_sync_and_the_mailbox(bot: Bot) -> None:
    blocks = bot.shown("search Design Right Inc.")
    text = all_text(blocks)
    assert "5 people match" in text
    names = option_names(blocks)
    assert len(names) == 5
    assert "Maria Lopez" in names and "Seán O'Brien" in names

    selected = bot.click(blocks, ui.ACTION_ALL)
    assert selected.params["replace_original"] is True
    assert len(initial_ids(selected.blocks)) == 5
    assert buttons(selected.blocks)[ui.ACTION_ADD]["text"]["text"] == "Add 5 to My CRM Contacts"

    added = bot.click(selected.blocks, ui.ACTION_ADD)
    assert added.params["replace_original"] is True
    assert "Added 5 people to My CRM Contacts" in all_text(added.blocks)
    alice = bot.user("alice@example.com")
    assert {p.name for p in bot.engine.my_list(alice)} == {
        "Maria Lopez",
        "John Paul Smith",
        "Priya Natarajan",
        "Zoë Brontë",
        "Seán O'Brien",
    }

    # A second search marks them as added instead of offering them again.
    again = bot.shown("search Design Right Inc.")
    assert option_names(again) == []
    assert "Already in My CRM Contacts" in all_text(again)

    reply, _ = bot.command("sync")
    assert "Syncing your mailbox" in reply.json()["text"]
    dm = bot.slack.wait_for("chat.postMessage")[0]
    assert dm.params["channel"] == "DU_ALICE"
    assert bot.slack.of("conversations.open")[0].params["users"] == "U_ALICE"
    assert "5 created" in dm.params["text"]
    assert "Created in your Contacts" in all_text(dm.blocks)

    contacts = bot.contacts("alice@example.com")
    assert set(contacts) == {p.name for p in bot.engine.my_list(alice)}
    assert all("CRM Contact" in c.categories for c in contacts.values())
    assert contacts["Maria Lopez"].fields.company == "Design Right Inc."


def test_add_group_asks_with_the_count_then_adds_once(bot: Bot) -> None:
    blocks = bot.shown("add-group", user="U_BOB")
    add = buttons(blocks)[ui.ACTION_GROUP_ADD]
    assert add["confirm"]["confirm"]["text"] == "Add 4"
    assert "4 people" in add["confirm"]["text"]["text"]
    assert "4 people have you as Account Manager" in all_text(blocks)

    first = bot.click(blocks, ui.ACTION_GROUP_ADD, user="U_BOB", count=2)
    assert "Added 4 people to My CRM Contacts" in all_text(first.blocks)
    bob = bot.user("bob@example.com")
    assert len(bot.engine.my_list(bob)) == 4

    # A user who saw a time-out clicks again: nobody is added twice.
    second = bot.click(blocks, ui.ACTION_GROUP_ADD, user="U_BOB", count=2)
    assert "4 were already in My CRM Contacts" in all_text(second.blocks)
    assert len(bot.engine.my_list(bob)) == 4


def test_person_card_add_then_remove(bot: Bot) -> None:
    card = bot.shown("person Priya")
    text = all_text(card)
    assert "Priya Natarajan" in text and "Lead Designer" in text and "Carol Nguyen" in text
    assert "not in My CRM Contacts" in text
    assert ui.ACTION_PERSON_REMOVE not in buttons(card)

    added = bot.click(card, ui.ACTION_PERSON_ADD)
    assert added.params["replace_original"] is True
    assert "✓ in My CRM Contacts" in all_text(added.blocks)
    alice = bot.user("alice@example.com")
    assert [p.name for p in bot.engine.my_list(alice)] == ["Priya Natarajan"]

    remove = buttons(added.blocks)[ui.ACTION_PERSON_REMOVE]
    assert remove["style"] == "danger" and remove["confirm"]["style"] == "danger"
    removed = bot.click(added.blocks, ui.ACTION_PERSON_REMOVE)
    assert "not in My CRM Contacts" in all_text(removed.blocks)
    assert bot.engine.my_list(alice) == []


def test_person_with_several_matches_lists_them_with_cards(bot: Bot) -> None:
    blocks = bot.shown("person John Smith")
    assert "2 people match" in all_text(blocks)
    card = bot.click(blocks, ui.ACTION_PERSON_OPEN)
    assert ui.ACTION_PERSON_ADD in buttons(card.blocks)
    assert "John" in all_text(card.blocks)


def test_add_one_unambiguous_match_at_once_and_several_through_the_picker(bot: Bot) -> None:
    blocks = bot.shown("add Priya Natarajan")
    assert "Added 1 person to My CRM Contacts" in all_text(blocks)
    again = bot.shown("add Priya Natarajan")
    assert "Already in My CRM Contacts" in all_text(again)
    several = bot.shown("add John Smith")
    assert len(option_names(several)) == 2
    assert "several people match" in all_text(several)


def test_remove_from_the_list_then_sync_unlinks_and_keeps_the_contacts(bot: Bot) -> None:
    alice = bot.user("alice@example.com")
    people = bot.engine.search(alice, DESIGN_RIGHT).people
    bot.engine.add(alice, [p.id for p in people])
    bot.engine.sync(alice)

    listed = bot.shown("list")
    assert "My CRM Contacts*: 5 people" in all_text(listed)
    assert all("synced" in o["description"]["text"] for o in checkbox_options(listed))
    by_name = {o["text"]["text"].strip("*"): int(o["value"]) for o in checkbox_options(listed)}
    gone = [by_name["Maria Lopez"], by_name["Zoë Brontë"]]

    ticked = bot.click(listed, ui.ACTION_TICK, ticked=gone)
    remove = buttons(ticked.blocks)[ui.ACTION_REMOVE]
    assert remove["text"]["text"] == "Remove 2 from My CRM Contacts"
    assert remove["confirm"]["style"] == "danger"
    done = bot.click(ticked.blocks, ui.ACTION_REMOVE)
    assert "Removed 2 people from My CRM Contacts" in all_text(done.blocks)

    relisted = bot.shown("list")
    assert "pending removal" in all_text(relisted)
    assert len(checkbox_options(relisted)) == 3  # the two leaving are shown, not offered

    result = bot.engine.sync(alice)
    assert result.count("unlinked") == 2
    contacts = bot.contacts("alice@example.com")
    assert len(contacts) == 5  # rule 5: unlink, never delete
    assert "CRM Contact" not in contacts["Maria Lopez"].categories
    assert "CRM Contact" in contacts["Priya Natarajan"].categories


def test_remove_with_a_query_offers_only_my_own_matching_people(bot: Bot) -> None:
    alice = bot.user("alice@example.com")
    bot.engine.add(alice, [p.id for p in bot.engine.search(alice, DESIGN_RIGHT).people])
    blocks = bot.shown("remove Maria")
    assert option_names(blocks) == ["Maria Lopez"]
    nobody = bot.shown("remove Wei Chen")
    assert "None of the people in My CRM Contacts match" in all_text(nobody)


# ---------------------------------------------------------------- limits and paging


def test_37_people_page_by_ten_and_the_selection_survives_paging(bot: Bot) -> None:
    crm = EmbeddedCrm(bot.engine.crm)
    for i in range(37):
        crm.add_person(
            first=f"Person{i:02d}", last="Big", company="Big Co", manager="alice@example.com"
        )
    query = 'search company:"Big Co"'
    pages = [bot.shown(query)]
    assert "37 people match" in all_text(pages[0]) and "page 1 of 4" in all_text(pages[0])

    chosen: set[int] = set()
    messages: list[list[dict[str, Any]]] = [pages[0]]
    current = pages[0]
    for number in range(2, 5):
        ids = [int(o["value"]) for o in checkbox_options(current)]
        tick = ids[:2]  # tick two people on each page, then go on
        chosen.update(tick)
        current = bot.click(current, ui.ACTION_NEXT, ticked=tick).blocks
        messages.append(current)
        assert f"page {number} of 4" in all_text(current)
        assert f"*{len(chosen)} selected*" in all_text(current)
    assert len(checkbox_options(current)) == 7
    assert not has_element(current, ui.ACTION_NEXT)

    # back to page 1: the two ticked there are still ticked
    back = current
    for _ in range(3):
        back = bot.click(back, ui.ACTION_PREV).blocks
        messages.append(back)
    assert "page 1 of 4" in all_text(back)
    first_page_ids = [int(o["value"]) for o in checkbox_options(pages[0])]
    assert initial_ids(back) == set(first_page_ids[:2])

    # a tick on its own updates the running count and the main button
    tick_ids = first_page_ids[:3]
    ticked = bot.click(back, ui.ACTION_TICK, ticked=tick_ids).blocks
    chosen.add(first_page_ids[2])
    assert buttons(ticked)[ui.ACTION_ADD]["text"]["text"] == f"Add {len(chosen)} to My CRM Contacts"

    for blocks in [*messages, ticked]:
        assert len(blocks) <= 50
        assert all(len(e.get("options", [])) <= 10 for b in blocks for e in b.get("elements", []))
    added = bot.click(ticked, ui.ACTION_ADD)
    assert f"Added {len(chosen)} people" in all_text(added.blocks)
    alice = bot.user("alice@example.com")
    assert {p.id for p in bot.engine.my_list(alice)} == chosen


def test_a_person_named_channel_renders_escaped_and_pings_nobody(bot: Bot) -> None:
    blocks = bot.shown("search Prank Industries")
    assert "&lt;!channel&gt; &amp; Co" in json.dumps(blocks)
    assert "<!channel>" not in json.dumps(blocks)
    # mrkdwn is where Slack parses <...>; plain_text (option descriptions) shows it literally
    assert not [t for t in mrkdwn_texts(blocks) if "<" in t or ">" in t]
    call = bot.slack.of("response_url")[-1]
    assert "<!channel>" not in call.params["text"]  # the notification text is parsed too
    card = bot.shown('person company:"Harbour & Sons <Ltd>"')
    assert "Harbour &amp; Sons &lt;Ltd&gt;" in json.dumps(card)
    assert not [t for t in mrkdwn_texts(card) if "<" in t or ">" in t]


def test_no_match_suggests_another_spelling(bot: Bot) -> None:
    text = all_text(bot.shown("search Zzyzx Qwerty"))
    assert "No one in the CRM matches" in text and "company:" in text


# ---------------------------------------------------------------- safety


def test_wrong_signature_and_stale_timestamp_are_refused(bot: Bot) -> None:
    body = "command=%2Fcrm-contacts&text=list&user_id=U_ALICE&response_url=x"
    wrong = bot.send.post(body, signature="v0=" + "0" * 64)
    assert wrong.status == 401
    other_secret = bot.send.post(body, signature=sign("not-the-secret", int(time.time()), body))
    assert other_secret.status == 401
    old = int(time.time()) - 6 * 60
    replayed = bot.send.post(body, timestamp=old, signature=sign(SIGNING_SECRET, old, body))
    assert replayed.status == 401
    time.sleep(0.3)
    assert bot.slack.calls == [c for c in bot.slack.calls if c.method == "auth.test"]


@pytest.mark.parametrize(
    "body",
    [
        "payload=%7Bnot+json",
        "payload=%5B1%2C2%5D",
        "payload=%7B%22type%22%3A%22block_actions%22%7D",
        "payload=%7B%22type%22%3A%22block_actions%22%2C%22actions%22%3A%5B%7B%22action_id%22%3A%22picker_add%22%2C%22value%22%3A%22%7Bbad%22%7D%5D%2C%22user%22%3A%7B%22id%22%3A%22U_ALICE%22%7D%7D",
        "payload=%7B%7D",
        "",
    ],
)
def test_malformed_payloads_get_400_or_a_clear_answer_and_no_crash(bot: Bot, body: str) -> None:
    reply = bot.send.post(body)
    if "not+json" in body or "%5B1" in body:
        assert reply.status == 400
    else:
        assert reply.status in (200, 404)  # well-formed but not for us: Bolt's "unhandled"
    with urllib.request.urlopen(bot.url + "/healthz", timeout=5) as health:
        assert health.status == 200 and json.loads(health.read())["ok"] is True


def test_a_body_that_is_not_utf8_gets_400(bot: Bot) -> None:
    raw = b"payload=\xff\xfe"
    ts = int(time.time())
    signature = (
        "v0="
        + hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:".encode() + raw, hashlib.sha256).hexdigest()
    )
    request = urllib.request.Request(
        bot.url + "/slack/events",
        data=raw,
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature,
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 400


def test_stale_button_value_gets_a_clear_message(bot: Bot) -> None:
    blocks = bot.shown("search Design Right Inc.")
    add, _ = find_element(blocks, ui.ACTION_ADD)
    add["value"] = "{not ours"
    call = bot.click(blocks, ui.ACTION_ADD)
    assert "out of date" in all_text(call.blocks)


def test_unmapped_deactivated_and_hidden_email_users_get_clear_messages(bot: Bot) -> None:
    unmapped = all_text(bot.shown("list", user="U_NOBODY"))
    assert "no CRM user has the email nobody@example.com" in unmapped.replace("No CRM", "no CRM")
    assert "administrator" in unmapped
    assert "deactivated" in all_text(bot.shown("list", user="U_GONE"))
    assert "email address" in all_text(bot.shown("list", user="U_HIDDEN"))
    assert "another workspace" in all_text(bot.shown("list", user="U_GHOST"))


def test_the_slack_to_crm_mapping_is_cached(bot: Bot) -> None:
    bot.shown("list", user="U_BOB")
    bot.shown("status", user="U_BOB")
    assert len(bot.slack.of("users.info")) == 1
    assert bot.engine.slack_email("U_BOB") == "bob@example.com"


def test_the_mapping_is_read_again_from_slack_after_a_day(bot: Bot) -> None:
    from sqlalchemy import update

    from sync_engine import tables as t

    bot.shown("list", user="U_BOB")
    bot.slack.add_user("U_BOB", "bob@example.com", tz="Asia/Tokyo")  # Bob moved
    a_day_ago = datetime.now(UTC) - timedelta(hours=25)
    with bot.engine.store.engine.begin() as conn:
        conn.execute(
            update(t.users)
            .where(t.users.c.slack_user_id == "U_BOB")
            .values(slack_checked_at=a_day_ago)
        )
    bot.shown("status", user="U_BOB")
    assert len(bot.slack.of("users.info")) == 2
    assert bot.engine.store.user_by_slack("U_BOB").slack_tz == "Asia/Tokyo"  # type: ignore[union-attr]


def test_unknown_subcommand_and_help_show_the_usage(bot: Bot) -> None:
    reply, _ = bot.command("frobnicate now")
    body = reply.json()
    assert body["response_type"] == "ephemeral"
    assert "I don't know `frobnicate`" in body["text"]
    assert "/crm-contacts search" in all_text(body["blocks"])
    help_reply, _ = bot.command("")
    assert "/crm-contacts add-group" in help_reply.json()["text"]
    missing, _ = bot.command("search")
    assert "Tell me whom to look for" in missing.json()["text"]


def test_slack_429_is_retried_after_retry_after(bot: Bot) -> None:
    alice = bot.user("alice@example.com")
    bot.engine.add(alice, [bot.engine.search(alice, "Priya").people[0].id])
    bot.slack.rate_limit("chat.postMessage", times=1, retry_after=0)
    bot.command("sync")
    dm = bot.slack.wait_for("chat.postMessage", timeout=15)[0]
    assert "Sync of alice@example.com" in dm.params["text"]
    statuses = [c.status for c in bot.slack.calls if c.method == "chat.postMessage"]
    assert statuses == [429, 200]


def test_status_shows_counts_and_times(bot: Bot) -> None:
    alice = bot.user("alice@example.com")
    bot.engine.add(alice, [p.id for p in bot.engine.search(alice, DESIGN_RIGHT).people])
    bot.engine.sync(alice)
    text = all_text(bot.shown("status"))
    assert "alice@example.com" in text
    assert "*In My CRM Contacts*\n5" in text and "*Linked in your mailbox*\n5" in text
    assert "<!date^" in text


# ---------------------------------------------------------------- digest, home, server


def test_daily_summary_dm_only_when_something_happened(bot: Bot) -> None:
    alice = bot.user("alice@example.com")
    client = build_app(bot.engine.settings, bot.engine).client
    start = datetime.now(UTC) - timedelta(minutes=1)
    assert (
        post_daily_summary(client, bot.engine, alice, "U_ALICE", start, datetime.now(UTC)) is False
    )
    assert bot.slack.of("chat.postMessage") == []

    bot.engine.add(alice, [p.id for p in bot.engine.search(alice, DESIGN_RIGHT).people])
    bot.engine.sync(alice)
    until = datetime.now(UTC) + timedelta(seconds=1)
    assert post_daily_summary(client, bot.engine, alice, "U_ALICE", start, until) is True
    dm = bot.slack.wait_for("chat.postMessage")[0]
    assert dm.params["channel"] == "DU_ALICE"
    assert "digest" in dm.params["text"] and "5 created" in dm.params["text"]
    assert "Maria Lopez" in all_text(dm.blocks)


def test_app_home_dashboard_and_search_modal(bot: Bot) -> None:
    bot.send.event({"type": "app_home_opened", "user": "U_ALICE", "tab": "home"})
    home = bot.slack.wait_for("views.publish")[0]
    assert home.params["user_id"] == "U_ALICE"
    view = home.view
    assert "In My CRM Contacts" in all_text(view["blocks"])
    reply, _ = bot.send.click(view["blocks"], ui.ACTION_HOME_SEARCH, view={"id": "V_HOME", **view})
    assert reply.status == 200
    modal = bot.slack.wait_for("views.open")[0].view
    submitted = bot.send.submit_view(
        modal,
        {
            ui.SEARCH_INPUT_BLOCK: {
                # typed on a phone: curly quotes (a modal's input is not HTML-escaped)
                ui.SEARCH_INPUT_ACTION: {
                    "type": "plain_text_input",
                    "value": "company:“Acme Corp”",
                }
            }
        },
    )
    assert submitted.status == 200
    dm = bot.slack.wait_for("chat.postMessage")[0]
    assert dm.params["channel"] == "DU_ALICE"
    assert "Ana Isabel García" in option_names(dm.blocks)
    assert "3 people match" in all_text(dm.blocks)


def test_healthz_and_unknown_paths(bot: Bot) -> None:
    with urllib.request.urlopen(bot.url + "/healthz", timeout=5) as health:
        assert health.status == 200
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(bot.url + "/nope", timeout=5)
    assert missing.value.code == 404


def test_missing_tokens_are_one_clear_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.server import serve

    with pytest.raises(ConfigError, match=r"^SLACK_BOT_TOKEN is not set"):
        serve(load_settings())
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    with pytest.raises(ConfigError, match=r"^SLACK_SIGNING_SECRET is not set"):
        serve(load_settings())


def test_serve_without_a_token_exits_with_one_line(cli: Any) -> None:
    result = cli("serve")
    assert result.code != 0
    lines = (result.err or result.out).strip().splitlines()
    assert len(lines) == 1 and "SLACK_BOT_TOKEN" in lines[0]


@contextmanager
def serving(home: Path, slack: SlackStandIn, **env: str) -> Iterator[str]:
    """`crm-contacts serve` (the Procfile's web process) in its own process; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = Engine(load_settings(crm_contacts_home=home))
    seed_demo(engine.crm)
    engine.close()
    full_env = {
        **os.environ,
        "CRM_CONTACTS_HOME": str(home),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "PORT": str(port),
        **env,
    }
    log_path = home.parent / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "crm-contacts"), "serve"],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(url + "/healthz", timeout=2) as health:
                        assert health.status == 200
                        break
                except OSError:
                    assert process.poll() is None, log_path.read_text()
                    assert time.monotonic() < deadline, "the server did not come up"
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_crm_contacts_serve_answers_slack_over_http(home: Path, slack: SlackStandIn) -> None:
    with serving(home, slack, SLACK_SIGNING_SECRET=SIGNING_SECRET) as url:
        send = SlackSender(url + "/slack/events", slack)
        reply, name = send.command("search Design Right Inc.")
        assert reply.status == 200
        assert len(option_names(slack.wait_for("response_url", name=name)[0].blocks)) == 5


def test_crm_contacts_serve_in_socket_mode(home: Path, slack: SlackStandIn) -> None:
    """With SLACK_APP_TOKEN the bot dials Slack's WebSocket instead of listening for it."""
    link = slack.enable_socket_mode()
    with serving(home, slack, SLACK_APP_TOKEN=APP_TOKEN):
        link.wait_connected()
        command = {
            "token": "legacy-verification-token",
            "team_id": "T0LOOP",
            "channel_id": "C_SALES",
            "user_id": "U_ALICE",
            "command": "/crm-contacts",
            "text": "person Priya",
            "api_app_id": "A_CRM",
            "response_url": slack.response_url("socket"),
            "trigger_id": "trigger-socket",
        }
        started = time.monotonic()
        envelope = link.push("slash_commands", command)
        link.wait_ack(envelope)
        assert time.monotonic() - started < 3.0
        card = slack.wait_for("response_url", name="socket")[0]
        assert "Priya Natarajan" in all_text(card.blocks)
        unknown = link.push("slash_commands", {**command, "text": "frobnicate"})
        assert "I don't know" in link.wait_ack(unknown)["payload"]["text"]
    assert [c.method for c in slack.calls if c.method == "apps.connections.open"]


def test_repeated_and_concurrent_requests_ack_fast_and_duplicate_nothing(bot: Bot) -> None:
    alice = bot.user("alice@example.com")
    bot.engine.add(alice, [p.id for p in bot.engine.search(alice, DESIGN_RIGHT).people])
    assert bot.contacts("alice@example.com") == {}  # the local target's database exists
    # a user who saw a time-out clicks again: two syncs asked for at once
    for _ in range(2):
        reply, _ = bot.command("sync")
        assert "Syncing" in reply.json()["text"]
    dms = bot.slack.wait_for("chat.postMessage", timeout=20)
    assert "5 created" in dms[0].params["text"]
    time.sleep(0.5)
    later = [c.params["text"] for c in bot.slack.of("response_url")]
    dms = bot.slack.of("chat.postMessage")
    # either the second sync found the first running and said so privately, or it ran
    # after it and found nothing to do; never a second "failed" DM
    assert (len(dms) == 1 and any("already running" in t for t in later)) or (
        len(dms) == 2 and "Nothing changed" in all_text(dms[1].blocks)
    )
    assert not any("failed" in dm.params["text"] for dm in dms)
    assert len(bot.contacts("alice@example.com")) == 5  # no twins

    # ten people searching at once all get their ack well within 3 seconds
    with ThreadPoolExecutor(max_workers=10) as pool:
        users = ["U_ALICE", "U_BOB"] * 5
        results = list(pool.map(lambda u: bot.send.command("search Acme", u), users))
    assert all(reply.status == 200 for reply, _ in results)
    for _, name in results:
        assert "3 people match" in all_text(bot.reply(name).blocks)


# ---------------------------------------------------------------- the digest's controls


def filled_modal(bot: Bot, count: int = 1) -> dict[str, Any]:
    """The `count`-th modal the bot opened, as views.update filled it."""
    update = bot.slack.wait_for("views.update", count)[count - 1]
    return {**update.view, "id": update.params["view_id"]}


def digest_menu(blocks: list[dict[str, Any]]) -> list[str]:
    """The values of the digest's overflow items, in order."""
    element, _ = find_element(blocks, ui.ACTION_DIGEST_MENU)
    assert element["type"] == "overflow"
    return [o["value"] for o in element["options"]]


def posted_digest(bot: Bot) -> Call:
    """Alice's digest DM after a sync of the five Design Right people."""
    alice = bot.user("alice@example.com")
    start = datetime.now(UTC) - timedelta(minutes=1)
    bot.engine.add(alice, [p.id for p in bot.engine.search(alice, DESIGN_RIGHT).people])
    bot.engine.sync(alice)
    until = datetime.now(UTC) + timedelta(seconds=1)
    client = web_client(bot.engine.settings)
    assert post_daily_summary(client, bot.engine, alice, "U_ALICE", start, until) is True
    return bot.slack.wait_for("chat.postMessage")[0]


def london_days_from_now(days: int) -> set[date]:
    """Alice's local date (her Slack zone) `days` ahead; two around midnight."""
    tz = ZoneInfo("Europe/London")
    now = datetime.now(UTC)
    return {
        (moment.astimezone(tz).date() + timedelta(days=days))
        for moment in (now, now + timedelta(seconds=30))
    }


def test_each_digest_control_changes_the_setting_and_updates_the_dm_in_place(bot: Bot) -> None:
    dm = posted_digest(bot)
    alice = bot.user("alice@example.com")
    assert dm.params["channel"] == "DU_ALICE"
    # no button at all, one overflow menu (SLACK_UX 4)
    assert buttons(dm.blocks) == {}
    assert digest_menu(dm.blocks) == ["time", "weekly", "snooze", "off"]
    assert "*Daily digest* at *08:00*" in all_text(dm.blocks)

    def choose(blocks: list[dict[str, Any]], option: str) -> list[dict[str, Any]]:
        call = bot.click(blocks, ui.ACTION_DIGEST_MENU, option=option, message=dm)
        # the DM itself is replaced (not an ephemeral note), and keeps the digest's content
        assert call.params["replace_original"] is True and "response_type" not in call.params
        assert "Maria Lopez" in all_text(call.blocks) and "5 created" in call.params["text"]
        return call.blocks

    weekly = choose(dm.blocks, "weekly")
    prefs = bot.engine.digest_prefs(alice)
    assert prefs.weekly and prefs.weekday == 0 and prefs.tz == "Europe/London"
    assert "*Weekly digest*, Mondays at *08:00*" in all_text(weekly)
    assert "✓ Weekly from now on" in all_text(weekly)
    assert digest_menu(weekly) == ["time", "daily", "snooze", "off"]

    snoozed = choose(weekly, "snooze")
    assert bot.engine.digest_prefs(alice).snoozed_until in london_days_from_now(7)
    assert "snoozed until" in all_text(snoozed) and "✓ Snoozed" in all_text(snoozed)
    assert digest_menu(snoozed) == ["time", "daily", "resume", "off"]
    # a second click on the message as it was (a time-out seen) changes nothing more
    again = choose(weekly, "snooze")
    assert bot.engine.digest_prefs(alice).snoozed_until in london_days_from_now(7)

    resumed = choose(again, "resume")
    assert bot.engine.digest_prefs(alice).snoozed_until is None
    assert digest_menu(resumed) == ["time", "daily", "snooze", "off"]

    off = choose(resumed, "off")
    assert bot.engine.digest_prefs(alice).off is True
    assert "*Digest off*" in all_text(off) and digest_menu(off) == ["time", "daily", "on"]
    on = choose(off, "on")
    assert bot.engine.digest_prefs(alice).off is False
    assert digest_menu(on) == ["time", "daily", "snooze", "off"]

    # Change time…: a small modal (time, and the day while weekly); saving redraws the DM
    reply, name = bot.send.click(on, ui.ACTION_DIGEST_MENU, option="time", message=dm)
    assert reply.status == 200 and bot.send.last_elapsed < 3.0
    opened = bot.slack.wait_for("views.open")[0]
    assert opened.params["trigger_id"] == f"trigger-{name}"
    assert "Loading" in all_text(opened.view["blocks"])  # at once; filled by views.update
    modal = filled_modal(bot)
    time_input = next(b for b in modal["blocks"] if b["block_id"] == ui.DIGEST_TIME_BLOCK)
    assert time_input["element"]["type"] == "timepicker"
    assert time_input["element"]["initial_time"] == "08:00"
    submitted = bot.send.submit_view(
        modal,
        {
            ui.DIGEST_TIME_BLOCK: {
                ui.DIGEST_TIME_ACTION: {"type": "timepicker", "selected_time": "17:30"}
            },
            ui.DIGEST_DAY_BLOCK: {
                ui.DIGEST_DAY_ACTION: {
                    "type": "static_select",
                    "selected_option": {
                        "text": {"type": "plain_text", "text": "Friday"},
                        "value": "4",
                    },
                }
            },
        },
    )
    assert submitted.status == 200 and bot.send.last_elapsed < 3.0
    redrawn = bot.reply(name)  # the work runs after the ack: its redraw says it is done
    prefs = bot.engine.digest_prefs(alice)
    assert (prefs.time, prefs.chosen_time, prefs.weekday) == ("17:30", True, 4)
    assert redrawn.params["replace_original"] is True
    text = all_text(redrawn.blocks)
    assert "*Weekly digest*, Fridays at *17:30*" in text and "Maria Lopez" in text
    assert "✓ Your digest now comes Fridays at 17:30" in text

    daily = choose(redrawn.blocks, "daily")
    assert bot.engine.digest_prefs(alice).frequency == "daily"
    assert "*Daily digest* at *17:30*" in all_text(daily)
    # a daily digest's modal has no day to pick
    bot.send.click(daily, ui.ACTION_DIGEST_MENU, option="time", message=dm)
    modal = filled_modal(bot, 2)
    assert [b["block_id"] for b in modal["blocks"]] == [ui.DIGEST_TIME_BLOCK]
    assert modal["blocks"][0]["element"]["initial_time"] == "17:30"
    # Bob's settings were never touched
    assert bot.engine.digest_prefs(bot.user("bob@example.com")).chosen_time is False


def test_digest_command_shows_the_settings_with_the_same_controls(bot: Bot) -> None:
    alice = bot.user("alice@example.com")
    card = bot.shown("digest")
    assert "*Daily digest* at *08:00* your time (Europe/London)" in all_text(card)
    assert digest_menu(card) == ["time", "weekly", "snooze", "off"]

    off = bot.click(card, ui.ACTION_DIGEST_MENU, option="off")
    assert off.params["replace_original"] is True
    assert off.params["response_type"] == "ephemeral"  # the card stays private
    assert "*Digest off*" in all_text(off.blocks) and bot.engine.digest_prefs(alice).off

    # words after `digest` change it too; the engine checks them
    assert "✓ Saved." in all_text(bot.shown("digest on"))
    assert "*Weekly digest*, Fridays at *07:15*" in all_text(bot.shown("digest weekly fri at 7:15"))
    snoozed = all_text(bot.shown("digest snooze 3"))
    assert "snoozed until" in snoozed
    assert bot.engine.digest_prefs(alice).snoozed_until in london_days_from_now(3)
    assert "*Weekly digest*, Fridays at *09:00*" in all_text(bot.shown("digest weekly at 9:00"))
    assert "*Daily digest*" in all_text(bot.shown("digest daily resume at 07:15"))
    assert bot.engine.digest_prefs(alice).snoozed_until is None

    bad = all_text(bot.shown("digest 25:00"))
    assert "'25:00' is not a time of day" in bad
    assert "I don't understand 'sometimes'" in all_text(bot.shown("digest sometimes"))
    typed = bot.shown("digest <!here>")  # typed text quoted back is escaped (SLACK_UX 11)
    assert "I don't understand '&lt;!here&gt;'" in all_text(typed)
    assert not [t for t in mrkdwn_texts(typed) if "<" in t or ">" in t]
    assert "is not a day of the week" in all_text(bot.shown("digest weekly someday"))
    assert bot.engine.digest_prefs(alice).time == "07:15"  # a bad value changed nothing

    help_reply, _ = bot.command("help")
    assert "/crm-contacts digest" in help_reply.json()["text"]


def test_a_stale_digest_menu_and_a_cancelled_time_get_clear_answers(bot: Bot) -> None:
    card = bot.shown("digest")
    element, _ = find_element(card, ui.ACTION_DIGEST_MENU)
    element["options"].append({"text": {"type": "plain_text", "text": "Old"}, "value": "hourly"})
    stale = bot.click(card, ui.ACTION_DIGEST_MENU, option="hourly")
    assert "out of date" in all_text(stale.blocks)
    # a time modal submitted without a time is refused in the modal itself
    bot.send.click(card, ui.ACTION_DIGEST_MENU, option="time")
    modal = filled_modal(bot)
    empty = bot.send.submit_view(
        modal, {ui.DIGEST_TIME_BLOCK: {ui.DIGEST_TIME_ACTION: {"type": "timepicker"}}}
    )
    assert empty.status == 200 and empty.json()["response_action"] == "errors"
    assert bot.engine.digest_prefs(bot.user("alice@example.com")).chosen_time is False


def test_sync_now_while_the_mailbox_is_busy_sends_no_failure_dm(bot: Bot) -> None:
    alice = bot.user("alice@example.com")
    bot.engine.add(alice, [p.id for p in bot.engine.search(alice, DESIGN_RIGHT).people])
    bot.send.event({"type": "app_home_opened", "user": "U_ALICE", "tab": "home"})
    view = bot.slack.wait_for("views.publish")[0].view
    home_view = {"id": "V_HOME", **view}
    with bot.engine.store.mailbox_lock("alice@example.com"):  # the clock process is syncing it
        answer, _ = bot.send.click(view["blocks"], ui.ACTION_SYNC_NOW, view=home_view)
        assert answer.status == 200
        time.sleep(1.0)  # the click's sync ran and found the mailbox busy
    assert bot.slack.of("chat.postMessage") == []
    bot.send.click(view["blocks"], ui.ACTION_SYNC_NOW, view=home_view)
    [dm] = bot.slack.wait_for("chat.postMessage", 1, timeout=20)
    assert "5 created" in dm.params["text"] and "failed" not in dm.params["text"]


def test_a_very_long_search_keeps_its_buttons_working(bot: Bot) -> None:
    blocks = bot.shown("search " + "Acme " * 450)
    assert len(buttons(blocks)[ui.ACTION_ALL]["value"]) <= ui.MAX_VALUE
    after = bot.click(blocks, ui.ACTION_ALL)
    assert "out of date" not in all_text(after.blocks)


# ---------------------------------------------------------------- Slack's own habits (issue 12)


def test_slash_text_arrives_escaped_and_curly_quotes_are_accepted(bot: Bot) -> None:
    """Slack sends `&`, `<`, `>` as entities (the sender escapes as Slack does); phones and
    Macs type curly quotes. Both find the company as typed."""
    crm = EmbeddedCrm(bot.engine.crm)
    crm.add_person(first="Ada", last="Smith", company="Smith & Co", manager="bob@example.com")
    crm.add_person(first="Ada", last="Smythe", company="Smith <Co>", manager="bob@example.com")
    for typed in (
        'search company:"Smith & Co"',
        "search company:“Smith & Co”",
        "search company:„Smith & Co“",
    ):
        blocks = bot.shown(typed)
        assert option_names(blocks) == ["Ada Smith"], typed
        assert "1 person matches" in all_text(blocks)
        assert '“company:"Smith &amp; Co"”' in all_text(blocks)  # quoted back, escaped once
    card = bot.shown('person company:"Smith <Co>"')
    assert "Ada Smythe" in all_text(card) and "Smith &lt;Co&gt;" in all_text(card)


def test_add_group_of_300_answers_within_slacks_text_limit(bot: Bot) -> None:
    """Slack refuses a message of more than ~12,000 characters of text (the stand-in says
    `msg_blocks_too_long`): the result of adding 300 people shows the first ones and
    "…and N more" with where to see all, and Slack takes it."""
    crm = EmbeddedCrm(bot.engine.crm)
    for i in range(300):
        crm.add_person(
            first=f"Person{i:03d}",
            last="Grouped",
            company="Harbour & Sons International Holdings",
            email=f"person{i}@harbour-and-sons.example.com",
            title="Regional Procurement Manager",
            manager="bob@example.com",
        )
    blocks = bot.shown("add-group", user="U_BOB")
    assert "304 people have you as Account Manager" in all_text(blocks)
    done = bot.click(blocks, ui.ACTION_GROUP_ADD, user="U_BOB", count=2)
    text = all_text(done.blocks)
    assert "Added 304 people to My CRM Contacts" in text
    shown = len(re.findall(r"^\*[^*\n]+\* — ", text, re.MULTILINE))  # one line a person
    more = re.search(r"…and (\d+) more\._ `/crm-contacts list` shows everyone", text)
    assert more is not None and 0 < shown < 304
    assert shown + int(more.group(1)) == 304
    assert bot.slack.refused() == []
    assert len(bot.engine.my_list(bot.user("bob@example.com"))) == 304


def test_a_2000_character_list_query_keeps_its_buttons_whole(bot: Bot) -> None:
    """A button value holds 2,000 characters; a 2,000-character query is cut before the
    first search, never mid-JSON, so every button still works (quote-heavy queries, whose
    JSON doubles each quote, are in test_bot_blocks)."""
    alice = bot.user("alice@example.com")
    bot.engine.add(alice, [p.id for p in bot.engine.search(alice, DESIGN_RIGHT).people])
    blocks = bot.shown("list " + "Maria " * 334)
    assert option_names(blocks) == ["Maria Lopez"]
    for element in buttons(blocks).values():
        assert len(element["value"]) <= ui.MAX_VALUE
        json.loads(element["value"])
    after = bot.click(blocks, ui.ACTION_ALL)
    assert "out of date" not in all_text(after.blocks)
    assert "*1 selected*" in all_text(after.blocks)
    done = bot.click(after.blocks, ui.ACTION_REMOVE)
    assert "Removed 1 person from My CRM Contacts" in all_text(done.blocks)


def test_crm_text_in_mrkdwn_is_verbatim_so_a_bare_here_pings_nobody(bot: Bot) -> None:
    """Slack turns a bare `@here` in mrkdwn into a mention unless the text object says
    `verbatim: true`; escaping alone does not stop it."""
    crm = EmbeddedCrm(bot.engine.crm)
    crm.add_person(first="Hal", last="Here", company="@here Widgets", manager="bob@example.com")
    search = bot.shown('search company:"@here Widgets"')
    card = bot.shown("person Hal Here")
    for blocks in (search, card):
        carrying = [o for o in mrkdwn_objects(blocks) if "@here" in o["text"]]
        assert carrying, all_text(blocks)
        assert all(o.get("verbatim") is True for o in carrying)


def mrkdwn_objects(obj: Any) -> list[dict[str, Any]]:
    if isinstance(obj, dict):
        own = [obj] if obj.get("type") == "mrkdwn" else []
        return own + [o for v in obj.values() for o in mrkdwn_objects(v)]
    if isinstance(obj, list):
        return [o for v in obj for o in mrkdwn_objects(v)]
    return []


def test_change_time_opens_the_modal_within_3_seconds_even_when_slack_is_slow(bot: Bot) -> None:
    """A trigger_id expires 3 seconds after the click (the stand-in then answers
    `expired_trigger_id`): the modal opens before any look-up, here a users.info that
    takes 3.2 seconds, and is filled afterwards with views.update."""
    dm = posted_digest(bot)
    bot.slack.slow("users.info", 3.2)  # Alice's first click: who is she?
    reply, name = bot.send.click(dm.blocks, ui.ACTION_DIGEST_MENU, option="time", message=dm)
    assert reply.status == 200 and bot.send.last_elapsed < 3.0
    opened = bot.slack.wait_for("views.open", timeout=5)[0]
    assert opened.params["trigger_id"] == f"trigger-{name}"
    modal = filled_modal(bot)
    assert [b["block_id"] for b in modal["blocks"]] == [ui.DIGEST_TIME_BLOCK]
    assert bot.slack.refused() == []
    bot.slack.slow("users.info", 0)
    saved = bot.send.submit_view(
        modal,
        {
            ui.DIGEST_TIME_BLOCK: {
                ui.DIGEST_TIME_ACTION: {"type": "timepicker", "selected_time": "06:15"}
            }
        },
    )
    assert saved.status == 200
    assert "now comes at 06:15" in all_text(bot.reply(name).blocks)


def test_a_time_saved_after_the_response_url_expired_comes_by_dm(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    """The digest's time modal redraws the digest through the click's response_url, which
    lasts 30 minutes (the stand-in then answers 404 `expired_url`): a modal left open
    longer still saves, logs one line, and the new time reaches the user as a DM."""
    dm = posted_digest(bot)
    _, name = bot.send.click(dm.blocks, ui.ACTION_DIGEST_MENU, option="time", message=dm)
    modal = filled_modal(bot)
    bot.slack.expire_response_url(name)  # the user came back to the modal 31 minutes later
    with caplog.at_level("WARNING", logger="bot.flows"):
        saved = bot.send.submit_view(
            modal,
            {
                ui.DIGEST_TIME_BLOCK: {
                    ui.DIGEST_TIME_ACTION: {"type": "timepicker", "selected_time": "17:45"}
                }
            },
        )
        assert saved.status == 200
        second = bot.slack.wait_for("chat.postMessage", 2)[1]
    assert second.params["channel"] == "DU_ALICE"
    assert "✓ Your digest now comes at 17:45 your time." in all_text(second.blocks)
    assert "*Daily digest* at *17:45*" in all_text(second.blocks)
    assert [c.error for c in bot.slack.refused("response_url")] == ["expired_url"]
    logged = [r.getMessage() for r in caplog.records if "response_url" in r.getMessage()]
    assert len(logged) == 1 and "expired_url" in logged[0] and "/respond/" not in logged[0]
    assert bot.engine.digest_prefs(bot.user("alice@example.com")).time == "17:45"


def test_the_stand_in_takes_five_posts_per_response_url_like_slack(bot: Bot) -> None:
    from slack_sdk.webhook import WebhookClient

    hook = WebhookClient(bot.slack.response_url("five"))
    answers = [hook.send(text=f"post {n}") for n in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [404]
    assert answers[-1].body == "used_url"


def test_change_time_for_an_unmapped_user_says_why_in_the_modal(bot: Bot) -> None:
    card = bot.shown("digest")
    bot.send.click(card, ui.ACTION_DIGEST_MENU, option="time", user="U_NOBODY")
    problem = filled_modal(bot)
    assert "no CRM user has the email nobody@example.com" in all_text(problem["blocks"]).replace(
        "No CRM", "no CRM"
    )
    assert "submit" not in problem
