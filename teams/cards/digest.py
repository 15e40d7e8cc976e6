"""The digest's own controls in Teams (SLACK_UX 9): its settings and one button per
change, plus a time input; a click changes one setting and the card is redrawn."""

from __future__ import annotations

from chat.words import digest_choices
from sync_engine.model import WEEKDAYS, DigestPrefs
from teams.cards.common import VERB_DIGEST, Element, execute, fit, words

# Where the controls sit: a posted digest ("dg|<since>|<until>") or the settings card.
DIGEST_CARD = "dg|card"


def settings_line(prefs: DigestPrefs) -> str:
    if prefs.off:
        return "Digest off: I send you no digest. Turn it on below."
    at = f"{prefs.time} your time ({fit(prefs.tz or 'UTC', 60)})"
    text = (
        f"Weekly digest, {WEEKDAYS[prefs.weekday]}s at {at}"
        if prefs.weekly
        else f"Daily digest at {at}"
    )
    if prefs.snoozed_until is not None:
        text += f" · snoozed until {prefs.snoozed_until.strftime('%a %d %b')}"
    return text


def digest_controls(
    prefs: DigestPrefs, place: str, note: str = ""
) -> tuple[list[Element], list[Element]]:
    """(body, actions): the settings, a time input and a button per change."""
    body: list[Element] = [words(settings_line(prefs), bold=True)]
    if note:
        body.append(words(note, subtle=True))
    body.append(
        {
            "type": "Input.Time",
            "id": "time",
            "label": "Time (your time zone)",
            "value": prefs.time or "08:00",
        }
    )
    actions = [
        execute(
            text if value != "time" else "Set time", VERB_DIGEST, {"choice": value, "place": place}
        )
        for text, value in digest_choices(prefs)
    ]
    return body, actions
