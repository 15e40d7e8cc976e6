"""Search over CRM people by name, company and email, ranked with rapidfuzz.

Ranking every row of a million-person CRM costs about a second, so candidates come from
indexed prefix lookups (last name, first name, email, company name) and only those few
hundred are ranked. `company:"Design Right Inc."` selects one company exactly.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import permutations

from rapidfuzz import fuzz, process
from sqlalchemy import func, select

from sync_engine.crm import schema as s
from sync_engine.crm.source import SageCrm, _emails, _live, chunks
from sync_engine.model import CrmPerson

_COMPANY = re.compile(r'company:(?:"([^"]*)"?|(\S*))', re.IGNORECASE)
_PER_COLUMN = 400  # candidates fetched per column and token
MAX_RESULTS = 1000  # ranked results kept (the picker pages through them), CRM or index
MAX_QUERY_WORDS = 20  # different words in one query, as the index splits them: each a condition


class SearchError(ValueError):
    """The query cannot be searched (empty, or only a malformed filter)."""


@dataclass(frozen=True)
class ParsedQuery:
    text: str
    tokens: tuple[str, ...]
    company: str | None


def parse_query(query: str) -> ParsedQuery:
    """Split free text from a `company:"…"` filter; an empty query is an error."""
    query = (query or "").strip()
    company = None
    match = _COMPANY.search(query)
    if match:
        company = (match.group(1) if match.group(1) is not None else match.group(2)).strip()
        query = (query[: match.start()] + query[match.end() :]).strip()
        if not company:
            raise SearchError(
                'company:"…" needs a company name, for example company:"Design Right Inc."'
            )
    tokens = tuple(t for t in re.split(r"[\s,]+", query) if t)
    if not tokens and company is None:
        raise SearchError("give a name, a company or an email to search for")
    firsts: dict[str, str] = {}  # a word said twice (in any case or accents) is one condition
    for token in tokens:
        firsts.setdefault(fold(token), token)
    distinct = tuple(firsts.values())
    if len(distinct) > MAX_QUERY_WORDS or len(_index_words(distinct)) > MAX_QUERY_WORDS:
        raise SearchError(f"a search takes at most {MAX_QUERY_WORDS} different words; give fewer")
    return ParsedQuery(text=" ".join(tokens), tokens=distinct, company=company)


def _index_words(tokens: tuple[str, ...]) -> list[str]:
    """The query's words as the people index splits and bounds them ("a-b-c" is three):
    each is a condition every result must meet, and a look-up."""
    from sync_engine.index.words import distinct_words  # the index imports this module

    return distinct_words(tokens)


def fold(text: str) -> str:
    """Case- and accent-insensitive form used for ranking ("Zoë" ~ "zoe")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _haystack(*parts: str | None) -> str:
    return fold(" ".join(p.strip() for p in parts if p and p.strip()))


def rank(
    parsed: ParsedQuery, rows: dict[int, tuple[str, str]], *, cutoff: float = 70.0
) -> list[int]:
    """Ids best first. Each query word must be found (fuzzily) in the person's words; ties go
    to the closest name. Scoring runs in rapidfuzz's C++ loops, not per row in Python."""
    if not rows:
        return []
    ids = list(rows)
    hay = [rows[i][0] for i in ids]
    names = [rows[i][1] for i in ids]
    if not parsed.tokens:
        return sorted(ids, key=lambda i: (rows[i][1], i))[:MAX_RESULTS]
    total = [0.0] * len(ids)
    for token in parsed.tokens:
        for _, sc, index in process.extract(
            fold(token), hay, scorer=fuzz.partial_ratio, limit=None
        ):
            total[index] += sc
    closeness = [0.0] * len(ids)
    for _, sc, index in process.extract(
        fold(parsed.text), names, scorer=fuzz.token_sort_ratio, limit=None
    ):
        closeness[index] = sc
    n = len(parsed.tokens)
    kept = [k for k in range(len(ids)) if total[k] / n >= cutoff]
    kept.sort(key=lambda k: (-round(total[k] / n), -closeness[k], names[k], ids[k]))
    return [ids[k] for k in kept[:MAX_RESULTS]]


def search_ids(crm: SageCrm, query: str) -> list[int]:
    """Ids of live people matching the query, best first (at most 1,000)."""
    parsed = parse_query(query)
    rows = _candidates(crm, parsed)
    ranked = rank(parsed, rows)
    if not ranked and parsed.tokens:
        # nothing close by prefix: a typo? retry on the first three letters of each word
        ranked = rank(parsed, _candidates(crm, parsed, prefix_len=3))
    return ranked


def search_people(crm: SageCrm, query: str) -> list[CrmPerson]:
    """Live people matching the query, best first (at most 1,000)."""
    ids = search_ids(crm, query)
    people = crm.people_by_ids(ids)
    return [people[i] for i in ids if i in people and not people[i].deleted]


