"""The problems an admin must hear about: a small registry of detectors.

A detector looks at one `Scene` (the engine's state, each fact read once and only when a
detector asks) and yields the problems open now. A problem has a kind, a key (what it is
about: `mailbox:42`, `graph`, `crm`), one line saying what is wrong, and the fix in the
words `check-mailbox`, `crm check` or the error itself already use. `crm-contacts status`
lists them and exits 1 while one is open; the clock posts a message when one starts and
when it clears (`alerts.py`). Adding one is a few lines:

    @detector("sage_rest_paused")
    def sage_rest_paused(scene: Scene) -> Iterator[Problem]:
        why = paused_reason(scene.engine.store)
        if why:
            yield Problem("sage_rest_paused", "sage_rest", f"Write-back is paused: {why}",
                          "Correct SAGE_REST_USER / SAGE_REST_PASSWORD, then run crm check.")

Nothing here writes; a detector that cannot look (the state database is down) is named
in `Findings.unknown`, so its open alerts are neither cleared nor repeated.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from sync_engine import tables as t
from sync_engine.crm.source import CrmError
from sync_engine.mailbox.base import MailboxAccessError, MailboxCredentialsError, MailboxError
from sync_engine.state.targets import TargetState
from sync_engine.store import utcnow
from sync_engine.write_back_state import write_back_paused

if TYPE_CHECKING:
    from sync_engine.schedule import CycleReport

log = logging.getLogger("crm_contacts.problems")

# The index may trail the CRM by this much (or three cycles, if longer) before it is stale.
INDEX_STALE_AFTER = timedelta(minutes=10)

SERVICES = {
    "graph": "Microsoft Entra ID / Graph",
    "ews": "Exchange (EWS)",
    "local": "the local mailbox store",
    "hybrid": "Exchange Online or Exchange Server",
}


def failure_kind(exc: BaseException) -> str:
    """What kind of failure stopped a sync, kept with the mailbox's state (alerts group by it)."""
    if isinstance(exc, MailboxCredentialsError):
        return "credentials"  # our own sign-in was refused: every mailbox of the target fails
    if isinstance(exc, MailboxAccessError):
        return "access"  # this mailbox: permission, impersonation, access policy, no mailbox
    if isinstance(exc, MailboxError):
        return "mailbox"
    if isinstance(exc, CrmError):
        return "crm"
    return "unexpected"


@dataclass(frozen=True)
class Problem:
    kind: str
    key: str
    summary: str  # one line: what is wrong
    fix: str  # what to do about it
    mailbox: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "mailbox": self.mailbox,
            "summary": self.summary,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class FailingMailbox:
    user_id: int
    email: str
    mailbox: str
    failures: int
    error: str
    kind: str | None


@dataclass(frozen=True)
class CrmLook:
    latest: datetime | None = None  # the CRM's latest change time (CRM clock)
    error: str | None = None  # why it could not be read


@dataclass
class Findings:
    problems: list[Problem] = field(default_factory=list)
    unknown: set[str] = field(default_factory=set)  # kinds whose detector could not look
    scene: Scene | None = None  # what they looked at (its facts stay read, for the gauges)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.problems:
            out[p.kind] = out.get(p.kind, 0) + 1
        return out


class Scene:
    """What the detectors look at, each fact read once. `cycle` is the clock's report of
    the cycle just run (its CRM look is reused); without one (`status`) the CRM is asked."""

    def __init__(self, engine: Any, now: datetime, cycle: CycleReport | None = None) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.now = now
        self.cycle = cycle

    def target_of(self, mailbox: FailingMailbox) -> str:
        """The target serving a mailbox: the configured backend, or in hybrid where the
        mailbox was placed (graph or ews; "hybrid" before it was ever placed)."""
        backend = str(self.settings.mailbox_backend)
        if backend != "hybrid":
            return backend
        placed = TargetState(self.engine.store.engine).placement(mailbox.mailbox)
        return placed.kind if placed is not None else backend

    @cached_property
    def failing(self) -> list[FailingMailbox]:
        """Every mailbox whose last sync failed (one query)."""
        u, m = t.users, t.mailbox_state
        query = (
            select(
                u.c.id,
                u.c.email,
                u.c.mailbox,
                m.c.consecutive_failures,
                m.c.last_error,
                m.c.last_error_kind,
            )
            .select_from(u.join(m, m.c.user_id == u.c.id))
            .where(m.c.last_status == "failed")
            .order_by(u.c.id)
        )
        with self.engine.store.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            FailingMailbox(r[0], r[1], r[2], int(r[3] or 0), r[4] or "the sync failed", r[5])
            for r in rows
        ]

    @cached_property
    def crm(self) -> CrmLook:
        cycle = self.cycle
        if cycle is not None and cycle.crm_error:
            return CrmLook(error=cycle.crm_error)
        if cycle is not None and cycle.error is None:
            return CrmLook(latest=cycle.crm_latest)
        try:
            return CrmLook(latest=self.engine.crm.latest_change())
        except CrmError as exc:
            return CrmLook(error=str(exc))

    @cached_property
    def index_lag(self) -> float | None:
        """Seconds of CRM changes the people index has not taken in (also while it is
        being built again); None when unknown: the CRM cannot be read, or the index was
        never built (search reads the CRM then)."""
        latest = self.crm.latest
        if latest is None:
            return None
        status = self.engine.index.status()
        if status.watermark is None:
            return None
        return index_lag(latest, status.watermark)


