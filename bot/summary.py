"""Per-user summaries: what the engine did and why, shared by sync results and the digest.

One builder (`summary_blocks`) renders both a hand-run sync and the digest, so the words
and limits are the same in both places (issue 4, part 4; SLACK_UX 8, 9). The digest
carries its own controls (time, daily or weekly, snooze, off) and is re-rendered from
its period when one is used, so the message updates in place.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from slack_sdk import WebClient

from bot.blocks import (
    COMMAND,
    MAX_BLOCKS,
    Block,
    context,
    digest_controls,
    digest_place,
    fallback,
    fit_escaped,
    plural,
    section,
    sections_of_lines,
    when,
)
from bot.failures import for_salesperson
from sync_engine.model import CrmUser, Outcome, SyncResult

if TYPE_CHECKING:
    from sync_engine.service import Engine

log = logging.getLogger(__name__)

# In the order a reader cares about, with the words a salesperson uses.
ACTIONS: tuple[tuple[str, str], ...] = (
    ("created", "Created in your Contacts"),
    ("linked", "Linked to a contact you already had"),
    ("updated", "Updated from the CRM"),
    ("unlinked", "Unlinked (still in your mailbox, no longer kept up to date)"),
    ("deleted", "Deleted from your mailbox (gone from the CRM)"),
    ("forgotten", "Deleted by you in Outlook, so taken off My CRM Contacts"),
    ("held", "Held back for safety"),
)
SHORT = {
    "created": "created",
    "linked": "linked to an existing contact",
    "updated": "updated",
    "unlinked": "unlinked",
    "deleted": "deleted",
    "forgotten": "deleted in Outlook",
    "held": "held back",
    "failed": "failed",
}
# Names listed per kind before "and N more"; keeps a long result within 50 blocks.
NAMES_PER_KIND = 25
FAILURE_HINT = (
    "I retry these at the next sync. If one keeps failing, check the person in the CRM "
    "and the contact in Outlook, or send this message to your admin."
)


def summary_blocks(
    title: str,
    outcomes: Sequence[Outcome],
    possible_duplicates: Sequence[str] = (),
    warnings: Sequence[str] = (),
    error: str | None = None,
    nothing: str = "Nothing changed: your mailbox was already up to date.",
    subtitle: str = "",
) -> tuple[str, list[Block]]:
    """The summary of one sync or one period: per-person outcomes, duplicates, failures.

    Returns (fallback text, blocks). Long lists are cut with "…and N more" and a pointer
    to `/crm-contacts list`, so the message stays within Slack's limits.
    """
    failed = [o for o in outcomes if o.action == "failed"]
    done = [o for o in outcomes if o.action != "failed"]
    counts = [
        plural(sum(1 for o in done if o.action == key), SHORT[key], SHORT[key])
        for key, _ in ACTIONS
        if any(o.action == key for o in done)
    ]
    if failed:
        counts.append(f"{len(failed)} failed")
    if possible_duplicates:
        counts.append(plural(len(possible_duplicates), "possible duplicate"))

    blocks: list[Block] = [section(f"*{fit_escaped(title, 300)}*")]
    if subtitle:  # mrkdwn made by us (dates), never a CRM value
        blocks.append(context(subtitle))
    if error:
        blocks.append(section(f":x: {fit_escaped(error, 2000)}"))
    if counts:
        blocks.append(context(" · ".join(counts)))
    elif not error and not warnings:
        blocks.append(section(nothing))

    more = f"`{COMMAND} list` shows everyone."
    for key, label in ACTIONS:
        group = [o for o in done if o.action == key]
        if not group:
            continue
        lines = [_outcome_line(o) for o in group]
        blocks += sections_of_lines(
            [f"*{label}* ({len(group)})", *lines[:NAMES_PER_KIND]],
            2,
            more,
            hidden=len(lines) - NAMES_PER_KIND,
        )
    if failed:
        lines = [
            f"• *{fit_escaped(o.name, 200)}*: {fit_escaped(o.detail or 'no reason given', 400)}"
            for o in failed
        ]
        blocks.append(section(f":warning: *Failed* ({len(failed)})"))
        blocks += sections_of_lines(lines, 4, more)
        blocks.append(context(FAILURE_HINT))
    if possible_duplicates:
        blocks.append(
            section(
                "*Possible duplicates* — similar contacts already in your mailbox that I did "
                "not link (only an exact name and company match is linked):"
            )
        )
        blocks += sections_of_lines([f"• {fit_escaped(d, 400)}" for d in possible_duplicates], 4)
    for warning in warnings[:5]:
        blocks.append(section(f":warning: {fit_escaped(warning, 2000)}"))
    blocks = blocks[:MAX_BLOCKS]

    text = title + (": " + ", ".join(counts) if counts else "") + (f" — {error}" if error else "")
    return fallback(text), blocks


def _outcome_line(outcome: Outcome) -> str:
    line = f"• {fit_escaped(outcome.name, 200)}"
    if outcome.detail:
        line += f" — _{fit_escaped(outcome.detail, 300)}_"
    return line


def sync_result_message(result: SyncResult) -> tuple[str, list[Block]]:
    """The DM after a hand-run sync (always sent: the user asked for it)."""
    title = f"{'Dry run of' if result.dry_run else 'Sync of'} {result.mailbox}"
    title += " — failed" if result.error and not result.outcomes else " — done"
    return summary_blocks(
        title,
        result.outcomes,
        result.possible_duplicates,
        result.warnings,
        for_salesperson(result.error),  # the reason itself is the admin's (`status`)
    )


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
    activity = engine.activity(user, since, until)
    outcomes = list(activity.outcomes)
    seen = {(o.person_id, o.action, o.detail) for o in outcomes}
    outcomes += [o for o in activity.failures if (o.person_id, o.action, o.detail) not in seen]
    warnings = [*activity.warnings, *([for_salesperson("failed")] if activity.errors else [])]
    if not outcomes and not activity.possible_duplicates and not warnings:
        return None
    prefs = engine.digest_prefs(user)
    subtitle = f"Since {when(since)} · {plural(activity.runs, 'sync')}"
    text, blocks = summary_blocks(
        "Your CRM Contacts digest",  # the controls say daily or weekly; they may change
        outcomes,
        activity.possible_duplicates,
        warnings,
        subtitle=subtitle,
    )
    controls = digest_controls(prefs, digest_place(since, until), note)
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
