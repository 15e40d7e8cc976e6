"""Our own people index in the state database: what search reads instead of the CRM.

`PeopleIndex` ties the pieces together: `write` builds and refreshes it from the CRM,
`query` searches it, `state` says whether it is ready, `words` folds and splits words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from sync_engine.crm.search import ParsedQuery
from sync_engine.crm.source import SageCrm
from sync_engine.index import query, write
from sync_engine.index.state import IndexBusy, IndexStatus, read_status
from sync_engine.index.write import BuildReport, RefreshReport
from sync_engine.model import PersonView
from sync_engine.store import utcnow

__all__ = [
    "BuildReport",
    "IndexBusy",
    "IndexStatus",
    "PeopleIndex",
    "RefreshReport",
]

log = logging.getLogger("crm_contacts.index")

_ASK = object()  # refresh(latest=...) not given: ask the CRM


class PeopleIndex:
    """The people index of one state database, fed from one CRM."""

    def __init__(self, db: Engine, crm: SageCrm) -> None:
        self.db = db
        self.crm = crm
        self._known: IndexStatus | None = None  # the state after this process's last refresh

    def status(self) -> IndexStatus:
        with self.db.connect() as conn:
            return read_status(conn)

    def build(
        self,
        *,
        progress: Callable[[int], None] | None = None,
        total: Callable[[int], None] | None = None,
        now: datetime | None = None,
    ) -> BuildReport:
        report = write.build(self.db, self.crm, progress=progress, total=total, now=now)
        self._known = self.status()
        return report

    def refresh(
        self,
        *,
        now: datetime | None = None,
        latest: datetime | object | None = _ASK,
        sweep: bool | None = None,
    ) -> RefreshReport:
        """Apply the CRM's changes (a sweep when due or asked for). Given the CRM's `latest`
        change time, a refresh that this process knows has nothing to do costs no query."""
        now = now or utcnow()
        known = self._known
        if (
            sweep is None
            and known is not None
            and isinstance(latest, datetime)
            and known.watermark is not None
            and latest <= known.watermark
            and known.swept_at is not None
            and now - known.swept_at < write.SWEEP_EVERY
        ):
            return RefreshReport()
        report = write.refresh(
            self.db,
            self.crm,
            now=now,
            sweep=sweep,
            latest=self.crm.latest_change() if latest is _ASK else latest,  # type: ignore[arg-type]
        )
        status = self.status()
        self._known = status if status.ready else None
        return report

    def search(self, parsed: ParsedQuery) -> list[PersonView] | None:
        """Ranked live people, or None while the index is not built (or being rebuilt)."""
        with self.db.connect() as conn:
            if not read_status(conn).ready:
                return None
            return query.search(conn, parsed)
