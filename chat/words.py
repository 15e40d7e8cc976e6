"""The words both front ends use: commands, what a result says, what a click answers.

Same rules, same words, same outcomes in Slack and Teams: every sentence a salesperson
reads about their list is written here once; `bot` and `teams` only add their markup.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sync_engine.digest_settings import BadDigestSetting
from sync_engine.model import WEEKDAYS, DigestPrefs

# ---------------------------------------------------------------- commands

HELP_LINES = (
    ("search <query>", 'find CRM people and tick the ones to add (also `company:"Name"`)'),
    ("add <query>", "add one person at once, or pick from several matches"),
    ("add-group", "add everyone whose Account Manager is you (asks first)"),
    ("person <query>", "a person's card, with Add or Remove"),
    ("list", "your My CRM Contacts with each one's sync status"),
    ("remove <query>", "take people out of My CRM Contacts (they stay in Outlook)"),
    ("sync", "sync your mailbox now; I DM you the result"),
    ("status", "last and next sync, counts, last error"),
    ("digest", "your digest DM: its time, daily or weekly, snooze, off"),
    ("rules", "standing rules: keep everyone you're Account Manager for, now and later"),
    ("help", "this message"),
)
ALIASES = {
    "summary": "digest",
    "find": "search",
    "addgroup": "add-group",
    "group": "add-group",
    "ls": "list",
    "rm": "remove",
}
# The subcommands that need words after them (whom to look for).
NEEDS_QUERY = frozenset({"search", "add", "person"})
SUBCOMMANDS = frozenset(
    {"search", "add", "add-group", "person", "list", "remove", "status", "digest", "sync", "rules"}
)


def parse(text: str) -> tuple[str, str]:
    """Split the command text into (subcommand, rest); the subcommand is lower-cased."""
    head, _, rest = (text or "").strip().partition(" ")
    sub = head.lower()
    return ALIASES.get(sub, sub), rest.strip()


def needs_query(sub: str, command: str) -> str:
    """What to say when `sub` came without whom to look for."""
    return f"Tell me whom to look for, for example `{command} {sub} Jane Doe`."


def unknown_command(sub: str) -> str:
    return f"I don't know `{sub[:50]}`. Here is what I can do:"


# ---------------------------------------------------------------- answers to clicks

FULL = "I'm very busy just now and couldn't take this request. Please try again in a minute."
QUEUED_NOTE = (
    "Lots of requests just now: yours is queued ({ahead} ahead of it). "
    "I'll answer here as soon as I can."
)
STALE_PICKER = "This list is out of date. Run the search again."
STALE_CARD = "That card is out of date. Look the person up again."
TICK_FIRST = "Tick at least one person first."
NEXT_SYNC = "It reaches your mailbox at the next sync, within a few minutes."
ADDED_ONE = "Added to My CRM Contacts. " + NEXT_SYNC
REMOVED_ONE = (
    "Removed from My CRM Contacts. The contact stays in Outlook and loses the CRM Contact "
    "category at the next sync."
)
NOT_IN_LIST = "Not in My CRM Contacts, so there was nothing to remove."
ADDED_CLOSING = "They reach your mailbox at the next sync, within a few minutes."
REMOVED_CLOSING = (
    "At the next sync they lose the CRM Contact category and are no longer kept up to date; "
    "the contacts themselves stay in your mailbox."
)
NO_GROUP = "No CRM person has you as Account Manager, so there is no group to add."
GROUP_ALL_IN = "Everyone in your group is already in My CRM Contacts."
GROUP_ADDING = "Adding your group to My CRM Contacts…"
# People shown before add-group's confirmation; the count says how many in all.
GROUP_PREVIEW = 10
SYNCING = "Syncing your mailbox… I'll DM you the result."
BUSY = "A sync of your mailbox is already running; its result comes to you as a DM."
QUEUED = "A sync of your mailbox is running; I'll sync once more right after it and DM you."
JOINED = "A sync of your mailbox is running and another is lined up; its result comes as a DM."
PROBLEM = (
    "Something went wrong on our side. Try again in a minute; if it keeps happening, tell "
    "your admin (reference {ref})."
)


def group_headline(total: int, already: int) -> str:
    """Add-group's count, before it asks (UX 6): plain words, the front end adds markup."""
    text = f"{plural(total, 'person has', 'people have')} you as Account Manager."
    if already:
        text += f" {already} of them {'is' if already == 1 else 'are'} already in My CRM Contacts."
    return text


def group_question(new: int) -> str:
    return (
        f"Add {plural(new, 'person', 'people')} whose Account Manager is you to My CRM "
        "Contacts? They are created in your mailbox at the next sync."
    )


def remove_question(count: int) -> str:
    return (
        f"{plural(count, 'person leaves', 'people leave')} your list. The contacts stay in "
        "Outlook without the CRM Contact category."
    )


def plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


# ---------------------------------------------------------------- what a sync result says

