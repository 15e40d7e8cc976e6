"""Per-user summaries: what the engine did and why, shared by sync results and the digest.

One builder (`summary_blocks`) renders both a hand-run sync and the digest, so the words
and limits are the same in both places (issue 4, part 4; SLACK_UX 8, 9). The digest
carries its own controls (time, daily or weekly, snooze, off) and is re-rendered from
its period when one is used, so the message updates in place.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from slack_sdk import WebClient

from bot.blocks import (
    COMMAND,
    MAX_BLOCKS,
    TEXT_BUDGET,
    Block,
    context,
    digest_controls,
    digest_place,
    fallback,
    fit_escaped,
    lines_length,
    list_budgets,
    listing,
    plural,
    section,
    text_length,
    when,
)
from chat.failures import TEAM_FAILED, for_salesperson
from chat.summary import counts as count_words
from chat.summary import digest_content, failures, groups
from chat.words import (
    ACTIONS,
    DUPLICATES_LABEL,
    FAILURE_HINT,
    MAX_WARNINGS,
    NAMES_PER_KIND,
    NOTHING_CHANGED,
    SHORT,
    sync_title,
)
from sync_engine.model import CrmUser, DigestPrefs, Outcome, SyncResult

if TYPE_CHECKING:
    from sync_engine.digests import TeamDigest
    from sync_engine.service import Engine

log = logging.getLogger(__name__)
__all__ = ["ACTIONS", "FAILURE_HINT", "SHORT"]

DUPLICATES_TITLE = "*Possible duplicates* —" + DUPLICATES_LABEL.removeprefix(
    "Possible duplicates —"
)
# Where to see everything a long list left out (UX 8).
SEE_ALL = f"`{COMMAND} list` shows everyone in My CRM Contacts."
SEE_FAILED = (
    f"`{COMMAND} list` shows each one's status, App Home lists the failures, and "
    "`crm-contacts why ID` tells an admin one person's story."
)
SEE_DUPLICATES = (
    "An admin sees them all with `crm-contacts sync --dry-run --as EMAIL` (EMAIL: yours)."
)


@dataclass(frozen=True)
class _List:
    """One list of a summary: its lines, and how it shares the message's room."""

    title: str
    lines: list[str]
    more: str  # where to see all
    hidden: int = 0  # lines left out already
    max_blocks: int = 2
    weight: int = 1  # share of the room, against the other lists
    after: list[Block] = field(default_factory=list)


def summary_blocks(
    title: str,
    outcomes: Sequence[Outcome],
    possible_duplicates: Sequence[str] = (),
    warnings: Sequence[str] = (),
    error: str | None = None,
    nothing: str = NOTHING_CHANGED,
    subtitle: str = "",
    reserve: int = 0,
) -> tuple[str, list[Block]]:
    """The summary of one sync or one period: per-person outcomes, duplicates, failures.

    Returns (fallback text, blocks). The whole message keeps within the text budget
    (`bot.blocks.budget`), less `reserve` characters for what the caller adds (the
    digest's controls): the counts are always there; each list shows its first lines
    and "…and N more" with where to see all. Failures, what the user most needs, get a
    double share of the room the lists divide.
    """
    failed = failures(outcomes)
    counts = count_words(outcomes, possible_duplicates)

    head: list[Block] = [section(f"*{fit_escaped(title, 300)}*")]
    if subtitle:  # mrkdwn made by us (dates), never a CRM value
        head.append(context(subtitle))
    if error:
        head.append(section(f":x: {fit_escaped(error, 1000)}"))
    if counts:
        head.append(context(" · ".join(counts)))
    elif not error and not warnings:
        head.append(section(nothing))
    tail = [section(f":warning: {fit_escaped(w, 500)}") for w in warnings[:MAX_WARNINGS]]
    hint = [context(FAILURE_HINT)] if failed else []

    lists: list[_List] = []
    for _key, label, group in groups(outcomes):
        lines = [_outcome_line(o) for o in group[:NAMES_PER_KIND]]
        hidden = len(group) - len(lines)
        lists.append(_List(f"*{label}* ({len(group)})", lines, SEE_ALL, hidden=hidden))
    if failed:
        lines = [
            f"• *{fit_escaped(o.name, 200)}*: {fit_escaped(o.detail or 'no reason given', 400)}"
            for o in failed
        ]
        title_ = f":warning: *Failed* ({len(failed)})"
        lists.append(_List(title_, lines, SEE_FAILED, max_blocks=4, weight=2, after=hint))
    if possible_duplicates:
        lines = [f"• {fit_escaped(d, 400)}" for d in possible_duplicates]
        lists.append(_List(DUPLICATES_TITLE, lines, SEE_DUPLICATES, max_blocks=4))

    room = TEXT_BUDGET - reserve - text_length(head + hint + tail)
    budgets = list_budgets(
        room, [lines_length(li.lines, li.title) for li in lists], [li.weight for li in lists]
    )
    blocks = list(head)
    for li, budget in zip(lists, budgets, strict=True):
        blocks += listing(
            li.lines,
            budget=budget,
            max_blocks=li.max_blocks,
            more=li.more,
            title=li.title,
            hidden=li.hidden,
        )
        blocks += li.after
    blocks += tail

    text = title + (": " + ", ".join(counts) if counts else "") + (f" — {error}" if error else "")
    return fallback(text), blocks[:MAX_BLOCKS]


