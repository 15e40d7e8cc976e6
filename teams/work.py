"""What each Teams command and card action does: engine calls and the card to show.

Plain functions of (engine, user, input) → card, run in the pools (`teams.jobs`); the
same use cases and words as Slack's listeners (`bot.commands`, `bot.actions`). Card
data comes back from the client and is never trusted: a picker state is parsed and cut
to its limits (`PickerState.from_value`), ids are integers, and every call acts on the
asker's own list only (the engine scopes it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chat.picker import MAX_SELECTED, PAGE_SIZE, PickerState, picker_page
from chat.rules import keeps_group
from chat.summary import digest_content
from chat.words import (
    ADDED_ONE,
    DIGEST_CHOICES,
    NOT_IN_LIST,
    REMOVED_ONE,
    STALE_CARD,
    STALE_PICKER,
    TICK_FIRST,
    digest_changes,
    digest_note,
    digest_period,
    digest_place,
)
from sync_engine.digest_settings import BadDigestSetting
from sync_engine.model import CrmUser
from teams.cards.common import (
    TICK_PREFIX,
    VERB_ADD,
    VERB_NEXT,
    VERB_PREV,
    VERB_REMOVE,
    VERB_TICK_ALL,
    VERB_TICK_NONE,
    Card,
    card,
    problem,
)
from teams.cards.digest import DIGEST_CARD, digest_controls
from teams.cards.person import no_match, person_card, person_choices
from teams.cards.picker import picker_card, remove_confirm_card
from teams.cards.results import (
    added_card,
    group_confirm_card,
    removed_card,
    status_card,
)
from teams.cards.rules import (
    nothing_changed,
    rule_added_card,
    rule_question_card,
    rule_removed_card,
    rules_card,
)
from teams.cards.summary import summary_card

if TYPE_CHECKING:
    from sync_engine.service import Engine

COMMAND = ""  # Teams commands are typed as they are: `search Jane`, `digest 17:30`


# ---------------------------------------------------------------- commands


def search(engine: Engine, user: CrmUser, query: str) -> Card:
    return picker_card(picker_page(engine, user, PickerState("add", query)))


def add(engine: Engine, user: CrmUser, query: str) -> Card:
    page = engine.search(user, query, limit=PAGE_SIZE, offset=0)
    if page.total == 0:
        return no_match(query)
    if page.total == 1:
        result = engine.add(user, [page.people[0].id])
        return added_card(result.added, result.already)
    note = "several people match: tick the ones you mean"
    return picker_card(picker_page(engine, user, PickerState("add", query), note=note))


def add_group(engine: Engine, user: CrmUser, _query: str) -> Card:
    return group_confirm_card(engine.group(user), keeps_group(engine.rules.of(user)))


def rules(engine: Engine, user: CrmUser, _query: str) -> Card:
    return rules_card(engine.rules.of(user))


def person(engine: Engine, user: CrmUser, query: str) -> Card:
    page = engine.search(user, query, limit=PAGE_SIZE, offset=0)
    if page.total == 0:
        return no_match(query)
    if page.total == 1:
        return person_card(engine.person(user, page.people[0].id))
    return person_choices(query, page.people, page.total)


def my_list(engine: Engine, user: CrmUser, query: str) -> Card:
    return picker_card(picker_page(engine, user, PickerState("remove", query)))


def status(engine: Engine, user: CrmUser, _query: str) -> Card:
    return status_card(engine.status(user), engine.rules.of(user))


def digest(engine: Engine, user: CrmUser, text: str) -> Card:
    """The digest's settings with its controls; words after `digest` change them first."""
    note = ""
    if text:
        engine.set_digest_prefs(user, **digest_changes(text, COMMAND))
        note = "✓ Saved."
    return digest_settings_card(engine, user, note)


def digest_settings_card(engine: Engine, user: CrmUser, note: str = "") -> Card:
    body, actions = digest_controls(engine.digest_prefs(user), DIGEST_CARD, note)
    return card(body, actions)


COMMANDS = {
    "search": search,
    "add": add,
    "add-group": add_group,
    "person": person,
    "list": my_list,
    "remove": my_list,
    "status": status,
    "digest": digest,
    "rules": rules,
}


# ---------------------------------------------------------------- card actions


def ticks(data: dict[str, Any]) -> list[int]:
    """The ids whose toggles are on, from the inputs Teams sends with the action."""
    out = []
    for key, value in data.items():
        if isinstance(key, str) and key.startswith(TICK_PREFIX) and str(value) == "true":
            number = key[len(TICK_PREFIX) :]
            if number.isdigit() and len(number) < 12:
                out.append(int(number))
    return out[:MAX_SELECTED]


