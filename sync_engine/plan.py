"""The planner: a pure function from plain values to the actions of one mailbox sync.

`plan_mailbox` holds every rule of DESIGN section 2; it does no I/O, so each rule is
tested on plain values. The applier (apply.py) carries the actions out.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from sync_engine.model import (
    FIELD_NAMES,
    ContactChange,
    ContactFields,
    CrmPerson,
    Link,
    MailboxContact,
    NewContact,
    write_back_values,
)

NEAR_MATCH_SCORE = 90.0  # rapidfuzz ratio from which a near match is reported


# -- actions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateContact:
    person_id: int
    name: str
    new: NewContact
    fingerprint: str
    crm_values: Mapping[str, str] | None = None
    mailbox_values: Mapping[str, str] | None = None


@dataclass(frozen=True)
class LinkContact:
    """Take over an existing contact: a dedupe match, or ours from an interrupted run."""

    person_id: int
    name: str
    item_id: str
    change_key: str
    change: ContactChange | None
    fingerprint: str
    origin: str  # "linked" (dedupe) or "created" (found again by the CRM id)
    reason: str
    crm_values: Mapping[str, str] | None = None
    mailbox_values: Mapping[str, str] | None = None


@dataclass(frozen=True)
class UpdateContact:
    person_id: int
    name: str
    change: ContactChange
    fingerprint: str
    origin: str
    reason: str
    crm_values: Mapping[str, str] | None = None
    mailbox_values: Mapping[str, str] | None = None


@dataclass(frozen=True)
class RefreshLink:
    """The contact already shows the CRM values: remember the new fingerprint, no write."""

    person_id: int
    item_id: str
    change_key: str
    fingerprint: str
    origin: str
    crm_values: Mapping[str, str] | None = None
    mailbox_values: Mapping[str, str] | None = None


@dataclass(frozen=True)
class UnlinkContact:
    """Removed from My CRM Contacts: drop the category and CRM id, keep the contact."""

    person_id: int
    name: str
    item_id: str
    change: ContactChange | None
    reason: str


@dataclass(frozen=True)
class DeleteContact:
    """Deleted in the CRM: remove the contact, the link and the subscription."""

    person_id: int
    name: str
    item_id: str
    reason: str


@dataclass(frozen=True)
class ForgetPerson:
    """Nothing to write in the mailbox; drop the link (and maybe the subscription)."""

    person_id: int
    name: str
    outcome: str  # "forgotten" (deleted in Outlook), "deleted" (gone in CRM), "unlinked"
    drop_subscription: bool
    reason: str


Action = (
    CreateContact
    | LinkContact
    | UpdateContact
    | RefreshLink
    | UnlinkContact
    | DeleteContact
    | ForgetPerson
)


@dataclass(frozen=True)
class PossibleDuplicate:
    person_id: int
    person_name: str
    item_id: str
    contact_name: str
    why: str

    def describe(self) -> str:
        return f"{self.person_name} ~ {self.contact_name} ({self.why})"


@dataclass(frozen=True)
class Leaving:
    """Why a person left the list other than by hand: a standing rule let them go
    (DESIGN rule 11). `guarded` departures (a CRM change) count toward rule 8's limit;
    those of a rule the user turned off do not."""

    reason: str
    guarded: bool = True


@dataclass(frozen=True)
class PlanInput:
    """Everything the planner needs about one mailbox, as plain values."""

    category: str
    subscriptions: frozenset[int]
    links: Mapping[int, Link]
    people: Mapping[int, CrmPerson]  # every relevant person the CRM still has a row for
    contacts: Sequence[MailboxContact]
    crm_is_empty: bool = False
    mass_delete_share: float = 0.25
    mass_delete_min: int = 5
    allow_mass_delete: bool = False
    # person id -> fields whose Outlook edit is not in the CRM yet (write-back held or
    # failed): not overwritten, and their remembered mailbox value is kept (issue 14)
    pending: Mapping[int, frozenset[str]] = field(default_factory=dict)
    # person id -> why a standing rule let them go (unlinked with that reason, rule 8 holds
    # a mass departure); anyone else off the list was removed by hand
    leaving: Mapping[int, Leaving] = field(default_factory=dict)


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    possible_duplicates: list[PossibleDuplicate] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    held_back: list[Action] = field(default_factory=list)

    def of(self, kind: type) -> list:
        return [a for a in self.actions if isinstance(a, kind)]

    @property
    def writes(self) -> int:
        """How many mailbox items this plan writes (0 for a steady state)."""
        n = 0
        for a in self.actions:
            if isinstance(a, CreateContact | UpdateContact | DeleteContact) or (
                isinstance(a, LinkContact | UnlinkContact) and a.change is not None
            ):
                n += 1
        return n


# -- helpers ----------------------------------------------------------------------------


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def near_key(fields: ContactFields) -> str:
    """The dedupe key folded for case and accents, for near-match hints only."""
    return _fold(" | ".join(fields.dedupe_key()))


def _has(categories: Sequence[str], category: str) -> bool:
    wanted = category.casefold()
    return any(c.casefold() == wanted for c in categories)


def _oldest_first(contacts: list[MailboxContact]) -> list[MailboxContact]:
    return sorted(contacts, key=lambda c: (c.created_at, c.item_id))


def claim_change(
    contact: MailboxContact,
    desired: ContactFields,
    category: str,
    person_id: int,
    *,
    write_fields: bool,
    keep: Collection[str] = (),
) -> ContactChange | None:
    """The write that makes `contact` ours and current; None when it already is.

    A CRM blank never erases what the user typed (rule 4); other categories are kept
    (rule 3); unmapped fields are never named, so never touched.
    """
    set_fields: tuple[tuple[str, str], ...] = ()
    if write_fields:
        set_fields = tuple(
            (name, getattr(desired, name))
            for name in FIELD_NAMES
            if name not in keep
            and getattr(desired, name)
            and getattr(desired, name) != getattr(contact.fields, name)
        )
    categories = None if _has(contact.categories, category) else (*contact.categories, category)
    set_crm_id = person_id if contact.crm_id != person_id else None
    change = ContactChange(contact.item_id, contact.change_key, set_fields, categories, set_crm_id)
    return None if change.is_empty() else change


def release_change(contact: MailboxContact, category: str) -> ContactChange | None:
    """The write that makes a contact the user's own again: no category, no CRM id."""
    categories = None
    if _has(contact.categories, category):
        categories = tuple(c for c in contact.categories if c.casefold() != category.casefold())
    change = ContactChange(
        contact.item_id, contact.change_key, (), categories, None, contact.crm_id is not None
    )
    return None if change.is_empty() else change


