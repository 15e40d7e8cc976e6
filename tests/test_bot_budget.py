"""Every message the bot builds stays within Slack's text budget and Block Kit's limits,
whatever the sizes (issue 12, item 1): checked with the stand-in's own counter and limit
checker (tests/servers/slack/), written independently of bot/blocks.

Sizes go up to 1,000 failures, 1,000 updates and 1,000 possible duplicates in one sync
or digest, an add-group of 600 people, a team of 300 salespeople; values up to the
longest the builders keep, made of characters that grow when escaped (`&` → `&amp;`).
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers.slack import (
    LIMITS,
    MESSAGE_TEXT_LIMIT,
    all_text,
    block_kit_problems,
    message_text_length,
)

from bot import blocks as ui
from bot.summary import digest_blocks, sync_result_message, team_summary_message
from sync_engine.answers import MailboxStatus
from sync_engine.digests import TeamDigest, TeamLine
from sync_engine.model import DigestPrefs, Outcome, PersonView, SyncResult

KINDS = ("created", "linked", "updated", "unlinked", "deleted", "forgotten", "held")
FILL = st.sampled_from(["a", "&", "<", "ü", '"', "Ω"])
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def text(fill: str, size: int, tag: object = "") -> str:
    return (f"{tag} " + fill * size)[: max(size, 1)] if size else str(tag)


def person(pid: int, fill: str, size: int, **kw: Any) -> PersonView:
    values: dict[str, Any] = {
        "company": text(fill, size, "Co"),
        "email": text(fill, size, f"p{pid}@"),
        "job_title": text(fill, size, "T"),
        "business_phone": text(fill, size, "+44"),
        "mobile_phone": text(fill, size, "+44"),
        "manager": text(fill, size, "M"),
    }
    values.update(kw)
    return PersonView(pid, text(fill, size, "F"), text(fill, size), text(fill, size, pid), **values)


def within_limits(blocks: list[dict[str, Any]], *, view: bool = False) -> None:
    """What Slack would accept: the text budget (our 11,000 under its ~12,000) and every
    Block Kit limit; no mrkdwn with a raw `<` (every CRM value escaped)."""
    size = message_text_length(blocks)
    assert size <= ui.TEXT_BUDGET < MESSAGE_TEXT_LIMIT, size
    limit = LIMITS["view_blocks"] if view else LIMITS["message_blocks"]
    assert block_kit_problems(blocks, limit) == []
    raw = [t for t in mrkdwn_texts(blocks) if "<" in DATE.sub("", t) or ">" in DATE.sub("", t)]
    assert raw == []


DATE = re.compile(r"<!date\^\d+\^[^|>]*\|[^>]*>")  # ours: a time in the reader's zone


def mrkdwn_texts(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        own = [str(obj["text"])] if obj.get("type") == "mrkdwn" else []
        return own + [t for v in obj.values() for t in mrkdwn_texts(v)]
    if isinstance(obj, list):
        return [t for v in obj for t in mrkdwn_texts(v)]
    return []


def and_more(blocks: list[dict[str, Any]]) -> list[int]:
    return [int(n) for n in re.findall(r"…and (\d+) more", all_text(blocks))]


@PROPERTY
@given(
    failures=st.integers(0, 1000),
    updates=st.integers(0, 1000),
    duplicates=st.integers(0, 1000),
    others=st.integers(0, 300),
    fill=FILL,
    size=st.integers(1, 500),
    warnings=st.integers(0, 8),
)
def test_a_sync_result_and_a_digest_of_any_size_fit(
    failures: int,
    updates: int,
    duplicates: int,
    others: int,
    fill: str,
    size: int,
    warnings: int,
) -> None:
    outcomes = [
        Outcome(i, text(fill, size, i), "failed", text(fill, size)) for i in range(failures)
    ]
    outcomes += [
        Outcome(i, text(fill, size, i), "updated", text(fill, size)) for i in range(updates)
    ]
    outcomes += [
        Outcome(i, text(fill, size, i), KINDS[i % len(KINDS)], text(fill, size))
        for i in range(others)
    ]
    dups = [text(fill, size, f"dup {i}") for i in range(duplicates)]
    notes = [text(fill, size * 5, "warning") for _ in range(warnings)]
    result = SyncResult("alice@example.com", outcomes=outcomes, possible_duplicates=dups)
    result.warnings = notes
    result.error = text(fill, size * 4, "error") if warnings % 2 else None
    fallback, blocks = sync_result_message(result)
    within_limits(blocks)
    assert len(fallback) <= 3000
    if failures:
        assert f"{failures} failed" in fallback
        assert f"*Failed* ({failures})" in all_text(blocks)  # the count, whatever is shown

    prefs = DigestPrefs(
        time="08:00", tz=text(fill, 60, "Europe"), frequency="weekly" if warnings % 2 else "daily"
    )
    since = datetime(2026, 3, 9, 8, tzinfo=UTC)
    _, digest = digest_blocks(
        outcomes, dups, notes, prefs, (since, since + timedelta(days=1)), runs=3, note="✓ Saved."
    )
    within_limits(digest)
    assert any(b.get("accessory", {}).get("action_id") == ui.ACTION_DIGEST_MENU for b in digest)


@PROPERTY
@given(
    added=st.integers(0, 600),
    already=st.integers(0, 300),
    fill=FILL,
    size=st.integers(1, 300),
)
def test_add_remove_and_add_group_of_any_size_fit(
    added: int, already: int, fill: str, size: int
) -> None:
    people = [person(i, fill, size) for i in range(added + already)]
    new, old = (
        people[:added],
        [dataclasses.replace(p, in_list=True) for p in people[added:]],
    )
    blocks = ui.added_blocks(new, old)
    within_limits(blocks)
    shown = all_text(blocks)
    if added > 1:
        assert f"Added {added} people" in shown
    if added + already and and_more(blocks):
        assert ui.COMMAND + " list" in shown  # where to see all
    within_limits(ui.removed_blocks(new, list(range(already))))
    group = ui.group_confirm_blocks([*new, *old])
    within_limits(group)
    if added:
        add, _ = next(
            (e, b)
            for b in group
            for e in b.get("elements", [])
            if e.get("action_id") == ui.ACTION_GROUP_ADD
        )
        assert add["text"]["text"] == f"Add {added} to My CRM Contacts"


@PROPERTY
@given(
    total=st.integers(1, 5000),
    on_page=st.integers(0, 10),
    choosable=st.integers(0, 10),
    selected=st.integers(0, 150),
    id_digits=st.integers(1, 19),
    fill=FILL,
    size=st.integers(1, 300),
    query=st.text(min_size=0, max_size=2000),
    mode=st.sampled_from(["add", "remove"]),
)
def test_a_picker_page_fits_and_every_button_value_is_whole_json(
    total: int,
    on_page: int,
    choosable: int,
    selected: int,
    id_digits: int,
    fill: str,
    size: int,
    query: str,
    mode: str,
) -> None:
    base = 10 ** (id_digits - 1)
    people = [
        person(base + i, fill, size, status=text(fill, size, "failed:"), in_list=i >= choosable)
        for i in range(on_page)
    ]
    state = ui.PickerState(mode, query, 0, tuple(base + 100 + i for i in range(selected)))
    page = ui.PickerPage(state.with_query_fitted(), total, people, people[:choosable], "note")
    blocks = ui.picker_blocks(page)
    within_limits(blocks)
    values = [
        e["value"] for b in blocks for e in b.get("elements", []) if e.get("type") == "button"
    ]
    assert values
    for value in values:
        assert len(value) <= ui.MAX_VALUE
        parsed = ui.PickerState.from_value(value)  # never cut into invalid JSON
        assert parsed.mode == mode


@PROPERTY
@given(fill=FILL, size=st.integers(1, 3000), failed=st.integers(0, 1000), team=st.integers(0, 300))
def test_cards_choices_home_and_team_summary_fit(
    fill: str, size: int, failed: int, team: int
) -> None:
    long = person(1, fill, size, status=text(fill, size, "failed:"))
    within_limits(ui.person_card(long, note="Added to My CRM Contacts."))
    within_limits(ui.person_card(dataclasses.replace(long, in_list=True)))
    people = [person(i, fill, size) for i in range(10)]
    within_limits(ui.person_choices(text(fill, size), people, 5000))
    within_limits(ui.no_match(text(fill, size)))
    within_limits(ui.problem_blocks(text(fill, size)))
    status = MailboxStatus(
        text(fill, size),
        text(fill, size),
        5,
        3,
        None,
        text(fill, size),
        text(fill, size),
        None,
        None,
        2,
    )
    within_limits(ui.status_blocks(status))
    failures = [person(i, fill, size, status=text(fill, size, "failed:")) for i in range(failed)]
    within_limits(ui.home_view(ui.status_blocks(status), failures)["blocks"], view=True)
    lines = [
        TeamLine(
            text(fill, size, f"u{i}@x"),
            text(fill, size, i),
            {"created": i, "failed": 1},
            [text(fill, size, "error")],
        )
        for i in range(team)
    ]
    since = datetime(2026, 3, 9, 8, tzinfo=UTC)
    _, blocks = team_summary_message(TeamDigest(since, since, lines))
    within_limits(blocks)
    shown = all_text(blocks)
    assert len(re.findall(r"^• ", shown, re.MULTILINE)) + sum(and_more(blocks)) == team
    assert not and_more(blocks) or "crm-contacts status" in shown


def test_the_largest_digest_shows_first_lines_and_counts_the_rest() -> None:
    """1,000 failures, 1,000 updates and 1,000 possible duplicates, each as long as kept:
    within the budget, failures first in line for room, every list ends in "…and N more"
    with where to see all, and shown + N adds up."""
    reason = "The EWS server answered ErrorInvalidPropertyRequest for PhysicalAddresses & more"
    outcomes = [Outcome(i, f"Person {i} & Sons", "failed", reason) for i in range(1000)]
    outcomes += [Outcome(i, f"Person {i}", "updated", "title, email") for i in range(1000)]
    dups = [f"Jon Smith & Sons <{i}>" for i in range(1000)]
    _, blocks = sync_result_message(
        SyncResult("alice@example.com", outcomes=outcomes, possible_duplicates=dups)
    )
    within_limits(blocks)
    shown = all_text(blocks)
    failed_lines = len(re.findall(r"• \*Person \d+ &amp; Sons\*: The EWS", shown))
    dup_lines = len(re.findall(r"• Jon Smith &amp; Sons &lt;\d+&gt;", shown))
    assert failed_lines >= 20 and dup_lines >= 10
    more = and_more(blocks)
    assert 1000 - failed_lines in more and 1000 - dup_lines in more
    assert "App Home lists the failures" in shown and "crm-contacts sync --dry-run" in shown
