"""What users type, as Slack hands it over, turned back into what they typed.

Slack HTML-escapes slash-command text before sending it: `&`, `<` and `>` arrive as
`&amp;`, `&lt;` and `&gt;`, and nothing else is escaped (Slack's "Formatting text for app
surfaces: escaping text" and "Implementing slash commands"). Phones and Macs turn the
`"` of `company:"Smith & Co"` into curly quotes. Both are undone here, at the boundary,
so the engine's query parser sees plain text and stays Slack-agnostic.
"""

from __future__ import annotations

import re

_ENTITY = re.compile(r"&(amp|lt|gt);")
_CHARS = {"amp": "&", "lt": "<", "gt": ">"}
# Opening and closing double quotes a keyboard may put after `company:` (“…”, „…“, ”…”).
_QUOTES = '"“”„‟'
_COMPANY = re.compile(rf"(company:)\s*[{_QUOTES}]([^{_QUOTES}]*)[{_QUOTES}]?", re.IGNORECASE)


def slash_text(text: str) -> str:
    """A slash command's text as typed: Slack's three entities undone, exactly once.

    One pass, so a user who typed `&lt;` literally (sent as `&amp;lt;`) keeps `&lt;`."""
    return straight_quotes(_ENTITY.sub(lambda m: _CHARS[m.group(1)], text or ""))


def straight_quotes(query: str) -> str:
    """`company:“Smith & Co”` (curly quotes, from a phone or a Mac) as `company:"Smith & Co"`."""
    return _COMPANY.sub(lambda m: f'{m.group(1)}"{m.group(2)}"', query)
