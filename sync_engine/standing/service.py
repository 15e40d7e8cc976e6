"""The standing rules' use cases, as `Engine.rules`: list, turn on, turn off, and the
hooks the engine's own add, remove, list and sync call. Callers render what comes back."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sync_engine.crm.source import SageCrm
from sync_engine.errors import EngineError
from sync_engine.model import CrmUser
from sync_engine.standing import keeper, state
from sync_engine.standing.keeper import KeepReport
from sync_engine.standing.rules import KINDS, UnknownKind, changes, parse_kind
from sync_engine.standing.state import RuleView
from sync_engine.state.rows import StoredUser
from sync_engine.store import Store, utcnow


class BadRule(EngineError):
    """Not a rule kind; the message lists the kinds."""


class RuleNotOn(EngineError):
    """`rules remove` of a rule that is not on."""


@dataclass(frozen=True)
class RuleAdded:
    kind: str
    new: bool  # False: it was already on
    people: int  # whom the rule brings now
    joined: int  # of them, new to My CRM Contacts


@dataclass(frozen=True)
class RuleRemoved:
    kind: str
    leaving: int  # the people only this rule brought: unlinked at the next sync
    staying: int  # picked by hand or brought by another rule


class StandingRules:
    """One state store's and one CRM's standing rules."""

    def __init__(self, store: Store, crm: SageCrm, stored: Callable[[CrmUser], StoredUser]) -> None:
        self.store = store
        self.crm = crm
        self._stored = stored
        self.keeper = keeper.Keeper(store, crm)

    @staticmethod
    def kind(text: str) -> str:
        try:
            return parse_kind(text)
        except UnknownKind as exc:
            raise BadRule(str(exc)) from None

    def of(self, user: CrmUser) -> list[RuleView]:
        """The user's rules, each with how many people it brings now."""
        with self.store.engine.connect() as conn:
            return state.user_rules(conn, self._stored(user).id)

    def add(self, user: CrmUser, kind: str, *, actor: str = "") -> RuleAdded:
        """Turn a rule on and evaluate it at once; the clock keeps it from then on.
        Safe to repeat: a rule already on is only reported."""
        kind = self.kind(kind)
        stored = self._stored(user)
        now = utcnow()
        with self.store.engine.begin() as conn:
            new = state.turn_on(conn, stored.id, kind, now)
            if new:
                what = f"turned on the rule {kind}: {KINDS[kind][0]}"
                self.store.record_events_in(
                    conn, stored.id, actor or user.email, [(None, "rule on", what, None)]
                )
        self.keeper.forget()
        report = self.keeper.keep(now=now)
        with self.store.engine.connect() as conn:
            rules = {r.kind: r for r in state.user_rules(conn, stored.id)}
        people = rules[kind].people if kind in rules else 0
        return RuleAdded(kind, new, people, report.joined[(stored.id, kind)])

    def remove(self, user: CrmUser, kind: str, *, actor: str = "") -> RuleRemoved:
        """Turn a rule off: the people only it brought leave the list (unlinked at the
        next sync, the contacts stay); the picked and other rules' people stay."""
        kind = self.kind(kind)
        stored = self._stored(user)
        with state.exclusive(self.store), self.store.engine.begin() as conn:
            before = state.members_of_user(conn, stored.id)
            if not state.turn_off(conn, stored.id, kind):
                on = [r.kind for r in state.user_rules(conn, stored.id)]
                raise RuleNotOn(
                    f"the rule {kind} is not on for {user.email} (on: {', '.join(on) or 'none'}); "
                    "nothing to turn off"
                )
            after = {m for m in before if m[1] != kind}
            found = state.entries(conn, {(u, p) for u, _, p in before ^ after})
            planned = changes(before, after, found, turned_off=True)
            who = actor or user.email
            done = state.apply(conn, self.store, planned, actor=who)
            what = f"turned off the rule {kind}; {len(done.leaves)} people only it brought leave"
            self.store.record_events_in(conn, stored.id, who, [(None, "rule off", what, None)])
        listed = sum(1 for entry in found.values() if entry.subscribed)
        return RuleRemoved(kind, len(done.leaves), listed - len(done.leaves))

    def keep(self, **kwargs: object) -> KeepReport | None:
        """Follow the CRM's changes now (the clock does it every cycle); never raises."""
        return keeper.keep_logged(self.keeper, **kwargs)

    # -- what the engine's own use cases call ------------------------------------------

    def picked(self, user_id: int, person_ids: Iterable[int], source: str) -> None:
        state.picked_by_hand(self.store, user_id, person_ids, source)

    def removed(self, user_id: int, person_ids: Iterable[int]) -> None:
        state.removed_by_hand(self.store, user_id, person_ids, utcnow())

    def sources(self, user_id: int) -> dict[int, tuple[str, ...]]:
        return state.sources(self.store, user_id)