def like_pattern(token: str) -> str:
    """A prefix LIKE pattern matching `token` literally, with `\\` as the escape character.
    `[` is escaped too: SQL Server reads `[...]` in LIKE as a character class."""
    escaped = "".join("\\" + c if c in "\\%_[" else c for c in token)
    return escaped + "%"


def _like(crm: SageCrm, column, token: str):  # type: ignore[no-untyped-def]
    pattern = like_pattern(token)
    if crm.engine.dialect.name == "postgresql":
        return column.ilike(pattern, escape="\\")
    return column.like(pattern, escape="\\")  # SQLite NOCASE / SQL Server CI collation


def _equal(crm: SageCrm, column, value: str):  # type: ignore[no-untyped-def]
    if crm.engine.dialect.name == "postgresql":
        return func.lower(column) == value.lower()
    return column == value  # SQLite NOCASE / SQL Server CI collation


def _company_lookup(crm: SageCrm, base, prefix: str):  # type: ignore[no-untyped-def]
    """People of the companies whose name starts with `prefix`."""
    c, p = s.company, s.person
    companies = select(c.c.Comp_CompanyId).where(
        _like(crm, c.c.Comp_Name, prefix), _live(c.c.Comp_Deleted)
    )
    return base.where(p.c.Pers_CompanyId.in_(companies.limit(_PER_COLUMN).scalar_subquery()))


def _email_lookup(crm: SageCrm, base, prefix: str):  # type: ignore[no-untyped-def]
    """People with a live Business or Private email starting with `prefix` (Sage 7.1+
    keeps emails in Email, linked to people through EmailLink, entity 13)."""
    e, el, p = s.email, s.email_link, s.person
    people = (
        select(el.c.ELink_RecordID)
        .select_from(el.join(e, e.c.Emai_EmailId == el.c.ELink_EmailId))
        .where(
            _like(crm, e.c.Emai_EmailAddress, prefix),
            el.c.ELink_EntityID == s.PERSON_ENTITY_ID,
            el.c.ELink_Type.in_(s.EMAIL_TYPES),
            _live(el.c.ELink_Deleted),
            _live(e.c.Emai_Deleted),
        )
    )
    return base.where(p.c.Pers_PersonId.in_(people.limit(_PER_COLUMN).scalar_subquery()))


def _candidates(
    crm: SageCrm, parsed: ParsedQuery, prefix_len: int | None = None
) -> dict[int, tuple[str, str]]:
    """Candidate rows from indexed prefix lookups: id -> (folded words, folded name)."""
    p, c = s.person, s.company
    base = (
        select(
            p.c.Pers_PersonId,
            p.c.Pers_FirstName,
            p.c.Pers_MiddleName,
            p.c.Pers_LastName,
            c.c.Comp_Name,
        )
        .select_from(p.outerjoin(c, p.c.Pers_CompanyId == c.c.Comp_CompanyId))
        .where(_live(p.c.Pers_Deleted))
    )
    found: dict[int, tuple[str, str, str, str]] = {}  # id -> first, middle, last, company
    with crm._connect() as conn:
        if parsed.company is not None:
            companies = select(c.c.Comp_CompanyId).where(
                _equal(crm, c.c.Comp_Name, parsed.company), _live(c.c.Comp_Deleted)
            )
            if conn.execute(companies.limit(1)).first() is None:
                return {}
            # a sub-select, not a list of ids: any number of namesakes, few parameters
            base = base.where(p.c.Pers_CompanyId.in_(companies.scalar_subquery()))
        words = sorted(parsed.tokens, key=len, reverse=True)[:3]
        cut = [w[:prefix_len] if prefix_len else w for w in words]
        precise = []  # lookups that use every word; the per-word ones only when these find nobody
        if not words:
            precise.append(base.limit(MAX_RESULTS))
        # "first last" and "last first": one range of the (last, first) index
        for a, b in permutations(cut, 2):
            precise.append(
                base.where(_equal(crm, p.c.Pers_LastName, a), _like(crm, p.c.Pers_FirstName, b))
            )
        if parsed.company is None and len(words) > 1:
            precise.append(
                _company_lookup(crm, base, parsed.text[:prefix_len] if prefix_len else parsed.text)
            )
        loose = []
        for w in cut:
            for column in (p.c.Pers_LastName, p.c.Pers_FirstName):
                loose.append(base.where(_like(crm, column, w)))
            loose.append(_email_lookup(crm, base, w))
            if parsed.company is None:
                loose.append(_company_lookup(crm, base, w))
        for group in (precise, loose):
            for lookup in group:
                for r in conn.execute(lookup.limit(_PER_COLUMN)):
                    found.setdefault(r[0], (r[1], r[2], r[3], r[4]))
            if found:
                break
        emails: dict[int, dict[str, str]] = {}
        for chunk in chunks(found):
            emails.update(_emails(conn, chunk))
    rows: dict[int, tuple[str, str]] = {}
    for pid, (first, middle, last, company) in found.items():
        mail = emails.get(pid, {})
        rows[pid] = (
            _haystack(first, middle, last, company, mail.get("Business"), mail.get("Private")),
            _haystack(first, middle, last, company),
        )
    return rows
