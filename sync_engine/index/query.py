"""Searching the people index: candidates by exact, prefix and one-typo word look-ups,
then ranking in Python (rapidfuzz for the closeness of the whole name).

Each query word is a clause every result must meet: one of its index words equals the
query word, starts with it, or is one edit away (OSA distance 1: a substitution anywhere,
a missing, extra or doubled letter, or two neighbours swapped). Words come from the
vocabulary (distinct words, far fewer than people), their people from the postings, and
the clauses meet in one INTERSECT, so a search is a handful of indexed look-ups
whatever the number of people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat

from rapidfuzz import fuzz, process
from sqlalchemy import Connection, select, text

from sync_engine import tables as t
from sync_engine.crm.search import ParsedQuery, fold
from sync_engine.index.words import FUZZY_MIN, prefix_end, typo_keys, within_one_edit, words
from sync_engine.model import PersonView

MAX_RESULTS = 1000  # ranked results kept (the picker pages through them)
ENOUGH_EXACT = 50  # this many exact matches: prefix and typo matches are not added
_PREFIX_TERMS = 200  # words taken per prefix ("jo" -> john, jones, …)
_EXACT, _PREFIX, _TYPO, _EMAIL_PREFIX = 100, 90, 80, 95


@dataclass(frozen=True)
class IndexedPerson:
    """One search result: what the picker shows, read from the index alone."""

    id: int
    first_name: str
    middle_name: str
    last_name: str
    company: str
    email: str
    job_title: str
    business_phone: str
    mobile_phone: str
    manager: str

    def view(self, *, in_list: bool = False) -> PersonView:
        return PersonView(
            id=self.id,
            first_name=self.first_name,
            middle_name=self.middle_name,
            last_name=self.last_name,
            company=self.company,
            email=self.email,
            job_title=self.job_title,
            business_phone=self.business_phone,
            mobile_phone=self.mobile_phone,
            manager=self.manager,
            in_list=in_list,
        )


@dataclass
class _Part:
    word: str
    quality: dict[str, int] = field(default_factory=dict)  # index word -> how well it matches
    term_ids: dict[int, int] = field(default_factory=dict)  # term id -> quality


@dataclass
class _Clause:
    text: str  # the folded query word, for email prefixes
    parts: list[_Part]
    emailish: bool

    @property
    def usable(self) -> bool:
        return self.emailish or any(p.term_ids for p in self.parts)


_COLUMNS = (
    "person_id",
    "first_name",
    "middle_name",
    "last_name",
    "company",
    "email",
    "job_title",
    "business_phone",
    "mobile_phone",
    "manager",
    "name_key",
    "email_key",
    "words",
)


def search(conn: Connection, parsed: ParsedQuery) -> list[IndexedPerson]:
    """Live people matching the query, best first (at most MAX_RESULTS)."""
    company = fold(parsed.company).strip() if parsed.company is not None else None
    clauses = [_clause(token) for token in parsed.tokens]
    clauses = [c for c in clauses if c.parts or c.emailish]
    if not clauses:
        if company is None:
            return []
        sql = (
            f"SELECT {', '.join(_COLUMNS)} FROM people_index WHERE live = :live "
            f"AND company_key = :company ORDER BY name_key, person_id LIMIT {MAX_RESULTS}"
        )
        rows = conn.execute(text(sql), {"live": True, "company": company}).all()
        return [_person(r) for r in rows]
    _look_up_terms(conn, clauses)
    for clause in clauses:
        if clause.emailish:
            _settle_email(conn, clause)
    usable = [c for c in clauses if c.usable]
    if not usable:
        return []
    rows: dict[int, tuple] = {}
    if all(all(_exact(p) for p in c.parts if p.term_ids) for c in usable):
        for r in _candidates(conn, usable, company, exact_only=True):
            rows.setdefault(r[0], r)
    if len(rows) < ENOUGH_EXACT:
        for r in _candidates(conn, usable, company, exact_only=False):
            rows.setdefault(r[0], r)
    return _rank(parsed, clauses, list(rows.values()))


def _settle_email(conn: Connection, clause: _Clause) -> None:
    """A word with "@" or "." is an email (prefix) when some live person's email starts
    with it; otherwise its words count ("o'brien.sean" -> o, brien, sean)."""
    hit = conn.execute(
        text(
            "SELECT 1 FROM people_index WHERE email_key >= :e AND email_key < :end "
            "AND live = :live LIMIT 1"
        ),
        {"e": clause.text, "end": prefix_end(clause.text), "live": True},
    ).first()
    if hit:
        clause.parts = []
    else:
        clause.emailish = False


def _exact(part: _Part) -> bool:
    return _EXACT in part.term_ids.values()


def _clause(token: str) -> _Clause:
    folded = fold(token).strip()
    return _Clause(
        text=folded,
        parts=[_Part(w) for w in words(token)],
        emailish=len(folded) >= 3 and ("@" in folded or "." in folded),
    )


def _look_up_terms(conn: Connection, clauses: list[_Clause]) -> None:
    """Fill each part's matching index words: itself, one typo away, or by prefix."""
    parts = [p for c in clauses for p in c.parts]
    keys = sorted({k for p in parts for k in typo_keys(p.word)})
    k, terms = t.index_term_keys, t.index_terms
    found = conn.execute(
        select(k.c.key, terms.c.id, terms.c.word)
        .select_from(k.join(terms, terms.c.id == k.c.term_id))
        .where(k.c.key.in_(keys))
    ).all()
    for part in parts:
        mine = typo_keys(part.word)
        for key, term_id, word in found:
            if key not in mine:
                continue
            if word == part.word:
                _note(part, term_id, word, _EXACT)
            elif len(part.word) >= FUZZY_MIN and within_one_edit(part.word, word):
                _note(part, term_id, word, _TYPO)
        if len(part.word) >= 2:
            prefixed = conn.execute(
                select(terms.c.id, terms.c.word)
                .where(terms.c.word > part.word, terms.c.word < prefix_end(part.word))
                .order_by(terms.c.word)
                .limit(_PREFIX_TERMS)
            )
            for term_id, word in prefixed:
                _note(part, term_id, word, _PREFIX)


