"""`crm-contacts crm check`: can we read this Sage CRM database, and how fast?

For the Sage administrator before go-live: every table and column we read (schema.READ)
is looked up and read once, what is missing is named, a few counts show the data is the
one expected, one search is timed, and the indexes that would speed us up are printed as
`CREATE INDEX` statements for a DBA to consider. Nothing is ever written or created.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import Connection, Index, distinct, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateIndex

from sync_engine.crm import schema as s
from sync_engine.crm.check_links import database_clock, link_types, shared_rows
from sync_engine.crm.search import SearchError, search_ids
from sync_engine.crm.source import CrmError, SageCrm, _first_line, _live
from sync_engine.masking import mask_urls

OLDER_THAN_71 = (
    "older than Sage CRM 7.1? Since 7.1 a person's emails live in the Email and EmailLink "
    "tables; this tool reads Sage CRM 7.1 and later"
)


@dataclass
class CheckReport:
    """What `crm check` found: lines to print, and whether everything we read is readable."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # worth knowing; nothing unreadable

    @property
    def ok(self) -> bool:
        return not self.problems


def check_crm(crm: SageCrm) -> CheckReport:
    """Check the CRM database behind `crm`; raises CrmError when it cannot be reached."""
    report = CheckReport()
    url = mask_urls(crm.url)
    report.lines.append(f"CRM database: {url} ({crm.engine.dialect.name})")
    with crm._connect() as conn:
        readable = _check_tables(conn, report)
        if report.ok:
            _counts(crm, conn, report)
            link_types(conn, report)
            shared_rows(conn, report)
            database_clock(conn, report)
        report.indexes = _missing_indexes(conn, readable)
    if report.ok:
        _time_search(crm, report)
    return report


def _same(a: str, b: str, ci: bool) -> bool:
    return a.lower() == b.lower() if ci else a == b


def _check_tables(conn: Connection, report: CheckReport) -> set[str]:
    """Look up each table and column we read, then read each table once (a missing grant
    shows here). Returns the names of the tables found readable."""
    inspector = inspect(conn)
    ci = conn.dialect.name == "mssql"  # Sage's SQL Server collation ignores case
    present = inspector.get_table_names()
    readable: set[str] = set()
    missing_tables = []
    for name, wanted in s.READ.items():
        found = next((t for t in present if _same(t, name, ci)), None)
        if found is None:
            missing_tables.append(name)
            report.problems.append(f"missing table {name}")
            continue
        columns = [c["name"] for c in inspector.get_columns(found)]
        absent = [c for c in wanted if not any(_same(c, have, ci) for have in columns)]
        if absent:
            report.problems.append(f"{name}: missing column {', '.join(absent)}")
            continue
        try:
            conn.execute(select(*s.cols(s.TABLES[name])).limit(1)).all()
        except SQLAlchemyError as exc:
            report.problems.append(f"{name}: cannot read ({_first_line(exc)}); check the grants")
            conn.rollback()  # PostgreSQL refuses everything after an error until then
            continue
        readable.add(name)
        report.lines.append(f"ok  {name}: {len(wanted)} columns readable")
    if {"Email", "EmailLink"} & set(missing_tables):
        report.problems.append(OLDER_THAN_71)
    return readable


def _counts(crm: SageCrm, conn: Connection, report: CheckReport) -> None:
    p, e, el = s.person, s.email, s.email_link
    live = conn.execute(
        select(func.count(p.c.Pers_PersonId)).where(_live(p.c.Pers_Deleted))
    ).scalar_one()
    with_email = conn.execute(
        select(func.count(distinct(el.c.ELink_RecordID)))
        .select_from(
            el.join(e, e.c.Emai_EmailId == el.c.ELink_EmailId).join(
                p, p.c.Pers_PersonId == el.c.ELink_RecordID
            )
        )
        .where(
            el.c.ELink_EntityID == s.PERSON_ENTITY_ID,
            el.c.ELink_Type == "Business",
            _live(el.c.ELink_Deleted),
            _live(e.c.Emai_Deleted),
            _live(p.c.Pers_Deleted),
        )
    ).scalar_one()
    users = crm.users()
    salespeople = [u for u in users if not u.inactive]
    report.lines.append(
        f"live people: {live:,}; with a business email: {with_email:,}; "
        f"salespeople: {len(salespeople):,} live of {len(users):,} users"
    )


def _time_search(crm: SageCrm, report: CheckReport) -> None:
    """Time one search for the last name of the first live person, as a salesperson would."""
    p = s.person
    with crm._connect() as conn:
        name = conn.execute(
            select(p.c.Pers_LastName)
            .where(_live(p.c.Pers_Deleted), p.c.Pers_LastName.is_not(None))
            .order_by(p.c.Pers_PersonId)
            .limit(1)
        ).scalar()
    if not name or not str(name).strip():
        report.lines.append("search: no live person with a last name to search for")
        return
    began = time.perf_counter()
    try:
        found = search_ids(crm, str(name).strip())
    except SearchError:
        return
    ms = (time.perf_counter() - began) * 1000
    report.lines.append(f"one search ({str(name).strip()!r}): {ms:.0f} ms, {len(found)} found")


def suggested_indexes() -> list[Index]:
    """The indexes our reads use: searches by name and company, link look-ups by person,
    and the change queries by UpdatedDate (the embedded CRM has every one)."""
    return [
        index
        for table in s.TABLES.values()
        for index in sorted(table.indexes, key=lambda i: i.name)
    ]


def _missing_indexes(conn: Connection, readable: set[str]) -> list[str]:
    """CREATE INDEX statements, in the database's own dialect, for each suggested index
    whose leading columns no existing index (or primary key) already has."""
    inspector = inspect(conn)
    ci = conn.dialect.name == "mssql"
    out = []
    for index in suggested_indexes():
        table = index.table
        if table is None or table.name not in readable:
            continue
        wanted = [c.name.lower() if ci else c.name for c in index.columns]
        present = inspector.get_indexes(table.name)
        have = [[n.lower() if ci else n for n in i["column_names"] if n] for i in present]
        pk = inspector.get_pk_constraint(table.name).get("constrained_columns") or []
        have.append([n.lower() if ci else n for n in pk])
        if any(h[: len(wanted)] == wanted for h in have):
            continue
        out.append(str(CreateIndex(index).compile(dialect=conn.dialect)).strip() + ";")
    return out


def grant_statements(dialect: str, login: str = "crm_contacts") -> list[str]:
    """The read-only login's grants: SELECT on exactly the columns we read (never
    User_Password). `dialect` is 'mssql' (Sage CRM's SQL Server) or 'postgresql'."""
    out = []
    for table, columns in s.READ.items():
        if dialect == "mssql":
            out.append(f"GRANT SELECT ON dbo.{table} ({', '.join(columns)}) TO {login};")
        elif dialect == "postgresql":
            quoted = ", ".join(f'"{c}"' for c in columns)
            out.append(f'GRANT SELECT ({quoted}) ON "{table}" TO {login};')
        else:
            raise CrmError(f"no grant statements for {dialect}")
    return out
