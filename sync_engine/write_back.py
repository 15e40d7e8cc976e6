"""The write-back planner: which Outlook edits of linked contacts go to the CRM (issue 14).

Pure, like plan.py: plain values in, a `WriteBackPlan` out. Each link remembers what both
sides held after our last sync (`Link.crm_values`, `Link.mailbox_values`), so a field
that differs from it now was edited on that side since. Sage CRM's own Exchange
integration is the model for what flows back (Outlook edits of linked contacts; not the
company) and for the latest edit winning when several mailboxes edit one person (by the
contacts' modified times). Ours, not Sage's (docs/write-back.md): the mailing address
does not flow back, and the CRM wins a conflict by default (DESIGN section 7).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sync_engine.model import (
    EMAIL_FIELDS,
    PHONE_FIELDS,
    WRITE_BACK_FIELDS,
    CrmPerson,
    Link,
    MailboxContact,
    instant,
    normalised,
)

CONFLICT_POLICIES = ("crm", "latest")
# Fields kept on Sage's Person row, so Pers_UpdatedDate says when the CRM last changed
# them; emails and phones live in their own rows, whose dates the sync does not read.
PERSON_ROW_FIELDS = frozenset(WRITE_BACK_FIELDS) - EMAIL_FIELDS - PHONE_FIELDS


@dataclass(frozen=True)
class RecentWriteBack:
    """A value another mailbox's sync wrote to the CRM: when the CRM holds it, that CRM
    change was an Outlook edit too, and mailbox against mailbox the latest edit wins."""

    value: str
    mailbox: str
    edited_at: datetime | None = None  # when that mailbox's contact was edited, if known


@dataclass(frozen=True)
class WriteBack:
    """Outlook edits of one linked contact to write to one CRM person."""

    person_id: int
    name: str
    item_id: str
    changes: tuple[tuple[str, str], ...]  # (field, Outlook's value), never a blank
    replaces: tuple[tuple[str, str], ...] = ()  # (field, mailbox) whose earlier edit it replaces
    edited_at: datetime | None = None  # the Outlook edit's time (the contact's modified time)

    @property
    def field_names(self) -> str:
        return ", ".join(name for name, _ in self.changes)


@dataclass(frozen=True)
class LostConflict:
    """An Outlook edit not written because the CRM changed the same field: the CRM wins
    (WRITE_BACK_CONFLICT=crm), the CRM's change is later (`latest`), or the CRM holds
    another mailbox's later Outlook edit (`newer_from` names that mailbox)."""

    person_id: int
    name: str
    item_id: str
    field: str
    newer_from: str = ""
    policy: str = "crm"


@dataclass(frozen=True)
class WriteBackInput:
    links: Mapping[int, Link]
    people: Mapping[int, CrmPerson]
    contacts: Sequence[MailboxContact]
    subscriptions: frozenset[int]
    recent: Mapping[int, Mapping[str, RecentWriteBack]] = field(default_factory=dict)
    conflict_policy: str = "crm"
    mass_edit_share: float = 0.25
    mass_edit_min: int = 5
    allow_mass_edit: bool = False
    # the CRM database's clock minus UTC: Pers_UpdatedDate is the server's local time
    crm_clock_offset: timedelta = timedelta(0)


@dataclass
class WriteBackPlan:
    writes: list[WriteBack] = field(default_factory=list)
    conflicts: list[LostConflict] = field(default_factory=list)
    held: list[WriteBack] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def pending(self, failed: Sequence[WriteBack] = ()) -> dict[int, frozenset[str]]:
        """Fields whose Outlook edit is not in the CRM yet (held, or its write failed): the
        CRM -> Exchange plan must not overwrite them, and the next sync must see them again."""
        out: dict[int, set[str]] = {}
        for wb in [*self.held, *failed]:
            out.setdefault(wb.person_id, set()).update(name for name, _ in wb.changes)
        return {pid: frozenset(names) for pid, names in out.items()}


def plan_write_back(given: WriteBackInput) -> WriteBackPlan:
    """Compare each linked contact with what both sides held after the last sync."""
    plan = WriteBackPlan()
    by_item = {c.item_id: c for c in given.contacts}
    for pid in sorted(given.links):
        link = given.links[pid]
        person = given.people.get(pid)
        contact = by_item.get(link.item_id)
        if (
            link.crm_values is None
            or link.mailbox_values is None
            or contact is None
            or person is None
            or person.deleted
            or pid not in given.subscriptions
        ):
            continue  # nothing to compare with, or the main plan removes the link
        changes: list[tuple[str, str]] = []
        replaces: list[tuple[str, str]] = []
        edited = contact.modified
        for name in WRITE_BACK_FIELDS:
            mine = getattr(contact.fields, name)
            crm = getattr(person.fields, name)
            if not mine or normalised(name, mine) == normalised(
                name, link.mailbox_values.get(name, "")
            ):
                continue  # not edited in Outlook (an Outlook blank never erases the CRM)
            if normalised(name, mine) == normalised(name, crm):
                continue  # both sides already agree
            if normalised(name, crm) == normalised(name, link.crm_values.get(name, "")):
                changes.append((name, mine))  # only Outlook changed it
                continue
            other = given.recent.get(pid, {}).get(name)
            if other is not None and normalised(name, other.value) == normalised(name, crm):
                # The CRM change was another mailbox's Outlook edit: the later edit wins,
                # by the targets' modified times; without them, the edit seen last (now).
                if _earlier(edited, other.edited_at):
                    plan.conflicts.append(
                        LostConflict(pid, person.name, link.item_id, name, other.mailbox)
                    )
                    continue
                changes.append((name, mine))
                replaces.append((name, other.mailbox))
            elif given.conflict_policy == "latest":
                crm_at = instant(person.updated_at) if name in PERSON_ROW_FIELDS else None
                if crm_at is not None:  # the CRM's clock, taken back to UTC
                    crm_at -= given.crm_clock_offset
                if _earlier(edited, crm_at):  # the CRM's change came after the Outlook edit
                    plan.conflicts.append(
                        LostConflict(pid, person.name, link.item_id, name, policy="latest")
                    )
                    continue
                changes.append((name, mine))  # newer than the CRM's change, or seen now
            elif not crm:
                continue  # the CRM blanked it: a CRM blank never erases Outlook (rule 4)
            else:
                plan.conflicts.append(LostConflict(pid, person.name, link.item_id, name))
        if changes:
            plan.writes.append(
                WriteBack(pid, person.name, link.item_id, tuple(changes), tuple(replaces), edited)
            )
    _guard_mass_edit(given, plan)
    return plan


def _earlier(mine: datetime | None, theirs: datetime | None) -> bool:
    """Whether this Outlook edit is known to be older than the other change."""
    mine, theirs = instant(mine), instant(theirs)  # the state store may give naive UTC
    return mine is not None and theirs is not None and mine < theirs


def _guard_mass_edit(given: WriteBackInput, plan: WriteBackPlan) -> None:
    """Like rule 8: a phone app rewriting every contact must not rewrite the CRM."""
    linked = max(len(given.links), 1)
    n = len(plan.writes)
    if given.allow_mass_edit or not (
        n > given.mass_edit_min and n > given.mass_edit_share * linked
    ):
        return
    plan.held, plan.writes = plan.writes, []
    plan.warnings.append(
        f"Held back {n} write-backs: {n} of {len(given.links)} linked contacts changed in "
        f"Outlook at once (the limit is {given.mass_edit_share:.0%} and "
        f"{given.mass_edit_min}). Nothing was written to the CRM and the Outlook edits are "
        "kept. If they are real, sync again with --allow-mass-edit."
    )
