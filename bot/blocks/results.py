"""What an add, a remove, add-group's confirmation, status and help look like."""

from __future__ import annotations

from collections.abc import Sequence

from bot.blocks.budget import sections_of_lines
from bot.blocks.common import (
    ACTION_GROUP_ADD,
    ACTION_SYNC_NOW,
    COMMAND,
    HELP_LINES,
    MAX_BLOCKS,
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
from bot.failures import for_salesperson
from sync_engine.model import PersonView
from sync_engine.service import MailboxStatus


def added_blocks(added: Sequence[PersonView], already: Sequence[PersonView]) -> list[Block]:
    """After an add: the people just added, as Sage shows the Contacts page."""
    blocks: list[Block] = []
    if added:
        blocks.append(
            section(f"*Added {plural(len(added), 'person', 'people')} to My CRM Contacts:*")
        )
        blocks += sections_of_lines([person_line(p, False) for p in added], 40)
    if already:
        title = f"*{plural(len(already), 'was', 'were')} already in My CRM Contacts:*"
        if len(already) == 1:
            title = "*Already in My CRM Contacts:*"
        blocks.append(section(title))
        blocks += sections_of_lines([person_line(p, False) for p in already], 5)
    if not blocks:
        blocks.append(section("Nothing to add."))
    blocks = blocks[: MAX_BLOCKS - 2]
    blocks.append(
        context(
            "They reach your mailbox at the next sync, within a few minutes. "
            f"Search again to add more, or `{COMMAND} sync` now."
        )
    )
    blocks.append(actions(button("Sync now", ACTION_SYNC_NOW, "sync")))
    return blocks


def removed_blocks(removed: Sequence[PersonView], not_in_list: Sequence[int]) -> list[Block]:
    blocks: list[Block] = []
    if removed:
        blocks.append(
            section(f"*Removed {plural(len(removed), 'person', 'people')} from My CRM Contacts:*")
        )
        blocks += sections_of_lines([person_line(p, False) for p in removed], 40)
        blocks.append(
            context(
                "At the next sync they lose the CRM Contact category and are no longer kept "
                "up to date; the contacts themselves stay in your mailbox."
            )
        )
    if not_in_list:
        blocks.append(
            context(
                f"{plural(len(not_in_list), 'person was', 'people were')} not in your list any more."
            )
        )
    if not blocks:
        blocks.append(section("Nothing to remove."))
    return blocks[:MAX_BLOCKS]


def group_confirm_blocks(people: Sequence[PersonView]) -> list[Block]:
    """Add-group asks first, with the count (it can be hundreds) (UX 6)."""
    if not people:
        return [section("No CRM person has you as Account Manager, so there is no group to add.")]
    new = [p for p in people if not p.in_list]
    already = len(people) - len(new)
    text = f"*{plural(len(people), 'person has', 'people have')} you as Account Manager.*"
    if already:
        text += f" {already} of them {'is' if already == 1 else 'are'} already in My CRM Contacts."
    blocks: list[Block] = [section(text)]
    if not new:
        blocks.append(context("Everyone in your group is already in My CRM Contacts."))
        return blocks
    preview = [person_line(p, False) for p in new[:10]]
    blocks += sections_of_lines(preview, 2)
    if len(new) > 10:
        blocks.append(context(f"…and {len(new) - 10} more."))
    blocks.append(
        actions(
            button(
                f"Add {len(new)} to My CRM Contacts",
                ACTION_GROUP_ADD,
                str(len(new)),
                style="primary",
                confirm=confirm_dialog(
                    "Add your group?",
                    f"Add {plural(len(new), 'person', 'people')} whose Account Manager is you to "
                    "My CRM Contacts? They are created in your mailbox at the next sync.",
                    f"Add {len(new)}",
                ),
            )
        )
    )
    return blocks


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
