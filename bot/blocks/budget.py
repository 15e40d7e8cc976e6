"""One text budget for every message: long lists become whole lines, then "…and N more".

Slack refuses a message whose blocks carry more than about 12,000 characters of text in
all (`msg_blocks_too_long`), although every block is within its own Block Kit limit. The
limit is not in the Block Kit reference; it was reported in slackapi/bolt-js#2509
(refused at ~13,200 characters of markdown blocks; a maintainer: "12,000 text characters
with a buffer for block containers") and slackapi/bolt-js#2867 (refused with 11,341
characters counted as every `.text` in the tree). So every builder keeps its message
within `TEXT_BUDGET` = 11,000 characters, counted by `text_length` below, which leaves
room for the containers Slack also counts.

What `text_length` counts: the `text` of every text object (`mrkdwn` and `plain_text`)
anywhere in the blocks: section `text` and each of its `fields`, context elements, header
text, button text, checkbox / overflow / select option `text` and `description`, and
confirm dialogs' title, text, confirm and deny. Not counted: ids, button values, URLs,
and the message's top-level `text` (the notification fallback, kept under 3,000 by
`fallback`).

Builders spend the budget on what a message always carries (title, counts, buttons)
first; what is left goes to the long lists through `shares` (small lists whole, the rest
an even share) and `listing` (whole lines while they fit, then "…and N more" with where
to see all of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.blocks.common import MAX_TEXT, Block, section

TEXT_BUDGET = 11_000
# Room kept in each section for the closing "…and N more" line: lines fill a section up
# to this, so the tail always fits in it.
SECTION_ROOM = MAX_TEXT - 200
# What one list's title and closing "…and N more. <where to see all>" may cost;
# `list_budgets` keeps this much for every list before dividing the rest.
TAIL_ROOM = 300


def text_length(blocks: Any) -> int:
    """Characters of text in `blocks` as the budget counts them (see the module docstring)."""
    if isinstance(blocks, dict):
        own = 0
        if blocks.get("type") in ("mrkdwn", "plain_text") and isinstance(blocks.get("text"), str):
            own = len(blocks["text"])
        return own + sum(text_length(v) for v in blocks.values() if isinstance(v, dict | list))
    if isinstance(blocks, list):
        return sum(text_length(v) for v in blocks)
    return 0


def shares(budget: int, wants: Sequence[int], weights: Sequence[int] = ()) -> list[int]:
    """Split `budget` characters between lists wanting `wants`: whoever wants less than
    their share gets all of it, the others split what is left by `weights` (1 each unless
    given): water-filling. The shares never add up to more than `budget`."""
    weight = list(weights) or [1] * len(wants)
    out = [0] * len(wants)
    left = max(budget, 0)
    open_ = [i for i, want in enumerate(wants) if want > 0]
    while open_ and left > 0:
        total = sum(weight[i] for i in open_)
        share = {i: left * weight[i] // total for i in open_}
        small = [i for i in open_ if wants[i] - out[i] <= share[i]]
        if not small:
            for i in open_:
                out[i] += share[i]
            break
        for i in small:
            left -= wants[i] - out[i]
            out[i] = wants[i]
        open_ = [i for i in open_ if i not in small]
    return out


def list_budgets(room: int, wants: Sequence[int], weights: Sequence[int] = ()) -> list[int]:
    """Each list's budget within `room` characters: `TAIL_ROOM` for its title and closing
    line, and its `shares` of the rest."""
    parts = shares(room - TAIL_ROOM * len(wants), wants, weights)
    return [part + TAIL_ROOM for part in parts]


def lines_length(lines: Sequence[str], title: str = "") -> int:
    """What `lines` (and a title line) cost shown whole, newlines included."""
    parts = ([title] if title else []) + [line[:SECTION_ROOM] for line in lines]
    return sum(len(p) for p in parts) + max(len(parts) - 1, 0)


def listing(
    lines: Sequence[str],
    *,
    budget: int,
    max_blocks: int,
    more: str = "",
    title: str = "",
    hidden: int = 0,
) -> list[Block]:
    """Whole mrkdwn lines in as few sections as fit 3,000 characters, at most `max_blocks`,
    and at most `budget` characters of text in all (title and closing line included).

    Lines that do not fit are counted in a closing "…and N more." line followed by `more`
    (where to see all of them; UX 8: summarise when long). `hidden` counts lines the
    caller left out already. `title` always opens the first section.
    """
    total = len(lines) + max(hidden, 0)
    blocks: list[Block] = []
    current: list[str] = [title] if title else []
    size = len(title)
    spent = size
    shown = 0
    for line in lines:
        line = line[:SECTION_ROOM]
        cost = len(line) + (1 if current else 0)
        after = total - shown - 1  # lines still to account for once this one is shown
        tail = len(_tail(after, more)) + 1 if after else 0
        if spent + cost + tail > budget:
            break
        if size + cost > SECTION_ROOM:
            if len(blocks) + 1 >= max(max_blocks, 1):
                break
            blocks.append(section("\n".join(current)))
            current, size = [], 0
            cost = len(line)
        current.append(line)
        size += cost
        spent += cost
        shown += 1
    if total - shown:
        current.append(_tail(total - shown, more))
    if current:
        blocks.append(section("\n".join(current)))
    return blocks


def _tail(rest: int, more: str) -> str:
    return f"_…and {rest} more._ {more}".rstrip()
