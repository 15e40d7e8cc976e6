"""Who may write back to whom (issue 19, WRITE_BACK_SCOPE).

Write-back goes through one REST service account, which Sage's territories and profiles
do not narrow to the salesperson whose Outlook edit it carries, so the admin decides:
`listed` (the default, as Sage's own Exchange integration: any person in the
salesperson's list) or `managed` (only people the salesperson is Account Manager for,
`Pers_PrimaryUserId`, or whose company they manage, `Comp_PrimaryUserId`).

The membership test is its own small function so that standing rules
(`account-manager`, `company-manager`) can share it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select

from sync_engine.crm import schema as s
from sync_engine.crm.source import SageCrm, chunks

SCOPES = ("listed", "managed")


def managed_by(crm: SageCrm, user_id: int, person_ids: Iterable[int]) -> set[int]:
    """The people among `person_ids` whose Account Manager is the user, or whose
    company's Account Manager is."""
    p, c = s.person, s.company
    found: set[int] = set()
    with crm._connect() as conn:
        for chunk in chunks(person_ids):
            query = (
                select(p.c.Pers_PersonId)
                .select_from(p.outerjoin(c, p.c.Pers_CompanyId == c.c.Comp_CompanyId))
                .where(
                    p.c.Pers_PersonId.in_(chunk),
                    or_(p.c.Pers_PrimaryUserId == user_id, c.c.Comp_PrimaryUserId == user_id),
                )
            )
            found.update(int(pid) for (pid,) in conn.execute(query))
    return found
