"""What every Teams card shares: the envelope, Teams' limits, plain-text runs, verbs.

Teams' limits, held here and nowhere else (the Teams counterpart of `bot.blocks.common`):
- Adaptive Card schema 1.5: the newest version Teams renders on every client (Microsoft
  Learn, "Cards reference": "Teams supports Adaptive Cards v1.5 and earlier"; newer
  features are ignored or the card is refused on older clients).
- a message, its cards included, of at most 28,000 bytes of JSON. Microsoft Learn,
  "Format your bot messages", gives about 100 KB counted in UTF-16 ("within 80 KB to
  guarantee successful message delivery"; older versions of the page said 40 KB) and a
  413 MessageSizeTooBig past it; 28 KB is the figure of Teams' Power Automate connector,
  the strictest Microsoft publishes. 28,000 bytes of UTF-8 are at most 56 KB of UTF-16.
  Cards keep within `CARD_BUDGET` bytes of JSON, leaving room for the activity around.
- at most 6 actions on a card (Teams' host config, `actions.maxActions`); we use ≤ 5.
CRM values go into `TextRun`s of `RichTextBlock`s, which Teams never reads as markdown, so
a person named `**[click](https://evil)**` shows as typed (the Teams side of SLACK_UX 11).
"""

from __future__ import annotations

import json
from typing import Any

Card = dict[str, Any]
Element = dict[str, Any]

CARD_VERSION = "1.5"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_MESSAGE_BYTES = 28_000
CARD_BUDGET = 24_000
MAX_ACTIONS = 5
MAX_TITLE = 200  # characters of one value on a line (a name, a company)
MAX_CARD_FIELD = 1000  # characters of one value on the person card

# Verbs of Action.Execute (Universal Actions): `teams.actions` routes on them.
VERB_TICK_ALL = "picker.all"
VERB_TICK_NONE = "picker.none"
VERB_PREV = "picker.prev"
VERB_NEXT = "picker.next"
VERB_ADD = "picker.add"
VERB_REMOVE = "picker.remove"
VERB_SHOW = "picker.show"
VERB_PERSON_OPEN = "person.open"
VERB_PERSON_ADD = "person.add"
VERB_PERSON_REMOVE = "person.remove"
VERB_GROUP_ADD = "group.add"
VERB_GROUP_CONFIRM = "group.confirm"
VERB_SYNC = "sync.now"
VERB_DIGEST = "digest.set"
VERB_RULE_ON = "rule.on"
VERB_RULE_OFF = "rule.off"
TICK_PREFIX = "p:"  # id of a person's toggle: p:<person id>


def fit(text: object, limit: int) -> str:
    """Plain text cut to `limit` characters, the cut marked with an ellipsis."""
    value = str(text)
    if len(value) <= limit:
        return value
    return value[: max(limit - 1, 0)].rstrip() + "…"


def run(text: object, *, bold: bool = False, italic: bool = False, subtle: bool = False) -> Element:
    """Plain text: a TextRun is never read as markdown."""
    element: Element = {"type": "TextRun", "text": str(text)}
    if bold:
        element["weight"] = "Bolder"
    if italic:
        element["italic"] = True
    if subtle:
        element["isSubtle"] = True
    return element


def line(*runs: Element, spacing: str | None = None) -> Element:
    block: Element = {"type": "RichTextBlock", "inlines": list(runs)}
    if spacing:
        block["spacing"] = spacing
    return block


def words(text: str, *, bold: bool = False, subtle: bool = False, size: str = "") -> Element:
    """Our own words (never a CRM value) as a wrapping TextBlock."""
    block: Element = {"type": "TextBlock", "text": text, "wrap": True}
    if bold:
        block["weight"] = "Bolder"
    if subtle:
        block["isSubtle"] = True
    if size:
        block["size"] = size
    return block


def execute(title: str, verb: str, data: dict[str, Any] | None = None, style: str = "") -> Element:
    """An Action.Execute (Universal Actions): Teams sends an `adaptiveCard/action` invoke
    and shows the card we answer with in place of this one (SLACK_UX 7)."""
    action: Element = {"type": "Action.Execute", "title": fit(title, 60), "verb": verb}
    action["data"] = dict(data or {})
    if style:
        action["style"] = style
    return action


def card(body: list[Element], actions: list[Element] | None = None) -> Card:
    out: Card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "body": body or [words(" ")],
    }
    if actions:
        out["actions"] = actions[:MAX_ACTIONS]
    return out


def size(value: object) -> int:
    """Bytes of `value` as JSON on the wire (UTF-8)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def fitted_lines(
    lines: list[Element], room: int, *, more: str = "", hidden: int = 0
) -> list[Element]:
    """Whole lines while they fit `room` bytes, then "…and N more." with `more` (UX 8)."""
    total = len(lines) + hidden
    shown: list[Element] = []
    spent = 0
    tail_room = size(words(f"…and {total} more. {more}"))
    for item in lines:
        cost = size(item) + 1
        rest = total - len(shown) - 1
        if spent + cost + (tail_room if rest else 0) > room:
            break
        shown.append(item)
        spent += cost
    if total - len(shown):
        shown.append(words(f"…and {total - len(shown)} more. {more}".strip(), subtle=True))
    return shown


def problem(message: str) -> Card:
    """A one-line problem the user can act on (ours, but it may quote input: a run)."""
    return card([line(run("⚠️ "), run(fit(message, 2500)))])


def attachment(content: Card) -> dict[str, Any]:
    return {"contentType": CARD_CONTENT_TYPE, "content": content}
