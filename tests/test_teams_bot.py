"""The Teams front end against the loopback Bot Connector: every flow of issue 21 item 3,
with what Teams enforces (token audience and signature, activity shape, card version and
size, 429 Retry-After) held by the stand-in (tests/servers/teams)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from servers.teams.connector import all_text
from teams_harness import ALICE, ALICE_AAD, BOB_AAD, GUEST_AAD, Teams, teams_bot, toggles

from sync_engine.crm.embedded import DESIGN_RIGHT


@pytest.fixture
def teams(home, monkeypatch) -> Iterator[Teams]:  # type: ignore[no-untyped-def]
    with teams_bot(home, monkeypatch) as bot:
        yield bot


def test_forged_expired_and_misaddressed_tokens_are_refused_and_logged(
    teams: Teams, caplog
) -> None:  # type: ignore[no-untyped-def]
    c = teams.connector
    chat = c.conversation()
    activity = c.activity(chat, text="help", user=ALICE_AAD)
    caplog.set_level(logging.WARNING)
    for token in (
        None,
        c.token(forged=True),
        c.token(expired=True),
        c.token(audience="someone-else"),
    ):
        response = c.send(teams.url, activity, token=token)
        assert response.status_code == 401, token
    assert (
        len(
            [
                r
                for r in caplog.records
                if "validation failed" in r.getMessage() or "rejected" in r.getMessage()
            ]
        )
        >= 3
    )
    assert not c.posted  # nothing answered a refused activity
    assert c.send(teams.url, activity).status_code == 200
    help_card = c.wait_for(chat, "search <query>")
    assert "My CRM Contacts keeps the CRM people you choose" in help_card.text


def test_search_ticks_survive_paging_then_add_selected(teams: Teams) -> None:
    chat = teams.connector.conversation()
    posted = teams.ask(f"search {DESIGN_RIGHT}", chat, "people match")
    card = posted.card
    assert "page 1 of 2" in posted.text
    first = toggles(card)
    assert len(first) == 10
    picked_here = list(first)[:3]
    page2 = teams.click(card, "Next", chat, ticks=dict.fromkeys(picked_here, True))["value"]
    assert "page 2 of 2" in all_text(page2)
    assert "3 selected (3 on other pages)" in all_text(page2)
    second = toggles(page2)
    assert len(second) == 3 and not set(second) & set(first)
    back = teams.click(page2, "◀ Previous", chat, ticks={next(iter(second)): True})["value"]
    ticked_back = [
        e for e in back["body"] if e.get("type") == "Input.Toggle" and e["value"] == "true"
    ]
    assert sorted(int(e["id"][2:]) for e in ticked_back) == sorted(picked_here)  # ticks kept
    done = teams.click(back, "Add selected", chat)["value"]
    text = all_text(done)
    assert "Added 4 people to My CRM Contacts" in text
    mine = {p.id for p in teams.engine.my_list(teams.engine.user(ALICE))}
    assert mine == {*picked_here, next(iter(second))}


def test_unknown_command_other_tenant_guest_and_group_chat_get_one_line(teams: Teams) -> None:
    c = teams.connector
    chat = c.conversation()
    unknown = teams.ask("frobnicate now", chat, "I don't know")
    assert "search <query>" in unknown.text  # the help card comes with it
    other = c.conversation()
    after = len(c.posted)
    assert (
        teams.say("list", other, tenant="11111111-2222-3333-4444-555555555555").status_code == 200
    )
    refused = c.wait_for(other, "serves one organisation only", after=after)
    assert "Someone" not in refused.text and len(c.posted) == after + 1
    guest = teams.ask("list", chat, "Guest accounts", user=GUEST_AAD)
    assert "My CRM Contacts:" not in guest.text
    group = c.conversation("channel")
    said = teams.ask("search Design", group, "personal chat only")
    assert "people match" not in said.text
    missing = teams.ask("search", chat, "Tell me whom to look for")
    assert "`search Jane Doe`" in missing.text


def test_a_member_made_a_guest_is_refused_within_the_hour(teams: Teams) -> None:
    """As for Slack (issue 22.5): what Graph said of a Teams user is trusted an hour, not a
    day, so a member made a guest (or disabled) stops acting within the hour."""
    from sqlalchemy import update

    from sync_engine import tables as t

    def checked(minutes_ago: int) -> None:
        with teams.engine.store.engine.begin() as conn:
            conn.execute(
                update(t.chat_accounts)
                .where(t.chat_accounts.c.account_id == ALICE_AAD)
                .values(checked_at=datetime.now(UTC) - timedelta(minutes=minutes_ago))
            )

    chat = teams.connector.conversation()
    teams.ask("list", chat, "My CRM Contacts is empty")
    teams.graph.add_user(ALICE, object_id=ALICE_AAD, user_type="Guest")
    checked(50)
    teams.ask("list", chat, "My CRM Contacts is empty")  # within the hour: as Graph said
    checked(61)
    refused = teams.ask("list", chat, "Guest accounts")
    assert "My CRM Contacts is empty" not in refused.text


def test_add_group_asks_first_and_adds_once(teams: Teams) -> None:
    chat = teams.connector.conversation()
    bob = teams.ask("add-group", chat, "you as Account Manager", user=BOB_AAD)
    assert "people have you as Account Manager" in bob.text
    question = teams.click(bob.card, "Add", chat, user=BOB_AAD)["value"]
    assert "Add your group?" in all_text(question)
    cancelled = teams.click(question, "Cancel", chat, user=BOB_AAD)["value"]
    assert "nothing changed" in all_text(cancelled)
    user = teams.engine.user("bob@example.com")
    assert not teams.engine.my_list(user)
    done = teams.click(question, "Add", chat, user=BOB_AAD)["value"]
    added = len(teams.engine.my_list(user))
    assert added and f"Added {added} people to My CRM Contacts" in all_text(done)
    again = teams.click(question, "Add", chat, user=BOB_AAD)["value"]  # a second click
    assert "Nothing to add" in all_text(again) or "were already in" in all_text(again)
    assert len(teams.engine.my_list(user)) == added


def test_person_card_add_then_list_and_remove_with_confirmation(teams: Teams) -> None:
    chat = teams.connector.conversation()
    card = teams.ask("person Maria Lopez", chat, "Add to My Contacts").card
    assert "Job title: " in all_text(card) or "CEO" in all_text(card)
    added = teams.click(card, "Add to My Contacts", chat)["value"]
    assert "✓ in My CRM Contacts" in all_text(added)
    listed = teams.ask("list", chat, "My CRM Contacts:").card
    assert len(toggles(listed)) == 1
    (person_id,) = toggles(listed)
    ask = teams.click(listed, "Remove selected", chat, ticks={person_id: True})["value"]
    assert "Remove from My CRM Contacts?" in all_text(ask)
    assert teams.engine.my_list(teams.engine.user(ALICE))  # nothing removed yet
    done = teams.click(ask, "Remove 1", chat)["value"]
    assert "Removed 1 person from My CRM Contacts" in all_text(done)
    # never synced, so nothing to unlink: the list is empty again
    teams.ask("list", chat, "My CRM Contacts is empty")


def test_sync_now_posts_the_per_person_result(teams: Teams) -> None:
    chat = teams.connector.conversation()
    alice = teams.engine.user(ALICE)
    people = teams.engine.search(alice, DESIGN_RIGHT, limit=3).people
    teams.engine.add(alice, [p.id for p in people])
    result = teams.ask("sync", chat, f"Sync of {ALICE}")
    assert "3 created" in result.text and "Created in your Contacts (3)" in result.text
    for person in people:
        assert person.name in result.text
    status = teams.ask("status", chat, "Linked in your mailbox")
    answer = teams.click(status.card, "Sync now", chat)
    assert answer["type"] == "application/vnd.microsoft.activity.message"
    assert "Syncing your mailbox" in answer["value"]
    again = teams.connector.wait_for(chat, "Nothing changed", after=len(teams.connector.posted) - 1)
    assert f"Sync of {ALICE}" in again.text


def test_message_extension_inserts_a_person_card_without_buttons(teams: Teams) -> None:
    c = teams.connector
    group = c.conversation("channel")
    query = {"commandId": "searchPeople", "parameters": [{"name": "query", "value": "Maria"}]}
    activity = c.activity(
        group, type="invoke", name="composeExtension/query", value=query, user=ALICE_AAD
    )
    started = time.monotonic()
    response = c.send(teams.url, activity)
    assert time.monotonic() - started < 5  # Teams' limit for a query
    result = response.json()["composeExtension"]
    assert result["type"] == "result" and result["attachments"]
    first = result["attachments"][0]
    assert first["preview"]["content"]["title"].startswith("Maria")
    assert "actions" not in first["content"]  # other people's chat: nothing to click
    assert "My CRM Contacts" not in all_text(first["content"])
    other = c.activity(
        group, type="invoke", name="composeExtension/query", value=query, user=GUEST_AAD
    )
    refused = c.send(teams.url, other).json()["composeExtension"]
    assert refused["type"] == "message" and "Guest" in refused["text"]


def alice_synced_and_her_digest_time(teams: Teams) -> tuple[str, datetime]:
    """Alice has written to the bot (her personal chat, returned) and a sync created one
    contact; the time returned is the first 09:30 UTC after it: past 08:00 in her zone
    (Europe/London), within the 4-hour grace, and her first digest covers the day before."""
    chat = teams.connector.conversation()
    alice = teams.engine.user(ALICE)
    teams.ask("status", chat, "Linked in your mailbox")
    teams.engine.add(alice, [teams.engine.search(alice, DESIGN_RIGHT, limit=1).people[0].id])
    teams.engine.sync(alice)
    return chat, next_utc(hour=9, minute=30)


def next_utc(hour: int, minute: int) -> datetime:
    """The first time of day `hour:minute` UTC from now on."""
    at = datetime.now(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return at if at > datetime.now(UTC) else at + timedelta(days=1)


def test_digest_is_a_proactive_message_with_its_controls(teams: Teams) -> None:
    from sync_engine.schedule import Scheduler
    from teams.posters import TeamsDigests

    alice = teams.engine.user(ALICE)
    chat, now = alice_synced_and_her_digest_time(teams)
    clock = Scheduler(
        teams.engine, now=lambda: now, account_poster=TeamsDigests(teams.engine, teams.front.sender)
    )
    after = len(teams.connector.posted)
    assert clock.run_summaries() == 1
    digest = teams.connector.wait_for(chat, "Your CRM Contacts digest", after=after)
    assert "1 created" in digest.text and "Daily digest at 08:00" in digest.text
    snoozed = teams.click(digest.card, "Snooze a week", chat, message_id=digest.id)["value"]
    assert "Snoozed: no digest before" in all_text(snoozed)
    assert "Your CRM Contacts digest" in all_text(snoozed)  # the digest keeps its content
    assert teams.engine.digest_prefs(alice).snoozed_until is not None
    assert clock.run_summaries() == 0  # sent once per period


def test_a_digest_teams_refuses_is_not_sent_to_slack_again(teams: Teams, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A user on Slack and Teams whose Teams chat is gone (the Connector refuses it): the
    Slack DM goes out once for the period, not again at every tick of the grace hours."""
    from servers.slack import BOT_TOKEN, SlackStandIn

    from bot.app import web_client
    from bot.summary import post_daily_summary
    from sync_engine.config import load_settings
    from sync_engine.schedule import Scheduler
    from teams.posters import TeamsDigests

    c = teams.connector
    _, now = alice_synced_and_her_digest_time(teams)
    with SlackStandIn() as slack:
        slack.add_user("U_ALICE", ALICE)
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_API_URL", slack.api_url)
        client = web_client(load_settings())
        teams.engine.remember_slack_user("U_ALICE", ALICE, "Europe/London")
        clock = Scheduler(
            teams.engine,
            now=lambda: now,
            summary_poster=lambda user, sid, since, until: post_daily_summary(
                client, teams.engine, user, sid, since, until
            ),
            account_poster=TeamsDigests(teams.engine, teams.front.sender),
        )
        c.fail(404, 10)  # the Teams chat is gone
        clock.run_summaries()
        now += timedelta(minutes=1)  # the next tick, still within the grace hours
        clock.run_summaries()
        digests = [m for m in slack.of("chat.postMessage") if "digest" in m.params["text"]]
        assert len(digests) == 1