def baselines(
    person: CrmPerson,
    contact: MailboxContact | None,
    change: ContactChange | None,
    link: Link | None = None,
    pending: Collection[str] = (),
) -> tuple[dict[str, str], dict[str, str]]:
    """What both sides hold once an action is done, remembered on the link so the next
    sync tells an Outlook edit from a CRM edit. A pending field keeps its old mailbox
    value, so its Outlook edit is seen (and written back) again."""
    crm = write_back_values(person.fields)
    if contact is None:  # a contact we create holds the CRM values
        return crm, dict(crm)
    after = change.applied_to(contact) if change is not None else contact
    mailbox = write_back_values(after.fields)
    if link is not None and link.mailbox_values is not None:
        for name in pending:
            mailbox[name] = link.mailbox_values.get(name, "")
    return crm, mailbox


def link_to(
    contact: MailboxContact, person: CrmPerson, category: str, origin: str, reason: str
) -> LinkContact:
    """Take `contact` over for `person`: CRM values, our category and the CRM id."""
    change = claim_change(contact, person.fields, category, person.id, write_fields=True)
    crm_values, mailbox_values = baselines(person, contact, change)
    return LinkContact(
        person.id,
        person.name,
        contact.item_id,
        contact.change_key,
        change,
        person.fields.fingerprint(),
        origin,
        reason,
        crm_values,
        mailbox_values,
    )


# -- the planner --------------------------------------------------------------------------


