"""The Block Kit builders on their own: escaping, Slack's limits, picker state, summaries.

Checked with the stand-in's own limit checker (tests/servers/slack/), written
independently of bot/blocks.py.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from servers.slack import LIMITS, all_text, block_kit_problems, checkbox_options, find_element

from bot import blocks as ui
from bot.summary import summary_blocks
from sync_engine.answers import MailboxStatus
from sync_engine.model import DigestPrefs, Outcome, PersonView


def person(pid: int, first: str = "Jane", last: str = "Doe", **kw: object) -> PersonView:
    values: dict[str, object] = {
        "company": "Design Right Inc.",
        "email": f"p{pid}@example.com",
        "job_title": "Buyer",
    }
    values.update(kw)
    return PersonView(pid, first, "", last, **values)  # type: ignore[arg-type]


def test_escape_only_ampersand_and_angle_brackets() -> None:
    assert ui.escape("<!channel> & Co") == "&lt;!channel&gt; &amp; Co"
    assert ui.escape("*bold* _it_ `code` \"q\" 'a'") == "*bold* _it_ `code` \"q\" 'a'"


def test_fit_escaped_never_breaks_an_entity() -> None:
    raw = "&" * 40
    out = ui.fit_escaped(raw, 75)
    assert len(out) <= 75
    assert out.endswith("…")
    assert out[:-1].replace("&amp;", "") == ""


def test_person_line_and_option_escape_every_crm_value() -> None:
    prank = PersonView(
        7, "<!channel>", "", "& Co", "Harbour & Sons <Ltd>", "a@b.example", "<b>not bold</b>"
    )
    line = ui.person_line(prank)
    assert "&lt;!channel&gt; &amp; Co" in line
    assert "Harbour &amp; Sons &lt;Ltd&gt;" in line
    assert "<" not in line and ">" not in line
    option = ui.person_option(prank)
    assert option["text"]["text"] == "*&lt;!channel&gt; &amp; Co*"
    assert option["description"]["type"] == "plain_text"  # plain text is never parsed


def test_long_values_are_cut_to_slack_option_and_button_limits() -> None:
    long = person(1, first="A" * 120, last="B" * 120, company="C" * 200, job_title="T" * 200)
    option = ui.person_option(long)
    assert len(option["text"]["text"]) <= 75
    assert len(option["description"]["text"]) <= 75
    page = ui.PickerPage(ui.PickerState("add", "x" * 400), 1, [long], [long])
    assert block_kit_problems(ui.picker_blocks(page), LIMITS["message_blocks"]) == []


def test_picker_state_round_trips_through_button_value_and_block_id() -> None:
    state = ui.PickerState("add", 'company:"Design Right Inc."', 20, (5, 77, 123456), (1, 2))
    assert ui.PickerState.from_value(state.to_value()) == state
    back = ui.PickerState.from_block_id(state.to_block_id())
    assert back == ui.PickerState("add", 'company:"Design Right Inc."', 20, (5, 77, 123456))
    assert len(state.to_block_id()) <= 255


def test_a_big_selection_still_fits_a_button_value_and_falls_back_in_block_id() -> None:
    state = ui.PickerState("remove", "q" * 200, 90, tuple(range(10**6, 10**6 + 100)))
    assert len(state.to_value()) <= 2000
    block_id = state.to_block_id()
    assert len(block_id) <= 255
    assert ui.PickerState.from_block_id(block_id) is None


@pytest.mark.parametrize("junk", ["", "{}", "[1]", '{"m":"drop"}', '{"m":"add","s":["x"]}', "%%"])
def test_picker_state_refuses_what_is_not_ours(junk: str) -> None:
    with pytest.raises(ValueError):
        ui.PickerState.from_value(junk)


def test_selection_survives_paging_merge() -> None:
    state = ui.PickerState("add", "q", 0, (1, 2, 30))
    # on the page showing 1..10 the user now has 2 and 3 ticked; 30 is on another page
    merged = state.merged(range(1, 11), [2, 3])
    assert set(merged.selected) == {2, 3, 30}


def test_picker_page_has_at_most_ten_options_and_marks_people_already_added() -> None:
    people = [person(i, last=f"Doe{i}", in_list=i % 3 == 0) for i in range(10)]
    choosable = [p for p in people if not p.in_list]
    state = ui.PickerState("add", "doe", 10, (1, 2, 99))
    blocks = ui.picker_blocks(ui.PickerPage(state, 37, people, choosable))
    assert block_kit_problems(blocks, LIMITS["message_blocks"]) == []
    options = checkbox_options(blocks)
    assert len(options) == len(choosable) <= 10
    text = all_text(blocks)
    assert "37 people match" in text and "page 2 of 4" in text
    assert "Already in My CRM Contacts" in text
    assert "*3 selected* (1 on other pages)" in text
    buttons = [
        e["text"]["text"] for b in blocks for e in b.get("elements", []) if e["type"] == "button"
    ]
    assert buttons[0] == "Add 3 to My CRM Contacts"
    assert "◀ Previous" in buttons and "Next ▶" in buttons


def test_remove_picker_confirms_with_a_danger_button() -> None:
    people = [person(i, status="synced", in_list=True) for i in range(3)]
    state = ui.PickerState("remove", "", 0, (1, 2))
    blocks = ui.picker_blocks(ui.PickerPage(state, 3, people, people))
    remove, _ = find_element(blocks, ui.ACTION_REMOVE)
    assert remove["style"] == "danger" and remove["confirm"]["style"] == "danger"
    assert remove["text"]["text"] == "Remove 2 from My CRM Contacts"


def test_group_confirm_shows_the_count() -> None:
    people = [person(i) for i in range(250)]
    blocks = ui.group_confirm_blocks(people)
    assert block_kit_problems(blocks, LIMITS["message_blocks"]) == []
    add, _ = find_element(blocks, ui.ACTION_GROUP_ADD)
    assert add["text"]["text"] == "Add 250 to My CRM Contacts"
    assert "250" in add["confirm"]["text"]["text"]


def test_added_list_of_hundreds_stays_within_limits() -> None:
    added = [person(i, first="Ünïcødé" * 5, last=f"Person{i}") for i in range(600)]
    blocks = ui.added_blocks(added, added[:50])
    assert block_kit_problems(blocks, LIMITS["message_blocks"]) == []
    assert "more" in all_text(blocks)


def test_summary_of_a_huge_sync_stays_within_limits_and_escapes_names() -> None:
    outcomes = [
        Outcome(i, f"<!here> Person {i} & Co", action, "reason <x>")
        for i, action in enumerate(
            ["created", "linked", "updated", "unlinked", "deleted", "forgotten", "failed"] * 200
        )
    ]
    duplicates = [f"Jon Smith & Sons <{i}>" for i in range(300)]
    text, blocks = summary_blocks(
        "Sync of alice@example.com", outcomes, duplicates, ["held back 9 deletes"]
    )
    assert block_kit_problems(blocks, LIMITS["message_blocks"]) == []
    dumped = json.dumps(blocks)
    assert "<!here>" not in dumped and "&lt;!here&gt;" in dumped
    assert "200 created" in text and "200 failed" in text
    assert "…and" in all_text(blocks)


def test_summary_with_nothing_to_say() -> None:
    text, blocks = summary_blocks("Sync of a@b", [])
    assert "already up to date" in all_text(blocks)
    assert text == "Sync of a@b"


def test_help_lists_every_subcommand() -> None:
    text = all_text(ui.help_blocks())
    for sub in ("search", "add", "add-group", "person", "list", "remove", "sync", "status"):
        assert f"/crm-contacts {sub}" in text


def test_manifest_and_procfile_match_what_the_bot_uses() -> None:
    root = Path(__file__).resolve().parent.parent
    manifest = (root / "manifest.yml").read_text()
    scopes = re.findall(r"^\s+- ([a-z:.]+)\s+#", manifest, flags=re.MULTILINE)
    assert scopes == [
        "commands",
        "chat:write",
        "chat:write.public",
        "im:write",
        "users:read",
        "users:read.email",
    ]
    assert "command: /crm-contacts" in manifest
    assert "- app_home_opened" in manifest
    assert manifest.count("/slack/events") == 3
    assert "is_enabled: true" in manifest  # interactivity
    procfile = (root / "Procfile").read_text().splitlines()
    assert procfile == ["web: crm-contacts serve", "clock: crm-contacts scheduler"]


def test_home_lists_failures_with_a_retry() -> None:
    failed = [person(i, status="failed: the mailbox refused <it> & more") for i in range(30)]
    mailbox = MailboxStatus(
        "a@b.example", "a@b.example", 30, 0, None, None, "boom <x>", None, None, 3
    )
    status = ui.status_blocks(mailbox)
    view = ui.home_view(status, failed)
    assert block_kit_problems(view["blocks"], LIMITS["view_blocks"]) == []
    assert find_element(view["blocks"], ui.ACTION_SYNC_NOW)[0]["text"]["text"] == "Retry now"
    text = all_text(view["blocks"])
    assert "Failed at the last sync* (30)" in text
    assert "the mailbox refused &lt;it&gt; &amp; more" in text
    # the mailbox's own error is the admin's (it can name servers): the user is told so
    assert "boom" not in text and "Your admin has the details" in text


def test_digest_controls_are_one_overflow_within_slacks_limits_and_escape_the_zone() -> None:
    since = datetime(2026, 3, 9, 8, 0, 0, 500, tzinfo=UTC)
    until = datetime(2026, 3, 10, 8, 0, 0, 500, tzinfo=UTC)
    for frequency in ("daily", "weekly"):
        for snoozed in (None, date(2026, 3, 17)):
            for off in (False, True):
                prefs = DigestPrefs(
                    time="17:30",
                    frequency=frequency,
                    weekday=6,
                    snoozed_until=snoozed,
                    off=off,
                    tz="<!channel> & Co",
                )
                for choice in ("time", "weekly", "daily", "snooze", "resume", "off", "on"):
                    blocks = ui.digest_controls(
                        prefs, ui.digest_place(since, until), ui.digest_note(choice, prefs)
                    )
                    assert block_kit_problems(blocks, LIMITS["message_blocks"]) == []
                    menus = [b["accessory"] for b in blocks if b.get("accessory")]
                    assert [m["type"] for m in menus] == ["overflow"]  # no button (UX 4)
                    assert 3 <= len(menus[0]["options"]) <= 5
                    assert "<!channel>" not in json.dumps(blocks)
                card = ui.digest_card(prefs)
                assert block_kit_problems(card, LIMITS["message_blocks"]) == []
    line = ui.digest_settings_line(DigestPrefs(time="17:30", tz="<!channel> & Co"))
    assert "(&lt;!channel&gt; &amp; Co)" in line
    modal = ui.digest_time_modal(DigestPrefs(time="06:45", frequency="weekly", weekday=6), "{}")
    assert block_kit_problems(modal["blocks"], LIMITS["view_blocks"]) == []
    day = modal["blocks"][1]["element"]["initial_option"]
    assert day["value"] == "6" and day["text"]["text"] == "Sunday"


def test_digest_place_carries_the_period_and_refuses_what_is_not_ours() -> None:
    since = datetime(2026, 3, 9, 8, 0, 0, 500, tzinfo=UTC)
    until = datetime(2026, 3, 16, 8, 0, 0, 500, tzinfo=UTC)
    period = ui.digest_period(ui.digest_place(since, until))
    assert period is not None
    assert period[0] <= since and until <= period[1]  # rounded outwards: nothing left out
    assert period[1] - period[0] < timedelta(days=7, seconds=2)
    for other in (ui.DIGEST_CARD, "dg|2|1", "dg|1|99999999999", "dg|x|1", "dg|1", "", "pk1|a"):
        assert ui.digest_period(other) is None


def test_a_long_list_of_updates_is_cut_whole_lines_with_and_n_more():
    detail = "title, email, business phone, street, city, postal code, country, department"
    outcomes = [Outcome(i, f"Pat Smith-Jones {i} (R&D)", "updated", detail) for i in range(30)]
    _, blocks = summary_blocks("Sync", outcomes)
    assert block_kit_problems(blocks, LIMITS["message_blocks"]) == []
    text = all_text(blocks)
    shown = len(re.findall(r"Pat Smith-Jones \d+ \(R&amp;D\) — _[^_]+_", text))
    more = re.search(r"…and (\d+) more", text)
    assert more is not None and shown + int(more.group(1)) == 30
    assert "&amp" not in text.replace("&amp;", "")  # no entity cut in half


def test_slash_text_undoes_slacks_three_entities_exactly_once_and_straightens_quotes() -> None:
    from bot.typed import slash_text, straight_quotes

    assert slash_text("search company:&quot;Smith &amp; Co&quot;") == (
        "search company:&quot;Smith & Co&quot;"  # only &amp; &lt; &gt; are Slack's
    )
    assert slash_text("&lt;!here&gt; &amp;amp; &amp;lt;") == "<!here> &amp; &lt;"  # once
    assert slash_text("company:“Smith & Co” jane") == 'company:"Smith & Co" jane'
    assert slash_text("COMPANY: ”Acme“") == 'COMPANY:"Acme"'
    assert straight_quotes("Seán O’Brien “the boss”") == "Seán O’Brien “the boss”"


def test_100_selected_ids_and_a_quote_heavy_2000_character_query_stay_whole_json() -> None:
    """Slack cuts nothing, it refuses; we used to cut the value ourselves into invalid JSON.
    Now the query is fitted first and the selection is kept whole (100 ids of 7 digits)."""
    query = ('company:"Smith \\"&\\" Co" ' * 100)[:2000]
    selected = tuple(range(1_000_000, 1_000_100))
    state = ui.PickerState("add", query, 20, selected).with_query_fitted()
    people = [person(1_000_000 + i, last=f"Doe{i}") for i in range(10)]
    blocks = ui.picker_blocks(ui.PickerPage(state, 300, people, people))
    assert block_kit_problems(blocks, LIMITS["message_blocks"]) == []
    values = [e["value"] for b in blocks for e in b.get("elements", []) if e["type"] == "button"]
    assert len(values) == 5  # add, select all, deselect all, previous, next
    for value in values:
        assert len(value) <= 2000
        parsed = ui.PickerState.from_value(value)
        assert parsed.selected == selected and query.startswith(parsed.query)
    assert "*100 selected*" in all_text(blocks)


def test_ids_too_long_for_a_button_value_drop_the_oldest_ticks_and_say_so() -> None:
    selected = tuple(range(10**18, 10**18 + 100))  # 19-digit ids: 100 of them take 2,000
    state = ui.PickerState("remove", "", 0, selected)
    people = [person(10**18 + i, status="synced", in_list=True) for i in range(10)]
    blocks = ui.picker_blocks(ui.PickerPage(state, 100, people, people))
    value = find_element(blocks, ui.ACTION_REMOVE)[0]["value"]
    kept = ui.PickerState.from_value(value).selected
    assert len(value) <= 2000 and 0 < len(kept) < 100
    assert kept == selected[-len(kept) :]  # the newest ticks stay
    assert f"I keep the last {len(kept)} ticks" in all_text(blocks)
    assert f"*{len(kept)} selected*" in all_text(blocks)
