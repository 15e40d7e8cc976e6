"""The standing rules in Slack (DESIGN rule 11): the `/crm-contacts rules` card, App
Home's rule lines, add-group's offer to keep the group, and what turning one on or off
says. The words are `chat.rules` (Teams says the same); here is Slack's markup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.blocks.common import (
    COMMAND,
    Block,
    button,
    confirm_dialog,
    context,
    escape,
    section,
)
from chat import rules as words
from chat.rules import HOW_RULES_WORK, KEEP_GROUP
from sync_engine.standing.rules import ACCOUNT_MANAGER, KINDS
from sync_engine.standing.service import RuleAdded, RuleRemoved
from sync_engine.standing.state import RuleView

__all__ = ["HOW_RULES_WORK", "KEEP_GROUP"]

ACTION_RULE_ON = "rule_on"
ACTION_RULE_OFF = "rule_off"


def rule_on_button(kind: str, text: str = "Turn on") -> dict[str, Any]:
    """Turning a rule on adds people in bulk, so it asks first (UX 6)."""
    return button(
        text,
        ACTION_RULE_ON,
        kind,
        confirm=confirm_dialog(
            words.TURN_ON_TITLE, words.turn_on_question(kind), words.TURN_ON_YES
        ),
    )


def rule_off_button(kind: str) -> dict[str, Any]:
    """Turning a rule off takes people away: a danger-styled confirmation (UX 6)."""
    return button(
        "Turn off",
        ACTION_RULE_OFF,
        kind,
        style="danger",
        confirm=confirm_dialog(
            words.TURN_OFF_TITLE, words.TURN_OFF_QUESTION, words.TURN_OFF_YES, danger=True
        ),
    )


def _rule_line(rule: RuleView) -> Block:
    return {
        **section(
            f"*✓ {escape(words.what(rule.kind))}* (`{escape(rule.kind)}`) · {words.counted(rule)}"
        ),
        "accessory": rule_off_button(rule.kind),
    }


def rules_card(rules: Sequence[RuleView], note: str = "") -> list[Block]:
    """`/crm-contacts rules`: every kind, each with the button that changes it."""
    on = {r.kind: r for r in rules}
    blocks: list[Block] = [section(f"*{words.TITLE}*")]
    for kind in KINDS:
        if kind in on:
            blocks.append(_rule_line(on[kind]))
        else:
            blocks.append(
                {
                    **section(f"{escape(words.what(kind)).capitalize()} (`{escape(kind)}`) · off"),
                    "accessory": rule_on_button(kind),
                }
            )
    blocks.append(context(HOW_RULES_WORK))
    if note:
        blocks.append(context(escape(note)))
    return blocks


def home_rules_blocks(rules: Sequence[RuleView]) -> list[Block]:
    """App Home's rule lines, each with a button to turn it off."""
    if not rules:
        return [context(words.no_rules(COMMAND))]
    return [section(f"*{words.TITLE}*"), *(_rule_line(r) for r in rules)]


def group_rule_blocks(rule_on: bool) -> list[Block]:
    """Add-group's offer to keep the group current instead of adding it once."""
    if rule_on:
        return [context(words.group_kept())]
    return [
        context(words.GROUP_OFFER),
        {"type": "actions", "elements": [rule_on_button(ACCOUNT_MANAGER, KEEP_GROUP)]},
    ]


def rule_added_blocks(added: RuleAdded) -> list[Block]:
    head, rest = words.rule_added(added)
    return [section(f"*{head}:* {escape(rest)}"), context(HOW_RULES_WORK)]


def rule_removed_blocks(removed: RuleRemoved) -> list[Block]:
    head, rest = words.rule_removed(removed)
    return [section(f"*{head}:* {escape(rest)}")]
