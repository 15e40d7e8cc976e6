"""The clock's step that keeps the standing rules current (DESIGN rule 11).

Every cycle, from the CRM's change detection: when the CRM's latest change is past the
rules' watermark, the owners of the people whose Person or Company row changed are read
(two statements, whatever the number of salespeople) and each list gains the people a
rule now brings and loses those it no longer does. A rule just turned on, or not
evaluated in full for a day (which also catches rows deleted from the database, which
leave no change time), is evaluated in full: one CRM statement per rule kind for every
such rule together, never one per salesperson. An idle cycle costs one state statement
and nothing in the CRM. A full evaluation the CRM answers with nobody at all proves
nothing (an outage, an empty view, a connection to the wrong database): it takes no one
out of any list, and says so in the log (`rules_unproven`).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sync_engine.crm import ownership
from sync_engine.crm.source import SageCrm
from sync_engine.standing import state
from sync_engine.standing.rules import Member, RuleChanges, RuleOn, changes, members
from sync_engine.store import Store, utcnow

log = logging.getLogger("crm_contacts.rules")

# A rule is evaluated in full this often, besides following the CRM's changes; at most
# this many salespeople's rules a cycle (rules just turned on always go at once), so a
# big team's daily evaluation is spread over a few cycles instead of holding up one.
FULL_EVERY = timedelta(hours=24)
DAILY_USERS_PER_CYCLE = 50
ASK = object()  # keep(latest=...) not given: ask the CRM


@dataclass
class KeepReport:
    """What one keep did: for the clock's log, the CLI and the benchmark."""

    evaluated: int = 0  # rules evaluated in full
    changed: int = 0  # people whose owners changed in the CRM
    crm_queries: int = 0
    joined: Counter = field(default_factory=Counter)  # (user id, kind) -> people who joined
    left: Counter = field(default_factory=Counter)  # user id -> people who left
    # user id -> people kept because the CRM answered their rule with nobody at all
    unproven: Counter = field(default_factory=Counter)

    def took(self, done: RuleChanges) -> None:
        for join in done.joins:
            self.joined[(join.user_id, join.kind)] += 1
        for leave in done.leaves:
            self.left[leave.user_id] += 1


class Keeper:
    """Keeps one state store's rules from one CRM, remembering what this process last saw:
    a cycle in which the CRM did not change costs no statement at all (the rules' state
    is looked at again every RECHECK, for rules turned on elsewhere whose first
    evaluation failed, and for the daily full evaluation)."""

    RECHECK = timedelta(minutes=5)

    def __init__(self, store: Store, crm: SageCrm) -> None:
        self.store, self.crm = store, crm
        self._seen: tuple[datetime | None, datetime] | None = None  # (CRM latest, when)

    def keep(
        self,
        *,
        latest: datetime | object | None = ASK,
        now: datetime | None = None,
        full_every: timedelta = FULL_EVERY,
    ) -> KeepReport:
        """Bring every rule's people up to date; `latest` is the CRM's latest change time
        when the caller already has it (the clock reads it once per cycle)."""
        now = now or utcnow()
        if latest is ASK:
            latest = self.crm.latest_change()
        assert latest is None or isinstance(latest, datetime)
        seen = self._seen
        if seen is not None and seen[0] == latest and now - seen[1] < self.RECHECK:
            return KeepReport()  # nothing changed in the CRM since this process last looked
        report = keep(self.store, self.crm, latest=latest, now=now, full_every=full_every)
        # after full evaluations more may be due (a big team's daily one): look next cycle
        self._seen = None if report.evaluated else (latest, now)
        return report

    def forget(self) -> None:
        """Look at the rules' state next time (a rule was turned on or off here)."""
        self._seen = None


def keep(
    store: Store,
    crm: SageCrm,
    *,
    latest: datetime | object | None = ASK,
    now: datetime | None = None,
    full_every: timedelta = FULL_EVERY,
) -> KeepReport:
    """Bring every rule's people up to date; `latest` is the CRM's latest change time
    when the caller already has it. Idle (nothing on, nothing changed, nothing due):
    one state statement."""
    now = now or utcnow()
    report = KeepReport()
    cutoff = now - full_every
    with store.engine.connect() as conn:
        seen = state.status(conn, cutoff)
    if seen.rules == 0:
        return report
    if latest is ASK:
        latest = crm.latest_change()
    assert latest is None or isinstance(latest, datetime)
    moved = latest is not None and (seen.watermark is None or latest > seen.watermark)
    if not moved and not seen.due:
        return report
    with state.exclusive(store):
        with store.engine.connect() as conn:
            seen = state.status(conn, cutoff)  # another keeper may have done it meanwhile
        mark = seen.watermark
        if seen.evaluated == 0:
            mark = latest  # nothing follows the CRM yet: full evaluations read it as it is
        elif latest is not None and (mark is None or latest > mark):
            mark = _follow_changes(store, crm, mark, latest, now, report)
        if mark != seen.watermark:
            with store.engine.begin() as conn:
                state.set_watermark(conn, mark)
        if seen.due:
            _evaluate_in_full(store, crm, cutoff, now, report)
    return report


