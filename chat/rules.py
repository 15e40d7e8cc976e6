"""The standing rules' words (DESIGN rule 11), for Slack and Teams alike: what a rule is
called, what the list of rules says, what turning one on or off asks and answers.

Plain text; a front end adds its own markup around these and its own buttons. Rule
kinds and descriptions are ours and counts are numbers: nothing here comes from the CRM.
(Why a person is in the list is the engine's `describe_sources`, shown as it comes.)
"""

from __future__ import annotations

from collections.abc import Sequence

from chat.words import plural
from sync_engine.standing.rules import ACCOUNT_MANAGER, KINDS
from sync_engine.standing.service import RuleAdded, RuleRemoved
from sync_engine.standing.state import RuleView

TITLE = "Standing rules"
KEEP_GROUP = "Keep everyone I'm Account Manager for"
HOW_RULES_WORK = (
    "A rule keeps My CRM Contacts current: people who match it later arrive at the next "
    "sync; people who stop matching (reassigned, moved, deleted) leave it, and their "
    "contacts stay in Outlook without the CRM Contact category."
)
GROUP_OFFER = "Or keep the group current: people given to you later arrive by themselves."

# Turning a rule on adds people in bulk and turning one off takes people away: both ask
# first (UX 6). Title, question, the button that goes ahead.
TURN_ON_TITLE = "Keep them in My CRM Contacts?"
TURN_ON_YES = "Keep them"
TURN_OFF_TITLE = "Turn this rule off?"
TURN_OFF_QUESTION = (
    "The people only this rule brought leave My CRM Contacts at the next sync; their "
    "contacts stay in Outlook without the CRM Contact category. People you picked "
    "yourself stay."
)
TURN_OFF_YES = "Turn off"


def what(kind: str) -> str:
    """What a rule keeps: 'everyone whose Account Manager you are'."""
    return KINDS[kind][0]


def turn_on_question(kind: str) -> str:
    return (
        f"Keep {what(kind)} in My CRM Contacts, now and later? People who stop matching "
        "leave it (their contacts stay in Outlook)."
    )


def counted(rule: RuleView) -> str:
    """How many people a rule brings now, or that the clock has yet to evaluate it."""
    return plural(rule.people, "person", "people") if rule.evaluated else "being evaluated"


def keeps_group(rules: Sequence[RuleView]) -> bool:
    """Whether add-group's people are already kept by a rule (then it offers none)."""
    return any(rule.kind == ACCOUNT_MANAGER for rule in rules)


def no_rules(command: str) -> str:
    """The rules list when there are none; `command` is how a command is typed here."""
    command = f"{command} " if command else ""
    return (
        f"No standing rules. `{command}rules` keeps everyone you're Account Manager for in "
        "My CRM Contacts, now and later."
    )


def group_kept() -> str:
    return (
        f"✓ Your rule `{ACCOUNT_MANAGER}` keeps everyone whose Account Manager you are in "
        "My CRM Contacts, now and later."
    )


def rule_added(added: RuleAdded) -> tuple[str, str]:
    """(headline, the rest) of what turning a rule on did."""
    head = "Rule on" if added.new else "Rule already on"
    joined = (
        f"{plural(added.joined, 'person', 'people')} joined My CRM Contacts; they reach your "
        "mailbox at the next sync."
        if added.joined
        else "Nobody new joined My CRM Contacts."
    )
    return head, (
        f"{what(added.kind)} (`{added.kind}`), "
        f"{plural(added.people, 'person', 'people')} now. {joined}"
    )


def rule_removed(removed: RuleRemoved) -> tuple[str, str]:
    """(headline, the rest) of what turning a rule off did."""
    return "Rule off", (
        f"`{removed.kind}`. "
        f"{plural(removed.leaving, 'person', 'people')} only it brought "
        f"{'leaves' if removed.leaving == 1 else 'leave'} My CRM Contacts at the next sync "
        "(the contacts stay in Outlook, without the CRM Contact category); "
        f"{removed.staying} you picked or another rule keeps stay."
    )
