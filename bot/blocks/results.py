"""What an add, a remove, add-group's confirmation, status and help look like."""

from __future__ import annotations

from collections.abc import Sequence

from bot.blocks.budget import TEXT_BUDGET, lines_length, list_budgets, listing, text_length
from bot.blocks.common import (
    ACTION_GROUP_ADD,
    ACTION_SYNC_NOW,
    COMMAND,
    HELP_LINES,
    Block,
    actions,
    button,
    confirm_dialog,
    context,
    escape,
    fit_escaped,
    mrkdwn,
    plural,
    section,
    when,
)
from bot.blocks.person import person_line
from bot.blocks.rules import group_rule_blocks
from chat.failures import for_salesperson
from chat.words import (
    ADDED_CLOSING,
    GROUP_ALL_IN,
    GROUP_PREVIEW,
    NO_GROUP,
    REMOVED_CLOSING,
    group_headline,
    group_question,
)
from sync_engine.answers import MailboxStatus
from sync_engine.model import PersonView

# Where a user sees everyone a long list left out.
SEE_LIST = f"`{COMMAND} list` shows everyone in My CRM Contacts."


def people_lists(
    room: int, lists: Sequence[tuple[str, Sequence[PersonView], int]], more: str = SEE_LIST
) -> list[Block]:
    """Titled lists of people sharing `room` characters: each (title, people, max_blocks)
    shows whole lines, then "…and N more" and `more` (UX 8)."""
    lines = [[person_line(p, False) for p in people] for _, people, _ in lists]
    budgets = list_budgets(
        room, [lines_length(ls, t) for ls, (t, _, _) in zip(lines, lists, strict=True)]
    )
    blocks: list[Block] = []
    for (title, _, max_blocks), shown, budget in zip(lists, lines, budgets, strict=True):
        blocks += listing(shown, budget=budget, max_blocks=max_blocks, more=more, title=title)
    return blocks


def added_blocks(added: Sequence[PersonView], already: Sequence[PersonView]) -> list[Block]:
    """After an add: the people just added, as Sage shows the Contacts page."""
    closing = [
        context(f"{ADDED_CLOSING} Search again to add more, or `{COMMAND} sync` now."),
        actions(button("Sync now", ACTION_SYNC_NOW, "sync")),
    ]
    lists: list[tuple[str, Sequence[PersonView], int]] = []
    if added:
        lists.append(
            (f"*Added {plural(len(added), 'person', 'people')} to My CRM Contacts:*", added, 30)
        )
    if already:
        title = f"*{plural(len(already), 'was', 'were')} already in My CRM Contacts:*"
        if len(already) == 1:
            title = "*Already in My CRM Contacts:*"
        lists.append((title, already, 5))
    if not lists:
        return [section("Nothing to add."), *closing]
    return people_lists(TEXT_BUDGET - text_length(closing), lists) + closing


def removed_blocks(removed: Sequence[PersonView], not_in_list: Sequence[int]) -> list[Block]:
    closing: list[Block] = []
    if removed:
        closing.append(context(REMOVED_CLOSING))
    if not_in_list:
        closing.append(
            context(
                f"{plural(len(not_in_list), 'person was', 'people were')} not in your list any more."
            )
        )
    if not removed:
        return closing or [section("Nothing to remove.")]
    title = f"*Removed {plural(len(removed), 'person', 'people')} from My CRM Contacts:*"
    room = TEXT_BUDGET - text_length(closing)
    return people_lists(room, [(title, removed, 30)]) + closing


def group_confirm_blocks(people: Sequence[PersonView], rule_on: bool = False) -> list[Block]:
    """Add-group asks first, with the count (it can be hundreds) (UX 6), and offers to
    keep the group current with the account-manager rule instead."""
    offer = group_rule_blocks(rule_on)
    if not people:
        return [section(NO_GROUP), *offer]
    new = [p for p in people if not p.in_list]
    already = len(people) - len(new)
    first, _, rest = group_headline(len(people), already).partition(".")
    blocks: list[Block] = [section(f"*{first}.*{rest}")]
    if not new:
        blocks.append(context(GROUP_ALL_IN))
        return blocks + offer
    closing = [
        actions(
            button(
                f"Add {len(new)} to My CRM Contacts",
                ACTION_GROUP_ADD,
                str(len(new)),
                style="primary",
                confirm=confirm_dialog(
                    "Add your group?",
                    group_question(len(new)),
                    f"Add {len(new)}",
                ),
            )
        )
    ]
    closing += offer
    preview = [person_line(p, False) for p in new[:GROUP_PREVIEW]]
    room = TEXT_BUDGET - text_length(blocks) - text_length(closing)
    blocks += listing(preview, budget=room, max_blocks=4, hidden=len(new) - len(preview))
    return blocks + closing


def status_blocks(status: MailboxStatus) -> list[Block]:
    """Last and next sync, counts and the last error in plain words."""
    last = when(status.last_run_at)
    if status.last_run_at and status.last_status:
        last += f" ({fit_escaped(status.last_status, 200)})"
    blocks: list[Block] = [
        section(f"*Mailbox* {fit_escaped(status.mailbox, 300)}"),
        {
            "type": "section",
            "fields": [
                mrkdwn(f"*In My CRM Contacts*\n{status.subscriptions}"),
                mrkdwn(f"*Linked in your mailbox*\n{status.linked}"),
                mrkdwn(f"*Last sync*\n{last}"),
                mrkdwn(f"*Next sync*\n{when(status.next_due_at, 'not scheduled')}"),
            ],
        },
    ]
    if status.last_error:
        blocks.append(section(f":warning: {fit_escaped(for_salesperson(status.last_error), 2000)}"))
    blocks.append(actions(button("Sync now", ACTION_SYNC_NOW, "sync")))
    return blocks


def help_blocks(intro: str = "") -> list[Block]:
    lines = [f"`{COMMAND} {escape(usage)}` — {escape(what)}" for usage, what in HELP_LINES]
    blocks: list[Block] = []
    if intro:
        blocks.append(section(intro))
    blocks.append(
        section("*My CRM Contacts* keeps the CRM people you choose in your Outlook Contacts.")
    )
    blocks.append(section("\n".join(lines)))
    return blocks


def help_text(intro: str = "") -> str:
    lines = [f"{COMMAND} {escape(usage)} — {escape(what)}" for usage, what in HELP_LINES]
    return "\n".join(([intro] if intro else []) + lines)