def test_a_team_summary_one_channel_refuses_is_not_posted_again_in_the_other(
    teams: Teams, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """SUMMARY_CHANNEL (Slack) and TEAMS_SUMMARY_CHANNEL both set, as `crm-contacts
    scheduler` wires them (bot.cli): Teams refuses the post, Slack takes it; at the next
    tick Slack's channel must not get the same summary again."""
    from servers.slack import BOT_TOKEN, SlackStandIn

    from bot.app import web_client
    from bot.cli import _both, _post_team_summary
    from sync_engine.config import load_settings
    from sync_engine.schedule import Scheduler
    from teams.posters import team_poster

    c = teams.connector
    channel = c.conversation("channel")
    teams.install_in_team(channel)
    alice_synced_and_her_digest_time(teams)
    now = next_utc(hour=8, minute=0) + timedelta(minutes=90)  # the first summary after it
    with SlackStandIn() as slack:
        slack.add_channel("C_SALES", member=True)
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_API_URL", slack.api_url)
        client = web_client(load_settings())
        both = _both(
            lambda digest: _post_team_summary(client, "C_SALES", digest),
            team_poster(teams.engine, teams.front.sender, channel),
        )
        clock = Scheduler(teams.engine, now=lambda: now, team_poster=both, team_channel="C_SALES")
        c.fail(404, 10)  # Teams refuses the channel's post
        clock.run_summaries()
        now += timedelta(minutes=1)
        clock.run_summaries()
        posts = [m for m in slack.of("chat.postMessage") if m.params["channel"] == "C_SALES"]
        assert len(posts) == 1


def test_the_running_clock_posts_the_teams_digest_without_slack(teams: Teams) -> None:
    """`crm-contacts scheduler` for a Teams-only company (no SLACK_BOT_TOKEN, no team
    summary): the clock's own loop must run the digest job, not only `--once`."""
    import threading

    from sync_engine.schedule import Scheduler, run_forever
    from teams.posters import TeamsDigests

    chat, now = alice_synced_and_her_digest_time(teams)
    # as bot.cli's scheduler builds it when only Teams is configured
    clock = Scheduler(
        teams.engine, now=lambda: now, account_poster=TeamsDigests(teams.engine, teams.front.sender)
    )
    after = len(teams.connector.posted)
    seen: list[object] = []

    def watch() -> None:
        try:
            seen.append(teams.connector.wait_for(chat, "Your CRM Contacts digest", after=after))
        except AssertionError:
            pass
        finally:
            clock.stop.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    run_forever(clock)  # returns once the watcher stops it
    watcher.join(5)
    assert seen, "the clock's loop never posted the Teams digest"


def test_team_summary_goes_to_the_channel_the_app_is_installed_in(teams: Teams) -> None:

    from teams.posters import team_poster

    c = teams.connector
    channel = c.conversation("channel")
    teams.install_in_team(channel)
    alice_synced_and_her_digest_time(teams)
    from sync_engine.schedule import Scheduler

    clock = Scheduler(teams.engine)
    now = datetime.now(UTC)
    digest = clock.team_digest(now - timedelta(hours=1), now + timedelta(minutes=1))
    assert team_poster(teams.engine, teams.front.sender, channel)(digest) is True
    posted = c.wait_for(channel, "salesperson with activity")
    assert "alice@example.com" in posted.text and "1 created" in posted.text
    assert "designright.example" not in posted.text  # counts only: no contact details
    assert (
        team_poster(teams.engine, teams.front.sender, "19:not-installed@thread.tacv2")(digest)
        is False
    )


def test_cards_stay_within_teams_size_and_429_is_waited_out(teams: Teams) -> None:
    from sync_engine.crm.embedded import EmbeddedCrm

    crm = EmbeddedCrm(teams.engine.crm)
    long = "Director of " + "very " * 180 + "long titles"
    for n in range(12):
        crm.add_person(
            first=f"Zed{n}",
            last="Longtitle" + "x" * 40,
            company="Huge Titles Ltd " + "y" * 60,
            title=long,
        )
    c = teams.connector
    chat = c.conversation()
    alice = teams.engine.user(ALICE)
    everyone = teams.engine.search(alice, "Longtitle", limit=20).people
    teams.engine.add(alice, [p.id for p in everyone[:10]])
    c.throttle(1)
    card = teams.ask("search Longtitle", chat, "people match")
    assert c.throttled == 1 and not [r for r in c.refused if r[0] not in (429,)]
    assert len(json.dumps(card.activity).encode()) <= 28_000
    assert "Already in My CRM Contacts" in card.text
    assert not [r for r in c.refused if r[0] == 413]


def test_passing_connector_failures_are_retried_as_teams_asks(teams: Teams) -> None:
    """412, 502 and 504 are retried like a 429 (Microsoft Learn, rate limiting for bots);
    a refusal that is not passing (404) is not."""
    c = teams.connector
    chat = c.conversation()
    for status in (412, 502, 504):
        c.fail(status)
    teams.ask("help", chat, "search <query>")
    assert sorted(r[0] for r in c.refused) == [412, 502, 504]
    gone = c.conversation()
    c.fail(404, 2)
    teams.say("help", gone)
    deadline = time.monotonic() + 10
    while 404 not in [r[0] for r in c.refused]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # a retry would come within this
    assert [r[0] for r in c.refused].count(404) == 1  # refused once, not retried


def test_slow_card_action_is_answered_in_time_and_updated_in_place(home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with teams_bot(home, monkeypatch, TEAMS_INVOKE_BUDGET="0.001") as slow:
        chat = slow.connector.conversation()
        posted = slow.ask(f"search {DESIGN_RIGHT}", chat, "people match")
        answer = slow.click(posted.card, "Next", chat, message_id=posted.id)
        assert "Working on it" in all_text(answer["value"])
        deadline = time.monotonic() + 10
        while posted.updates == 0:
            assert time.monotonic() < deadline, "the card was never updated"
            time.sleep(0.05)
        assert "page 2 of 2" in posted.text


def test_card_data_from_the_client_is_not_trusted(teams: Teams) -> None:
    chat = teams.connector.conversation()
    posted = teams.ask(f"search {DESIGN_RIGHT}", chat, "people match")
    broken = teams.click(posted.card, "Next", chat, data={"state": "{not json"})["value"]
    assert "out of date" in all_text(broken)
    bob = teams.engine.user("bob@example.com")
    bobs = teams.engine.search(bob, DESIGN_RIGHT, limit=1).people[0].id
    teams.engine.add(bob, [bobs])
    # a crafted remove naming Bob's person, sent by Alice: only Alice's list is touched
    state = '{"m":"remove","q":"","o":0,"s":[' + str(bobs) + '],"p":[]}'
    card = {
        "actions": [
            {"type": "Action.Execute", "title": "Remove", "verb": "picker.remove", "data": {}}
        ],
        "body": [],
    }
    done = teams.click(card, "Remove", chat, data={"state": state, "confirmed": True})["value"]
    assert "not in your list" in all_text(done)
    assert [p.id for p in teams.engine.my_list(bob)] == [bobs]
    odd = teams.click(
        {
            "actions": [
                {
                    "type": "Action.Execute",
                    "title": "Add",
                    "verb": "person.add",
                    "data": {"person": "1; drop"},
                }
            ],
            "body": [],
        },
        "Add",
        chat,
    )["value"]
    assert "out of date" in all_text(odd)
    assert not teams.engine.my_list(teams.engine.user(ALICE))


def test_playground_mode_answers_only_this_machine(home, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    """TEAMS_PLAYGROUND checks no token (the Playground sends none): an activity whose
    serviceUrl is elsewhere is dropped, so no answer with contact details leaves."""
    caplog.set_level(logging.WARNING)
    with teams_bot(home, monkeypatch, TEAMS_PLAYGROUND="true") as pg:
        c = pg.connector
        chat = c.conversation()
        evil = c.activity(chat, text="list", user=ALICE_AAD)
        evil["serviceUrl"] = "https://evil.example/teams"
        assert c.send(pg.url, evil, token=None).status_code == 200
        time.sleep(1.0)
        assert not c.posted and not c.refused
        assert "dropped an activity" in caplog.text
        local = c.activity(chat, text="help", user=ALICE_AAD)
        assert c.send(pg.url, local, token=None).status_code == 200
        deadline = time.monotonic() + 10
        while not c.refused:  # it answered here (the loopback Connector wants a token)
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_playground_mode_takes_no_activity_from_another_machine(home, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Without a token anyone could claim any aadObjectId: an activity from another
    machine must not act, even one naming this machine's serviceUrl (where the answer
    would go). `serve` listens on every interface, so the peer's address is checked."""
    import io

    with teams_bot(home, monkeypatch, TEAMS_PLAYGROUND="true") as pg:
        c = pg.connector
        chat = c.conversation()
        body = json.dumps(c.activity(chat, text="add-group", user=ALICE_AAD)).encode()
        answered: list[str] = []
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/api/messages",
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json",
            "REMOTE_ADDR": "192.0.2.77",  # TEST-NET-1: not this machine
            "wsgi.input": io.BytesIO(body),
        }
        pg.front.wsgi(environ, lambda status, headers: answered.append(status))
        time.sleep(1.0)
        assert answered and answered[0].startswith("403"), answered
        assert not c.posted and not c.refused  # nothing was done or said


def test_admin_alerts_go_to_the_teams_admin_channel_once_the_app_is_there(teams: Teams) -> None:
    from sync_engine.ops.alerts import Notice
    from sync_engine.ops.problems import Problem
    from teams.alerts import TeamsAlerts

    c = teams.connector
    channel = c.conversation("channel")
    problem = Problem(
        "mailbox_failing", "mailbox:1", "**alice@example.com** <at>x</at> fails", "Check EWS."
    )
    alerts = TeamsAlerts(teams.engine, teams.front.sender, channel)
    with pytest.raises(RuntimeError):  # not installed there yet: kept for the next cycle
        alerts.send(Notice(True, (problem,)))
    teams.install_in_team(channel)
    alerts.send(Notice(True, (problem,)))
    posted = c.wait_for(channel, "Problem")
    runs = [i for b in posted.card["body"] for i in b.get("inlines", [])]
    assert any(r["text"].endswith("**alice@example.com** <at>x</at> fails") for r in runs)
    assert "Fix: Check EWS." in posted.text


def test_an_alert_teams_missed_while_slack_took_it_follows_once_the_app_is_there(
    teams: Teams, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """ADMIN_CHANNEL (Slack) and TEAMS_ADMIN_CHANNEL both set, the Teams app not yet in its
    team: Slack gets the alert at once, Teams once the app is installed there, and Slack
    does not get it twice."""
    from servers.slack import BOT_TOKEN, SlackStandIn

    from bot.alerts import SlackAlerts
    from bot.app import web_client
    from sync_engine.config import load_settings
    from sync_engine.ops.alerts import Announcer
    from sync_engine.ops.problems import Findings, Problem
    from teams.alerts import TeamsAlerts

    c = teams.connector
    channel = c.conversation("channel")
    down = Problem("crm_unreachable", "crm", "The CRM database cannot be read", "crm check")
    with SlackStandIn() as slack:
        slack.add_channel("C_ADMIN", private=True, member=True)
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_API_URL", slack.api_url)
        senders = [
            SlackAlerts(web_client(load_settings()), "C_ADMIN"),
            TeamsAlerts(teams.engine, teams.front.sender, channel),
        ]
        announcer = Announcer(teams.engine.store, senders)
        now = datetime.now(UTC)
        announcer.announce(Findings([down]), now)
        assert len(slack.of("chat.postMessage")) == 1 and not c.posted
        teams.install_in_team(channel)
        announcer.announce(Findings([down]), now + timedelta(minutes=1))
        posted = c.wait_for(channel, "Problem")
        assert "The CRM database cannot be read" in posted.text
        assert len(slack.of("chat.postMessage")) == 1  # Slack had it already
