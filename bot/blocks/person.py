"""One person, the same few fields everywhere (SLACK_UX 3): lines, options, the card."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.blocks.common import (
    ACTION_PERSON_ADD,
    ACTION_PERSON_OPEN,
    ACTION_PERSON_REMOVE,
    MAX_OPTION_TEXT,
    PAGE_SIZE,
    Block,
    actions,
    button,
    confirm_dialog,
    context,
    fit_escaped,
    mrkdwn,
    plain,
    plural,
    section,
)
from sync_engine.model import PersonView

# Characters of one CRM value on the card: six of them stay well within a message's text
# budget (bot.blocks.budget), and Sage's own columns are far shorter.
CARD_FIELD_TEXT = 1000


def person_line(person: PersonView, mark_in_list: bool = True) -> str:
    """One person, the same few fields everywhere (UX 3), every CRM value escaped."""
    parts = [f"*{fit_escaped(person.name or f'person {person.id}', 200)}*"]
    role = ", ".join(p for p in (person.job_title, person.company) if p)
    if role:
        parts.append(fit_escaped(role, 300))
    if person.email:
        parts.append(fit_escaped(person.email, 200))
    line = " — ".join(parts[:2]) + ("" if len(parts) < 3 else f" · {parts[2]}")
    if person.status:
        line += f" · _{fit_escaped(person.status, 200)}_"
    elif mark_in_list and person.in_list:
        line += " · ✓ in My CRM Contacts"
    return line


def person_option(person: PersonView, with_status: bool = False) -> dict[str, Any]:
    """A checkbox option: the name (bold) and one line of detail, each within 75 characters."""
    detail = [person.job_title, person.company, person.email]
    if with_status:  # in the user's own list: its status, and why they are in it
        detail[:0] = [person.status, person.why]
    description = " · ".join(p for p in detail if p) or "no details in the CRM"
    return {
        "text": mrkdwn(
            f"*{fit_escaped(person.name or f'person {person.id}', MAX_OPTION_TEXT - 2)}*"
        ),
        "description": plain(description, MAX_OPTION_TEXT),
        "value": str(person.id),
    }


def person_card(person: PersonView, note: str = "") -> list[Block]:
    """The person's summary card, as on Sage's Summary tab, with one main button (UX 4)."""
    fields = [
        ("Job title", person.job_title),
        ("Company", person.company),
        ("Email", person.email),
        ("Business phone", person.business_phone),
        ("Mobile", person.mobile_phone),
        ("Account manager", person.manager),
    ]
    shown = [
        mrkdwn(f"*{label}*\n{fit_escaped(value, CARD_FIELD_TEXT)}")
        for label, value in fields
        if value
    ]
    title = f"*{fit_escaped(person.name or f'person {person.id}', 500)}*"
    title += "\n✓ in My CRM Contacts" if person.in_list else "\nnot in My CRM Contacts"
    if person.status:
        title += f" · _{fit_escaped(person.status, 200)}_"
    top: Block = {"type": "section", "text": mrkdwn(title)}
    if shown:
        top["fields"] = shown[:10]
    if person.in_list:
        main = button(
            "Remove from My Contacts",
            ACTION_PERSON_REMOVE,
            str(person.id),
            style="danger",
            confirm=confirm_dialog(
                "Remove from My CRM Contacts?",
                f"{fit_escaped(person.name, 200)} leaves your list. The contact stays in "
                "Outlook without the CRM Contact category.",
                "Remove",
                danger=True,
            ),
        )
    else:
        main = button("Add to My Contacts", ACTION_PERSON_ADD, str(person.id), style="primary")
    blocks = [top, actions(main)]
    if note:
        blocks.append(context(note))
    return blocks


def person_choices(query: str, people: Sequence[PersonView], total: int) -> list[Block]:
    """Several people match a `person` query: one line each with a button to open the card."""
    blocks: list[Block] = [
        section(f"{plural(total, 'person matches', 'people match')} “{fit_escaped(query, 200)}”:")
    ]
    for person in people[:PAGE_SIZE]:
        blocks.append(
            {
                "type": "section",
                "text": mrkdwn(person_line(person)),
                "accessory": button("Open card", ACTION_PERSON_OPEN, str(person.id)),
            }
        )
    if total > len(people[:PAGE_SIZE]):
        blocks.append(
            context(f"Showing {len(people[:PAGE_SIZE])} of {total}: add more words to narrow it.")
        )
    return blocks


def no_match(query: str) -> list[Block]:
    return [
        section(
            f"No one in the CRM matches “{fit_escaped(query, 300)}”. Try another spelling, "
            f'an email address, or `company:"Design Right Inc."`.'
        )
    ]
