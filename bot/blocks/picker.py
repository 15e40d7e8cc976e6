"""The checkbox picker: its state (carried in the message itself) and its blocks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.blocks.budget import TEXT_BUDGET, listing, text_length
from bot.blocks.common import (
    ACTION_ADD,
    ACTION_ALL,
    ACTION_NEXT,
    ACTION_NONE,
    ACTION_PREV,
    ACTION_REMOVE,
    ACTION_TICK,
    COMMAND,
    MAX_BLOCK_ID,
    MAX_OPTIONS,
    MAX_QUERY,
    MAX_SELECTED,
    MAX_VALUE,
    PAGE_SIZE,
    Block,
    actions,
    button,
    confirm_dialog,
    context,
    fit_escaped,
    plural,
    section,
)
from bot.blocks.person import person_line, person_option
from sync_engine.model import PersonView

# What a picker's query may take of a button value (2,000 characters), written as JSON
# (a `"` is two characters there). The rest holds up to 100 selected ids and the page:
# 100 ids of 10 digits and their commas take 1,100.
MAX_QUERY_JSON = 700


@dataclass(frozen=True)
class PickerState:
    """Everything a picker click needs, carried in the message itself (UX 5).

    Kept in button values (and, when short enough, the checkboxes' block_id, so a tick
    can refresh the count) instead of process memory: any web process can serve the
    next click, and a restart loses nothing.
    """

    mode: str  # "add" (search results) or "remove" (own list)
    query: str = ""
    offset: int = 0
    selected: tuple[int, ...] = ()
    page: tuple[int, ...] = ()  # the ids offered as options when this was rendered

    def to_value(self) -> str:
        """The state as JSON for a button value; `fitted()` states stay within 2,000."""
        payload = {"m": self.mode, "q": self.query, "o": self.offset, "s": list(self.selected)}
        if self.page:
            payload["p"] = list(self.page)
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)

    def with_query_fitted(self) -> PickerState:
        """The query cut (whole characters) to what a button value keeps for it, before the
        first search, so every page of one picker searches the same words."""
        query = _fit_json(self.query[:MAX_QUERY], MAX_QUERY_JSON)
        return self if query == self.query else replace(self, query=query)

    def fitted(self) -> PickerState:
        """This state within a button value's 2,000 characters, dropped on purpose, never
        cut: the query fitted first, then the oldest selected ids go (newest ticks are
        last). A valid state always fits with an empty query and no selection."""
        state = self.with_query_fitted()
        selected = list(state.selected[-MAX_SELECTED:])
        while len(replace(state, selected=tuple(selected)).to_value()) > MAX_VALUE and selected:
            selected.pop(0)
        return replace(state, selected=tuple(selected))

    @classmethod
    def from_value(cls, value: str) -> PickerState:
        """Parse a button value; ValueError on anything that is not one of ours."""
        try:
            data = json.loads(value)
            mode = data["m"]
            if mode not in ("add", "remove"):
                raise ValueError(mode)
            return cls(
                mode=mode,
                query=str(data.get("q", ""))[:MAX_QUERY],
                offset=max(int(data.get("o", 0)), 0),
                selected=tuple(int(i) for i in data.get("s", []))[:MAX_SELECTED],
                page=tuple(int(i) for i in data.get("p", []))[:MAX_OPTIONS],
            )
        except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError("not a picker state") from exc

    def to_block_id(self) -> str:
        """A compact form for the checkboxes' block_id (at most 255 characters).

        A different selection gives a different block_id, so Slack shows the new
        initial options instead of keeping stale ticks. When the state is too long the
        block_id is only a hash and a tick just waits for the next button click.
        """
        ids = ".".join(_b36(i) for i in self.selected)
        compact = f"pk1|{self.mode[0]}|{_b36(self.offset)}|{ids}|{self.query}"
        if len(compact) <= MAX_BLOCK_ID:
            return compact
        digest = hashlib.sha256(compact.encode()).hexdigest()[:16]
        return f"pkx|{digest}"

    @classmethod
    def from_block_id(cls, block_id: str) -> PickerState | None:
        """Parse `to_block_id`; None when it is only a hash (or not ours)."""
        parts = block_id.split("|", 4)
        if len(parts) != 5 or parts[0] != "pk1" or parts[1] not in ("a", "r"):
            return None
        try:
            selected = tuple(int(p, 36) for p in parts[3].split(".") if p)
            offset = int(parts[2], 36)
        except ValueError:
            return None
        mode = "add" if parts[1] == "a" else "remove"
        return cls(mode=mode, query=parts[4], offset=offset, selected=selected[:MAX_SELECTED])

    def merged(self, page_ids: Iterable[int], ticked: Iterable[int]) -> PickerState:
        """The selection after the user's ticks on one page; other pages are kept (UX 5)."""
        page = set(page_ids)
        keep = [i for i in self.selected if i not in page]
        new = keep + [i for i in ticked if i not in keep]
        return PickerState(self.mode, self.query, self.offset, tuple(new[:MAX_SELECTED]), self.page)

    def at(self, offset: int) -> PickerState:
        return PickerState(self.mode, self.query, max(offset, 0), self.selected, ())


