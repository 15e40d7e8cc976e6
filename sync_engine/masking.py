"""The one way a URL is shown: credentials masked, in any text we print, log or store.

Why one function: a password must not leak through whichever door a message takes
(the CLI, the service log, the run history that `status` and the DMs are drawn from).
A password may hold an unencoded '@' (`postgresql://crm:p@ss@db/x`): the user part
ends at the LAST '@' before the host, so nothing of it is left showing.
"""

from __future__ import annotations

import re

MASK = "***"
# scheme://rest-of-the-URL, up to whitespace, a quote or an angle bracket
_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://)([^\s\"'<>`]+)")


def mask_urls(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by ***.

    `scheme://user:secret@host/...` becomes `scheme://user:***@host/...`; a URL whose
    user part has no ':' (a token used as a user name) becomes `scheme://***@host/...`.
    """
    return _URL.sub(_mask_one, text) if "://" in text else text


def _mask_one(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), match.group(2)
    authority_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, authority_end)
    if at < 0:
        # a '/' or '?' inside the password puts the '@' after them: mask when the part
        # before the last '@' looks like user:password
        at = rest.rfind("@")
        if at < 0 or ":" not in rest[:at]:
            return match.group(0)
    user, colon, _ = rest[:at].partition(":")
    shown = f"{user}:{MASK}" if colon and user else MASK
    return f"{scheme}{shown}{rest[at:]}"
