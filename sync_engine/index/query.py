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

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from itertools import repeat
from typing import overload

from rapidfuzz import fuzz, process
from sqlalchemy import Connection, select, text, true

from sync_engine import tables as t
from sync_engine.crm.search import MAX_RESULTS, ParsedQuery, fold
from sync_engine.index.sets import TableSet
from sync_engine.index.words import (
    FUZZY_MIN,
    key,
    prefix_end,
    typo_keys,
    within_one_edit,
    words,
)
from sync_engine.model import PersonView

ENOUGH_EXACT = 50  # this many exact matches: prefix and typo matches are not added
_PREFIX_TERMS = 200  # words taken per prefix ("jo" -> john, jones, …)
_EXACT, _PREFIX, _TYPO, _EMAIL_PREFIX = 100, 90, 80, 95


@dataclass
class _Part:
    word: str
    quality: dict[str, int] = field(default_factory=dict)  # index word -> how well it matches
    term_ids: dict[int, int] = field(default_factory=dict)  # term id -> quality
    people: dict[int, int] = field(default_factory=dict)  # term id -> live people with it


@dataclass
class _Clause:
    text: str  # the folded query word, for email prefixes
    parts: list[_Part]
    emailish: bool

    @property
    def usable(self) -> bool:
        """Index look-ups can find the people this clause matches."""
        return self.emailish or any(p.term_ids for p in self.parts)

    @property
    def every_word_found(self) -> bool:
        """Every word has index words like it, or is one letter ("J" in "J Smith": not
        looked up by prefix, so ranking checks it on the candidates)."""
        return all(p.term_ids or len(p.word) < 2 for p in self.parts)


# What a card shows (PersonView's fields that the index holds; its `id` is person_id),
# then what ranking reads.
_SHOWN = tuple(f.name for f in fields(PersonView) if f.name == "id" or f.name in t.people_index.c)
_COLUMNS = (*("person_id" if f == "id" else f for f in _SHOWN), "name_key", "email_key", "words")
_NAME_KEY, _EMAIL_KEY, _WORDS = len(_SHOWN), len(_SHOWN) + 1, len(_SHOWN) + 2
# `_person` builds a PersonView from the first columns by position
assert tuple(f.name for f in fields(PersonView))[: len(_SHOWN)] == _SHOWN


class Ranked(Sequence[PersonView]):
    """Ranked people, each made a PersonView only when read: a page shows 10 of up to
    MAX_RESULTS, and the rest need not be built."""

    def __init__(self, rows: list[tuple]) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> PersonView: ...
    @overload
    def __getitem__(self, index: slice) -> list[PersonView]: ...
    def __getitem__(self, index: int | slice) -> PersonView | list[PersonView]:
        if isinstance(index, slice):
            return [_person(r) for r in self._rows[index]]
        return _person(self._rows[index])


def search(conn: Connection, tables: TableSet, parsed: ParsedQuery) -> Sequence[PersonView]:
    """Live people matching the query, best first (at most MAX_RESULTS), from the live
    table set."""
    company = key(parsed.company.strip()) if parsed.company is not None else None
    clauses = _clauses(parsed.tokens)
    if not clauses:
        if company is None:
            return []
        sql = (
            f"SELECT {', '.join(_COLUMNS)} FROM {tables.people.name} WHERE live = :live "
            f"AND company_key = :company ORDER BY name_key, person_id LIMIT {MAX_RESULTS}"
        )
        rows = conn.execute(text(sql), {"live": True, "company": company}).all()
        return Ranked(list(rows))
    for clause in clauses:
        if clause.emailish:
            _settle_email(conn, tables, clause)
    # the words themselves first: when ENOUGH_EXACT people have every one, typo and prefix
    # look-ups could add nobody who ranks above them, and are not made
    _look_up_terms(conn, tables, clauses, exact_only=True)
    rows: dict[int, tuple] = {}
    usable = [c for c in clauses if c.usable]
    if usable and all(_exact(p) for c in clauses for p in c.parts if len(p.word) >= 2):
        for r in _candidates(conn, tables, usable, company, exact_only=True):
            rows.setdefault(r[0], r)
    if len(rows) >= ENOUGH_EXACT:
        return _rank(parsed, clauses, list(rows.values()))
    _look_up_terms(conn, tables, clauses, exact_only=False)
    if not all(c.emailish or c.every_word_found for c in clauses):
        return []  # a query word nothing in the index is like: nobody has every word
    usable = [c for c in clauses if c.usable]
    if not usable:
        return []
    for r in _candidates(conn, tables, usable, company, exact_only=False):
        rows.setdefault(r[0], r)
    return _rank(parsed, clauses, list(rows.values()))


