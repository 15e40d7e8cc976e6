"""Where Teams work runs: the same bounded pools as Slack's (`chat.work`), and the answer
to an invoke within Teams' time limit.

A message is answered at once (HTTP 200, as Slack's ack) and its card follows from a
pool. A card action or a message-extension query must be answered in its own HTTP
response, and Teams gives up after about 5 seconds: the work starts in a pool, its card
is the answer when it is ready within the budget; otherwise Teams gets "working on it"
and the finished card replaces the message later (or, for a query, the user types again).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

from chat.words import FULL, PROBLEM
from chat.work import PROMPT, REQUESTS, SLOW, WorkPool
from sync_engine.model import CrmUser
from sync_engine.service import EngineError
from teams.identity import Asker, Identities, NotMapped

log = logging.getLogger(__name__)

T = TypeVar("T")


class Refused(Exception):
    """The asker cannot have this (not mapped, bad input): `str()` is the one line to show."""


def run_for(identities: Identities, asker: Asker, work: Callable[[CrmUser], T]) -> T:
    """`work` for the CRM user behind `asker`; every problem becomes a Refused line."""
    try:
        user = identities.crm_user(asker)
        return work(user)
    except (NotMapped, EngineError) as exc:
        raise Refused(str(exc) or "That didn't work; please try again.") from None
    except Refused:
        raise
    except Exception:
        ref = uuid.uuid4().hex[:8]
        log.exception("Teams request failed (ref %s)", ref)
        raise Refused(PROBLEM.format(ref=ref)) from None


class Late(Generic[T]):
    """A piece of work whose answer is due within a budget, or delivered later."""

    def __init__(self, deliver_late: Callable[[T], None]) -> None:
        self._lock = threading.Lock()
        self._gave_up = False
        self.future: Future[T] = Future()
        self._deliver_late = deliver_late

    def finish(self, value: T) -> None:
        with self._lock:
            late = self._gave_up
            if not late:
                self.future.set_result(value)
        if late:
            try:
                self._deliver_late(value)
            except Exception:
                log.exception("could not deliver a late Teams answer")

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if not self._gave_up:
                self.future.set_exception(exc)

    async def answer(self, budget: float) -> T | None:
        """The value if it is ready within `budget` seconds; None once we gave up (the
        value then goes to `deliver_late`)."""
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self.future)), budget)
        except TimeoutError:
            with self._lock:
                if self.future.done():
                    return self.future.result()
                self._gave_up = True
            return None


def submit(job: Callable[[], None], *, slow: bool = False) -> bool:
    """Queue `job` in a bounded pool; False (one log line) when the pool is full."""
    pool: WorkPool = SLOW if slow else REQUESTS
    if pool.submit(job) is None:
        log.warning("the %s queue is full; a Teams request was refused", pool.name)
        return False
    return True


def later(job: Callable[[], None]) -> None:
    """A short job that must not wait behind others (telling someone the queue is full)."""
    PROMPT.submit(job)


__all__ = ["FULL", "Late", "Refused", "later", "run_for", "submit"]
