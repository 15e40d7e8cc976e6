"""The words the people index knows a person by, and the keys that find them with one typo.

Pure functions (no database), shared by the index build, its refresh and its queries, so
a word is folded and split the same way when it is stored and when it is looked up.
"""

from __future__ import annotations

import re

from rapidfuzz.distance import OSA

from sync_engine.crm.search import fold
from sync_engine.model import CrmPerson

_SPLIT = re.compile(r"[\W_]+")

# Words shorter than this are found exactly or by prefix, never by a typo: one edit in a
# two-letter word is another word.
FUZZY_MIN = 3


def words(text: str) -> list[str]:
    """Folded words of a text, in order ("O'Brien" -> ["o", "brien"])."""
    return [w for w in _SPLIT.split(fold(text)) if w]


def email_words(email: str) -> list[str]:
    """Words of an email's local part worth finding a person by ("j.smith" -> ["smith"])."""
    local = fold(email).partition("@")[0]
    return [w for w in _SPLIT.split(local) if len(w) >= 2 and not w.isdigit()]


def person_words(person: CrmPerson) -> list[str]:
    """The distinct words search finds a person by: names, company, email local part."""
    f = person.fields
    found: dict[str, None] = {}
    for text in (f.first_name, f.middle_name, f.last_name, f.company):
        for w in words(text):
            found[w] = None
    for w in email_words(f.email):
        found[w] = None
    return list(found)


def typo_keys(word: str) -> set[str]:
    """The word and every form of it with one letter left out (none for short words and
    numbers: a typo there is another word)."""
    if len(word) < FUZZY_MIN or word.isdigit():
        return {word}
    return {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}


def within_one_edit(a: str, b: str) -> bool:
    """One substitution, insertion, deletion or transposition of neighbours at most."""
    return OSA.distance(a, b, score_cutoff=1) <= 1


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
