"""Who owns whom in the CRM, for the standing rules (DESIGN rule 11): a person's Account
Manager (`Pers_PrimaryUserId`) and their company's (`Comp_PrimaryUserId`).

Three reads, each batched so the cost does not grow with the number of salespeople:
the people whose Person or Company row changed since a watermark (the clock's change
detection, two statements), everyone a set of users owns for one rule kind (one statement
per kind for up to 1,000 users), and the owners of given people. Core statements on
`schema`'s columns only, so they compile for SQL Server too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy import and_, select

from sync_engine.crm import schema as s
from sync_engine.crm.source import SageCrm, _live, chunks
from sync_engine.model import clean
from sync_engine.standing.rules import ACCOUNT_MANAGER, COMPANY_MANAGER, Owners

# Owners per statement when reading everyone some users own: one statement for a team of
# up to this many salespeople, far under SQL Server's 2,100 parameters.
OWNER_CHUNK = 1000


def _owners_query():  # type: ignore[no-untyped-def]
    p, c = s.person, s.company
    return select(
        p.c.Pers_PersonId,
        p.c.Pers_FirstName,
        p.c.Pers_MiddleName,
        p.c.Pers_LastName,
        p.c.Pers_PrimaryUserId,
        p.c.Pers_Deleted,
        c.c.Comp_PrimaryUserId,
        c.c.Comp_Deleted,
        p.c.Pers_UpdatedDate,
        c.c.Comp_UpdatedDate,
    ).select_from(p.outerjoin(c, p.c.Pers_CompanyId == c.c.Comp_CompanyId))


def _owners(row) -> Owners:  # type: ignore[no-untyped-def]
    name = " ".join(
        clean(row[k]) for k in ("Pers_FirstName", "Pers_MiddleName", "Pers_LastName") if row[k]
    )
    company_live = row["Comp_Deleted"] != 1
    return Owners(
        person_id=int(row["Pers_PersonId"]),
        name=name.strip(),
        account_manager=row["Pers_PrimaryUserId"],
        company_manager=row["Comp_PrimaryUserId"] if company_live else None,
        live=row["Pers_Deleted"] != 1,
    )


def changed_since(
    crm: SageCrm, since: datetime | None
) -> tuple[dict[int, Owners], datetime | None]:
    """The owners of every person whose Person row or company changed after `since`
    (reassigned, moved, deleted, created, or their company's Account Manager changed),
    and the newest change time seen. Two statements, each on an UpdatedDate index;
    `since=None` reads everyone (one statement)."""
    p, c = s.person, s.company
    found: dict[int, Owners] = {}
    newest: datetime | None = None
    with crm._connect() as conn:
        for stamp in (p.c.Pers_UpdatedDate, c.c.Comp_UpdatedDate):
            query = _owners_query()
            if since is not None:
                query = query.where(stamp > since)
            elif stamp is c.c.Comp_UpdatedDate:
                break  # everyone was read already
            for row in conn.execute(query).mappings():
                found[int(row["Pers_PersonId"])] = _owners(row)
                seen = row[stamp.name]
                if seen is not None and (newest is None or seen > newest):
                    newest = seen
    return found, newest


def owned_by(crm: SageCrm, kind: str, crm_user_ids: Iterable[int]) -> Iterator[tuple[int, int]]:
    """(person id, owner) for every live person these users own under `kind`: one
    statement per kind for up to OWNER_CHUNK users, never one per salesperson."""
    p, c = s.person, s.company
    for ids in chunks(crm_user_ids, OWNER_CHUNK):
        if kind == ACCOUNT_MANAGER:
            query = select(p.c.Pers_PersonId, p.c.Pers_PrimaryUserId).where(
                p.c.Pers_PrimaryUserId.in_(ids), _live(p.c.Pers_Deleted)
            )
        elif kind == COMPANY_MANAGER:
            query = (
                select(p.c.Pers_PersonId, c.c.Comp_PrimaryUserId)
                .select_from(
                    c.join(
                        p, and_(p.c.Pers_CompanyId == c.c.Comp_CompanyId, _live(p.c.Pers_Deleted))
                    )
                )
                .where(c.c.Comp_PrimaryUserId.in_(ids), _live(c.c.Comp_Deleted))
            )
        else:
            raise ValueError(kind)
        with crm._connect() as conn:
            for person_id, owner in conn.execute(query):
                yield int(person_id), int(owner)


def ownership_of(crm: SageCrm, person_ids: Iterable[int]) -> dict[int, Owners]:
    """Who owns each of these people now (why they left a rule, in its full evaluation;
    whom write-back's managed scope lets a salesperson write, crm/scope.py)."""
    found: dict[int, Owners] = {}
    with crm._connect() as conn:
        for ids in chunks(person_ids):
            query = _owners_query().where(s.person.c.Pers_PersonId.in_(ids))
            for row in conn.execute(query).mappings():
                found[int(row["Pers_PersonId"])] = _owners(row)
    return found
