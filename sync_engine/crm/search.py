"""Search over CRM people by name, company and email, ranked with rapidfuzz.

Ranking every row of a million-person CRM costs about a second, so candidates come from
indexed prefix lookups (last name, first name, email, company name) and only those few
hundred are ranked. `company:"Design Right Inc."` selects one company exactly.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz import fuzz
from sqlalchemy import func, select

from sync_engine.crm import schema as s
from sync_engine.crm.source import SageCrm, _live
from sync_engine.model import CrmPerson

_COMPANY = re.compile(r'company:(?:"([^"]*)"?|(\S*))', re.IGNORECASE)
_PER_COLUMN = 400  # candidates fetched per column and token
_MAX_RESULTS = 1000


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
    return ParsedQuery(text=" ".join(tokens), tokens=tokens, company=company)


def fold(text: str) -> str:
    """Case- and accent-insensitive form used for ranking ("Zoë" ~ "zoe")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def haystack(person: CrmPerson) -> str:
    f = person.fields
    return fold(
        " ".join(p for p in (f.first_name, f.middle_name, f.last_name, f.company, f.email) if p)
    )


def score(parsed: ParsedQuery, person: CrmPerson) -> float:
    """0–100: how well every query word is found among the person's words."""
    if not parsed.tokens:
        return 100.0
    words = haystack(person).split()
    if not words:
        return 0.0
    total = 0.0
    for token in parsed.tokens:
        t = fold(token)
        best = 0.0
        for w in words:
            if w.startswith(t) or (len(t) >= 3 and t in w):
                best = 100.0 if w == t else 95.0
                if best == 100.0:
                    break
            else:
                best = max(best, fuzz.ratio(t, w))
        total += best
    return total / len(parsed.tokens)


def rank(parsed: ParsedQuery, people: list[CrmPerson], *, cutoff: float = 70.0) -> list[CrmPerson]:
    scored = [(score(parsed, p), p) for p in people]
    kept = [(sc, p) for sc, p in scored if sc >= cutoff]
    kept.sort(
        key=lambda x: (
            -x[0],
            x[1].fields.last_name.casefold(),
            x[1].fields.first_name.casefold(),
            x[1].id,
        )
    )
    return [p for _, p in kept[:_MAX_RESULTS]]


def search_people(crm: SageCrm, query: str) -> list[CrmPerson]:
    """Live people matching the query, best first (at most 1,000)."""
    parsed = parse_query(query)
    ids = _candidate_ids(crm, parsed)
    if not ids and parsed.tokens:
        # nothing by prefix: a typo? retry on the first three letters of each word
        ids = _candidate_ids(crm, parsed, prefix_len=3)
    people = [p for p in crm.people_by_ids(ids).values() if not p.deleted]
    return rank(parsed, people)


def _like(crm: SageCrm, column, token: str):  # type: ignore[no-untyped-def]
    pattern = token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if crm.engine.dialect.name == "postgresql":
        return column.ilike(pattern, escape="\\")
    return column.like(pattern, escape="\\")  # SQLite NOCASE / SQL Server CI collation


def _candidate_ids(crm: SageCrm, parsed: ParsedQuery, prefix_len: int | None = None) -> set[int]:
    p, c = s.person, s.company
    live = _live(p.c.Pers_Deleted)
    ids: set[int] = set()
    with crm.engine.connect() as conn:
        company_ids: list[int] | None = None
        if parsed.company is not None:
            company_ids = [
                r[0]
                for r in conn.execute(
                    select(c.c.Comp_CompanyId).where(
                        func.lower(c.c.Comp_Name) == parsed.company.lower(), _live(c.c.Comp_Deleted)
                    )
                )
            ]
            if not company_ids:
                return set()
            if not parsed.tokens:
                query = (
                    select(p.c.Pers_PersonId)
                    .where(p.c.Pers_CompanyId.in_(company_ids), live)
                    .limit(_MAX_RESULTS)
                )
                return {r[0] for r in conn.execute(query)}
        # the longest words are the most selective; three are plenty
        tokens = sorted(parsed.tokens, key=len, reverse=True)[:3]
        for token in tokens:
            t = token[:prefix_len] if prefix_len else token
            clauses = [p.c.Pers_LastName, p.c.Pers_FirstName, p.c.Pers_EmailAddress]
            for column in clauses:
                query = select(p.c.Pers_PersonId).where(_like(crm, column, t), live)
                if company_ids is not None:
                    query = query.where(p.c.Pers_CompanyId.in_(company_ids))
                ids.update(r[0] for r in conn.execute(query.limit(_PER_COLUMN)))
            if company_ids is None:
                matching = select(c.c.Comp_CompanyId).where(
                    _like(crm, c.c.Comp_Name, t), _live(c.c.Comp_Deleted)
                )
                query = (
                    select(p.c.Pers_PersonId)
                    .where(
                        p.c.Pers_CompanyId.in_(matching.limit(_PER_COLUMN).scalar_subquery()), live
                    )
                    .limit(_PER_COLUMN)
                )
                ids.update(r[0] for r in conn.execute(query))
    return ids
