"""The clock's care of the people index, as a good citizen of the cycle.

Every cycle a refresh applies the CRM's changes (one statement when the CRM is quiet).
The long jobs — the first build (2–3 min at 1,000,000 people) and the hourly sweep for
hard deletes (15–18 s) — run on a thread of their own when the index is big, so that
cycle's syncs do not wait for them; a small CRM's build or sweep takes milliseconds and
runs in line. A failed build is retried after RETRY_BUILD, not every cycle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sync_engine.crm.source import CrmError
from sync_engine.index import SWEEP_EVERY, BuildStopped, IndexBusy, PeopleIndex, RefreshReport
from sync_engine.store import StoreError

log = logging.getLogger("crm_contacts.index")


class IndexKeeper:
    """Builds, refreshes and sweeps one process's people index from the clock."""

    IN_LINE_MAX = 10_000  # people: a build or sweep this small runs inside the cycle
    RETRY_BUILD = timedelta(minutes=15)

    def __init__(
        self,
        index: PeopleIndex,
        *,
        now: Callable[[], datetime],
        stopping: Callable[[], bool],
    ) -> None:
        self.index = index
        self.now = now
        self.stopping = stopping
        self._job: threading.Thread | None = None
        self._build_failed_at: datetime | None = None

    @property
    def busy(self) -> bool:
        """A build or sweep of this process is running on its own thread."""
        return self._job is not None and self._job.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the running build or sweep (tests; a stopping process)."""
        if self._job is not None:
            self._job.join(timeout)

    def tick(self, latest: datetime | None) -> RefreshReport | None:
        """This cycle's index work; None when a build started or another is running. A
        failure is logged and leaves the syncs to run."""
        try:
            return self._tick(latest)
        except IndexBusy:
            return None
        except Exception as exc:
            _failed("people index refresh failed", "index_refresh_failed", exc)
            return None

    def _tick(self, latest: datetime | None) -> RefreshReport | None:
        status = self.index.status()
        if not status.ready:
            if status.building or self.busy or self._waiting_to_retry():
                return None
            log.info("building the people index", extra={"event": "index_build"})
            if self.index.crm.count_live_people() <= self.IN_LINE_MAX:
                self._build()
            else:
                self._start(self._build, "build")
            return None
        now = self.now()
        sweep_due = status.swept_at is None or now - status.swept_at >= SWEEP_EVERY
        if sweep_due and status.people > self.IN_LINE_MAX:
            if not self.busy:
                self._start(self._sweep, "sweep")
            return self.index.refresh(now=now, latest=latest, sweep=False)
        return self.index.refresh(now=now, latest=latest, sweep=None if not self.busy else False)

    def _waiting_to_retry(self) -> bool:
        failed = self._build_failed_at
        return failed is not None and self.now() - failed < self.RETRY_BUILD

    def _build(self) -> None:
        try:
            self.index.build(now=self.now(), stopping=self.stopping)
            self._build_failed_at = None
        except (IndexBusy, BuildStopped):
            pass
        except Exception as exc:
            self._build_failed_at = self.now()
            _failed(
                f"people index build failed; the next try in {self.RETRY_BUILD}",
                "index_build_failed",
                exc,
            )

    def _sweep(self) -> None:
        try:
            self.index.refresh(now=self.now(), sweep=True)
        except Exception as exc:
            _failed("people index sweep failed", "index_refresh_failed", exc)

    def _start(self, job: Callable[[], None], name: str) -> None:
        self._job = threading.Thread(target=job, name=f"people-index-{name}", daemon=True)
        self._job.start()


def _failed(message: str, event: str, exc: Exception) -> None:
    known = isinstance(exc, CrmError | StoreError)
    log.error(message, extra={"event": event, "error": str(exc) if known else type(exc).__name__})
