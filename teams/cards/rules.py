"""The standing rules in Teams (DESIGN rule 11): the `rules` card, the rule lines of
`status` (Teams has no App Home), add-group's offer to keep the group, and what turning
a rule on or off asks and says. The words are `chat.rules`, as Slack's are.

Teams has no confirm dialog on a card action: turning a rule on or off answers with a
question card first, whose button carries `confirmed` (UX 6), as removing people does.
"""

from __future__ import annotations

from collections.abc import Sequence

from chat import rules as words_of
from chat.rules import HOW_RULES_WORK, KEEP_GROUP
from sync_engine.standing.rules import ACCOUNT_MANAGER, KINDS
from sync_engine.standing.service import RuleAdded, RuleRemoved
from sync_engine.standing.state import RuleView
from teams.cards.common import (
    VERB_RULE_OFF,
    VERB_RULE_ON,
    Card,
    Element,
    card,
    execute,
    line,
    run,
    words,
)

COMMAND = ""  # Teams commands are typed as they are: `rules`
NOTHING_CHANGED = "Nothing changed."


def turn_on(kind: str, title: str = "") -> Element:
    return execute(title or f"Turn on {kind}", VERB_RULE_ON, {"kind": kind})


def turn_off(kind: str) -> Element:
    return execute(f"Turn off {kind}", VERB_RULE_OFF, {"kind": kind}, style="destructive")


def _rule_line(rule: RuleView) -> Element:
    return line(
        run(f"✓ {words_of.what(rule.kind)}", bold=True),
        run(f" ({rule.kind}) · {words_of.counted(rule)}"),
    )


def rules_card(rules: Sequence[RuleView], after: Sequence[Element] = ()) -> Card:
    """`rules`: every kind, each with the button that changes it."""
    on = {r.kind: r for r in rules}
    body: list[Element] = [words(words_of.TITLE, bold=True)]
    actions: list[Element] = []
    for kind in KINDS:
        if kind in on:
            body.append(_rule_line(on[kind]))
            actions.append(turn_off(kind))
        else:
            body.append(line(run(f"{words_of.what(kind).capitalize()} ({kind}) · off")))
            actions.append(turn_on(kind))
    body.append(words(HOW_RULES_WORK, subtle=True))
    return card([*body, *after], actions)


def status_rules(rules: Sequence[RuleView]) -> tuple[list[Element], list[Element]]:
    """The rules on, for `status` (App Home's part in Slack): lines and a turn-off each."""
    if not rules:
        return [words(words_of.no_rules(COMMAND), subtle=True)], []
    lines = [words(words_of.TITLE, bold=True), *(_rule_line(r) for r in rules)]
    return lines, [turn_off(r.kind) for r in rules]


def group_offer(rule_on: bool) -> tuple[list[Element], list[Element]]:
    """Add-group's offer to keep the group current instead of adding it once."""
    if rule_on:
        return [words(words_of.group_kept(), subtle=True)], []
    return [words(words_of.GROUP_OFFER, subtle=True)], [turn_on(ACCOUNT_MANAGER, KEEP_GROUP)]


def rule_question_card(kind: str, turning_on: bool) -> Card:
    """The confirmation itself (Teams has no confirm dialog on a card action)."""
    verb = VERB_RULE_ON if turning_on else VERB_RULE_OFF
    if turning_on:
        title, question, yes = (
            words_of.TURN_ON_TITLE,
            words_of.turn_on_question(kind),
            words_of.TURN_ON_YES,
        )
    else:
        title, question, yes = (
            words_of.TURN_OFF_TITLE,
            words_of.TURN_OFF_QUESTION,
            words_of.TURN_OFF_YES,
        )
    return card(
        [words(title, bold=True), words(question)],
        [
            execute(
                yes,
                verb,
                {"kind": kind, "confirmed": True},
                style="positive" if turning_on else "destructive",
            ),
            execute("Cancel", verb, {"cancel": True}),
        ],
    )


def _said(head: str, rest: str) -> Element:
    return line(run(f"{head}: ", bold=True), run(rest))


def rule_added_card(added: RuleAdded) -> Card:
    return card([_said(*words_of.rule_added(added)), words(HOW_RULES_WORK, subtle=True)])


def rule_removed_card(rules: Sequence[RuleView], removed: RuleRemoved) -> Card:
    """The rules as they are now, and who leaves (as Slack answers a turn-off)."""
    return rules_card(rules, after=[_said(*words_of.rule_removed(removed))])


def nothing_changed() -> Card:
    return card([words(NOTHING_CHANGED)])