def _fit_json(text: str, limit: int) -> str:
    """The longest start of `text` whose JSON string form (quotes and backslashes escaped)
    takes at most `limit` characters."""
    size = 0
    for end, char in enumerate(text):
        size += len(json.dumps(char, ensure_ascii=False)) - 2
        if size > limit:
            return text[:end]
    return text


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if number < 0:
        return "-" + _b36(-number)
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


@dataclass(frozen=True)
class PickerPage:
    """One page of a picker: what to show, and who can be ticked."""

    state: PickerState
    total: int
    people: Sequence[PersonView]  # everyone on this page, in order
    choosable: Sequence[PersonView] = field(default_factory=tuple)  # options (≤ 10)
    note: str = ""


def picker_blocks(page: PickerPage) -> list[Block]:
    """A page of checkboxes with a running selection count and one main button (UX 2, 4, 5).

    At most 10 options (one page), a handful of blocks whatever the result size.
    """
    choosable = list(page.choosable)[:MAX_OPTIONS]
    # what the buttons carry: this page's options, and a state that fits a button value
    state = rendered = replace(page.state, page=tuple(p.id for p in choosable)).fitted()
    note = page.note
    dropped = len(page.state.selected) - len(state.selected)
    if dropped > 0:
        note = (
            f"I keep the last {len(state.selected)} ticks; {dropped} earlier ones were "
            "dropped: add these, then pick more"
        )
    adding = state.mode == "add"
    pages = max((page.total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    number = state.offset // PAGE_SIZE + 1
    query = fit_escaped(state.query, 200)
    if adding:
        headline = f"*{plural(page.total, 'person matches', 'people match')}* “{query}”"
    elif state.query:
        headline = f"*{plural(page.total, 'of your contacts matches', 'of your contacts match')}* “{query}”"
    else:
        headline = f"*My CRM Contacts*: {plural(page.total, 'person', 'people')}"
    if pages > 1:
        headline += f" — page {number} of {pages}"
    blocks: list[Block] = [section(headline)]

    if choosable:
        options = [person_option(p, with_status=not adding) for p in choosable]
        chosen = [o for o, p in zip(options, choosable, strict=True) if p.id in state.selected]
        element: dict[str, Any] = {
            "type": "checkboxes",
            "action_id": ACTION_TICK,
            "options": options,
        }
        if chosen:
            element["initial_options"] = chosen
        blocks.append(actions(element, block_id=rendered.to_block_id()))
    choosable_ids = {p.id for p in choosable}
    others = [p for p in page.people if p.id not in choosable_ids]

    count = len(state.selected)
    elsewhere = len([i for i in state.selected if i not in choosable_ids])
    tally = f"*{count} selected*" + (f" ({elsewhere} on other pages)" if elsewhere else "")
    if note:
        tally += f" · {fit_escaped(note, 500)}"
    closing: list[Block] = [context(tally)]

    value = rendered.to_value()
    buttons: list[dict[str, Any]] = []
    if adding:
        text = f"Add {count} to My CRM Contacts" if count else "Add selected"
        buttons.append(button(text, ACTION_ADD, value, style="primary"))
    else:
        text = f"Remove {count} from My CRM Contacts" if count else "Remove selected"
        buttons.append(
            button(
                text,
                ACTION_REMOVE,
                value,
                style="danger",
                confirm=confirm_dialog(
                    "Remove from My CRM Contacts?",
                    f"{plural(count, 'person leaves', 'people leave')} your list. The contacts "
                    "stay in Outlook without the CRM Contact category.",
                    "Remove",
                    danger=True,
                ),
            )
        )
    if choosable:
        all_text = "Select all" if pages == 1 else "Select all on this page"
        buttons.append(button(all_text, ACTION_ALL, value))
    if count:
        buttons.append(button("Deselect all", ACTION_NONE, value))
    if state.offset > 0:
        buttons.append(button("◀ Previous", ACTION_PREV, value))
    if state.offset + PAGE_SIZE < page.total:
        buttons.append(button("Next ▶", ACTION_NEXT, value))
    closing.append(actions(*buttons))
    if others:  # shown, not offered: within what the rest of the message leaves (UX 8)
        if adding:
            title, mark = "Already in My CRM Contacts:", "✓"
        else:
            title, mark = "Leaving My CRM Contacts at the next sync:", "•"
        blocks += listing(
            [f"{mark} {person_line(p, mark_in_list=False)}" for p in others],
            budget=TEXT_BUDGET - text_length(blocks) - text_length(closing),
            max_blocks=4,
            more=f"`{COMMAND} list` shows everyone in My CRM Contacts.",
            title=title,
        )
    return blocks + closing
