"""How long lists become messages Slack accepts: whole lines, then "…and N more"."""

from __future__ import annotations

from collections.abc import Sequence

from bot.blocks.common import MAX_TEXT, Block, section


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
