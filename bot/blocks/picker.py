"""The checkbox picker's blocks; its state and page are `chat.picker`'s."""

from __future__ import annotations

from typing import Any

from bot.blocks.budget import TEXT_BUDGET, listing, text_length
from bot.blocks.common import (
    ACTION_ADD,
    ACTION_ALL,
    ACTION_NEXT,
    ACTION_NONE,
    ACTION_PREV,
    ACTION_REMOVE,
    ACTION_TICK,
    COMMAND,
    PAGE_SIZE,
    Block,
    actions,
    button,
    confirm_dialog,
    context,
    fit_escaped,
    plural,
    section,
)
from bot.blocks.person import person_line, person_option
from chat.picker import MAX_QUERY_JSON, PickerPage, PickerState, carried, controls, pages
from chat.words import remove_question

__all__ = ["MAX_QUERY_JSON", "PickerPage", "PickerState", "picker_blocks"]


def picker_blocks(page: PickerPage) -> list[Block]:
    """A page of checkboxes with a running selection count and one main button (UX 2, 4, 5).

    At most 10 options (one page), a handful of blocks whatever the result size.
    """
    # what the buttons carry: this page's options, and a state that fits a button value
    state, choosable, note = carried(page)
    rendered = state
    adding = state.mode == "add"
    total_pages = pages(page.total)
    number = state.offset // PAGE_SIZE + 1
    query = fit_escaped(state.query, 200)
    if adding:
        headline = f"*{plural(page.total, 'person matches', 'people match')}* “{query}”"
    elif state.query:
        headline = f"*{plural(page.total, 'of your contacts matches', 'of your contacts match')}* “{query}”"
    else:
        headline = f"*My CRM Contacts*: {plural(page.total, 'person', 'people')}"
    if total_pages > 1:
        headline += f" — page {number} of {total_pages}"
    blocks: list[Block] = [section(headline)]

    if choosable:
        options = [person_option(p, with_status=not adding) for p in choosable]
        chosen = [o for o, p in zip(options, choosable, strict=True) if p.id in state.selected]
        element: dict[str, Any] = {
            "type": "checkboxes",
            "action_id": ACTION_TICK,
            "options": options,
        }
        if chosen:
            element["initial_options"] = chosen
        blocks.append(actions(element, block_id=rendered.to_block_id()))
    choosable_ids = {p.id for p in choosable}
    others = [p for p in page.people if p.id not in choosable_ids]

    count = len(state.selected)
    elsewhere = len([i for i in state.selected if i not in choosable_ids])
    tally = f"*{count} selected*" + (f" ({elsewhere} on other pages)" if elsewhere else "")
    if note:
        tally += f" · {fit_escaped(note, 500)}"
    closing: list[Block] = [context(tally)]

    value = rendered.to_value()
    buttons: list[dict[str, Any]] = []
    if adding:
        text = f"Add {count} to My CRM Contacts" if count else "Add selected"
        buttons.append(button(text, ACTION_ADD, value, style="primary"))
    else:
        text = f"Remove {count} from My CRM Contacts" if count else "Remove selected"
        buttons.append(
            button(
                text,
                ACTION_REMOVE,
                value,
                style="danger",
                confirm=confirm_dialog(
                    "Remove from My CRM Contacts?",
                    remove_question(count),
                    "Remove",
                    danger=True,
                ),
            )
        )
    action_of = {"all": ACTION_ALL, "none": ACTION_NONE, "prev": ACTION_PREV, "next": ACTION_NEXT}
    buttons += [
        button(text, action_of[kind], value)
        for kind, text in controls(state, page.total, choosable=bool(choosable))
    ]
    closing.append(actions(*buttons))
    if others:  # shown, not offered: within what the rest of the message leaves (UX 8)
        if adding:
            title, mark = "Already in My CRM Contacts:", "✓"
        else:
            title, mark = "Leaving My CRM Contacts at the next sync:", "•"
        blocks += listing(
            [f"{mark} {person_line(p, mark_in_list=False)}" for p in others],
            budget=TEXT_BUDGET - text_length(blocks) - text_length(closing),
            max_blocks=4,
            more=f"`{COMMAND} list` shows everyone in My CRM Contacts.",
            title=title,
        )
    return blocks + closing
