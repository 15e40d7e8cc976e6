"""Who may write back to whom (issue 19, WRITE_BACK_SCOPE).

Write-back goes through one REST service account, which Sage's territories and profiles
do not narrow to the salesperson whose Outlook edit it carries, so the admin decides:
`listed` (the default, as Sage's own Exchange integration: any person in the
salesperson's list) or `managed` (only people the salesperson is Account Manager for,
`Pers_PrimaryUserId`, or whose company they manage, `Comp_PrimaryUserId`).

"Manages" means what the `account-manager` and `company-manager` standing rules mean by
it: one definition (crm/ownership.py's `Owners`), so a deleted company's Account
Manager counts for neither (DESIGN: deleted rows are honoured).
"""

from __future__ import annotations

from collections.abc import Iterable

from sync_engine.crm.ownership import ownership_of
from sync_engine.crm.source import SageCrm
from sync_engine.standing.rules import ACCOUNT_MANAGER, COMPANY_MANAGER

SCOPES = ("listed", "managed")


def managed_by(crm: SageCrm, user_id: int, person_ids: Iterable[int]) -> set[int]:
    """The people among `person_ids` whose Account Manager is the user, or whose live
    company's Account Manager is."""
    return {
        person_id
        for person_id, owners in ownership_of(crm, person_ids).items()
        if user_id in (owners.owner(ACCOUNT_MANAGER), owners.owner(COMPANY_MANAGER))
    }
