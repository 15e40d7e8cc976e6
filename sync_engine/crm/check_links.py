"""`crm check`'s look at what write-back relies on in the database (issue 19), with the
grants we already have: the link types of people and which we do not map, the Email and
Phone rows several records share, and the database clock against UTC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, select

from sync_engine.crm import schema as s
from sync_engine.crm.clock import describe_offset, measure_offset
from sync_engine.crm.rows import link_columns
from sync_engine.crm.source import _live
from sync_engine.model import clean

if TYPE_CHECKING:
    from sync_engine.crm.check import CheckReport

# link types Sage's own Exchange integration does not map either
UNMAPPED_AS_SAGE = {"phone": {"pager"}}


def link_types(conn: Connection, report: CheckReport) -> None:
    """Each ELink_Type / PLink_Type of people (entity 13) with its live links; a type we
    do not map is flagged: a customer whose email 2 is stored as `Personal` would never
    see it in Outlook."""
    for kind, link, column, mapped in (
        ("email", s.email_link, "ELink", s.EMAIL_TYPES),
        ("phone", s.phone_link, "PLink", s.PHONE_TYPES),
    ):
        kind_col = link.c[f"{column}_Type"]
        rows = conn.execute(
            select(kind_col, func.count())
            .where(
                link.c[f"{column}_EntityID"] == s.PERSON_ENTITY_ID,
                _live(link.c[f"{column}_Deleted"]),
            )
            .group_by(kind_col)
        ).all()
        folded: dict[str, int] = {}
        for raw, n in rows:
            name = clean(raw) or "(blank)"
            known = next((m for m in mapped if m.lower() == name.lower()), name)
            folded[known] = folded.get(known, 0) + int(n)
        shown = ", ".join(f"{name} {n:,}" for name, n in sorted(folded.items())) or "none"
        report.lines.append(f"{kind} link types of people: {shown}")
        for name, n in sorted(folded.items()):
            if name in mapped:
                continue
            if name.lower() in UNMAPPED_AS_SAGE.get(kind, set()):
                report.lines.append(
                    f"    {kind} type {name!r}: not mapped (as in Sage's integration)"
                )
                continue
            report.warnings.append(
                f"{kind} type {name!r} ({n:,} links) is not mapped: these {kind}s never reach "
                f"Outlook (we map {', '.join(mapped)}); tell us if it is one of those"
            )


def shared_rows(conn: Connection, report: CheckReport) -> None:
    """How many Email and Phone rows more than one live link points at."""
    counts = []
    for kind in ("email", "phone"):
        target, deleted = link_columns(kind)
        shared = (
            select(target)
            .where(_live(deleted), target.is_not(None))
            .group_by(target)
            .having(func.count() > 1)
            .subquery()
        )
        n = int(conn.execute(select(func.count()).select_from(shared)).scalar_one())
        counts.append(f"{n:,} {kind} row{'s' if n != 1 else ''}")
    report.lines.append(
        f"shared rows: {' and '.join(counts)} linked to more than one record (write-back "
        "never changes one: the person gets a row of their own)"
    )


def database_clock(conn: Connection, report: CheckReport) -> None:
    offset = measure_offset(conn)
    report.lines.append(
        f"database clock: {describe_offset(offset)} (WRITE_BACK_CONFLICT=latest takes this "
        "off Pers_UpdatedDate before comparing it with Outlook's UTC times)"
    )
