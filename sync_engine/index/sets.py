"""The index's two sets of tables: search reads the live one, a rebuild fills the other.

`index_state.live_set` says which is live; a finished build switches it in the same
transaction that marks the index ready, so a search sees the old index or the new one,
never a half-built one, and a build killed half-way leaves the old one in place.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table

from sync_engine import tables as t


@dataclass(frozen=True)
class TableSet:
    number: int
    people: Table
    terms: Table
    keys: Table
    postings: Table

    @property
    def names(self) -> tuple[str, str, str, str]:
        """Every table, the ones pointing at others first (for clearing)."""
        return (self.postings.name, self.keys.name, self.terms.name, self.people.name)


SETS = (
    TableSet(0, t.people_index, t.index_terms, t.index_term_keys, t.index_postings),
    TableSet(1, t.people_index_b, t.index_terms_b, t.index_term_keys_b, t.index_postings_b),
)