def _follow_changes(
    store: Store,
    crm: SageCrm,
    since: datetime | None,
    latest: datetime,
    now: datetime,
    report: KeepReport,
) -> datetime:
    """Apply the CRM changes after `since` (None: the CRM was empty when the rules were
    evaluated, so everyone is new) to every evaluated rule; the new watermark."""
    owners, newest = ownership.changed_since(crm, since)
    report.crm_queries += 1 if since is None else 2
    report.changed += len(owners)
    mark = max(latest, newest) if newest is not None else latest
    if not owners:
        return mark
    with store.engine.begin() as conn:
        rules = state.evaluated_rules(conn)
        before = state.members_of_people(conn, owners)
        after = members(rules, owners.values())
        found = state.entries(conn, _pairs(before ^ after))
        report.took(state.apply(conn, store, changes(before, after, found, owners)))
    return mark


def _evaluate_in_full(
    store: Store, crm: SageCrm, cutoff: datetime, now: datetime, report: KeepReport
) -> None:
    """Evaluate the due rules from the CRM as it is now: one statement per kind for all
    of them; then each user's list in a transaction of its own."""
    with store.engine.connect() as conn:
        due = state.due_rules(conn, cutoff, DAILY_USERS_PER_CYCLE)
    by_kind: dict[str, set[int]] = defaultdict(set)
    for rule in due:
        by_kind[rule.kind].add(rule.crm_user_id)
    owned: dict[tuple[str, int], set[int]] = defaultdict(set)
    answered: set[str] = set()  # the kinds the CRM answered with someone
    for kind, owners in sorted(by_kind.items()):
        report.crm_queries += -(-len(owners) // ownership.OWNER_CHUNK)
        for person_id, owner in ownership.owned_by(crm, kind, owners):
            owned[(kind, owner)].add(person_id)
            answered.add(kind)
    users: dict[int, list[RuleOn]] = defaultdict(list)
    for rule in due:
        users[rule.user_id].append(rule)
    for user_id, rules in sorted(users.items()):
        kinds = {r.kind for r in rules}
        with store.engine.begin() as conn:
            before = state.members_of_user(conn, user_id)
            # a kind the CRM answered with nobody at all (an outage, an empty view, a
            # connection to the wrong database) proves no one left: its members stay
            unproven = {m for m in before if m[1] in kinds and m[1] not in answered}
            if unproven:
                _cannot_prove(user_id, unproven, report)
            after = {m for m in before if m[1] not in kinds} | unproven
            for rule in rules:
                after.update(
                    (user_id, rule.kind, pid)
                    for pid in owned.get((rule.kind, rule.crm_user_id), ())
                )
            found = state.entries(conn, _pairs(before ^ after))
            planned = changes(before, after, found)
            if planned.leaves:  # say why each one left (reassigned, deleted, gone)
                who = ownership.ownership_of(crm, (lv.person_id for lv in planned.leaves))
                report.crm_queries += 1
                planned = changes(before, after, found, who)
            report.took(state.apply(conn, store, planned))
            state.mark_evaluated(conn, user_id, kinds, now)
        report.evaluated += len(rules)


def _cannot_prove(user_id: int, kept: set[Member], report: KeepReport) -> None:
    kinds = sorted({kind for _, kind, _ in kept})
    report.unproven[user_id] += len(kept)
    log.warning(
        "the CRM answered the rule %s with nobody at all; %d people stay in the list "
        "until it answers",
        " and ".join(kinds),
        len(kept),
        extra={"event": "rules_unproven", "user": user_id, "kinds": kinds, "kept": len(kept)},
    )


def _pairs(members_: set[Member]) -> set[tuple[int, int]]:
    return {(user_id, person_id) for user_id, _, person_id in members_}


def keep_logged(keeper: Keeper, **kwargs: object) -> KeepReport | None:
    """`Keeper.keep` for the clock and hand-run syncs: a failure is logged, never raised,
    so the syncs still run (the next cycle tries again)."""
    from sync_engine.config import ConfigError
    from sync_engine.crm.source import CrmError
    from sync_engine.store import StoreError

    try:
        report = keeper.keep(**kwargs)  # type: ignore[arg-type]
    except (CrmError, StoreError, ConfigError) as exc:
        log.error("standing rules not kept", extra={"event": "rules_failed", "error": str(exc)})
        return None
    except Exception as exc:
        log.exception(
            "standing rules not kept",
            extra={"event": "rules_failed", "error": type(exc).__name__},
        )
        return None
    if report.joined or report.left or report.evaluated:
        log.info(
            "standing rules kept",
            extra={
                "event": "rules",
                "evaluated": report.evaluated,
                "changed": report.changed,
                "joined": sum(report.joined.values()),
                "left": sum(report.left.values()),
            },
        )
    return report
