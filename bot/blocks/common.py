"""What every message builder shares: Slack's limits, action ids and text helpers.

Slack's hard limits (50 blocks, 10 options per checkboxes element, 3,000 characters of
text, 75 characters of option/button text) and the escaping of CRM values are enforced
in this package and nowhere else, so no listener can forget them (SLACK_UX 3, 11).
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from chat.picker import MAX_BLOCK_ID, MAX_OPTIONS, MAX_QUERY, MAX_SELECTED, MAX_VALUE, PAGE_SIZE
from chat.words import HELP_LINES

__all__ = [
    "HELP_LINES",
    "MAX_BLOCK_ID",
    "MAX_OPTIONS",
    "MAX_QUERY",
    "MAX_SELECTED",
    "MAX_VALUE",
    "PAGE_SIZE",
]

Block = dict[str, Any]

# Slack's hard limits (Block Kit reference).
MAX_BLOCKS = 50
MAX_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_OPTION_TEXT = 75
MAX_BUTTON_TEXT = 75
MAX_HEADER = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_OVERFLOW_OPTIONS = 5
MAX_FALLBACK = 3000

COMMAND = "/crm-contacts"

ACTION_TICK = "picker_tick"
ACTION_ALL = "picker_all"
ACTION_NONE = "picker_none"
ACTION_PREV = "picker_prev"
ACTION_NEXT = "picker_next"
ACTION_ADD = "picker_add"
ACTION_REMOVE = "picker_remove"
ACTION_PERSON_OPEN = "person_open"
ACTION_PERSON_ADD = "person_add"
ACTION_PERSON_REMOVE = "person_remove"
ACTION_GROUP_ADD = "group_add"
ACTION_SYNC_NOW = "sync_now"
ACTION_HOME_SEARCH = "home_search"
ACTION_HOME_LIST = "home_list"
ACTION_DIGEST_MENU = "digest_menu"
SEARCH_MODAL = "search_modal"
DIGEST_MODAL = "digest_time_modal"
DIGEST_TIME_BLOCK = "digest_time"
DIGEST_TIME_ACTION = "time"
DIGEST_DAY_BLOCK = "digest_day"
DIGEST_DAY_ACTION = "day"
SEARCH_INPUT_BLOCK = "search_query"
SEARCH_INPUT_ACTION = "query"

# ---------------------------------------------------------------- text helpers


def escape(text: object) -> str:
    """Escape a value for mrkdwn: `&`, `<` and `>` only, as Slack asks.

    This is what keeps a person named `<!channel>` from pinging a whole channel.
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int) -> str:
    """Cut plain text to `limit` characters, marking the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def fit_escaped(raw: object, limit: int) -> str:
    """Escape `raw` and cut it to `limit` characters without breaking an `&amp;` entity.

    The cut happens on the raw value, so an entity is either whole or gone.
    """
    raw = str(raw)
    escaped = escape(raw)
    if len(escaped) <= limit:
        return escaped
    out: list[str] = []
    size = 0
    for char in raw:
        piece = escape(char)
        if size + len(piece) > limit - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out).rstrip() + "…"


def plain(text: str, limit: int = MAX_TEXT) -> dict[str, Any]:
    return {"type": "plain_text", "text": fit(text, limit) or " ", "emoji": True}


def mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object; callers have already escaped every CRM value in `text`.

    `verbatim: true` on every one: Slack then leaves bare `@here`, `#channel` and URLs in
    the text alone instead of turning them into mentions and links (Block Kit reference,
    text object: `verbatim`), so a company named "@here Widgets" pings nobody. Escaping
    `&`, `<`, `>` is still needed: `<!here>` is markup, verbatim or not. Nothing we write
    relies on that auto-parsing; our dates are explicit `<!date^…>` markup, which verbatim
    keeps.
    """
    return {"type": "mrkdwn", "text": text[:MAX_TEXT] or " ", "verbatim": True}


def section(text: str) -> Block:
    return {"type": "section", "text": mrkdwn(text)}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts[:MAX_CONTEXT_ELEMENTS]]}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, MAX_HEADER)}


def divider() -> Block:
    return {"type": "divider"}


def button(
    text: str,
    action_id: str,
    value: str = "",
    style: str | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": plain(text, MAX_BUTTON_TEXT),
    }
    if value:
        element["value"] = value[:MAX_VALUE]
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm_dialog(title: str, text: str, yes: str, danger: bool = False) -> dict[str, Any]:
    """Slack's confirm object: only for bulk actions and for taking things away (UX 6)."""
    dialog: dict[str, Any] = {
        "title": plain(title, 100),
        "text": mrkdwn(text[:300]),
        "confirm": plain(yes, 30),
        "deny": plain("Cancel", 30),
    }
    if danger:
        dialog["style"] = "danger"
    return dialog


def actions(*elements: dict[str, Any], block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements)}
    if block_id:
        block["block_id"] = block_id
    return block


def overflow(action_id: str, choices: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """An overflow menu: the place for every action but the main one (UX 4), ≤ 5 items."""
    return {
        "type": "overflow",
        "action_id": action_id,
        "options": [
            {"text": plain(text, MAX_OPTION_TEXT), "value": value[:150]}
            for text, value in choices[:MAX_OVERFLOW_OPTIONS]
        ],
    }


def plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def when(moment: datetime | None, missing: str = "never") -> str:
    """A time every reader sees in their own time zone (Slack date formatting)."""
    if moment is None:
        return missing
    stamp = int(moment.timestamp())
    fallback = moment.strftime("%Y-%m-%d %H:%M %Z").strip()
    return f"<!date^{stamp}^{{date_short_pretty}} at {{time}}|{fallback}>"


def problem_blocks(message: str) -> list[Block]:
    """A one-line problem the user can act on. The message is ours, but may quote input."""
    return [section(f":warning: {fit_escaped(message, 2500)}")]


def fallback(text: str) -> str:
    """The notification text that goes with blocks; Slack parses it too, so it is escaped."""
    return fit_escaped(text, MAX_FALLBACK)


def loading_modal(title: str, callback_id: str) -> dict[str, Any]:
    """A modal opened at once, before any look-up: a trigger_id expires 3 seconds after
    the click (Slack's "Handling user interaction"), so the real view follows through
    views.update. No submit button: there is nothing to submit yet."""
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, 24),
        "close": plain("Cancel", 24),
        "blocks": [section("Loading…")],
    }
