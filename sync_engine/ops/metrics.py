"""Prometheus metrics: what a dashboard and an alert rule read, under `crm_contacts_`.

Labels come from small closed sets (target, outcome, kind, service, front end): a mailbox
is counted, never named, so nothing personal (no email, no name) ever reaches a label.
Each process exposes its own registry: the web process at `GET /metrics`, the clock at
`METRICS_PORT`; docs/operations.md lists every name and what moves it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from sync_engine.crm.writer import CrmUnavailable, CrmWriter, CrmWriteResult

if TYPE_CHECKING:
    from sync_engine.model import SyncResult

TARGETS = ("local", "ews", "graph")
SYNC_OUTCOMES = ("ok", "partial", "failed", "busy")
WRITE_BACK_OUTCOMES = ("written", "refused", "unavailable")
THROTTLED_SERVICES = ("graph", "ews", "sage_rest")

SYNCS = Counter(
    "crm_contacts_syncs",
    "Mailbox syncs (dry runs not counted) by target and outcome: ok, partial (some people "
    "failed), failed (the mailbox could not be synced), busy (another sync held it).",
    ["target", "outcome"],
)
MAILBOX_REQUESTS = Counter(
    "crm_contacts_mailbox_requests",
    "Round trips to mailboxes by target and kind: read (listing pages, look-ups) or write "
    "(write batches).",
    ["target", "kind"],
)
THROTTLE_WAIT = Counter(
    "crm_contacts_throttle_wait_seconds",
    "Seconds slept because a service throttled us or asked to wait (Graph 429/503/504 "
    "Retry-After, EWS ErrorServerBusy, Sage REST 429/503).",
    ["service"],
)
WRITE_BACKS = Counter(
    "crm_contacts_write_backs",
    "Outlook edits sent to the CRM, per person, by outcome: written, refused (the CRM "
    "would not take that person's edit), unavailable (the CRM took no write this run).",
    ["outcome"],
)
CYCLE_SECONDS = Histogram(
    "crm_contacts_cycle_duration_seconds",
    "How long one scheduler cycle took (index refresh and the syncs it ran).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
LAST_CYCLE = Gauge(
    "crm_contacts_last_cycle_timestamp_seconds",
    "Unix time the last scheduler cycle of this process ended.",
)
MAILBOXES_DUE = Gauge("crm_contacts_mailboxes_due", "Mailboxes with work found by the last cycle.")
OLDEST_DUE = Gauge(
    "crm_contacts_oldest_due_age_seconds",
    "How long the longest-waiting mailbox with work had been due when the last cycle began "
    "(0 when none was due).",
)
MAILBOXES_FAILING = Gauge("crm_contacts_mailboxes_failing", "Mailboxes whose last sync failed.")
INDEX_LAG = Gauge(
    "crm_contacts_index_lag_seconds",
    "How far the people index is behind the CRM after the last cycle: the CRM's latest "
    "change time minus the latest change the index holds (0 when caught up).",
)
PROBLEMS_OPEN = Gauge(
    "crm_contacts_problems_open",
    "Open problems an admin is alerted to, by kind (as `crm-contacts status` lists them).",
    ["kind"],
)
ACK_SECONDS = Histogram(
    "crm_contacts_chat_ack_seconds",
    "Time from a chat request's arrival to our answer (Slack needs it within 3 s).",
    ["front_end"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10),
)

# Every series of a closed label set starts at 0, so rate() and increase() see the
# first event instead of a series appearing from nowhere.
for _target in TARGETS:
    for _outcome in SYNC_OUTCOMES:
        SYNCS.labels(_target, _outcome)
    for _kind in ("read", "write"):
        MAILBOX_REQUESTS.labels(_target, _kind)
for _service in THROTTLED_SERVICES:
    THROTTLE_WAIT.labels(_service)
for _outcome in WRITE_BACK_OUTCOMES:
    WRITE_BACKS.labels(_outcome)
ACK_SECONDS.labels("slack")


def target_name(mailbox: object, backend: str) -> str:
    """The target a mailbox is served by: the Mailbox protocol's `kind` (hybrid serves
    each mailbox where it lives), else the configured backend."""
    return str(getattr(mailbox, "kind", None) or backend)


def record_sync(target: str, result: SyncResult) -> None:
    """One mailbox sync: its outcome and its round trips."""
    if result.dry_run:
        return
    if result.busy:
        outcome = "busy"
    elif result.error:
        outcome = "failed"
    else:
        outcome = "partial" if result.failed else "ok"
    SYNCS.labels(target, outcome).inc()
    writes = max(0, result.write_requests)
    MAILBOX_REQUESTS.labels(target, "read").inc(max(0, result.requests - writes))
    MAILBOX_REQUESTS.labels(target, "write").inc(writes)


def throttle_waited(service: str, seconds: float) -> None:
    """A service asked us to wait, and we are about to sleep `seconds`."""
    if seconds > 0:
        THROTTLE_WAIT.labels(service).inc(seconds)


def throttled_sleep(service: str, sleep: Callable[[float], None]) -> Callable[[float], None]:
    """`sleep` that counts its seconds as throttling of `service` (for retry libraries
    that only sleep when the service said so)."""

    def counted(seconds: float) -> None:
        throttle_waited(service, seconds)
        sleep(seconds)

    return counted


class CountingWriter:
    """A `CrmWriter` that counts each person's write-back by outcome, around the real one."""

    def __init__(self, inner: CrmWriter) -> None:
        self.inner = inner

    def describe(self) -> str:
        return self.inner.describe()

    def write(self, person_id: int, changes: Mapping[str, str]) -> CrmWriteResult:
        try:
            result = self.inner.write(person_id, changes)
        except CrmUnavailable:
            WRITE_BACKS.labels("unavailable").inc()
            raise
        WRITE_BACKS.labels("written" if result.ok else "refused").inc()
        return result

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:  # whatever else a writer offers (pause state)
        return getattr(self.inner, name)


def counting(writer: CrmWriter | None) -> CrmWriter | None:
    return None if writer is None else CountingWriter(writer)


@contextmanager
def ack_timer(front_end: str) -> Iterator[None]:
    """Time one chat request from its arrival to our answer."""
    began = time.monotonic()
    try:
        yield
    finally:
        ACK_SECONDS.labels(front_end).observe(time.monotonic() - began)


def record_cycle(
    seconds: float,
    ended: datetime,
    *,
    due: int,
    oldest_due_age: float,
    failing: int | None,
    index_lag: float | None,
) -> None:
    """One scheduler cycle; `failing` and `index_lag` are left as they were when unknown."""
    CYCLE_SECONDS.observe(seconds)
    LAST_CYCLE.set(ended.timestamp())
    MAILBOXES_DUE.set(due)
    OLDEST_DUE.set(max(0.0, oldest_due_age))
    if failing is not None:
        MAILBOXES_FAILING.set(failing)
    if index_lag is not None:
        INDEX_LAG.set(max(0.0, index_lag))


def record_problems(kinds: Mapping[str, int], known: tuple[str, ...]) -> None:
    """How many problems of each kind are open (every known kind, 0 when none)."""
    for kind in {*known, *kinds}:
        PROBLEMS_OPEN.labels(kind).set(kinds.get(kind, 0))


def exposition() -> tuple[bytes, str]:
    """The body and content type of `GET /metrics` (Prometheus text format)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