def _outcome_line(outcome: Outcome) -> str:
    line = f"• {fit_escaped(outcome.name, 200)}"
    if outcome.detail:
        line += f" — _{fit_escaped(outcome.detail, 300)}_"
    return line


def sync_result_message(result: SyncResult) -> tuple[str, list[Block]]:
    """The DM after a hand-run sync (always sent: the user asked for it)."""
    failed = bool(result.error and not result.outcomes)
    title = sync_title(result.mailbox, dry_run=result.dry_run, failed=failed)
    return summary_blocks(
        title,
        result.outcomes,
        result.possible_duplicates,
        result.warnings,
        for_salesperson(result.error),  # the reason itself is the admin's (`status`)
    )


_TEAM_ORDER = {
    a: n for n, a in enumerate(("created", "linked", "updated", "unlinked", "deleted", "forgotten"))
}
SEE_TEAM = "`crm-contacts status` lists every mailbox."


def team_summary_message(digest: TeamDigest) -> tuple[str, list[Block]]:
    """The team digest for SUMMARY_CHANNEL: counts per salesperson, no contact details;
    a long team shows its first salespeople and "…and N more" within the text budget."""
    lines = []
    for line in digest.lines:
        ranked = sorted(line.counts.items(), key=lambda kv: _TEAM_ORDER.get(kv[0], 99))
        counts = ", ".join(f"{n} {action}" for action, n in ranked)
        text = f"• *{fit_escaped(line.name, 100)}* ({fit_escaped(line.email, 100)})"
        text += f": {counts or 'no changes'}"
        if line.errors:
            text += f" — :x: {TEAM_FAILED}"  # a shared channel: no server or account names
        lines.append(text)
    title = f"CRM Contacts: {plural(len(lines), 'salesperson', 'salespeople')} with activity"
    head = [section(f"*{title}*"), context(f"Since {when(digest.since)}")]
    room = TEXT_BUDGET - text_length(head)
    return fallback(title), head + listing(lines, budget=room, max_blocks=40, more=SEE_TEAM)


def open_dm(client: WebClient, slack_user_id: str) -> str:
    """The app's DM channel with a user (conversations.open is idempotent)."""
    response = client.conversations_open(users=slack_user_id)
    return str(response["channel"]["id"])


def post_dm(client: WebClient, slack_user_id: str, text: str, blocks: list[Block]) -> None:
    """Post to the user's DM: private, and where they come back to (UX 9)."""
    channel = open_dm(client, slack_user_id)
    client.chat_postMessage(channel=channel, text=text, blocks=blocks)


def digest_message(
    engine: Engine,
    user: CrmUser,
    since: datetime,
    until: datetime,
    note: str = "",
) -> tuple[str, list[Block]] | None:
    """The digest of `since`..`until` with its controls; None when nothing happened.

    Rebuilt the same way after a click on its controls (the period is in the controls'
    block_id), so the message keeps its content and shows the new settings."""
    content = digest_content(engine, user, since, until)
    if content is None:
        return None
    prefs = engine.digest_prefs(user)
    return digest_blocks(
        content.outcomes,
        content.possible_duplicates,
        content.warnings,
        prefs,
        (since, until),
        runs=content.runs,
        note=note,
    )


def digest_blocks(
    outcomes: Sequence[Outcome],
    possible_duplicates: Sequence[str],
    warnings: Sequence[str],
    prefs: DigestPrefs,
    period: tuple[datetime, datetime],
    *,
    runs: int,
    note: str = "",
) -> tuple[str, list[Block]]:
    """The digest's (fallback text, blocks): the summary, then its controls, all within
    the text budget (the summary leaves the controls their room)."""
    since, until = period
    subtitle = f"Since {when(since)} · {plural(runs, 'sync')}"
    controls = digest_controls(prefs, digest_place(since, until), note)
    text, blocks = summary_blocks(
        "Your CRM Contacts digest",  # the controls say daily or weekly; they may change
        outcomes,
        possible_duplicates,
        warnings,
        subtitle=subtitle,
        reserve=text_length(controls),
    )
    return text, blocks[: MAX_BLOCKS - len(controls)] + controls


def post_daily_summary(
    client: WebClient,
    engine: Engine,
    user: CrmUser,
    slack_user_id: str,
    since: datetime,
    until: datetime,
) -> bool:
    """DM one user the digest of `since`..`until`; True if a DM was sent.

    Nothing happened → no DM: users uninstall noisy bots (UX 9). Whether it is due (the
    user's time, day, snooze) is the scheduler's call. Engine errors propagate to the
    scheduler, which owns retrying and logging per user.
    """
    message = digest_message(engine, user, since, until)
    if message is None:
        return False
    text, blocks = message
    post_dm(client, slack_user_id, text, blocks)
    log.info("digest sent", extra={"slack_user": slack_user_id})
    return True
