"""The digest's own controls (SLACK_UX 9): where they sit, the menu, the time modal."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
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
from sync_engine.model import WEEKDAYS, DigestPrefs

# Where a digest control sits, carried in its block_id so any web process can serve the
# click: a posted digest ("dg|<since>|<until>", epoch seconds, re-rendered from the
# period) or the settings card of `/crm-contacts digest` ("dg|card").
DIGEST_CARD = "dg|card"
# A posted digest covers at most a week; anything longer in a block_id is not ours.
_MAX_DIGEST_PERIOD = timedelta(days=8)


def digest_place(since: datetime, until: datetime) -> str:
    """The block_id of a posted digest's controls: its period, rounded outwards."""
    return f"dg|{math.floor(since.timestamp())}|{math.ceil(until.timestamp())}"


def digest_period(place: str) -> tuple[datetime, datetime] | None:
    """The period in a digest block_id; None for the settings card or anything else."""
    parts = place.split("|")
    if len(parts) != 3 or parts[0] != "dg" or not all(p.isdigit() for p in parts[1:]):
        return None
    since, until = (datetime.fromtimestamp(int(p), UTC) for p in parts[1:])
    if not since < until <= since + _MAX_DIGEST_PERIOD:
        return None
    return since, until


def digest_choices(prefs: DigestPrefs) -> list[tuple[str, str]]:
    """The overflow items for the settings as they are: each says what it changes."""
    choices = [("Change time…", "time")]
    choices.append(("Daily instead", "daily") if prefs.weekly else ("Weekly instead", "weekly"))
    if not prefs.off:
        choices.append(
            ("Resume now", "resume") if prefs.snoozed_until else ("Snooze a week", "snooze")
        )
    choices.append(("Turn on", "on") if prefs.off else ("Turn off", "off"))
    return choices


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
    if choice == "weekly":
        return (
            f"✓ Weekly from now on: {WEEKDAYS[prefs.weekday]}s at {prefs.time}, covering "
            "the whole week. *Change time…* picks another day."
        )
    if choice == "daily":
        return f"✓ Daily from now on, at {prefs.time}."
    if choice == "snooze" and prefs.snoozed_until is not None:
        return f"✓ Snoozed: no digest before {prefs.snoozed_until.strftime('%A %d %B')}."
    if choice == "resume":
        return "✓ Resumed: the next digest comes at its usual time."
    if choice == "off":
        return f"✓ Turned off: no more digests. Turn it on from the menu, or `{COMMAND} digest on`."
    if choice == "on":
        return "✓ Turned on: the next digest comes at its usual time, if something happened."
    if choice == "time":
        day = f"{WEEKDAYS[prefs.weekday]}s " if prefs.weekly else ""
        return f"✓ Your digest now comes {day}at {prefs.time} your time."
    return "✓ Saved."


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
