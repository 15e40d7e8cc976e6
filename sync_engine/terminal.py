"""Printing to a terminal: CRM values and echoed input as text, never as markup or escapes.

Why: a CRM person named `[/] Evilname` or a query with `[link=…]` must not crash or
restyle Rich output, and ESC / OSC-8 / C1 sequences in CRM data must not reach the
terminal (they can retitle it, plant hyperlinks, or hide text). Every string the CLI
prints goes through `visible` (the consoles here call it for every string, table cell
and title), and URL credentials are masked on the way (sync_engine.masking).
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.console import Console
from rich.text import Text

from sync_engine.masking import mask_urls

# C0 controls, DEL, C1 controls; bidirectional overrides and isolates (text that reads
# differently than it is); lone surrogates (undecodable bytes from argv or a file).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_KEEP_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def _shown(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the byte that was not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: object, *, lines: bool = False) -> str:
    """`value` as safe text: control characters shown as escapes (`\\e`, `\\x9b`, `\\n`),
    credentials in URLs masked. `lines=True` keeps newlines and tabs (our own
    multi-line text); a one-line message must not keep them."""
    text = mask_urls(str(value))
    pattern = _UNSAFE_KEEP_LINES if lines else _UNSAFE
    return pattern.sub(lambda m: _shown(m.group(0)), text)


def one_line(value: object) -> str:
    """A message that stays one line whatever it quotes (e.g. a newline in --as)."""
    return visible(value)


def text(value: object) -> Text:
    """A Rich Text of `value`, never parsed as markup."""
    return Text(visible(value))


class PlainConsole(Console):
    """A Rich console that prints every string as plain text (no markup, no :emoji:
    codes) through `visible`, including table cells and titles."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, emoji=False, highlight=False, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:  # type: ignore[override]
        kwargs.update(markup=False, emoji=False)
        return super().render_str(visible(text, lines=True), **kwargs)


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def json_text(data: object) -> str:
    """JSON for a terminal or a pipe: non-ASCII letters kept, but DEL, C1, bidi controls
    and undecodable bytes written as \\u escapes (still the same JSON values)."""
    raw = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", raw)
