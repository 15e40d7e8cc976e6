"""The standing rules in Slack (DESIGN rule 11): the `/crm-contacts rules` card, App
Home's rule lines, add-group's offer to keep the group, and what turning one on or off
says. Rule kinds and descriptions are ours; counts are numbers: nothing from the CRM."""

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
    plural,
    section,
)
from sync_engine.standing.rules import ACCOUNT_MANAGER, KINDS
from sync_engine.standing.service import RuleAdded, RuleRemoved
from sync_engine.standing.state import RuleView

ACTION_RULE_ON = "rule_on"
ACTION_RULE_OFF = "rule_off"

KEEP_GROUP = "Keep everyone I'm Account Manager for"
HOW_RULES_WORK = (
    "A rule keeps My CRM Contacts current: people who match it later arrive at the next "
    "sync; people who stop matching (reassigned, moved, deleted) leave it, and their "
    "contacts stay in Outlook without the CRM Contact category."
)


def _what(kind: str) -> str:
    return KINDS[kind][0]


def rule_on_button(kind: str, text: str = "Turn on") -> dict[str, Any]:
    """Turning a rule on adds people in bulk, so it asks first (UX 6)."""
    return button(
        text,
        ACTION_RULE_ON,
        kind,
        confirm=confirm_dialog(
            "Keep them in My CRM Contacts?",
            f"Keep {_what(kind)} in My CRM Contacts, now and later? People who stop "
            "matching leave it (their contacts stay in Outlook).",
            "Keep them",
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
            "Turn this rule off?",
            "The people only this rule brought leave My CRM Contacts at the next sync; their "
            "contacts stay in Outlook without the CRM Contact category. People you picked "
            "yourself stay.",
            "Turn off",
            danger=True,
        ),
    )


def _rule_line(rule: RuleView) -> Block:
    counted = plural(rule.people, "person", "people") if rule.evaluated else "being evaluated"
    return {
        **section(f"*✓ {escape(_what(rule.kind))}* (`{escape(rule.kind)}`) · {counted}"),
        "accessory": rule_off_button(rule.kind),
    }


def rules_card(rules: Sequence[RuleView], note: str = "") -> list[Block]:
    """`/crm-contacts rules`: every kind, each with the button that changes it."""
    on = {r.kind: r for r in rules}
    blocks: list[Block] = [section("*Standing rules*")]
    for kind in KINDS:
        if kind in on:
            blocks.append(_rule_line(on[kind]))
        else:
            blocks.append(
                {
                    **section(f"{escape(_what(kind)).capitalize()} (`{escape(kind)}`) · off"),
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
        return [
            context(
                f"No standing rules. `{COMMAND} rules` keeps everyone you're Account Manager "
                "for in My CRM Contacts, now and later."
            )
        ]
    return [section("*Standing rules*"), *(_rule_line(r) for r in rules)]


def group_rule_blocks(rule_on: bool) -> list[Block]:
    """Add-group's offer to keep the group current instead of adding it once."""
    if rule_on:
        return [
            context(
                f"✓ Your rule `{ACCOUNT_MANAGER}` keeps everyone whose Account Manager you are "
                "in My CRM Contacts, now and later."
            )
        ]
    return [
        context("Or keep the group current: people given to you later arrive by themselves."),
        {"type": "actions", "elements": [rule_on_button(ACCOUNT_MANAGER, KEEP_GROUP)]},
    ]


def rule_added_blocks(added: RuleAdded) -> list[Block]:
    head = "Rule on" if added.new else "Rule already on"
    joined = (
        f"{plural(added.joined, 'person', 'people')} joined My CRM Contacts; they reach your "
        "mailbox at the next sync."
        if added.joined
        else "Nobody new joined My CRM Contacts."
    )
    return [
        section(
            f"*{head}:* {escape(_what(added.kind))} (`{escape(added.kind)}`), "
            f"{plural(added.people, 'person', 'people')} now. {joined}"
        ),
        context(HOW_RULES_WORK),
    ]


def rule_removed_blocks(removed: RuleRemoved) -> list[Block]:
    return [
        section(
            f"*Rule off:* `{escape(removed.kind)}`. "
            f"{plural(removed.leaving, 'person', 'people')} only it brought "
            f"{'leaves' if removed.leaving == 1 else 'leave'} My CRM Contacts at the next sync "
            "(the contacts stay in Outlook, without the CRM Contact category); "
            f"{removed.staying} you picked or another rule keeps stay."
        )
    ]
