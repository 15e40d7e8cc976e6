"""Block Kit, built by small pure functions: the one place that knows how messages look.

Why one module: the Slack limits (50 blocks, 10 options per checkboxes element, 3,000
characters of text, 75 characters of option/button text) and the escaping of CRM values
are enforced here and nowhere else, so no listener can forget them (SLACK_UX 3, 11).
Nothing here does I/O; listeners call these and post what comes back.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.failures import for_salesperson
from sync_engine.model import WEEKDAYS, DigestPrefs, PersonView
from sync_engine.service import MailboxStatus

Block = dict[str, Any]

# Slack's hard limits (Block Kit reference).
MAX_BLOCKS = 50
MAX_OPTIONS = 10
MAX_TEXT = 3000
MAX_QUERY = 500  # characters of a search query kept in a picker's state (button values ≤ 2,000)
MAX_FIELD_TEXT = 2000
MAX_OPTION_TEXT = 75
MAX_BUTTON_TEXT = 75
MAX_VALUE = 2000
MAX_BLOCK_ID = 255
MAX_HEADER = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_OVERFLOW_OPTIONS = 5
MAX_FALLBACK = 3000

PAGE_SIZE = 10
# A selection travels inside button values (2,000 characters); 100 ids always fit.
MAX_SELECTED = 100
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
    ("help", "this message"),
)


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
    """A mrkdwn text object; callers have already escaped every CRM value in `text`."""
    return {"type": "mrkdwn", "text": text[:MAX_TEXT] or " "}


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


def sections_of_lines(
    lines: Sequence[str], max_blocks: int, more: str = "", *, hidden: int = 0
) -> list[Block]:
    """Pack mrkdwn lines into as few sections as fit 3,000 characters, at most `max_blocks`.

    Lines that do not fit are counted in a closing "and N more" line (UX 8: summarise
    when long, with a way to see the rest).
    """
    blocks: list[Block] = []
    current: list[str] = []
    size = 0
    shown = 0
    budget = max(max_blocks, 1)
    for line in lines:
        line = line[: MAX_TEXT - 200]
        if size + len(line) + 1 > MAX_TEXT - 200:
            if len(blocks) + 1 >= budget:
                break
            blocks.append(section("\n".join(current)))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
        shown += 1
    rest = len(lines) - shown + max(hidden, 0)  # `hidden`: lines the caller left out already
    if rest:
        current.append(f"_…and {rest} more._ {more}".rstrip())
    if current:
        blocks.append(section("\n".join(current)))
    return blocks


def when(moment: datetime | None, missing: str = "never") -> str:
    """A time every reader sees in their own time zone (Slack date formatting)."""
    if moment is None:
        return missing
    stamp = int(moment.timestamp())
    fallback = moment.strftime("%Y-%m-%d %H:%M %Z").strip()
    return f"<!date^{stamp}^{{date_short_pretty}} at {{time}}|{fallback}>"


# ---------------------------------------------------------------- people


def person_line(person: PersonView, mark_in_list: bool = True) -> str:
    """One person, the same few fields everywhere (UX 3), every CRM value escaped."""
    parts = [f"*{fit_escaped(person.name or f'person {person.id}', 200)}*"]
    role = ", ".join(p for p in (person.job_title, person.company) if p)
    if role:
        parts.append(fit_escaped(role, 300))
    if person.email:
        parts.append(fit_escaped(person.email, 200))
    line = " — ".join(parts[:2]) + ("" if len(parts) < 3 else f" · {parts[2]}")
    if person.status:
        line += f" · _{fit_escaped(person.status, 200)}_"
    elif mark_in_list and person.in_list:
        line += " · ✓ in My CRM Contacts"
    return line


def person_option(person: PersonView, with_status: bool = False) -> dict[str, Any]:
    """A checkbox option: the name (bold) and one line of detail, each within 75 characters."""
    detail = [person.job_title, person.company, person.email]
    if with_status and person.status:
        detail.insert(0, person.status)
    description = " · ".join(p for p in detail if p) or "no details in the CRM"
    return {
        "text": mrkdwn(
            f"*{fit_escaped(person.name or f'person {person.id}', MAX_OPTION_TEXT - 2)}*"
        ),
        "description": plain(description, MAX_OPTION_TEXT),
        "value": str(person.id),
    }


def person_card(person: PersonView, note: str = "") -> list[Block]:
    """The person's summary card, as on Sage's Summary tab, with one main button (UX 4)."""
    fields = [
        ("Job title", person.job_title),
        ("Company", person.company),
        ("Email", person.email),
        ("Business phone", person.business_phone),
        ("Mobile", person.mobile_phone),
        ("Account manager", person.manager),
    ]
    shown = [
        mrkdwn(f"*{label}*\n{fit_escaped(value, MAX_FIELD_TEXT - 50)}")
        for label, value in fields
        if value
    ]
    title = f"*{fit_escaped(person.name or f'person {person.id}', 500)}*"
    title += "\n✓ in My CRM Contacts" if person.in_list else "\nnot in My CRM Contacts"
    if person.status:
        title += f" · _{fit_escaped(person.status, 200)}_"
    top: Block = {"type": "section", "text": mrkdwn(title)}
    if shown:
        top["fields"] = shown[:10]
    if person.in_list:
        main = button(
            "Remove from My Contacts",
            ACTION_PERSON_REMOVE,
            str(person.id),
            style="danger",
            confirm=confirm_dialog(
                "Remove from My CRM Contacts?",
                f"{fit_escaped(person.name, 200)} leaves your list. The contact stays in "
                "Outlook without the CRM Contact category.",
                "Remove",
                danger=True,
            ),
        )
    else:
        main = button("Add to My Contacts", ACTION_PERSON_ADD, str(person.id), style="primary")
    blocks = [top, actions(main)]
    if note:
        blocks.append(context(note))
    return blocks


def person_choices(query: str, people: Sequence[PersonView], total: int) -> list[Block]:
    """Several people match a `person` query: one line each with a button to open the card."""
    blocks: list[Block] = [
        section(f"{plural(total, 'person matches', 'people match')} “{fit_escaped(query, 200)}”:")
    ]
    for person in people[:PAGE_SIZE]:
        blocks.append(
            {
                "type": "section",
                "text": mrkdwn(person_line(person)),
                "accessory": button("Open card", ACTION_PERSON_OPEN, str(person.id)),
            }
        )
    if total > len(people[:PAGE_SIZE]):
        blocks.append(
            context(f"Showing {len(people[:PAGE_SIZE])} of {total}: add more words to narrow it.")
        )
    return blocks


def no_match(query: str) -> list[Block]:
    return [
        section(
            f"No one in the CRM matches “{fit_escaped(query, 300)}”. Try another spelling, "
            f'an email address, or `company:"Design Right Inc."`.'
        )
    ]


# ---------------------------------------------------------------- the picker


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
        payload = {"m": self.mode, "q": self.query, "o": self.offset, "s": list(self.selected)}
        if self.page:
            payload["p"] = list(self.page)
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)

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
    state = page.state
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

    choosable = list(page.choosable)[:MAX_OPTIONS]
    rendered = PickerState(
        state.mode, state.query, state.offset, state.selected, tuple(p.id for p in choosable)
    )
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
    if others:
        if adding:
            label = "Already in My CRM Contacts:"
            lines = [f"✓ {person_line(p, mark_in_list=False)}" for p in others]
        else:
            label = "Leaving My CRM Contacts at the next sync:"
            lines = [f"• {person_line(p, mark_in_list=False)}" for p in others]
        blocks.append(section(label + "\n" + "\n".join(lines)))

    count = len(state.selected)
    elsewhere = len([i for i in state.selected if i not in choosable_ids])
    tally = f"*{count} selected*" + (f" ({elsewhere} on other pages)" if elsewhere else "")
    if page.note:
        tally += f" · {page.note}"
    blocks.append(context(tally))

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
    blocks.append(actions(*buttons))
    return blocks


# ---------------------------------------------------------------- results


def added_blocks(added: Sequence[PersonView], already: Sequence[PersonView]) -> list[Block]:
    """After an add: the people just added, as Sage shows the Contacts page."""
    blocks: list[Block] = []
    if added:
        blocks.append(
            section(f"*Added {plural(len(added), 'person', 'people')} to My CRM Contacts:*")
        )
        blocks += sections_of_lines([person_line(p, False) for p in added], 40)
    if already:
        title = f"*{plural(len(already), 'was', 'were')} already in My CRM Contacts:*"
        if len(already) == 1:
            title = "*Already in My CRM Contacts:*"
        blocks.append(section(title))
        blocks += sections_of_lines([person_line(p, False) for p in already], 5)
    if not blocks:
        blocks.append(section("Nothing to add."))
    blocks = blocks[: MAX_BLOCKS - 2]
    blocks.append(
        context(
            "They reach your mailbox at the next sync, within a few minutes. "
            f"Search again to add more, or `{COMMAND} sync` now."
        )
    )
    blocks.append(actions(button("Sync now", ACTION_SYNC_NOW, "sync")))
    return blocks


def removed_blocks(removed: Sequence[PersonView], not_in_list: Sequence[int]) -> list[Block]:
    blocks: list[Block] = []
    if removed:
        blocks.append(
            section(f"*Removed {plural(len(removed), 'person', 'people')} from My CRM Contacts:*")
        )
        blocks += sections_of_lines([person_line(p, False) for p in removed], 40)
        blocks.append(
            context(
                "At the next sync they lose the CRM Contact category and are no longer kept "
                "up to date; the contacts themselves stay in your mailbox."
            )
        )
    if not_in_list:
        blocks.append(
            context(
                f"{plural(len(not_in_list), 'person was', 'people were')} not in your list any more."
            )
        )
    if not blocks:
        blocks.append(section("Nothing to remove."))
    return blocks[:MAX_BLOCKS]


def group_confirm_blocks(people: Sequence[PersonView]) -> list[Block]:
    """Add-group asks first, with the count (it can be hundreds) (UX 6)."""
    if not people:
        return [section("No CRM person has you as Account Manager, so there is no group to add.")]
    new = [p for p in people if not p.in_list]
    already = len(people) - len(new)
    text = f"*{plural(len(people), 'person has', 'people have')} you as Account Manager.*"
    if already:
        text += f" {already} of them {'is' if already == 1 else 'are'} already in My CRM Contacts."
    blocks: list[Block] = [section(text)]
    if not new:
        blocks.append(context("Everyone in your group is already in My CRM Contacts."))
        return blocks
    preview = [person_line(p, False) for p in new[:10]]
    blocks += sections_of_lines(preview, 2)
    if len(new) > 10:
        blocks.append(context(f"…and {len(new) - 10} more."))
    blocks.append(
        actions(
            button(
                f"Add {len(new)} to My CRM Contacts",
                ACTION_GROUP_ADD,
                str(len(new)),
                style="primary",
                confirm=confirm_dialog(
                    "Add your group?",
                    f"Add {plural(len(new), 'person', 'people')} whose Account Manager is you to "
                    "My CRM Contacts? They are created in your mailbox at the next sync.",
                    f"Add {len(new)}",
                ),
            )
        )
    )
    return blocks


def status_blocks(status: MailboxStatus) -> list[Block]:
    """Last and next sync, counts and the last error in plain words."""
    last = when(status.last_run_at)
    if status.last_run_at and status.last_status:
        last += f" ({fit_escaped(status.last_status, 200)})"
    blocks: list[Block] = [
        section(f"*Mailbox* {fit_escaped(status.mailbox, 300)}"),
        {
            "type": "section",
            "fields": [
                mrkdwn(f"*In My CRM Contacts*\n{status.subscriptions}"),
                mrkdwn(f"*Linked in your mailbox*\n{status.linked}"),
                mrkdwn(f"*Last sync*\n{last}"),
                mrkdwn(f"*Next sync*\n{when(status.next_due_at, 'not scheduled')}"),
            ],
        },
    ]
    if status.last_error:
        blocks.append(section(f":warning: {fit_escaped(for_salesperson(status.last_error), 2000)}"))
    blocks.append(actions(button("Sync now", ACTION_SYNC_NOW, "sync")))
    return blocks


def help_blocks(intro: str = "") -> list[Block]:
    lines = [f"`{COMMAND} {escape(usage)}` — {escape(what)}" for usage, what in HELP_LINES]
    blocks: list[Block] = []
    if intro:
        blocks.append(section(intro))
    blocks.append(
        section("*My CRM Contacts* keeps the CRM people you choose in your Outlook Contacts.")
    )
    blocks.append(section("\n".join(lines)))
    return blocks


def help_text(intro: str = "") -> str:
    lines = [f"{COMMAND} {escape(usage)} — {escape(what)}" for usage, what in HELP_LINES]
    return "\n".join(([intro] if intro else []) + lines)


def problem_blocks(message: str) -> list[Block]:
    """A one-line problem the user can act on. The message is ours, but may quote input."""
    return [section(f":warning: {fit_escaped(message, 2500)}")]


def fallback(text: str) -> str:
    """The notification text that goes with blocks; Slack parses it too, so it is escaped."""
    return fit_escaped(text, MAX_FALLBACK)


# ---------------------------------------------------------------- App Home and modal


def home_view(status_blocks_: list[Block], failed: Sequence[PersonView] = ()) -> dict[str, Any]:
    """The App Home dashboard: counts, last and next sync, failures, and the buttons."""
    blocks: list[Block] = [header("My CRM Contacts")]
    blocks += [b for b in status_blocks_ if b.get("type") != "actions"]
    if failed:
        lines = [
            f"• *{fit_escaped(p.name or f'person {p.id}', 200)}*: "
            f"{fit_escaped(p.status.removeprefix('failed: '), 300)}"
            for p in failed
        ]
        blocks.append(section(f":warning: *Failed at the last sync* ({len(failed)})"))
        blocks += sections_of_lines(lines, 5, f"`{COMMAND} list` shows everyone.")
    blocks.append(
        actions(
            button("Retry now" if failed else "Sync now", ACTION_SYNC_NOW, "sync", style="primary"),
            button("Search the CRM", ACTION_HOME_SEARCH, "search"),
            button("My list", ACTION_HOME_LIST, "list"),
        )
    )
    blocks.append(context(f"Type `{COMMAND} help` anywhere for every command."))
    return {"type": "home", "blocks": blocks}


def home_problem_view(message: str) -> dict[str, Any]:
    return {"type": "home", "blocks": [header("My CRM Contacts"), *problem_blocks(message)]}


def search_modal() -> dict[str, Any]:
    """A small modal asking what to search for; results arrive as a DM picker."""
    return {
        "type": "modal",
        "callback_id": SEARCH_MODAL,
        "title": plain("Search the CRM", 24),
        "submit": plain("Search", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            {
                "type": "input",
                "block_id": SEARCH_INPUT_BLOCK,
                "label": plain("Name, email or company"),
                "hint": plain('For a whole company: company:"Design Right Inc."'),
                "element": {
                    "type": "plain_text_input",
                    "action_id": SEARCH_INPUT_ACTION,
                    "max_length": 200,
                },
            }
        ],
    }


# ---------------------------------------------------------------- the digest's controls

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