def _settle_email(conn: Connection, tables: TableSet, clause: _Clause) -> None:
    """A word with "@" or "." is an email (prefix) when some live person's email starts
    with it; otherwise its words count ("o'brien.sean" -> o, brien, sean)."""
    params: dict[str, object] = {"live": True}
    hit = conn.execute(
        text(
            f"SELECT 1 FROM {tables.people.name} WHERE {_starts('email_key', clause.text, 'e', params)} "
            "AND live = :live LIMIT 1"
        ),
        params,
    ).first()
    if hit:
        clause.parts = []
    else:
        clause.emailish = False


def _exact(part: _Part) -> bool:
    return _EXACT in part.term_ids.values()


def _starts(column: str, prefix: str, name: str, params: dict[str, object]) -> str:
    """SQL for "`column` starts with `prefix`": one B-tree range (keys compare bytewise)."""
    params[name] = prefix
    end = prefix_end(prefix)
    if end is None:
        return f"{column} >= :{name}"
    params[f"{name}_end"] = end
    return f"{column} >= :{name} AND {column} < :{name}_end"


def _clauses(tokens: Sequence[str]) -> list[_Clause]:
    """One clause per query word that has words or could be an email; a word that two
    clauses share is one part, looked up once ("smith-jones jones")."""
    parts: dict[str, _Part] = {}
    clauses = []
    for token in tokens:
        folded = key(token.strip()).strip()
        clause = _Clause(
            text=folded,
            parts=[parts.setdefault(w, _Part(w)) for w in dict.fromkeys(words(token))],
            emailish=len(folded) >= 3 and ("@" in folded or "." in folded),
        )
        if clause.parts or clause.emailish:
            clauses.append(clause)
    return clauses


def _look_up_terms(
    conn: Connection, tables: TableSet, clauses: list[_Clause], *, exact_only: bool
) -> None:
    """Fill each part's matching index words: itself (one statement for every part), or
    also one typo away and by prefix."""
    parts = list({id(p): p for c in clauses for p in c.parts}.values())
    k, terms = tables.keys, tables.terms
    if exact_only:
        if not parts:
            return
        for term_id, word, people in conn.execute(
            select(terms.c.id, terms.c.word, terms.c.people).where(
                terms.c.word.in_(sorted({p.word for p in parts})), terms.c.people > 0
            )
        ):
            for part in parts:
                if part.word == word:
                    _note(part, term_id, word, people, _EXACT)
        return
    keys = sorted({k for p in parts for k in typo_keys(p.word)})
    found = conn.execute(
        select(k.c.key, terms.c.id, terms.c.word, terms.c.people)
        .select_from(k.join(terms, terms.c.id == k.c.term_id))
        .where(k.c.key.in_(keys), terms.c.people > 0)
    ).all()
    for part in parts:
        mine = typo_keys(part.word)
        for typo_key, term_id, word, people in found:
            if typo_key not in mine:
                continue
            if word == part.word:
                _note(part, term_id, word, people, _EXACT)
            elif len(part.word) >= FUZZY_MIN and within_one_edit(part.word, word):
                _note(part, term_id, word, people, _TYPO)
        if len(part.word) >= 2:
            end = prefix_end(part.word)
            prefixed = conn.execute(
                select(terms.c.id, terms.c.word, terms.c.people)
                .where(
                    terms.c.word > part.word,
                    terms.c.word < end if end is not None else true(),
                    terms.c.people > 0,
                )
                .order_by(terms.c.word)
                .limit(_PREFIX_TERMS)
            )
            for term_id, word, people in prefixed:
                _note(part, term_id, word, people, _PREFIX)


def _note(part: _Part, term_id: int, word: str, people: int, quality: int) -> None:
    if quality > part.quality.get(word, 0):
        part.quality[word] = quality
        part.term_ids[term_id] = quality
        part.people[term_id] = people


@dataclass
class _Unit:
    """One condition every result meets: one of these terms, or an email prefix."""

    term_ids: list[int]
    people: int  # how many rows its postings hold (an estimate for an email prefix)
    email: int | None = None  # the clause number of an email prefix


def _units(clauses: list[_Clause], *, exact_only: bool) -> list[_Unit] | None:
    """The conditions of the candidates' statement, each once (a word two clauses share
    is one condition)."""
    units: list[_Unit] = []
    seen: set[int] = set()
    for n, clause in enumerate(clauses):
        if clause.emailish:
            units.append(_Unit([], 1, email=n))
            continue
        for part in clause.parts:
            if not part.term_ids or id(part) in seen:
                continue  # a one-letter word not looked up by prefix: ranking judges it
            seen.add(id(part))
            ids = [i for i, q in part.term_ids.items() if q == _EXACT or not exact_only]
            if not ids:
                return None  # a word with no exact match: no exact candidates
            units.append(_Unit(sorted(ids), sum(part.people[i] for i in ids)))
    return units