def _note(part: _Part, term_id: int, word: str, quality: int) -> None:
    if quality > part.quality.get(word, 0):
        part.quality[word] = quality
        part.term_ids[term_id] = quality


def _candidates(
    conn: Connection, clauses: list[_Clause], company: str | None, *, exact_only: bool
) -> list[tuple]:
    """Rows of the live people every clause matches (at most MAX_RESULTS, any order)."""
    params: dict[str, object] = {"live": True}
    where = ["p.live = :live"]
    if company is not None:
        where.append("p.company_key = :company")
        params["company"] = company
    columns = ", ".join(f"p.{c}" for c in _COLUMNS)
    expressions = []
    for n, clause in enumerate(clauses):
        members = []
        for part in clause.parts:
            ids = [i for i, q in part.term_ids.items() if q == _EXACT or not exact_only]
            if ids:
                listed = ", ".join(str(int(i)) for i in sorted(ids))
                members.append(f"SELECT person_id FROM index_postings WHERE term_id IN ({listed})")
        if clause.emailish:
            params[f"e{n}"], params[f"e{n}_end"] = clause.text, prefix_end(clause.text)
            members.append(
                f"SELECT person_id FROM people_index WHERE email_key >= :e{n} "
                f"AND email_key < :e{n}_end"
            )
        if not members:
            return []  # a word with no exact match: no exact candidates
        expressions.append(
            members[0]
            if len(members) == 1
            else f"SELECT person_id FROM ({' INTERSECT '.join(members)}) AS c{n}"
        )
    if len(expressions) == 1 and expressions[0].startswith("SELECT person_id FROM index_postings"):
        # one word: stream its postings and stop at the cap (a common word has 100,000s)
        term_filter = expressions[0].partition(" WHERE ")[2]
        sql = (
            f"SELECT {columns} FROM index_postings x JOIN people_index p "
            f"ON p.person_id = x.person_id WHERE x.{term_filter} AND {' AND '.join(where)} "
            f"LIMIT {MAX_RESULTS}"
        )
    elif conn.dialect.name == "postgresql":
        # a join: PostgreSQL merges (or hashes) the postings, ~3x faster than its INTERSECT
        joined = " JOIN ".join(
            f"({e}) AS c{n}" + (f" ON c{n}.person_id = c0.person_id" if n else "")
            for n, e in enumerate(expressions)
        )
        sql = (
            f"SELECT {columns} FROM {joined} JOIN people_index p ON p.person_id = c0.person_id "
            f"WHERE {' AND '.join(where)} LIMIT {MAX_RESULTS}"
        )
    else:
        # SQLite plans joins of postings without statistics; its INTERSECT is steady
        where.append(f"p.person_id IN ({' INTERSECT '.join(expressions)})")
        sql = (
            f"SELECT {columns} FROM people_index p WHERE {' AND '.join(where)} LIMIT {MAX_RESULTS}"
        )
    return list(conn.execute(text(sql), params).all())


def _rank(parsed: ParsedQuery, clauses: list[_Clause], rows: list[tuple]) -> list[IndexedPerson]:
    """Best first: how well every query word is met (exact > email prefix > prefix > typo),
    then how close the whole name is to the query, then the name."""
    if not rows:
        return []
    zeros = repeat(0)
    scores = []
    for row in rows:
        own = row[12].split()
        total = 0
        for clause in clauses:
            score = 0
            if clause.parts:
                score = 100
                for part in clause.parts:
                    met = max(map(part.quality.get, own, zeros), default=0)
                    if not met and any(w.startswith(part.word) for w in own):
                        met = _PREFIX
                    score = min(score, met)
            if clause.emailish and row[11].startswith(clause.text):
                score = max(score, _EXACT if row[11] == clause.text else _EMAIL_PREFIX)
            total += score
        scores.append(total / len(clauses))
    closeness = [0.0] * len(rows)
    names = [row[10] for row in rows]
    for _, sc, index in process.extract(
        fold(parsed.text), names, scorer=fuzz.token_sort_ratio, limit=None
    ):
        closeness[index] = sc
    order = sorted(
        range(len(rows)), key=lambda k: (-scores[k], -closeness[k], names[k], rows[k][0])
    )
    return [_person(rows[k]) for k in order[:MAX_RESULTS]]


def _person(row) -> IndexedPerson:  # type: ignore[no-untyped-def]
    return IndexedPerson(*(row[:10]))
