"""The words the people index knows a person by, and the keys that find them with one typo.

Pure functions (no database), shared by the index build, its refresh and its queries, so
a word is folded and split the same way when it is stored and when it is looked up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rapidfuzz.distance import OSA

from sync_engine.crm.search import fold
from sync_engine.model import CrmPerson

_SPLIT = re.compile(r"[\W_]+")

# Words shorter than this are found exactly or by prefix, never by a typo: one edit in a
# two-letter word is another word.
FUZZY_MIN = 3

# Folding can make text much longer (NFKD turns U+FDFA into 18 characters), so what the
# index stores and looks up is cut to a bound, the same way when stored and when searched:
# a word to WORD_MAX letters (its typo keys grow with the square of its length), a key
# (the folded name, company, email) to what its column holds (320 characters; at most
# 1,280 bytes of UTF-8, well inside a B-tree entry's limit).
WORD_MAX = 40
KEY_MAX = 320


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """Text a database stores as it is: no NUL (PostgreSQL refuses it in text) and no lone
    surrogate (SQL Server's UCS-2 columns and JSON escapes can hold one; UTF-8 cannot)."""
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


def key(text: str) -> str:
    """The folded form of a whole value as the index keeps it (name, company, email)."""
    return fold(storable(text))[:KEY_MAX]


def bounded(word: str) -> str:
    """A folded word as the index stores it and a query looks it up: its first WORD_MAX
    letters. The one place a word is cut, so a query word meets the stored word it was
    cut from (see `within_one_edit` for a typo in a cut word)."""
    return word[:WORD_MAX]


def words(text: str) -> list[str]:
    """Folded words of a text, in order ("O'Brien" -> ["o", "brien"]), each `bounded`."""
    return [bounded(w) for w in _SPLIT.split(fold(storable(text))) if w]


def distinct_words(texts: Iterable[str]) -> list[str]:
    """The distinct words of these texts as the index keeps them, in order: what a
    person is found by, and what a query's bound on its words counts."""
    return list(dict.fromkeys(w for text in texts for w in words(text)))


def email_words(email: str) -> list[str]:
    """Words of an email's local part worth finding a person by ("j.smith" -> ["smith"])."""
    local = fold(storable(email)).partition("@")[0]
    return [bounded(w) for w in _SPLIT.split(local) if len(w) >= 2 and not w.isdigit()]


def person_words(person: CrmPerson) -> list[str]:
    """The distinct words search finds a person by: names, company, email local part."""
    f = person.fields
    found = distinct_words((f.first_name, f.middle_name, f.last_name, f.company))
    return list(dict.fromkeys([*found, *email_words(f.email)]))


def typo_keys(word: str) -> set[str]:
    """The word and every form of it with one letter left out (none for short words and
    numbers: a typo there is another word)."""
    if len(word) < FUZZY_MIN or word.isdigit():
        return {word}
    return {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}


def within_one_edit(a: str, b: str) -> bool:
    """One substitution, insertion, deletion or transposition of neighbours at most.

    Two words both cut to WORD_MAX (`bounded`) compare as the words they were cut from:
    a letter missing or added before the cut shifts the tail by one, so the cut forms
    also match when one of them, less its last letter, is one edit from the other."""
    if OSA.distance(a, b, score_cutoff=1) <= 1:
        return True
    if len(a) == len(b) == WORD_MAX:
        return (
            OSA.distance(a[:-1], b, score_cutoff=1) <= 1
            or OSA.distance(a, b[:-1], score_cutoff=1) <= 1
        )
    return False


_LAST = 0x10FFFF  # the last code point: nothing follows it
_SURROGATES = range(0xD800, 0xE000)  # not characters: UTF-8 cannot hold them


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (in code point
    order, which is UTF-8's byte order), or None when there is none ("\U0010ffff...")."""
    kept = prefix.rstrip(chr(_LAST))
    if not kept:
        return None
    following = ord(kept[-1]) + 1
    if following in _SURROGATES:
        following = _SURROGATES.stop
    return kept[:-1] + chr(following)
