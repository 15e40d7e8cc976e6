"""One person, the same few fields everywhere (SLACK_UX 3), as Teams shows them."""

from __future__ import annotations

from collections.abc import Sequence

from chat.picker import PAGE_SIZE
from chat.words import plural
from sync_engine.model import PersonView
from teams.cards.common import (
    MAX_CARD_FIELD,
    MAX_TITLE,
    VERB_PERSON_ADD,
    VERB_PERSON_OPEN,
    VERB_PERSON_REMOVE,
    Card,
    Element,
    card,
    execute,
    fit,
    line,
    run,
    words,
)

# The card's fields, in Sage's Summary-tab order.
CARD_FIELDS = (
    ("Job title", "job_title"),
    ("Company", "company"),
    ("Email", "email"),
    ("Business phone", "business_phone"),
    ("Mobile", "mobile_phone"),
    ("Account manager", "manager"),
)


def name_of(person: PersonView) -> str:
    return person.name or f"person {person.id}"


def detail_of(person: PersonView, with_status: bool = False) -> str:
    """Job title, company, email (and, in the user's own list, the sync status and why
    they are in it), one line of plain text."""
    parts = [person.job_title, person.company, person.email]
    if with_status:
        parts[:0] = [person.status, person.why]
    return " · ".join(fit(p, MAX_TITLE) for p in parts if p) or "no details in the CRM"


def person_line(person: PersonView, mark: str = "", mark_in_list: bool = True) -> Element:
    """One person on one line: the name in bold, the rest plain (every value a run)."""
    runs = [run(f"{mark} " if mark else ""), run(fit(name_of(person), MAX_TITLE), bold=True)]
    detail = detail_of(person)
    runs.append(run(f" — {detail}"))
    if person.status:
        runs.append(run(f" · {fit(person.status, MAX_TITLE)}", italic=True))
    elif mark_in_list and person.in_list:
        runs.append(run(" · ✓ in My CRM Contacts"))
    return line(*runs, spacing="Small")


def person_card(person: PersonView, note: str = "") -> Card:
    """The person's summary card, as on Sage's Summary tab, with one main button (UX 4)."""
    state = "✓ in My CRM Contacts" if person.in_list else "not in My CRM Contacts"
    body: list[Element] = [
        line(run(fit(name_of(person), 500), bold=True)),
        line(run(state, subtle=True))
        if not person.status
        else line(run(state, subtle=True), run(f" · {fit(person.status, MAX_TITLE)}", italic=True)),
    ]
    for label, attribute in CARD_FIELDS:
        value = getattr(person, attribute, "")
        if value:
            body.append(line(run(f"{label}: ", bold=True), run(fit(value, MAX_CARD_FIELD))))
    if note:
        body.append(words(note, subtle=True))
    data = {"person": person.id}
    if person.in_list:
        main = execute("Remove from My Contacts", VERB_PERSON_REMOVE, data, style="destructive")
    else:
        main = execute("Add to My Contacts", VERB_PERSON_ADD, data, style="positive")
    return card(body, [main])


def person_choices(query: str, people: Sequence[PersonView], total: int) -> Card:
    """Several people match a `person` query: one line each and a button to open the card."""
    body: list[Element] = [
        line(
            run(f"{plural(total, 'person matches', 'people match')} “", bold=True),
            run(fit(query, 200), bold=True),
            run("”:", bold=True),
        )
    ]
    actions = []
    for person in people[:PAGE_SIZE]:
        body.append(person_line(person))
    for person in people[:4]:
        actions.append(
            execute(f"Open {fit(name_of(person), 40)}", VERB_PERSON_OPEN, {"person": person.id})
        )
    if total > len(people[:4]):
        body.append(
            words(
                f"Showing {min(len(people), PAGE_SIZE)} of {total}: add more words to narrow it.",
                subtle=True,
            )
        )
    return card(body, actions)


def no_match(query: str) -> Card:
    return card(
        [
            line(run("No one in the CRM matches “"), run(fit(query, 300)), run("”.")),
            words('Try another spelling, an email address, or company:"Design Right Inc.".'),
        ]
    )
