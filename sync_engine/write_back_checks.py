"""What an Outlook edit must be before it may go to the CRM, and whether the CRM kept it.

Pure, like the planner. A write-back writes into the customer's system of record and
from there into every other mailbox that lists the person, so a value that is not sane
for its field (an X.500 DN as the email, `javascript:` as the web page, HTML, control
characters that restyle a terminal or reverse text, a 200,000-character phone) is
refused for that person, with the reason; the Outlook value stays where it is. Column
widths are the writer's to check: only it knows which column a value lands in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from sync_engine.model import EMAIL_FIELDS, PHONE_FIELDS, normalised

# C0 controls (tab and newline too: every write-back field is one line), DEL, C1
# controls; bidirectional marks, embeddings, overrides and isolates; lone surrogates.
_CONTROLS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_MARKUP = re.compile(r"<[/!?a-zA-Z]")  # the start of an HTML/XML tag, comment or PI
_PHONE = re.compile(
    r"^\+?[0-9 ().\-/]*[0-9][0-9 ().\-/]*(\s*(x|ext\.?|extension)\s*[0-9]+)?$", re.I
)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:")
LONGEST = 1000  # no mapped field is longer on any Sage install; widths are checked later

LABELS = {
    "title": "salutation",
    "first_name": "first name",
    "middle_name": "middle name",
    "last_name": "last name",
    "suffix": "suffix",
    "job_title": "job title",
    "department": "department",
    "web_page": "web page",
    "email": "email",
    "email2": "email 2",
    "business_phone": "business phone",
    "business_fax": "business fax",
    "home_phone": "home phone",
    "mobile_phone": "mobile phone",
}


def label(name: str) -> str:
    """A field as a salesperson calls it."""
    return LABELS.get(name, name.replace("_", " "))


def refusal(name: str, value: str) -> str | None:
    """Why `value` may not be written to the CRM as `name`, or None when it may."""
    what = label(name)
    if len(value) > LONGEST:
        return f"the {what} is {len(value):,} characters long; no CRM field takes that"
    if _CONTROLS.search(value):
        return f"the {what} holds control or text-direction characters"
    if _MARKUP.search(value):
        return f"the {what} looks like HTML"
    if name in EMAIL_FIELDS:
        try:
            validate_email(value, check_deliverability=False)
        except EmailNotValidError:
            return f"the {what} is not an email address (name@domain)"
    elif name in PHONE_FIELDS:
        if not _PHONE.match(value):
            return f"the {what} is not a phone number (digits, spaces, + ( ) - . /)"
    elif name == "web_page":
        return _web_page_refusal(value)
    return None


def _web_page_refusal(value: str) -> str | None:
    """An http or https address; a bare host ('www.example.com', 'host:8080/x') is http."""
    scheme = _SCHEME.match(value)
    bare = scheme is None or (
        not value[scheme.end() :].startswith("//")
        and value[scheme.end() :].split("/", 1)[0].isdigit()  # host:port
    )
    try:
        parts = urlsplit(f"http://{value}" if bare else value)
        host = parts.hostname
    except ValueError:
        host = None
    if parts.scheme.lower() not in ("http", "https") or not host or " " in value:
        return "the web page is not an http or https address"
    return None


def refusals(changes: Iterable[tuple[str, str]]) -> list[str]:
    """Every reason the changes of one person may not be written (empty: all may)."""
    return [why for name, value in changes if (why := refusal(name, value))]


def held_as_written(name: str, expected: str, held: str) -> bool:
    """Whether the CRM holds what we wrote: the same value up to the formatting noise change
    detection ignores (spacing, an email's case, a phone's punctuation)."""
    if name in PHONE_FIELDS:  # the country code may or may not keep its '+'
        return normalised(name, expected).lstrip("+") == normalised(name, held).lstrip("+")
    return normalised(name, expected) == normalised(name, held)
