"""The CRM people of a whole cycle, read at once: each mailbox's sync takes its people
from here instead of asking the CRM again.

Why: when one CRM person changes, every mailbox that lists them is synced in the same
cycle, and each sync read its people from the CRM itself: a person listed by 1,000
mailboxes was read 1,000 times, three statements each (the person, the emails, the
phones). Read together, a cycle's people are a few statements per 900.

Never stale: a snapshot is tied to the CRM's latest change time read before it was
taken. A sync uses it only while the CRM's latest change (which the sync reads anyway,
as its watermark) is still that time; after any CRM change it reads the CRM as before.
A hard-deleted row leaves no change time, so the daily reconcile (whose job is to find
those) never uses a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sync_engine.crm.source import SageCrm
from sync_engine.model import CrmPerson


@dataclass
class PeopleSnapshot:
    """People read at once, valid while the CRM's latest change is `latest`."""

    latest: datetime | None
    people: dict[int, CrmPerson] = field(default_factory=dict)
    asked: frozenset[int] = frozenset()  # ids read; an id asked and not found is gone
    served: int = 0  # syncs that took their people from here (for tests and the bench)

    @classmethod
    def read(
        cls, crm: SageCrm, person_ids: Iterable[int], latest: datetime | None
    ) -> PeopleSnapshot:
        ids = frozenset(person_ids)
        return cls(latest, crm.people_by_ids(ids) if ids else {}, ids)

    def people_by_ids(
        self, crm: SageCrm, ids: Iterable[int], latest: datetime | None
    ) -> dict[int, CrmPerson]:
        """What `crm.people_by_ids(ids)` would say now: from the snapshot while the CRM has
        not changed since it was taken (only ids it never asked for are read)."""
        wanted = set(ids)
        if self.latest is None or latest != self.latest:
            return crm.people_by_ids(wanted)
        self.served += 1
        found = {i: self.people[i] for i in wanted if i in self.people}
        missing = wanted - self.asked
        if missing:
            found.update(crm.people_by_ids(missing))
        return found