# In the order a reader cares about, with the words a salesperson uses.
ACTIONS: tuple[tuple[str, str], ...] = (
    ("created", "Created in your Contacts"),
    ("linked", "Linked to a contact you already had"),
    ("updated", "Updated from the CRM"),
    ("unlinked", "Unlinked (still in your mailbox, no longer kept up to date)"),
    ("deleted", "Deleted from your mailbox (gone from the CRM)"),
    ("forgotten", "Deleted by you in Outlook, so taken off My CRM Contacts"),
    ("written_back", "Your Outlook edits, sent to the CRM"),
    ("conflict", "Your Outlook edits the CRM overruled (it changed the same field)"),
    ("held", "Held back for safety"),
)
SHORT = {
    "created": "created",
    "linked": "linked to an existing contact",
    "updated": "updated",
    "unlinked": "unlinked",
    "deleted": "deleted",
    "forgotten": "deleted in Outlook",
    "written_back": "sent to the CRM",
    "conflict": "overruled by the CRM",
    "held": "held back",
    "failed": "failed",
}
# Names listed per kind before "and N more"; keeps a long result within a message's room.
NAMES_PER_KIND = 25
MAX_WARNINGS = 5
FAILURE_HINT = (
    "I retry these at the next sync. If one keeps failing, check the person in the CRM "
    "and the contact in Outlook, or send this message to your admin."
)
DUPLICATES_LABEL = (
    "Possible duplicates — similar contacts already in your mailbox that I did not link "
    "(only an exact name and company match is linked):"
)
NOTHING_CHANGED = "Nothing changed: your mailbox was already up to date."


def sync_title(mailbox: str, *, dry_run: bool, failed: bool) -> str:
    title = f"{'Dry run of' if dry_run else 'Sync of'} {mailbox}"
    return title + (" — failed" if failed else " — done")


# ---------------------------------------------------------------- the digest's controls

# Menu item → the change it makes; each is safe to repeat (UX 1).
DIGEST_CHOICES: dict[str, dict[str, Any]] = {
    "weekly": {"frequency": "weekly"},
    "daily": {"frequency": "daily"},
    "snooze": {"snooze_days": 7},
    "resume": {"snooze_days": 0},
    "off": {"off": True},
    "on": {"off": False},
}
_WORDS = {"at", "daily", "weekly", "snooze", "resume", "off", "on"}


def digest_usage(command: str) -> str:
    command = f"{command} " if command else ""
    return (
        f"try `{command}digest 17:30`, `weekly friday`, `daily`, `snooze 3`, `resume`, "
        "`off` or `on`"
    )


def digest_changes(text: str, command: str) -> dict[str, Any]:
    """`digest <words>` as set_digest_prefs arguments; the engine checks them.

    Words: HH:MM (or `at HH:MM`), daily, weekly [DAY], snooze [DAYS], resume, off, on."""
    words = text.lower().replace(",", " ").split()
    changes: dict[str, Any] = {}
    while words:
        word = words.pop(0)
        if word == "at" and words:
            changes["time"] = words.pop(0)
        elif ":" in word:
            changes["time"] = word
        elif word in ("daily", "weekly"):
            changes["frequency"] = word
            if word == "weekly" and words and words[0].isalpha() and words[0] not in _WORDS:
                changes["weekday"] = words.pop(0)  # the engine says if it is not a day
        elif word == "snooze":
            changes["snooze_days"] = words.pop(0) if words and words[0].isdigit() else 7
        elif word == "resume":
            changes["snooze_days"] = 0
        elif word in ("off", "on"):
            changes["off"] = word == "off"
        else:
            raise BadDigestSetting(
                f"I don't understand '{word[:40]}' here; {digest_usage(command)}"
            )
    return changes


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


# Where a digest control sits, carried in its block_id so any web process can serve the
# click: a posted digest ("dg|<since>|<until>", epoch seconds, re-rendered from the
# period) or the settings card of `/crm-contacts digest` ("dg|card").
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


def digest_note(
    choice: str, prefs: DigestPrefs, command: str, bold: Callable[[str], str] = str
) -> str:
    """What a click on the digest's controls did, in one line under them."""
    command = f"{command} " if command else ""
    if choice == "weekly":
        return (
            f"✓ Weekly from now on: {WEEKDAYS[prefs.weekday]}s at {prefs.time}, covering "
            f"the whole week. {bold('Change time…')} picks another day."
        )
    if choice == "daily":
        return f"✓ Daily from now on, at {prefs.time}."
    if choice == "snooze" and prefs.snoozed_until is not None:
        return f"✓ Snoozed: no digest before {prefs.snoozed_until.strftime('%A %d %B')}."
    if choice == "resume":
        return "✓ Resumed: the next digest comes at its usual time."
    if choice == "off":
        return f"✓ Turned off: no more digests. Turn it on from the menu, or `{command}digest on`."
    if choice == "on":
        return "✓ Turned on: the next digest comes at its usual time, if something happened."
    if choice == "time":
        day = f"{WEEKDAYS[prefs.weekday]}s " if prefs.weekly else ""
        return f"✓ Your digest now comes {day}at {prefs.time} your time."
    return "✓ Saved."
