"""Our own people index in the state database: what search reads instead of the CRM.

`PeopleIndex` ties the pieces together: `build` fills it from the CRM, `refresh` keeps it
fresh, `query` searches it, `state` says whether it is ready, `words` folds and splits.

Search is never staler than the CRM: before answering, a search whose process last
looked more than LOOK_EVERY seconds ago asks the CRM for its latest change time (one
statement over indexed UpdatedDate columns) and, when the CRM changed after the index's
watermark, applies those changes first. The clock still refreshes every cycle and
sweeps for hard deletes; search never sweeps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from sync_engine.crm.search import ParsedQuery
from sync_engine.crm.source import CrmError, SageCrm
from sync_engine.index import build as build_
from sync_engine.index import query
from sync_engine.index import refresh as refresh_
from sync_engine.index.build import BuildReport, BuildStopped
from sync_engine.index.refresh import SWEEP_EVERY, RefreshReport
from sync_engine.index.sets import SETS
from sync_engine.index.state import IndexBusy, IndexStatus, build_running, read_status
from sync_engine.model import PersonView
from sync_engine.store import utcnow

__all__ = [
    "SWEEP_EVERY",
    "BuildReport",
    "BuildStopped",
    "IndexBusy",
    "IndexStatus",
    "PeopleIndex",
    "RefreshReport",
]

log = logging.getLogger("crm_contacts.index")

_ASK = object()  # refresh(latest=...) not given: ask the CRM


class PeopleIndex:
    """The people index of one state database, fed from one CRM."""

    # How long a search trusts this process's last look at the CRM: a person typing in
    # the picker costs the CRM one statement every few seconds, not one per keystroke.
    LOOK_EVERY = 2.0

    def __init__(
        self,
        db: Engine,
        crm: SageCrm,
        home: Path,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.crm = crm
        self.home = home  # where SQLite's lock files live
        self.monotonic = monotonic
        self._known: IndexStatus | None = None  # the state after this process's last refresh
        self._looked: float | None = None  # when a search last asked the CRM (monotonic)

    def status(self) -> IndexStatus:
        with self.db.connect() as conn:
            status = read_status(conn)
        if status.building_since is None:
            return status
        # the row says a build started; whether it still runs is its lock's to say
        return replace(status, building=build_running(self.db, self.home))

    def build(
        self,
        *,
        progress: Callable[[int], None] | None = None,
        total: Callable[[int], None] | None = None,
        now: datetime | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> BuildReport:
        report = build_.build(
            self.db,
            self.crm,
            self.home,
            progress=progress,
            total=total,
            now=now,
            stopping=stopping,
        )
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
            sweep is not True
            and known is not None
            and isinstance(latest, datetime)
            and known.watermark is not None
            and latest <= known.watermark
            and (
                sweep is False
                or (known.swept_at is not None and now - known.swept_at < SWEEP_EVERY)
            )
        ):
            return RefreshReport()
        report = refresh_.refresh(
            self.db,
            self.crm,
            now=now,
            sweep=sweep,
            latest=self.crm.latest_change() if latest is _ASK else latest,  # type: ignore[arg-type]
        )
        with self.db.connect() as conn:
            status = read_status(conn)
        self._known = status if status.ready else None
        return report

    def follow(self) -> RefreshReport:
        """Apply the CRM's changes now, without a sweep: after our own writes to the CRM
        (`crm add-person`, …), so every process's next search has them. A failure is
        logged: the write stands, and the next search's look at the CRM catches up."""
        try:
            return self.refresh(sweep=False)
        except (CrmError, SQLAlchemyError) as exc:
            log.warning(
                "the people index could not take the CRM's changes now: %s",
                exc,
                extra={"event": "index_catch_up_failed", "error": str(exc)},
            )
            return RefreshReport(skipped=str(exc))

    def search(self, parsed: ParsedQuery) -> Sequence[PersonView] | None:
        """Ranked live people, or None while the index is not built (search the CRM).

        The CRM's changes since the index's watermark are applied first when this process
        last looked more than LOOK_EVERY seconds ago."""
        with self.db.connect() as conn:
            status = read_status(conn)
            if status.ready and self._look_due() and self._catch_up(status):
                conn.rollback()  # a snapshot that has the changes (SQLite)
                status = read_status(conn)
            if not status.ready:
                return None
            return query.search(conn, SETS[status.live_set], parsed)

    def _look_due(self) -> bool:
        return self._looked is None or self.monotonic() - self._looked >= self.LOOK_EVERY

    def _catch_up(self, status: IndexStatus) -> bool:
        """One look at the CRM's latest change time, and its changes applied if there are
        any (True then). A failure is logged and the search answers from the index as it is."""
        self._looked = self.monotonic()
        try:
            latest = self.crm.latest_change()
            if latest is None or (status.watermark is not None and latest <= status.watermark):
                return False
            refresh_.refresh(self.db, self.crm, sweep=False, latest=latest)
            return True
        except (CrmError, SQLAlchemyError) as exc:
            log.warning(
                "search could not bring the people index up to date: %s",
                exc,
                extra={"event": "index_catch_up_failed", "error": str(exc)},
            )
            return False
