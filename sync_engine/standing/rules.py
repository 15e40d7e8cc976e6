"""Standing rules (DESIGN rule 11), the pure part: whom a salesperson's rules bring, and
how the lists change when who-owns-whom changes in the CRM.

The clock hands over plain values (the rules that are on, who owns the people that
changed, what each list holds now) and gets back the members to store and the people who
join or leave a list, with the reason each one's audit trail gives. No I/O here, so every
case is tested on plain values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

ACCOUNT_MANAGER = "account-manager"
COMPANY_MANAGER = "company-manager"

# kind -> (what the rule keeps, why a person is in the list because of it)
KINDS: dict[str, tuple[str, str]] = {
    ACCOUNT_MANAGER: (
        "everyone whose Account Manager you are",
        "you're their Account Manager",
    ),
    COMPANY_MANAGER: (
        "everyone at a company whose Account Manager you are",
        "you're their company's Account Manager",
    ),
}

PICKED = "picked"  # the source of a person added by hand
RULE_PREFIX = "rule:"


class UnknownKind(ValueError):
    """Not one of KINDS; the message lists them."""


def kinds_listed() -> str:
    return " or ".join(f"{kind} ({what})" for kind, (what, _) in KINDS.items())


def parse_kind(text: str) -> str:
    """A rule kind as typed ('Account-Manager', 'account_manager' too); UnknownKind else."""
    kind = str(text or "").strip().lower().replace("_", "-").replace(" ", "-")
    if kind not in KINDS:
        shown = str(text or "").strip()[:40] or "(nothing)"
        raise UnknownKind(f"'{shown}' is not a rule kind; choose {kinds_listed()}")
    return kind


def rule_source(kind: str) -> str:
    return RULE_PREFIX + kind


def by_rule_only(source: str) -> bool:
    """Whether a subscription's source says a rule brought it (not picked by hand)."""
    return source.startswith(RULE_PREFIX)


def describe_sources(sources: Iterable[str]) -> str:
    """Why a person is in My CRM Contacts, in words: 'picked by you', a rule's reason."""
    words = []
    for source in sources:
        if source == PICKED:
            words.append("picked by you")
        elif source.startswith(RULE_PREFIX) and source[len(RULE_PREFIX) :] in KINDS:
            words.append(KINDS[source[len(RULE_PREFIX) :]][1])
    return "; ".join(words)


# -- values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleOn:
    """One salesperson's rule: the state user, their Sage User_UserId, the kind."""

    user_id: int
    crm_user_id: int
    kind: str


# (state user id, kind, person id): one person a rule brings to one list
Member = tuple[int, str, int]


@dataclass(frozen=True)
class Owners:
    """Who owns one person in the CRM now (Sage's Account Manager columns)."""

    person_id: int
    name: str = ""
    account_manager: int | None = None  # Pers_PrimaryUserId
    company_manager: int | None = None  # Comp_PrimaryUserId of their live company
    live: bool = True

    def owner(self, kind: str) -> int | None:
        if not self.live:
            return None
        return self.account_manager if kind == ACCOUNT_MANAGER else self.company_manager


@dataclass(frozen=True)
class Entry:
    """Where one person stands in one user's list now."""

    subscribed: bool = False
    picked: bool = False  # subscribed by hand (a rule's leaving does not take them out)
    excluded: bool = False  # removed by hand while a rule had them: the rule stays off them


@dataclass(frozen=True)
class Join:
    user_id: int
    person_id: int
    kind: str
    name: str = ""

    @property
    def reason(self) -> str:
        return f"added to My CRM Contacts by your rule {self.kind} ({KINDS[self.kind][1]})"


@dataclass(frozen=True)
class Leave:
    user_id: int
    person_id: int
    kinds: tuple[str, ...]
    reason: str
    guarded: bool  # a CRM change (rule 8 holds many at once); False: the user turned it off
    name: str = ""


@dataclass
class RuleChanges:
    """What an evaluation changes: members to store or drop, people joining or leaving."""

    added: set[Member] = field(default_factory=set)
    dropped: set[Member] = field(default_factory=set)
    joins: list[Join] = field(default_factory=list)
    leaves: list[Leave] = field(default_factory=list)

    @property
    def users(self) -> set[int]:
        """The users whose list changed (their mailboxes have work)."""
        return {j.user_id for j in self.joins} | {lv.user_id for lv in self.leaves}

    def extend(self, other: RuleChanges) -> None:
        self.added |= other.added
        self.dropped |= other.dropped
        self.joins += other.joins
        self.leaves += other.leaves


# -- evaluation ---------------------------------------------------------------------------


def members(rules: Iterable[RuleOn], owners: Iterable[Owners]) -> set[Member]:
    """Every (user, kind, person) the rules bring, among these people."""
    users: dict[tuple[str, int], list[int]] = defaultdict(list)
    for rule in rules:
        users[(rule.kind, rule.crm_user_id)].append(rule.user_id)
    out: set[Member] = set()
    for person in owners:
        for kind in KINDS:
            owner = person.owner(kind)
            if owner is None:
                continue
            for user_id in users.get((kind, owner), ()):
                out.add((user_id, kind, person.person_id))
    return out


def why_left(kinds: tuple[str, ...], person: Owners | None, *, turned_off: bool) -> str:
    """The reason a person leaves a list, naming the rule(s) (`why` shows it)."""
    named = " and ".join(kinds)
    rules = f"rule{'s' if len(kinds) > 1 else ''} {named}"
    if turned_off:
        return f"your {rules} was turned off"
    if person is None:
        detail = "no longer found in the CRM"
    elif not person.live:
        detail = "deleted in the CRM"
    else:
        details = {
            ACCOUNT_MANAGER: "their Account Manager is someone else now",
            COMPANY_MANAGER: "they are no longer at a company whose Account Manager you are",
        }
        detail = "; ".join(details[k] for k in kinds)
    return f"no longer matches your {rules} ({detail})"


def changes(
    before: set[Member],
    after: set[Member],
    entries: Mapping[tuple[int, int], Entry],
    owners: Mapping[int, Owners] | None = None,
    *,
    turned_off: bool = False,
) -> RuleChanges:
    """Members and list changes from the members before and after an evaluation.

    `before` and `after` hold every kind of membership of the (user, person) pairs they
    name, so a person still brought by another rule stays. A person whose first rule
    brings them joins, unless already in the list or removed by hand; a person no rule
    brings any more leaves, unless picked by hand (DESIGN rule 11). `entries` need only
    cover the pairs whose membership changed."""
    owners = owners or {}
    out = RuleChanges(added=after - before, dropped=before - after)
    nobody = Entry()
    for user_id, person_id in sorted({(u, p) for u, _, p in out.added | out.dropped}):
        had = [k for k in KINDS if (user_id, k, person_id) in before]
        has = [k for k in KINDS if (user_id, k, person_id) in after]
        entry = entries.get((user_id, person_id), nobody)
        person = owners.get(person_id)
        name = person.name if person else ""
        if has and not had:
            if not entry.subscribed and not entry.excluded:
                out.joins.append(Join(user_id, person_id, has[0], name))
        elif had and not has and entry.subscribed and not entry.picked:
            reason = why_left(tuple(had), person, turned_off=turned_off)
            out.leaves.append(Leave(user_id, person_id, tuple(had), reason, not turned_off, name))
    return out
