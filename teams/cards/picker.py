"""The picker as an Adaptive Card: a toggle per person, pages that keep the ticks.

The state (`chat.picker.PickerState`) rides in every action's data; Teams sends the
toggles' values with each Action.Execute, so a click on *Next* carries this page's ticks
and the card that comes back shows the next page with the ticks of every page counted.
"""

from __future__ import annotations

from chat.picker import (
    PAGE_SIZE,
    EmptyPicker,
    PickerPage,
    PickerState,
    carried,
    controls,
    pages,
)
from chat.words import plural, remove_question
from teams.cards.common import (
    CARD_BUDGET,
    TICK_PREFIX,
    VERB_ADD,
    VERB_NEXT,
    VERB_PREV,
    VERB_REMOVE,
    VERB_SHOW,
    VERB_TICK_ALL,
    VERB_TICK_NONE,
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
from teams.cards.person import detail_of, name_of, no_match, person_line

COMMAND_LIST = "list"


def picker_card(page: PickerPage | EmptyPicker) -> Card:
    """One page of a picker, or what to say when there is nothing to pick."""
    if isinstance(page, EmptyPicker):
        return _empty(page)
    state, choosable, note = carried(page)
    adding = state.mode == "add"
    count = len(state.selected)
    total_pages = pages(page.total)
    number = state.offset // PAGE_SIZE + 1
    head = [run(plural(page.total, "person matches", "people match") + " “", bold=True)]
    if adding:
        head += [run(fit(state.query, 200), bold=True), run("”", bold=True)]
    elif state.query:
        head = [
            run(
                plural(page.total, "of your contacts matches", "of your contacts match") + " “",
                bold=True,
            ),
            run(fit(state.query, 200), bold=True),
            run("”", bold=True),
        ]
    else:
        head = [run("My CRM Contacts: ", bold=True), run(plural(page.total, "person", "people"))]
    if total_pages > 1:
        head.append(run(f" — page {number} of {total_pages}"))
    body: list[Element] = [line(*head)]
    for person in choosable:
        body.append(
            {
                "type": "Input.Toggle",
                "id": f"{TICK_PREFIX}{person.id}",
                "title": f"{fit(name_of(person), 80)} — {detail_of(person, not adding)}",
                "value": "true" if person.id in state.selected else "false",
                "valueOn": "true",
                "valueOff": "false",
                "wrap": True,
            }
        )
    ids = {p.id for p in choosable}
    elsewhere = len([i for i in state.selected if i not in ids])
    tally = f"{count} selected" + (f" ({elsewhere} on other pages)" if elsewhere else "")
    # A toggle cannot redraw the card in Teams (an input has no action of its own in
    # Adaptive Cards 1.5): the ticks on this page are counted at the next click.
    hint = " · ticks on this page count when you click a button" if choosable else ""
    closing = [
        line(
            run(tally, bold=True),
            run(f" · {fit(note, 500)}" if note else "", italic=True),
            run(hint, subtle=True),
        )
    ]

    data = {"state": state.to_value()}
    if adding:
        main = execute("Add selected to My CRM Contacts", VERB_ADD, data, style="positive")
    else:
        main = execute("Remove selected", VERB_REMOVE, data, style="destructive")
    verbs = {"all": VERB_TICK_ALL, "none": VERB_TICK_NONE, "prev": VERB_PREV, "next": VERB_NEXT}
    actions = [main] + [
        execute(text, verbs[kind], data)
        for kind, text in controls(state, page.total, choosable=bool(choosable))
    ]
    others = [p for p in page.people if p.id not in ids]
    if others:  # shown, not offered, within what the card has left (UX 8)
        title = (
            "Already in My CRM Contacts:" if adding else "Leaving My CRM Contacts at the next sync:"
        )
        mark = "✓" if adding else "•"
        room = CARD_BUDGET - size(card(body + closing, actions)) - 200
        body.append(words(title, subtle=True))
        body += fitted_lines(
            [person_line(p, mark, mark_in_list=False) for p in others],
            room,
            more=f"`{COMMAND_LIST}` shows everyone in My CRM Contacts.",
        )
    return card(body + closing, actions)


def _empty(page: EmptyPicker) -> Card:
    if page.mode == "add":
        return no_match(page.query)
    if page.query:
        return card(
            [
                line(
                    run("None of the people in My CRM Contacts match “"),
                    run(fit(page.query, 200)),
                    run("”."),
                ),
                words("`list` shows them all."),
            ]
        )
    return card(
        [words("My CRM Contacts is empty. `search <name or company>` finds people to add.")]
    )


def remove_confirm_card(state: PickerState) -> Card:
    """Removing people asks first (UX 6); Cancel shows the page again, ticks kept."""
    count = len(state.selected)
    data = {"state": state.fitted().to_value()}
    return card(
        [words("Remove from My CRM Contacts?", bold=True), words(remove_question(count))],
        [
            execute(
                f"Remove {count}", VERB_REMOVE, {**data, "confirmed": True}, style="destructive"
            ),
            execute("Cancel", VERB_SHOW, data),
        ],
    )