def state_of(data: dict[str, Any]) -> PickerState | None:
    try:
        return PickerState.from_value(str(data.get("state") or ""))
    except ValueError:
        return None


def picker_action(engine: Engine, user: CrmUser, verb: str, data: dict[str, Any]) -> Card:
    """Select all, Deselect all, Previous, Next, Add / Remove selected (and Cancel, which
    shows the page again: VERB_SHOW)."""

    state = state_of(data)
    if state is None:
        return problem(STALE_PICKER)
    current = state
    if any(str(key).startswith(TICK_PREFIX) for key in data):  # a picker page's toggles
        ticked = ticks(data)
        current = state.merged(state.page, [i for i in ticked if i in state.page])
    if verb in (VERB_ADD, VERB_REMOVE):
        chosen = list(current.selected)
        if not chosen:
            return picker_card(picker_page(engine, user, current, note=TICK_FIRST))
        if verb == VERB_ADD:
            result = engine.add(user, chosen)
            return added_card(result.added, result.already)
        if data.get("confirmed") is not True:  # taking people away: ask first (UX 6)
            return remove_confirm_card(current)
        removed = engine.remove(user, chosen)
        return removed_card(removed.removed, removed.not_in_list)
    if verb == VERB_TICK_NONE:
        current = PickerState(current.mode, current.query, current.offset, (), current.page)
    if verb in (VERB_PREV, VERB_NEXT):
        step = 1 if verb == VERB_NEXT else -1
        current = current.at(current.offset + step * PAGE_SIZE)
    return picker_card(picker_page(engine, user, current, select_page=verb == VERB_TICK_ALL))


def person_action(engine: Engine, user: CrmUser, kind: str, data: dict[str, Any]) -> Card:
    value = str(data.get("person") or "")
    if not value.isdigit() or len(value) > 12:
        return problem(STALE_CARD)
    person_id = int(value)
    note = ""
    if kind == "add":
        note = ADDED_ONE if engine.add(user, [person_id]).added else ""
    elif kind == "remove":
        note = REMOVED_ONE if engine.remove(user, [person_id]).removed else NOT_IN_LIST
    return person_card(engine.person(user, person_id), note)


def group_add(engine: Engine, user: CrmUser) -> Card:
    result = engine.add_group(user)  # idempotent: a second click adds nobody twice (UX 1)
    return added_card(result.added, result.already)


def rule_action(engine: Engine, user: CrmUser, turning_on: bool, data: dict[str, Any]) -> Card:
    """Turn one of the sender's own rules on or off, after its question card (UX 6). The
    kind in the card data is checked by the engine; nothing else in it is read."""
    if data.get("cancel") is True:
        return nothing_changed()
    kind = engine.rules.kind(str(data.get("kind") or "")[:40])  # BadRule: one line
    if data.get("confirmed") is not True:
        return rule_question_card(kind, turning_on)
    if turning_on:
        return rule_added_card(engine.rules.add(user, kind))  # safe to repeat (UX 1)
    removed = engine.rules.remove(user, kind)  # RuleNotOn: one line
    return rule_removed_card(engine.rules.of(user), removed)


def digest_action(engine: Engine, user: CrmUser, data: dict[str, Any]) -> Card:
    """One click on the digest's controls: change one setting, redraw the controls."""
    choice = str(data.get("choice") or "")
    place = str(data.get("place") or DIGEST_CARD)
    try:
        if choice == "time":
            prefs = engine.set_digest_prefs(user, time=str(data.get("time") or ""))
        elif choice in DIGEST_CHOICES:
            prefs = engine.set_digest_prefs(user, **DIGEST_CHOICES[choice])
        else:
            return problem("That button is out of date. `digest` shows your digest settings.")
    except BadDigestSetting as exc:
        return digest_settings_card(engine, user, f"⚠️ {exc}")
    note = digest_note(choice, prefs, COMMAND)
    period = digest_period(place)
    if period is not None:
        message = digest_card(engine, user, *period, note=note)
        if message is not None:
            return message[1]
    return digest_settings_card(engine, user, note)


def digest_card(
    engine: Engine, user: CrmUser, since: Any, until: Any, note: str = ""
) -> tuple[str, Card] | None:
    """The digest of a period with its controls; None when nothing happened (UX 9)."""
    content = digest_content(engine, user, since, until)
    if content is None:
        return None
    body, actions = digest_controls(engine.digest_prefs(user), digest_place(since, until), note)
    subtitle = f"Since {since:%Y-%m-%d %H:%M} UTC · {content.runs} sync(s)"
    return summary_card(
        "Your CRM Contacts digest",
        content.outcomes,
        content.possible_duplicates,
        content.warnings,
        subtitle=subtitle,
        reserve=body,
        actions=actions,
    )
