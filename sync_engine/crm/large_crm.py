"""Large generated CRMs for the benchmarks and the scale tests (`crm seed --people N`),
appended to the embedded demo CRM in big batches, in Sage's layout (link tables
included). Only the embedded CRM is ever written (embedded.py's `seed_large` checks)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, Table, func, insert, select

from sync_engine.crm import names
from sync_engine.crm import schema as s
from sync_engine.crm.embedded_rows import link_col, link_tables, link_target, row_col
from sync_engine.crm.source import SageCrm


def append_generated(
    crm: SageCrm,
    people: int,
    managers: list[int],
    *,
    seed: int = 42,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Append `people` generated people (and ~1 company per 20) in big batches, managed by
    `managers` (CRM user ids), each with a Business email, half with a Business phone
    and a quarter with a mobile, all in Sage's link tables. Ids are handed out here, so
    links are written without reading anything back."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(tzinfo=None)
    companies = max(1, people // 20)

    def next_id(conn: Connection, column) -> int:  # type: ignore[no-untyped-def]
        return int(conn.execute(select(func.max(column))).scalar() or 0) + 1

    with crm.engine.begin() as conn:
        first_company = next_id(conn, s.company.c.Comp_CompanyId)
        ids = {
            "person": next_id(conn, s.person.c.Pers_PersonId),
            "email": next_id(conn, s.email.c.Emai_EmailId),
            "elink": next_id(conn, s.email_link.c.ELink_LinkID),
            "phone": next_id(conn, s.phone.c.Phon_PhoneId),
            "plink": next_id(conn, s.phone_link.c.PLink_LinkID),
        }
        rows = []
        for i in range(companies):
            name = f"{rng.choice(names.WORDS)} {rng.choice(names.WORDS)} {rng.choice(names.SUFFIX)} {first_company + i}"
            rows.append(
                {
                    "Comp_CompanyId": first_company + i,
                    "Comp_Name": name,
                    "Comp_CreatedDate": now,
                    "Comp_UpdatedDate": now,
                }
            )
        for start in range(0, len(rows), 20000):
            conn.execute(insert(s.company), rows[start : start + 20000])
    # A big seed drops the person and link tables' indexes and builds them once at the end:
    # one sorted build is several times faster than a million random index inserts.
    rebuild = [
        index
        for table in (s.person, s.email, s.email_link, s.phone, s.phone_link)
        for index in table.indexes
    ]
    if people < 100_000:
        rebuild = []
    with crm.engine.begin() as conn:
        for index in rebuild:
            index.drop(conn, checkfirst=True)
    try:
        _append_people(crm, people, rng, managers, first_company, companies, ids, now, progress)
    finally:
        with crm.engine.begin() as conn:
            for index in rebuild:
                index.create(conn, checkfirst=True)
    if crm.engine.dialect.name == "sqlite":  # fold the big write-ahead log into the file now,
        with crm.engine.connect() as conn:  # not page by page under the first searches
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            # statistics, as SQL Server keeps its own: without them SQLite reads every
            # EmailLink row to find the few Email rows changed since a watermark
            conn.exec_driver_sql("ANALYZE")
    return {"people": people, "companies": companies}


def _append_people(
    crm: SageCrm,
    people: int,
    rng: random.Random,
    managers: list[int],
    first_company: int,
    companies: int,
    ids: dict[str, int],
    now: datetime,
    progress: Callable[[int], None] | None,
) -> None:
    done = 0
    chunk = 50000
    while done < people:
        batch: list[dict[str, object]] = []
        emails: list[dict[str, object]] = []
        elinks: list[dict[str, object]] = []
        phones: list[dict[str, object]] = []
        plinks: list[dict[str, object]] = []
        for _ in range(min(chunk, people - done)):
            pid = ids["person"]
            ids["person"] += 1
            first, last = rng.choice(names.FIRST), rng.choice(names.LAST)
            middle = rng.choice(names.FIRST) if rng.random() < 0.2 else None
            batch.append(
                {
                    "Pers_PersonId": pid,
                    "Pers_CompanyId": first_company + rng.randrange(companies),
                    "Pers_PrimaryUserId": rng.choice(managers),
                    "Pers_FirstName": first,
                    "Pers_MiddleName": middle,
                    "Pers_LastName": last,
                    "Pers_Title": rng.choice(("Buyer", "CEO", "CFO", "Engineer", "Manager", None)),
                    "Pers_CreatedDate": now,
                    "Pers_UpdatedDate": now,
                }
            )
            _link_row(
                emails,
                elinks,
                ids,
                "email",
                pid,
                "Business",
                now,
                f"{first}.{last}.{done + len(batch)}@example.net".lower(),
            )
            draw = rng.random()
            if draw < 0.5:
                _link_row(
                    phones,
                    plinks,
                    ids,
                    "phone",
                    pid,
                    "Business",
                    now,
                    f"+1 555 {rng.randrange(10000):04d}",
                )
            if draw < 0.25:
                _link_row(
                    phones,
                    plinks,
                    ids,
                    "phone",
                    pid,
                    "Mobile",
                    now,
                    f"+1 777 {rng.randrange(10000):04d}",
                )
        with crm.engine.begin() as conn:
            if conn.dialect.name == "sqlite":  # this connection only: index pages stay cached
                conn.exec_driver_sql("PRAGMA cache_size=-262144")
            for table, values in (
                (s.person, batch),
                (s.email, emails),
                (s.email_link, elinks),
                (s.phone, phones),
                (s.phone_link, plinks),
            ):
                _bulk_insert(conn, table, values)
        done += len(batch)
        if progress:
            progress(len(batch))


def _bulk_insert(conn: Connection, table: Table, rows: list[dict[str, object]]) -> None:
    """Insert many rows of one shape. On SQLite straight through the driver's executemany
    (SQLAlchemy's per-value processing would take most of a million-person seed), with
    datetimes in SQLAlchemy's own SQLite text format, so they read back the same."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), rows)
        return
    columns = list(rows[0])
    sql = 'INSERT INTO "{}" ({}) VALUES ({})'.format(
        table.name, ", ".join(f'"{c}"' for c in columns), ", ".join("?" for _ in columns)
    )

    stamps = {c for c in columns if isinstance(rows[0][c], datetime)}
    texts: dict[object, str] = {}  # a seed stamps every row with the same moment

    def plain(value: object) -> object:
        if not isinstance(value, datetime):
            return value
        if value not in texts:
            texts[value] = value.strftime("%Y-%m-%d %H:%M:%S.%f")
        return texts[value]

    conn.exec_driver_sql(
        sql,
        [tuple(plain(row[c]) if c in stamps else row[c] for c in columns) for row in rows],
    )


def _link_row(
    rows: list[dict[str, object]],
    links: list[dict[str, object]],
    ids: dict[str, int],
    kind: str,
    person_id: int,
    link_type: str,
    now: datetime,
    value: str,
) -> None:
    """One Email/Phone row and its link to a person, with ids from `ids`."""
    row_key, link_key = ("email", "elink") if kind == "email" else ("phone", "plink")
    row_id, link_id = ids[row_key], ids[link_key]
    ids[row_key] += 1
    ids[link_key] += 1
    names = _LINK_NAMES[kind]
    rows.append({names[0]: row_id, names[1]: value, names[2]: now, names[3]: now})
    links.append(
        {
            names[4]: link_id,
            names[5]: s.PERSON_ENTITY_ID,
            names[6]: person_id,
            names[7]: link_type,
            names[8]: row_id,
            names[9]: now,
            names[10]: now,
        }
    )


# kind -> row id, value, row created, row updated, link id, entity, record, type, target,
# link created, link updated (column names, built once: a big seed calls this millions of times)
_LINK_NAMES = {
    kind: (
        link_tables(kind)[3],
        link_tables(kind)[4],
        row_col(kind, "CreatedDate"),
        row_col(kind, "UpdatedDate"),
        link_tables(kind)[2],
        link_col(kind, "EntityID"),
        link_col(kind, "RecordID"),
        link_col(kind, "Type"),
        link_target(kind),
        link_col(kind, "CreatedDate"),
        link_col(kind, "UpdatedDate"),
    )
    for kind in ("email", "phone")
}
