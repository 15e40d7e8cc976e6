"""App Home (the dashboard, SLACK_UX 10) and the search modal it opens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.blocks.budget import TEXT_BUDGET, listing, text_length
from bot.blocks.common import (
    ACTION_HOME_LIST,
    ACTION_HOME_SEARCH,
    ACTION_SYNC_NOW,
    COMMAND,
    SEARCH_INPUT_ACTION,
    SEARCH_INPUT_BLOCK,
    SEARCH_MODAL,
    Block,
    actions,
    button,
    context,
    fit_escaped,
    header,
    plain,
    problem_blocks,
)
from bot.blocks.rules import home_rules_blocks
from sync_engine.model import PersonView
from sync_engine.standing.state import RuleView


def home_view(
    status_blocks_: list[Block],
    failed: Sequence[PersonView] = (),
    rules: Sequence[RuleView] = (),
) -> dict[str, Any]:
    """The App Home dashboard: counts, last and next sync, the standing rules (each with
    a button to turn it off), failures, and the buttons."""
    blocks: list[Block] = [header("My CRM Contacts")]
    blocks += [b for b in status_blocks_ if b.get("type") != "actions"]
    blocks += home_rules_blocks(rules)
    closing = [
        actions(
            button("Retry now" if failed else "Sync now", ACTION_SYNC_NOW, "sync", style="primary"),
            button("Search the CRM", ACTION_HOME_SEARCH, "search"),
            button("My list", ACTION_HOME_LIST, "list"),
        ),
        context(f"Type `{COMMAND} help` anywhere for every command."),
    ]
    if failed:
        lines = [
            f"• *{fit_escaped(p.name or f'person {p.id}', 200)}*: "
            f"{fit_escaped(p.status.removeprefix('failed: '), 300)}"
            for p in failed
        ]
        room = TEXT_BUDGET - text_length(blocks) - text_length(closing)
        blocks += listing(
            lines,
            budget=room,
            max_blocks=5,
            more=f"`{COMMAND} list` shows each one's status.",
            title=f":warning: *Failed at the last sync* ({len(failed)})",
        )
    return {"type": "home", "blocks": blocks + closing}


def home_problem_view(message: str) -> dict[str, Any]:
    return {"type": "home", "blocks": [header("My CRM Contacts"), *problem_blocks(message)]}


def search_modal() -> dict[str, Any]:
    """A small modal asking what to search for; results arrive as a DM picker."""
    return {
        "type": "modal",
        "callback_id": SEARCH_MODAL,
        "title": plain("Search the CRM", 24),
        "submit": plain("Search", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            {
                "type": "input",
                "block_id": SEARCH_INPUT_BLOCK,
                "label": plain("Name, email or company"),
                "hint": plain('For a whole company: company:"Design Right Inc."'),
                "element": {
                    "type": "plain_text_input",
                    "action_id": SEARCH_INPUT_ACTION,
                    "max_length": 200,
                },
            }
        ],
    }