def plan_mailbox(given: PlanInput) -> Plan:
    """Decide, for every person relevant to this mailbox, what the sync does (rules 1–8)."""
    plan = Plan()
    by_item = {c.item_id: c for c in given.contacts}
    by_crm_id: dict[int, list[MailboxContact]] = defaultdict(list)
    for c in given.contacts:
        if c.crm_id is not None:
            by_crm_id[c.crm_id].append(c)
    # Contacts already spoken for: linked ones, and any carrying a CRM id. Dedupe never
    # hands these to another person.
    claimed: set[str] = {link.item_id for link in given.links.values() if link.item_id in by_item}
    claimed.update(c.item_id for c in given.contacts if c.crm_id is not None)

    person_ids = set(given.subscriptions) | set(given.links) | set(by_crm_id)
    gone_actions: list[Action] = []
    forgets: list[Action] = []
    departures: list[Action] = []  # unlinks of people a rule let go (rule 8 holds many)
    creates: list[CrmPerson] = []

    for pid in sorted(person_ids):
        person = given.people.get(pid)
        link = given.links.get(pid)
        linked = by_item.get(link.item_id) if link else None
        tagged = [
            c
            for c in _oldest_first(by_crm_id.get(pid, []))
            if linked is None or c.item_id != linked.item_id
        ]
        if link and linked is None and tagged:
            linked, tagged = (
                tagged[0],
                tagged[1:],
            )  # the item id changed (moved back, re-created by Exchange)
        name = person.name if person else (linked.name if linked else f"person {pid}")
        ours = ([linked] if linked else []) + tagged

        if (
            pid not in given.subscriptions
        ):  # rule 5, before 6: off the list, the contact is the user's
            leaving = given.leaving.get(pid)
            why = leaving.reason if leaving else "removed from My CRM Contacts"
            into = departures if leaving and leaving.guarded else plan.actions
            for c in ours:
                into.append(
                    UnlinkContact(pid, name, c.item_id, release_change(c, given.category), why)
                )
            if link and not ours:
                into.append(
                    ForgetPerson(
                        pid, name, "unlinked", False, f"{why}; the contact was already gone"
                    )
                )
            continue

        if person is None or person.deleted:  # rule 6
            why = "deleted in the CRM" if person else "no longer in the CRM"
            for c in ours:
                gone_actions.append(DeleteContact(pid, name, c.item_id, why))
            if not ours and (link or pid in given.subscriptions):
                gone_actions.append(
                    ForgetPerson(pid, name, "deleted", True, f"{why}; it was not in the mailbox")
                )
            continue

        desired = person.fields
        fingerprint = desired.fingerprint()
        if link:
            if linked is None:  # rule 7
                forgets.append(
                    ForgetPerson(
                        pid,
                        name,
                        "forgotten",
                        True,
                        "deleted in Outlook, so not brought back; add the person again to get it back",
                    )
                )
                continue
            for extra in tagged:
                plan.possible_duplicates.append(
                    PossibleDuplicate(
                        pid, name, extra.item_id, extra.name, "carries the same CRM id"
                    )
                )
            crm_changed = fingerprint != link.fingerprint or linked.item_id != link.item_id
            pending = given.pending.get(pid, frozenset())
            change = claim_change(
                linked, desired, given.category, pid, write_fields=crm_changed, keep=pending
            )  # rule 4
            crm_values, mailbox_values = baselines(person, linked, change, link, pending)
            if change is not None:
                reason = (
                    "changed in the CRM" if change.set_fields else "category or CRM id put back"
                )
                plan.actions.append(
                    UpdateContact(
                        pid,
                        name,
                        change,
                        fingerprint,
                        link.origin,
                        reason,
                        crm_values,
                        mailbox_values,
                    )
                )
            elif (
                crm_changed
                or linked.change_key != link.change_key
                or link.crm_values != crm_values
                or link.mailbox_values != mailbox_values
            ):
                plan.actions.append(
                    RefreshLink(
                        pid,
                        linked.item_id,
                        linked.change_key,
                        fingerprint,
                        link.origin,
                        crm_values,
                        mailbox_values,
                    )
                )
            continue

        if tagged:  # rule 9: ours from an interrupted run, found again by the CRM id
            first, rest = tagged[0], tagged[1:]
            plan.actions.append(
                link_to(first, person, given.category, "created", "found again by its CRM id")
            )
            for extra in rest:
                plan.possible_duplicates.append(
                    PossibleDuplicate(
                        pid, name, extra.item_id, extra.name, "carries the same CRM id"
                    )
                )
            continue
        creates.append(person)

    _plan_creates(given, plan, creates, claimed)
    _guard_mass_loss(given, plan, gone_actions, forgets, departures)
    return plan


