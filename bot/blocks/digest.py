"""The digest's own controls (SLACK_UX 9): where they sit, the menu, the time modal."""

from __future__ import annotations

from typing import Any

from bot.blocks.common import (
    ACTION_DIGEST_MENU,
    COMMAND,
    DIGEST_DAY_ACTION,
    DIGEST_DAY_BLOCK,
    DIGEST_MODAL,
    DIGEST_TIME_ACTION,
    DIGEST_TIME_BLOCK,
    MAX_BLOCK_ID,
    Block,
    context,
    fit_escaped,
    mrkdwn,
    overflow,
    plain,
)
from chat.words import digest_choices, digest_period, digest_place
from chat.words import digest_note as _digest_note
from sync_engine.model import WEEKDAYS, DigestPrefs

__all__ = ["digest_choices", "digest_period", "digest_place"]

DIGEST_CARD = "dg|card"


def digest_settings_line(prefs: DigestPrefs) -> str:
    """The settings in one mrkdwn line (the zone comes from Slack: escaped all the same)."""
    if prefs.off:
        return "*Digest off*: I send you no digest. Turn it on from the menu."
    at = f"*{prefs.time}* your time ({fit_escaped(prefs.tz or 'UTC', 60)})"
    if prefs.weekly:
        line = f"*Weekly digest*, {WEEKDAYS[prefs.weekday]}s at {at}"
    else:
        line = f"*Daily digest* at {at}"
    if prefs.snoozed_until is not None:
        line += f" · snoozed until {prefs.snoozed_until.strftime('%a %d %b')}"
    return line


def digest_controls(prefs: DigestPrefs, place: str, note: str = "") -> list[Block]:
    """The digest's own controls (UX 9): the settings and an overflow menu, no button."""
    blocks: list[Block] = [
        {
            "type": "section",
            "block_id": place[:MAX_BLOCK_ID],
            "text": mrkdwn(digest_settings_line(prefs)),
            "accessory": overflow(ACTION_DIGEST_MENU, digest_choices(prefs)),
        }
    ]
    if note:  # ours: made from validated settings, never from typed text
        blocks.append(context(note))
    return blocks


def digest_note(choice: str, prefs: DigestPrefs) -> str:
    """What a click on the digest's menu did, in one line under the controls."""
    return _digest_note(choice, prefs, COMMAND, bold=lambda text: f"*{text}*")


def digest_card(prefs: DigestPrefs, note: str = "") -> list[Block]:
    """`/crm-contacts digest`: the settings with the same controls as the digest itself."""
    return [
        *digest_controls(prefs, DIGEST_CARD, note),
        context(
            "The digest comes as a DM with what your syncs did, only when something "
            f"happened. `{COMMAND} digest 17:30`, `weekly friday`, `daily`, `snooze 3`, "
            "`off` and `on` change it too."
        ),
    ]


def digest_time_modal(prefs: DigestPrefs, metadata: str) -> dict[str, Any]:
    """A small modal: a time picker (and the day, for a weekly digest)."""
    blocks: list[Block] = [
        {
            "type": "input",
            "block_id": DIGEST_TIME_BLOCK,
            "label": plain("Time (your time zone)"),
            "element": {
                "type": "timepicker",
                "action_id": DIGEST_TIME_ACTION,
                "initial_time": prefs.time or "08:00",
            },
        }
    ]
    if prefs.weekly:
        days = [{"text": plain(name), "value": str(n)} for n, name in enumerate(WEEKDAYS)]
        blocks.append(
            {
                "type": "input",
                "block_id": DIGEST_DAY_BLOCK,
                "label": plain("Day"),
                "element": {
                    "type": "static_select",
                    "action_id": DIGEST_DAY_ACTION,
                    "options": days,
                    "initial_option": days[prefs.weekday],
                },
            }
        )
    return {
        "type": "modal",
        "callback_id": DIGEST_MODAL,
        "title": plain("Digest time", 24),
        "submit": plain("Save", 24),
        "close": plain("Cancel", 24),
        "private_metadata": metadata,  # small: where the digest is, and its response_url
        "blocks": blocks,
    }