def index_lag(latest: datetime, watermark: datetime) -> float:
    """The CRM's latest change minus the latest change the index holds, in seconds (both
    in the CRM's clock, so no clock skew between servers enters)."""
    if (latest.tzinfo is None) != (watermark.tzinfo is None):
        latest, watermark = latest.replace(tzinfo=None), watermark.replace(tzinfo=None)
    return max(0.0, (latest - watermark).total_seconds())


Detector = Callable[[Scene], Iterable[Problem]]
DETECTORS: dict[str, Detector] = {}


def detector(kind: str) -> Callable[[Detector], Detector]:
    """Register a detector for problems of `kind` (one detector per kind)."""

    def register(fn: Detector) -> Detector:
        DETECTORS[kind] = fn
        return fn

    return register


def open_problems(
    engine: Any, *, now: datetime | None = None, cycle: CycleReport | None = None
) -> Findings:
    """Every problem open now, by asking each detector once."""
    scene = Scene(engine, now or utcnow(), cycle)
    findings = Findings(scene=scene)
    for kind, detect in DETECTORS.items():
        try:
            findings.problems.extend(detect(scene))
        except Exception as exc:
            findings.unknown.add(kind)
            log.warning(
                "could not look for %s problems (%s)",
                kind,
                type(exc).__name__,
                extra={"event": "problems_unknown", "kind": kind},
            )
    return findings


# -- the detectors ------------------------------------------------------------------------


def _check_mailbox(email: str) -> str:
    return f"`crm-contacts check-mailbox --as {email}` checks it again."


@detector("mailbox_failing")
def failing_mailboxes(scene: Scene) -> Iterator[Problem]:
    """A mailbox that failed ALERT_AFTER_FAILURES syncs in a row (refused sign-ins and
    access have alerts of their own)."""
    limit = scene.settings.alert_after_failures
    for m in scene.failing:
        if m.failures >= limit and m.kind not in ("credentials", "access"):
            yield Problem(
                "mailbox_failing",
                f"mailbox:{m.user_id}",
                f"{m.mailbox} has failed {m.failures} syncs in a row: {m.error}",
                f"{_check_mailbox(m.email)} It says what is wrong and how to fix it; the "
                "clock keeps retrying (at most hourly) and says here when it syncs again.",
                mailbox=m.mailbox,
            )


@detector("credentials")
def refused_sign_in(scene: Scene) -> Iterator[Problem]:
    """The target refused our own sign-in (Graph 401 with its AADSTS code, an EWS login):
    one problem per target, however many mailboxes it stops."""
    by_target: dict[str, list[FailingMailbox]] = {}
    for m in scene.failing:
        if m.kind == "credentials":
            by_target.setdefault(scene.target_of(m), []).append(m)
    for target, mailboxes in by_target.items():
        first = mailboxes[0]
        code = aadsts_code(first.error)
        count = len(mailboxes)
        yield Problem(
            "credentials",
            target,
            f"{SERVICES.get(target, target)} refused our sign-in"
            + (f" ({code})" if code else "")
            + f": {count} mailbox{'es' if count != 1 else ''} cannot be synced",
            f"{first.error} {_check_mailbox(first.email)}",
        )


@detector("access")
def refused_access(scene: Scene) -> Iterator[Problem]:
    """Permission to one mailbox refused (Graph 403 or an access policy, EWS impersonation
    denied, no such mailbox): said at the first failure, an admin has to act."""
    for m in scene.failing:
        if m.kind == "access":
            target = scene.target_of(m)
            yield Problem(
                "access",
                f"mailbox:{m.user_id}",
                f"{SERVICES.get(target, target)} refused access to {m.mailbox}",
                f"{m.error} {_check_mailbox(m.email)}",
                mailbox=m.mailbox,
            )


@detector("crm_unreachable")
def crm_unreachable(scene: Scene) -> Iterator[Problem]:
    error = scene.crm.error
    if error:
        yield Problem(
            "crm_unreachable",
            "crm",
            f"The CRM database cannot be read, so no mailbox is synced: {error}",
            "`crm-contacts crm check` says what is wrong (server down, login, network); "
            "the clock tries again every cycle.",
        )


@detector("index_stale")
def index_stale(scene: Scene) -> Iterator[Problem]:
    lag = scene.index_lag
    interval = timedelta(seconds=scene.settings.sync_interval_seconds)
    limit = max(INDEX_STALE_AFTER, 3 * interval)
    if lag is not None and lag > limit.total_seconds():
        yield Problem(
            "index_stale",
            "index",
            f"The people index is {lag / 60:.0f} minutes behind the CRM: search shows old "
            "values and misses new people",
            "The clock refreshes it every cycle: look for index_refresh_failed in its log, "
            "run `crm-contacts index refresh` to see the error, or `crm-contacts index "
            "build` to build it again.",
        )


@detector("sage_rest_paused")
def sage_rest_paused(scene: Scene) -> Iterator[Problem]:
    """Sage refused our REST login: write-back is paused (issue 19, write_back_state.py)."""
    why = write_back_paused(scene.engine.store)
    if why:
        yield Problem(
            "sage_rest_paused",
            "sage_rest",
            f"Outlook edits are not written to Sage CRM: {why}",
            "Correct the password in Sage (Administration | Users) or SAGE_REST_USER / "
            "SAGE_REST_PASSWORD, then run `crm-contacts crm check`.",
        )


_AADSTS = re.compile(r"\bAADSTS\d+\b")


def aadsts_code(text: str) -> str | None:
    """The Microsoft Entra error code (AADSTS7000222 …) named in an error, if any."""
    found = _AADSTS.search(text or "")
    return found.group(0) if found else None