def _plan_creates(
    given: PlanInput, plan: Plan, creates: list[CrmPerson], claimed: set[str]
) -> None:
    """Rules 1–2: link to an exact duplicate (the oldest), else create; report near ones."""
    free = [c for c in given.contacts if c.item_id not in claimed]
    exact: dict[tuple[str, str, str, str], list[MailboxContact]] = defaultdict(list)
    for c in _oldest_first(free):
        exact[c.fields.dedupe_key()].append(c)
    near_keys = [near_key(c.fields) for c in free]
    for person in creates:
        pid, name, desired = person.id, person.name, person.fields
        matches = [c for c in exact.get(desired.dedupe_key(), []) if c.item_id not in claimed]
        if matches:
            first = matches[0]
            claimed.add(first.item_id)
            reason = "same company and names already in the mailbox"
            plan.actions.append(link_to(first, person, given.category, "linked", reason))
            for extra in matches[1:]:
                plan.possible_duplicates.append(
                    PossibleDuplicate(
                        pid,
                        name,
                        extra.item_id,
                        extra.name,
                        "also an exact match; linked the oldest",
                    )
                )
            continue
        new = NewContact(fields=desired, categories=(given.category,), crm_id=pid)
        crm_values, mailbox_values = baselines(person, None, None)
        plan.actions.append(
            CreateContact(pid, name, new, desired.fingerprint(), crm_values, mailbox_values)
        )
        if near_keys:
            key = near_key(desired)
            for _, score, index in process.extract(
                key, near_keys, scorer=fuzz.ratio, score_cutoff=NEAR_MATCH_SCORE, limit=3
            ):
                c = free[index]
                if c.item_id in claimed:
                    continue
                why = (
                    "differs only in case or accents"
                    if score == 100
                    else f"similar names ({score:.0f}%)"
                )
                plan.possible_duplicates.append(
                    PossibleDuplicate(pid, name, c.item_id, c.name, why)
                )


def _guard_mass_loss(
    given: PlanInput,
    plan: Plan,
    gone: list[Action],
    forgets: list[Action],
    departures: list[Action],
) -> None:
    """Rule 8: hold back what would empty too much of the mailbox's list at once: deletes
    for people gone from the CRM, (a wiped Contacts folder) contacts gone from Outlook,
    and (a mass reassignment in the CRM) people a standing rule let go."""
    linked = max(len(given.links), 1)
    limit = f"the limit is {given.mass_delete_share:.0%} and {given.mass_delete_min}"

    def too_many(n: int) -> bool:
        return n > given.mass_delete_min and n > given.mass_delete_share * linked

    deletes = [a for a in gone if isinstance(a, DeleteContact)]
    reason = None
    if given.crm_is_empty and gone:
        reason = "the CRM answered with no people at all"
    elif too_many(len(deletes)):
        reason = f"{len(deletes)} of {len(given.links)} linked contacts would be deleted ({limit})"
    if reason and not given.allow_mass_delete:
        plan.held_back.extend(gone)
        plan.warnings.append(
            f"Held back {len(deletes)} deletes: {reason}. Nothing was deleted. If the CRM really "
            "deleted these people, sync again with --allow-mass-delete."
        )
    else:
        plan.actions.extend(gone)

    def hold_if_many(actions: list[Action], warning: str) -> None:
        if too_many(len(actions)) and not given.allow_mass_delete:
            plan.held_back.extend(actions)
            plan.warnings.append(warning)
        else:
            plan.actions.extend(actions)

    hold_if_many(
        forgets,
        f"{len(forgets)} of {len(given.links)} linked contacts are gone from the mailbox "
        f"({limit}): was the Contacts folder emptied? They stay in My CRM Contacts. If they "
        "were really deleted in Outlook, sync again with --allow-mass-delete.",
    )
    hold_if_many(
        departures,
        f"Held back {len(departures)} unlinks: {len(departures)} of {len(given.links)} "
        f"linked contacts no longer match your standing rules ({limit}): were they "
        "reassigned in the CRM by mistake? They stay linked, with the category, for now. "
        "If the reassignment is real, sync again with --allow-mass-delete.",
    )
