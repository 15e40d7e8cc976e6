"""What an add, a remove, add-group's confirmation, status and help look like in Teams
(the standing rules' own cards are `teams.cards.rules`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from chat.failures import for_salesperson
from chat.words import (
    ADDED_CLOSING,
    GROUP_ALL_IN,
    GROUP_PREVIEW,
    HELP_LINES,
    NO_GROUP,
    REMOVED_CLOSING,
    group_headline,
    group_question,
    plural,
)
from sync_engine.answers import MailboxStatus
from sync_engine.model import PersonView
from sync_engine.standing.state import RuleView
from teams.cards.common import (
    CARD_BUDGET,
    VERB_GROUP_ADD,
    VERB_GROUP_CONFIRM,
    VERB_SYNC,
    Card,
    Element,
    card,
    execute,
    fit,
    fitted_lines,
    line,
    run,
    size,
    words,
)
from teams.cards.person import person_line
from teams.cards.rules import group_offer, status_rules

SEE_LIST = "`list` shows everyone in My CRM Contacts."


def _lists(
    room: int, lists: Sequence[tuple[str, Sequence[PersonView]]], more: str = SEE_LIST
) -> list[Element]:
    """Titled lists of people sharing `room` bytes evenly; "…and N more" when long."""
    out: list[Element] = []
    share = room // max(len(lists), 1)
    for title, people in lists:
        out.append(words(title, bold=True))
        out += fitted_lines([person_line(p, mark_in_list=False) for p in people], share, more=more)
    return out


def added_card(added: Sequence[PersonView], already: Sequence[PersonView]) -> Card:
    """After an add: the people just added, as Sage shows the Contacts page."""
    closing = [words(f"{ADDED_CLOSING} Search again to add more, or `sync` now.", subtle=True)]
    actions = [execute("Sync now", VERB_SYNC)]
    lists: list[tuple[str, Sequence[PersonView]]] = []
    if added:
        lists.append((f"Added {plural(len(added), 'person', 'people')} to My CRM Contacts:", added))
    if already:
        title = (
            "Already in My CRM Contacts:"
            if len(already) == 1
            else f"{len(already)} were already in My CRM Contacts:"
        )
        lists.append((title, already))
    if not lists:
        return card([words("Nothing to add."), *closing], actions)
    room = CARD_BUDGET - size(card(closing, actions)) - 400
    return card(_lists(room, lists) + closing, actions)


def removed_card(removed: Sequence[PersonView], not_in_list: Sequence[int]) -> Card:
    closing: list[Element] = []
    if removed:
        closing.append(words(REMOVED_CLOSING, subtle=True))
    if not_in_list:
        closing.append(
            words(
                f"{plural(len(not_in_list), 'person was', 'people were')} not in your list any more.",
                subtle=True,
            )
        )
    if not removed:
        return card(closing or [words("Nothing to remove.")])
    title = f"Removed {plural(len(removed), 'person', 'people')} from My CRM Contacts:"
    room = CARD_BUDGET - size(card(closing)) - 400
    return card(_lists(room, [(title, removed)]) + closing)


def group_confirm_card(people: Sequence[PersonView], rule_on: bool = False) -> Card:
    """Add-group shows the count and asks first (UX 6): the confirmation is a second card.
    It offers to keep the group current with the account-manager rule instead."""
    offer, offer_actions = group_offer(rule_on)
    if not people:
        return card([words(NO_GROUP), *offer], offer_actions)
    new = [p for p in people if not p.in_list]
    headline = group_headline(len(people), len(people) - len(new))
    body: list[Element] = [words(headline, bold=True)]
    if not new:
        body.append(words(GROUP_ALL_IN, subtle=True))
        return card(body + offer, offer_actions)
    preview = [person_line(p, mark_in_list=False) for p in new[:GROUP_PREVIEW]]
    actions = [
        execute(
            f"Add {len(new)} to My CRM Contacts",
            VERB_GROUP_CONFIRM,
            {"count": len(new)},
            style="positive",
        ),
        *offer_actions,
    ]
    room = CARD_BUDGET - size(card(body + offer, actions)) - 400
    body += fitted_lines(preview, room, hidden=len(new) - len(preview))
    return card(body + offer, actions)


def group_question_card(count: int) -> Card:
    """The confirmation itself (Teams has no confirm dialog on a card action)."""
    return card(
        [words("Add your group?", bold=True), words(group_question(count))],
        [
            execute(f"Add {count}", VERB_GROUP_ADD, {"count": count}, style="positive"),
            execute("Cancel", VERB_GROUP_CONFIRM, {"cancel": True}),
        ],
    )


def _when(moment: datetime | None, missing: str = "never") -> str:
    if moment is None:
        return missing
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def status_card(status: MailboxStatus, rules: Sequence[RuleView] = ()) -> Card:
    """Last and next sync, counts, the last error in plain words, and the standing rules
    with a button each to turn it off (what Slack's App Home shows)."""
    last = _when(status.last_run_at)
    if status.last_run_at and status.last_status:
        last += f" ({fit(status.last_status, 200)})"
    facts = [
        ("Mailbox", fit(status.mailbox, 300)),
        ("In My CRM Contacts", str(status.subscriptions)),
        ("Linked in your mailbox", str(status.linked)),
        ("Last sync", last),
        ("Next sync", _when(status.next_due_at, "not scheduled")),
    ]
    body: list[Element] = [line(run(f"{k}: ", bold=True), run(v)) for k, v in facts]
    if status.last_error:
        body.append(line(run("⚠️ "), run(for_salesperson(status.last_error))))
    rule_lines, rule_actions = status_rules(rules)
    return card(body + rule_lines, [execute("Sync now", VERB_SYNC), *rule_actions])


def help_card(intro: str = "") -> Card:
    body: list[Element] = []
    if intro:
        body.append(line(run(intro)))
    body.append(
        words(
            "My CRM Contacts keeps the CRM people you choose in your Outlook Contacts.", bold=True
        )
    )
    for usage, what in HELP_LINES:
        body.append(line(run(usage, bold=True), run(f" — {what}"), spacing="Small"))
    return card(body)