def _candidates(
    conn: Connection,
    tables: TableSet,
    clauses: list[_Clause],
    company: str | None,
    *,
    exact_only: bool,
) -> list[tuple]:
    """Rows of the live people every clause matches (at most MAX_RESULTS, any order).

    The condition with the fewest postings per probe of the others drives: its people are
    read and each is checked against the other conditions with index probes (EXISTS), so
    "Summit Smith" reads Smith's 15,000 postings, not Summit's 70,000 as well."""
    units = _units(clauses, exact_only=exact_only)
    if not units:
        return []
    probes = [len(u.term_ids) if u.email is None else 1 for u in units]
    driver = min(
        range(len(units)),
        key=lambda d: units[d].people * (1 + sum(probes) - probes[d]),
    )
    params: dict[str, object] = {"live": True}
    where = ["p.live = :live"]
    if company is not None:
        where.append("p.company_key = :company")
        params["company"] = company

    def email(n: int, alias: str) -> str:
        return _starts(f"{alias}.email_key", clauses[n].text, f"e{n}", params)

    def listed(ids: list[int]) -> str:
        return ", ".join(str(int(i)) for i in ids)

    lead = units[driver]
    probe = "d.person_id" if lead.email is None else "p.person_id"  # checked before p is read
    if lead.email is None:
        source = (
            f"{tables.postings.name} d JOIN {tables.people.name} p ON p.person_id = d.person_id"
        )
        where.append(f"d.term_id IN ({listed(lead.term_ids)})")
    else:
        source = f"{tables.people.name} p"
        where.append(email(lead.email, "p"))
    for n, unit in enumerate(units):
        if n == driver:
            continue
        if unit.email is not None:
            where.append(email(unit.email, "p"))
        else:
            where.append(
                f"EXISTS (SELECT 1 FROM {tables.postings.name} y{n} WHERE y{n}.person_id = {probe} "
                f"AND y{n}.term_id IN ({listed(unit.term_ids)}))"
            )
    columns = ", ".join(f"p.{c}" for c in _COLUMNS)
    if company is None and all(u.email is None for u in units):
        # postings alone say who: their ids first (index-only scans), then those rows by
        # key. One join would let the planner scan people_index for the first thousand
        # of a common name's 15,000 people instead.
        where.remove("p.live = :live")  # postings are kept for live people only
        del params["live"]
        ids = conn.execute(
            text(
                f"SELECT d.person_id FROM {tables.postings.name} d WHERE {' AND '.join(where)} "
                f"LIMIT {MAX_RESULTS}"
            ),
            params,
        ).scalars()
        listed_ids = listed(list(ids))
        if not listed_ids:
            return []
        sql = f"SELECT {columns} FROM {tables.people.name} p WHERE p.person_id IN ({listed_ids})"
        return list(conn.execute(text(sql)).all())
    sql = f"SELECT {columns} FROM {source} WHERE {' AND '.join(where)} LIMIT {MAX_RESULTS}"
    return list(conn.execute(text(sql), params).all())


def _rank(parsed: ParsedQuery, clauses: list[_Clause], rows: list[tuple]) -> Sequence[PersonView]:
    """Best first: how well every query word is met (exact > email prefix > prefix > typo),
    then how close the whole name is to the query, then the name."""
    if not rows:
        return []
    zeros = repeat(0)
    scores, kept = [], []
    for row in rows:
        own = row[_WORDS].split()
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
            if clause.emailish and row[_EMAIL_KEY].startswith(clause.text):
                score = max(score, _EXACT if row[_EMAIL_KEY] == clause.text else _EMAIL_PREFIX)
            total += score
            if not score:
                break  # every query word must be met
        else:
            scores.append(total / len(clauses))
            kept.append(row)
    rows = kept
    if not rows:
        return []
    closeness = [0.0] * len(rows)
    names = [row[_NAME_KEY] for row in rows]
    for _, sc, index in process.extract(
        fold(parsed.text), names, scorer=fuzz.token_sort_ratio, limit=None
    ):
        closeness[index] = sc
    order = sorted(
        range(len(rows)), key=lambda k: (-scores[k], -closeness[k], names[k], rows[k][0])
    )
    return Ranked([rows[k] for k in order[:MAX_RESULTS]])


def _person(row) -> PersonView:  # type: ignore[no-untyped-def]
    """A card read from the index alone (not in anyone's list: the caller says). The shown
    columns come first, in PersonView's own field order."""
    return PersonView(*row[: len(_SHOWN)])
