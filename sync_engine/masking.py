"""The one way a URL is shown: credentials masked, in any text we print, log or store.

Why one function: a password must not leak through whichever door a message takes
(the CLI, the service log, the run history that `status` and the DMs are drawn from).

Three nets, each for a way a password shows up:

- in a URL's user part, whatever its characters: a password may hold an unencoded
  '@' (`postgresql://crm:p@ss@db/x`), a quote, an angle bracket or a backtick
  (`crm:pa'ss@db`), so a URL runs to the next whitespace, and the user part ends at
  the LAST '@' of the authority;
- as a query or connection-string parameter (`?password=…`, `&pwd=…`, ODBC's
  `PWD=…;`), whatever its characters up to the next `&`, `;`, `#` or whitespace, or
  the whole of an ODBC braced value (`PWD={p;ss}`);
- anywhere else, e.g. a driver's error that quotes the password without its URL: the
  secrets of the configured URLs, taken from the *parsed* URLs when the settings are
  read (`remember_secrets`), are masked wherever they appear.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from urllib.parse import unquote

MASK = "***"
# scheme://rest-of-the-URL, up to whitespace: no other character ends a URL here, since
# a password may hold any of them (quotes, '<', '>', '`', '@', '/', '?', '#')
_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://)(\S+)")
# a secret-bearing parameter: ?password=…, &pwd=…, ;PWD=… (ODBC), client_secret=…
_SECRET_NAMES = r"password|passwd|pwd|pass|secret|client_secret|token|access_token|api_?key"
# (also percent-encoded inside another parameter: odbc_connect=...%3BPWD%3Dsecret%3B...)
# ODBC quotes a value holding ';' in braces, a '}' in it doubled (`PWD={p;s}}s}`; plain,
# or percent-encoded inside odbc_connect): the whole braced value is the secret.
_PARAM = re.compile(
    rf"(?i)(?:(?<![A-Za-z0-9_])|(?<=%3B)|(?<=%26))({_SECRET_NAMES})(=|%3D)"
    r"(\{(?:[^}]|\}\})*\}|%7B(?:(?!%7D).|%7D%7D)*%7D|(?:(?!%3B|%26)[^&;#\s])+)"
)
_SHORTEST_REMEMBERED = 4  # a shorter "secret" would mask ordinary words

_remembered: tuple[str, ...] = ()
_lock = threading.Lock()


def mask_urls(text: str) -> str:
    """`text` with every credential in it replaced by ***.

    `scheme://user:secret@host/...` becomes `scheme://user:***@host/...`; a URL whose
    user part has no ':' (a token used as a user name) becomes `scheme://***@host/...`;
    `password=secret` becomes `password=***`; a remembered secret becomes ***.
    """
    text = str(text)
    if "://" in text:
        text = _URL.sub(_mask_one, text)
    if "=" in text:
        text = _PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    for secret in _remembered:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _mask_one(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), match.group(2)
    at = rest.rfind("@", 0, _authority_end(rest))
    if at < 0:
        # a '/', '?' or '#' inside the password puts the '@' after them: mask when the
        # part before the last '@' looks like user:password
        at = rest.rfind("@")
        if at < 0 or ":" not in rest[:at]:
            return match.group(0)
    user, colon, _ = rest[:at].partition(":")
    shown = f"{user}:{MASK}" if colon and user else MASK
    return f"{scheme}{shown}{rest[at:]}"


def url_secrets(url: str | None) -> set[str]:
    """The secrets of one URL as it parses: the password of its user part (up to the
    last '@' of the authority, as `mask_urls` reads it) and its secret parameters, each
    as written and percent-decoded."""
    if not url or "://" not in url:
        return set()
    rest = url.split("://", 1)[1]
    found: set[str] = {m.group(3) for m in _PARAM.finditer(url)}
    at = rest.rfind("@", 0, _authority_end(rest))
    if at < 0:
        at = rest.rfind("@")
    if at >= 0:
        _user, colon, password = rest[:at].partition(":")
        if colon:
            found.add(password)
    plain = {s for raw in found for s in (raw, unquote(raw)) if s}
    return plain | {_unbraced(s) for s in plain if s.startswith("{") and s.endswith("}")}


def _unbraced(value: str) -> str:
    """An ODBC braced value as the server reads it: `{p;s}}s}` is `p;s}s`."""
    return value[1:-1].replace("}}", "}")


def _authority_end(rest: str) -> int:
    return min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))


def remember_secrets(values: Iterable[str | None]) -> None:
    """Mask these secrets wherever they appear from now on (the configured URLs' and
    passwords, set when the settings are read; each call replaces the last set)."""
    global _remembered
    kept = {v for v in values if v and len(v) >= _SHORTEST_REMEMBERED and v != MASK}
    with _lock:
        # longest first, so a secret that contains another is masked whole
        _remembered = tuple(sorted(kept, key=len, reverse=True))
