"""Where chat work runs after the ack: bounded pools, apart from the ack's own thread.

Why: Slack wants every request answered within 3 seconds (SLACK_UX 1). The ack is
computed in the thread that received the request (Bolt's process_before_response), and
everything that talks to Slack, the CRM or a mailbox runs here. Nothing in these pools
can delay an ack: a backlog makes work wait, the user is told so, and past a bound the
request is refused with a "try again" rather than queued for ever.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from chat.words import BUSY, JOINED, QUEUED

if TYPE_CHECKING:
    from sync_engine.model import CrmUser, SyncResult
    from sync_engine.service import Engine

log = logging.getLogger(__name__)

# A job still waiting this long after its ack gets its "you are queued" note: a wait
# shorter than this is not worth a message.
NOTICE_AFTER = 1.0


class _Ticket:
    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started = False


class WorkPool:
    """A thread pool that says where a job stands: started, queued behind N, or refused."""

    def __init__(self, name: str, workers: int, max_waiting: int) -> None:
        self.name = name
        self.workers = workers
        self.max_waiting = max_waiting
        self._lock = threading.Lock()
        self._running = 0
        self._waiting = 0
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    def submit(
        self, job: Callable[[], None], on_wait: Callable[[int], None] | None = None
    ) -> int | None:
        """Queue `job`; the number of jobs waiting ahead of it (0: it starts now), or None
        when the queue is full and the job was not taken. `on_wait(ahead)` is called (from
        another thread) if the job has not started NOTICE_AFTER seconds from now."""
        ticket = _Ticket()
        with self._lock:
            ahead = max(0, self._running + self._waiting - self.workers + 1)
            if ahead > self.max_waiting:
                return None
            self._waiting += 1
        if ahead and on_wait is not None:
            _WATCH.add(ticket, lambda: on_wait(ahead))
        self._executor.submit(self._run, job, ticket)
        return ahead

    def _run(self, job: Callable[[], None], ticket: _Ticket) -> None:
        with self._lock:
            ticket.started = True
            self._waiting -= 1
            self._running += 1
        try:
            job()
        except Exception:  # jobs report their own problems; this only keeps the pool alive
            log.exception("a job in the %s pool failed", self.name)
        finally:
            with self._lock:
                self._running -= 1

    def busy(self) -> tuple[int, int]:
        """(running, waiting), for logs and tests."""
        with self._lock:
            return self._running, self._waiting


class _Watch:
    """One thread that fires the "still queued" notes of jobs that have not started."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, _Ticket, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, ticket: _Ticket, note: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(
                self._due, (time.monotonic() + NOTICE_AFTER, next(self._seq), ticket, note)
            )
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="crm-contacts-watch", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._cond.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, ticket, note = heapq.heappop(self._due)
            if not ticket.started:
                PROMPT.submit(lambda t=ticket, n=note: None if t.started else n())


_WATCH = _Watch()

# Requests a user waits for (searches, adds, cards, identity look-ups). Threads mostly
# wait on I/O (SQLite, Slack), so a few more than the cores.
REQUESTS = WorkPool("crm-contacts-work", workers=8, max_waiting=200)
# Syncs and group adds: long, and never allowed to hold up the quick requests above.
SLOW = WorkPool("crm-contacts-slow", workers=4, max_waiting=100)
# Short Slack calls that cannot wait behind work: "you are queued" notes, and views.open
# (a trigger_id expires 3 seconds after the click).
PROMPT = WorkPool("crm-contacts-prompt", workers=2, max_waiting=200)


class Coalescer:
    """At most one run going and one waiting per key (a mailbox's syncs).

    Fifty clicks on *Sync now* ask for the same thing: the first runs, the next waits to
    run once more afterwards (the list may have changed meanwhile), the rest join that
    waiting run instead of each running a sync of their own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[object, bool] = {}  # key -> a run is waiting behind the current one

    def claim(self, key: object) -> str:
        """ "run" (go ahead), "queued" (runs after the current one) or "joined"."""
        with self._lock:
            if key not in self._state:
                self._state[key] = False
                return "run"
            if not self._state[key]:
                self._state[key] = True
                return "queued"
            return "joined"

    def again(self, key: object) -> bool:
        """After a run: True when a waiting run takes its place (the caller runs it)."""
        with self._lock:
            if self._state.get(key):
                self._state[key] = False
                return True
            self._state.pop(key, None)
            return False

    def release(self, key: object) -> None:
        """A run failed: forget the key, so the next click starts afresh."""
        with self._lock:
            self._state.pop(key, None)


SYNCS = Coalescer()


def sync_now(
    engine: Engine,
    user: CrmUser,
    say: Callable[[str], None],
    show: Callable[[SyncResult], None],
) -> None:
    """A *Sync now* from either front end: repeated clicks coalesce (`SYNCS`): one sync
    runs, at most one more waits, every other click is told so (`say`); a sync another
    process holds is said as busy, never as a failure (SLACK_UX 1); `show` posts a result."""
    claim = SYNCS.claim(user.id)
    if claim != "run":
        say(QUEUED if claim == "queued" else JOINED)
        return
    while True:
        try:
            result = engine.sync(user)
        except BaseException:
            SYNCS.release(user.id)  # the next click starts afresh; the caller reports this one
            raise
        if result.busy:
            say(BUSY)
        else:
            show(result)
        if not SYNCS.again(user.id):
            return
