"""Our own people index in the state database: what search reads instead of the CRM.

`PeopleIndex` ties the pieces together: `write` builds and refreshes it from the CRM,
`query` searches it, `state` says whether it is ready, `words` folds and splits words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Engine

from sync_engine.crm.search import ParsedQuery
from sync_engine.crm.source import SageCrm
from sync_engine.index import query, write
from sync_engine.index.query import IndexedPerson
from sync_engine.index.state import IndexBusy, IndexStatus, read_status
from sync_engine.index.write import BuildReport, RefreshReport

__all__ = [
    "BuildReport",
    "IndexBusy",
    "IndexStatus",
    "IndexedPerson",
    "PeopleIndex",
    "RefreshReport",
]

log = logging.getLogger("crm_contacts.index")


class PeopleIndex:
    """The people index of one state database, fed from one CRM."""

    def __init__(self, db: Engine, crm: SageCrm) -> None:
        self.db = db
        self.crm = crm

    def status(self) -> IndexStatus:
        with self.db.connect() as conn:
            return read_status(conn)

    def build(
        self,
        *,
        progress: Callable[[int], None] | None = None,
        total: Callable[[int], None] | None = None,
    ) -> BuildReport:
        return write.build(self.db, self.crm, progress=progress, total=total)

    def refresh(self, **kwargs: object) -> RefreshReport:
        return write.refresh(self.db, self.crm, **kwargs)  # type: ignore[arg-type]

    def search(self, parsed: ParsedQuery) -> list[IndexedPerson] | None:
        """Ranked live people, or None while the index is not built (or being rebuilt)."""
        with self.db.connect() as conn:
            if not read_status(conn).ready:
                return None
            return query.search(conn, parsed)
