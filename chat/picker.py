"""What a picker page holds, for every front end: its state and which people it offers.

The state (query, page, selected ids) travels with each click inside the message itself
(a Slack button value, a Teams card action's data), so any web process can serve the
next click and a restart loses nothing (SLACK_UX 5). `picker_page` asks the engine for
one page and merges the user's ticks; the front ends only draw what it returns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from sync_engine.model import CrmUser, PersonView

if TYPE_CHECKING:
    from sync_engine.service import Engine

PAGE_SIZE = 10
# Options on one page: a Slack checkboxes element takes 10 (Block Kit reference).
MAX_OPTIONS = 10
# A selection travels inside the state (a Slack button value holds 2,000 characters);
# 100 ids always fit.
MAX_SELECTED = 100
MAX_QUERY = 500  # characters of a search query kept in a picker's state
MAX_VALUE = 2000  # characters of a state as JSON (a Slack button value)
MAX_BLOCK_ID = 255  # a Slack block_id, where a compact state rides for ticks
# `remove <query>` looks for the asker's own people among this many search matches.
REMOVE_SEARCH_LIMIT = 500

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


@dataclass(frozen=True)
class EmptyPicker:
    """Nothing to pick: no CRM match (`add`), or nothing of the user's own list (`remove`)."""

    mode: str
    query: str


def carried(page: PickerPage) -> tuple[PickerState, list[PersonView], str]:
    """What a drawn page carries in its buttons: its state with this page's options (within
    a state's limit: the oldest ticks dropped, never cut), the options, and the note to
    show (saying so when ticks were dropped)."""
    choosable = list(page.choosable)[:MAX_OPTIONS]
    state = replace(page.state, page=tuple(p.id for p in choosable)).fitted()
    note = page.note
    dropped = len(page.state.selected) - len(state.selected)
    if dropped > 0:
        note = (
            f"I keep the last {len(state.selected)} ticks; {dropped} earlier ones were "
            "dropped: add these, then pick more"
        )
    return state, choosable, note


def picker_page(
    engine: Engine,
    user: CrmUser,
    state: PickerState,
    ticked: Iterable[int] | None = None,
    select_page: bool = False,
    note: str = "",
) -> PickerPage | EmptyPicker:
    """One page of a picker, with the user's ticks on that page merged first (UX 5).

    `ticked` are the ids ticked on the page being rendered; `select_page` ticks everyone
    choosable on it (*Select all*). The query is first cut to what the state can carry,
    so every page searches the same words.
    """
    state = state.with_query_fitted()
    if state.mode == "add":
        state, total, people = _search_page(engine, user, state)
        if total == 0:
            return EmptyPicker("add", state.query)
        choosable = [p for p in people if not p.in_list]
    else:
        pool = removal_pool(engine, user, state.query)
        total = len(pool)
        if total == 0:
            return EmptyPicker("remove", state.query)
        if state.offset >= total:
            state = state.at((total - 1) // PAGE_SIZE * PAGE_SIZE)
        people = pool[state.offset : state.offset + PAGE_SIZE]
        choosable = [p for p in people if removable(p)]
    ids = [p.id for p in choosable]
    if select_page:
        state = state.merged(ids, ids)
    elif ticked is not None:
        wanted = set(ticked)
        state = state.merged(ids, [i for i in ids if i in wanted])
    if len(state.selected) >= MAX_SELECTED:
        note = note or f"at most {MAX_SELECTED} at a time: add these, then pick more"
    return PickerPage(state, total, people, choosable, note)


def _search_page(
    engine: Engine, user: CrmUser, state: PickerState
) -> tuple[PickerState, int, Sequence[PersonView]]:
    page = engine.search(user, state.query, limit=PAGE_SIZE, offset=state.offset)
    if page.total and not page.people and state.offset > 0:
        # The result shrank since the message was drawn: show its last page instead.
        state = state.at((page.total - 1) // PAGE_SIZE * PAGE_SIZE)
        page = engine.search(user, state.query, limit=PAGE_SIZE, offset=state.offset)
    return state, page.total, page.people


def removable(person: PersonView) -> bool:
    """People already leaving at the next sync are shown, not offered again."""
    return not person.status.startswith("pending removal")


def removal_pool(engine: Engine, user: CrmUser, query: str) -> list[PersonView]:
    """The asker's own list, narrowed to the people matching `query` when there is one."""
    mine = engine.my_list(user)
    if not query:
        return list(mine)
    page = engine.search(user, query, limit=REMOVE_SEARCH_LIMIT, offset=0)
    wanted = {p.id for p in page.people}
    return [p for p in mine if p.id in wanted]


def pages(total: int) -> int:
    """How many pages `total` people fill (at least one)."""
    return max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)


def controls(state: PickerState, total: int, *, choosable: bool) -> list[tuple[str, str]]:
    """The picker's buttons after its main one, as (kind, words): select all, deselect
    all, previous, next. Slack and Teams offer the same ones, each as its own action."""
    offered = []
    if choosable:
        offered.append(("all", "Select all" if pages(total) == 1 else "Select all on this page"))
    if state.selected:
        offered.append(("none", "Deselect all"))
    if state.offset > 0:
        offered.append(("prev", "◀ Previous"))
    if state.offset + PAGE_SIZE < total:
        offered.append(("next", "Next ▶"))
    return offered
