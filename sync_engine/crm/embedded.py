"""Writes to the embedded demo CRM: the `crm` sub-commands, the demo data set and the
large generated CRMs used by the benchmarks. A real Sage CRM is never written to.

Changes follow Sage CRM 7.1+'s layout and bookkeeping: a person's emails are `Email`
rows linked through `EmailLink` (entity 13), phones `Phone` rows through `PhoneLink`;
each row written gets its `*_UpdatedDate`, and a removed value is soft-deleted
(`*_Deleted = 1`), as Sage does. Changing only an email touches only the Email row, so
change detection has to look there (DESIGN section 4).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, Table, func, insert, select, update

from sync_engine.crm import names
from sync_engine.crm import schema as s
from sync_engine.crm.demo_data import (
    DEMO_COMPANY_EMAILS,
    DEMO_PEOPLE,
    DEMO_USERS,
    DESIGN_RIGHT,
    DemoPerson,
)
from sync_engine.crm.source import CrmError, SageCrm, _live
from sync_engine.model import clean


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _blank_to_none(value: str | None) -> str | None:
    return clean(value) or None


# option name -> (link table kind, Sage link type)
EMAIL_OPTIONS = {"email": "Business", "email2": "Private"}
PHONE_OPTIONS = {"phone": "Business", "fax": "Fax", "home_phone": "Home", "mobile": "Mobile"}
PERSON_COLUMNS = {
    "first": "Pers_FirstName",
    "middle": "Pers_MiddleName",
    "last": "Pers_LastName",
    "title": "Pers_Title",
    "department": "Pers_Department",
    "salutation": "Pers_Salutation",
    "suffix": "Pers_Suffix",
    "website": "Pers_WebSite",
}
ADDRESS_COLUMNS = {
    "street": "Addr_Address1",
    "city": "Addr_City",
    "state": "Addr_State",
    "postcode": "Addr_PostCode",
    "country": "Addr_Country",
}


__all__ = [
    "DEMO_PEOPLE",
    "DEMO_USERS",
    "DESIGN_RIGHT",
    "DemoPerson",
    "EmbeddedCrm",
    "seed_demo",
    "seed_large",
]


class EmbeddedCrm:
    """Changes to the embedded CRM, with Sage's bookkeeping (updated date, soft delete)."""

    def __init__(self, crm: SageCrm) -> None:
        if not crm.writable:
            raise CrmError(
                "the CRM at CRM_DATABASE_URL is a real Sage CRM and is only read; "
                "make this change in Sage CRM itself"
            )
        self.crm = crm

    def add_user(
        self,
        email: str,
        first: str = "",
        last: str = "",
        logon: str = "",
        *,
        disabled: bool = False,
        resource: bool = False,
        template: bool = False,
    ) -> int:
        email = clean(email).lower()
        if "@" not in email:
            raise CrmError(f"'{email}' is not an email address")
        if self.crm.user_by_email(email):
            raise CrmError(f"a CRM user with email {email} already exists")
        now = _now()
        with self.crm.engine.begin() as conn:
            result = conn.execute(
                insert(s.users).values(
                    User_Logon=clean(logon) or email.split("@")[0],
                    User_FirstName=_blank_to_none(first),
                    User_LastName=_blank_to_none(last),
                    User_EmailAddress=email,
                    # Sage's nchar flags, as Sage writes them (space-padded to the width)
                    User_Disabled="true " if disabled else "false",
                    User_Resource="true " if resource else "false",
                    User_IsTemplate="Y" if template else "N",
                    User_CreatedDate=now,
                    User_UpdatedDate=now,
                )
            )
            return int(result.inserted_primary_key[0])

    def company_id(self, conn: Connection, name: str) -> int | None:
        """The id of the live company with this exact name, created if missing."""
        name = clean(name)
        if not name:
            return None
        found = conn.execute(
            select(s.company.c.Comp_CompanyId).where(
                s.company.c.Comp_Name == name, _live(s.company.c.Comp_Deleted)
            )
        ).scalar()
        if found is not None:
            return int(found)
        now = _now()
        result = conn.execute(
            insert(s.company).values(Comp_Name=name, Comp_CreatedDate=now, Comp_UpdatedDate=now)
        )
        return int(result.inserted_primary_key[0])

    def manager_id(self, manager_email: str | None) -> int | None:
        if not clean(manager_email):
            return None
        user = self.crm.user_by_email(clean(manager_email))
        if user is None:
            raise CrmError(
                f"no CRM user has the email {manager_email}; add one with `crm add-user`"
            )
        return user.id

    def add_person(
        self,
        *,
        first: str,
        last: str,
        middle: str = "",
        company: str = "",
        manager: str | None = None,
        **values: str,
    ) -> int:
        """Add a person; `values` are the options of `crm add-person` (title, department,
        salutation, suffix, website, email, email2, phone, fax, home_phone, mobile,
        street, city, state, postcode, country)."""
        unknown = set(values) - set(PERSON_COLUMNS) - set(EMAIL_OPTIONS) - set(PHONE_OPTIONS)
        unknown -= set(ADDRESS_COLUMNS)
        if unknown:
            raise TypeError(f"unknown person fields: {sorted(unknown)}")
        if not clean(first) and not clean(last):
            raise CrmError("a person needs a first or a last name")
        manager_id = self.manager_id(manager)
        now = _now()
        with self.crm.engine.begin() as conn:
            person: dict[str, object] = {
                column: _blank_to_none(values.get(key))
                for key, column in PERSON_COLUMNS.items()
                if key not in ("first", "middle", "last")
            }
            person_id = conn.execute(
                insert(s.person).values(
                    Pers_CompanyId=self.company_id(conn, company),
                    Pers_PrimaryUserId=manager_id,
                    Pers_FirstName=_blank_to_none(first),
                    Pers_MiddleName=_blank_to_none(middle),
                    Pers_LastName=_blank_to_none(last),
                    Pers_CreatedDate=now,
                    Pers_UpdatedDate=now,
                    **person,
                )
            ).inserted_primary_key[0]
            self._write_links(conn, int(person_id), values, now)
            address = {k: v for k, v in values.items() if k in ADDRESS_COLUMNS}
            if any(clean(v) for v in address.values()):
                self._write_address(conn, int(person_id), None, address, now)
        return int(person_id)

    def update_person(self, person_id: int, **changes: str | None) -> None:
        """Change the named fields (None = leave as is, '' = make blank). Emails, phones and
        the address are written to their own rows only, as Sage does."""
        self._require_live(person_id)
        values: dict[str, object] = {
            PERSON_COLUMNS[k]: _blank_to_none(v)
            for k, v in changes.items()
            if k in PERSON_COLUMNS and v is not None
        }
        links = {
            k: v
            for k, v in changes.items()
            if (k in EMAIL_OPTIONS or k in PHONE_OPTIONS) and v is not None
        }
        address = {k: v for k, v in changes.items() if k in ADDRESS_COLUMNS and v is not None}
        now = _now()
        with self.crm.engine.begin() as conn:
            if changes.get("company") is not None:
                values["Pers_CompanyId"] = self.company_id(conn, changes["company"] or "")
            if changes.get("manager") is not None:
                values["Pers_PrimaryUserId"] = self.manager_id(changes["manager"])
            if not values and not links and not address:
                raise CrmError("nothing to change: give at least one field to update")
            if values:
                values["Pers_UpdatedDate"] = now
                conn.execute(
                    update(s.person).where(s.person.c.Pers_PersonId == person_id).values(**values)
                )
            self._write_links(conn, person_id, links, now)
            if address:
                current = conn.execute(
                    select(s.person.c.Pers_PrimaryAddressId).where(
                        s.person.c.Pers_PersonId == person_id
                    )
                ).scalar()
                self._write_address(conn, person_id, current, address, now)

    def delete_person(self, person_id: int) -> None:
        """Soft delete, as Sage does: Pers_Deleted = 1 and a new updated date."""
        self._require_live(person_id)
        with self.crm.engine.begin() as conn:
            conn.execute(
                update(s.person)
                .where(s.person.c.Pers_PersonId == person_id)
                .values(Pers_Deleted=1, Pers_UpdatedDate=_now())
            )

    def update_company(self, name_or_id: str, *, manager: str | None = None) -> int:
        """Change a live company's Account Manager (Comp_PrimaryUserId; '' clears it) with
        a new Comp_UpdatedDate, as Sage's company screen does; returns the company's id."""
        if manager is None:
            raise CrmError("nothing to change: give --manager EMAIL ('' clears it)")
        manager_id = self.manager_id(manager)
        c = s.company
        wanted = clean(name_or_id)
        with self.crm.engine.begin() as conn:
            found = None
            if wanted.isdigit():
                found = conn.execute(
                    select(c.c.Comp_CompanyId).where(
                        c.c.Comp_CompanyId == int(wanted), _live(c.c.Comp_Deleted)
                    )
                ).scalar()
            if found is None:
                found = conn.execute(
                    select(c.c.Comp_CompanyId)
                    .where(c.c.Comp_Name == wanted, _live(c.c.Comp_Deleted))
                    .order_by(c.c.Comp_CompanyId)
                ).scalar()
            if found is None:
                raise CrmError(
                    f"no CRM company is named or has the id '{wanted[:80]}'; a company is "
                    "created by `crm add-person --company NAME`"
                )
            conn.execute(
                update(c)
                .where(c.c.Comp_CompanyId == found)
                .values(Comp_PrimaryUserId=manager_id, Comp_UpdatedDate=_now())
            )
        return int(found)

    def purge_person(self, person_id: int) -> None:
        """Hard delete (the row is gone), as a database clean-up would do."""
        with self.crm.engine.begin() as conn:
            conn.execute(s.person.delete().where(s.person.c.Pers_PersonId == person_id))

    def link_email(
        self, entity_id: int, record_id: int, address: str, kind: str = "Business"
    ) -> int:
        """Link a new Email row to any entity (5 = Company, 13 = Person); returns its link id."""
        now = _now()
        with self.crm.engine.begin() as conn:
            return _insert_link(conn, "email", entity_id, record_id, kind, address, now)

    # -- the link tables ----------------------------------------------------------------

    def _write_links(
        self, conn: Connection, person_id: int, values: dict[str, str | None], now: datetime
    ) -> None:
        for key, value in values.items():
            if key in EMAIL_OPTIONS:
                self._set_link(conn, "email", person_id, EMAIL_OPTIONS[key], value or "", now)
            elif key in PHONE_OPTIONS:
                self._set_link(conn, "phone", person_id, PHONE_OPTIONS[key], value or "", now)

    def _set_link(
        self, conn: Connection, kind: str, person_id: int, link_type: str, value: str, now: datetime
    ) -> None:
        """Make the person's `link_type` email or phone `value`: change the row the first live
        link points to, soft-delete link and row for a blank, or add both."""
        link, row, link_id, row_id, value_col = _link_tables(kind)
        current = conn.execute(
            select(link.c[link_id], row.c[row_id], row.c[value_col])
            .select_from(link.join(row, row.c[row_id] == link.c[_link_target(kind)]))
            .where(
                link.c[_link_col(kind, "EntityID")] == s.PERSON_ENTITY_ID,
                link.c[_link_col(kind, "RecordID")] == person_id,
                link.c[_link_col(kind, "Type")] == link_type,
                _live(link.c[_link_col(kind, "Deleted")]),
                _live(row.c[_row_col(kind, "Deleted")]),
            )
            .order_by(link.c[link_id])
        ).first()
        value = clean(value)
        if current is None:
            if value:
                _insert_link(conn, kind, s.PERSON_ENTITY_ID, person_id, link_type, value, now)
            return
        found_link, found_row, found_value = current
        if not value:
            conn.execute(
                update(link)
                .where(link.c[link_id] == found_link)
                .values({_link_col(kind, "Deleted"): 1, _link_col(kind, "UpdatedDate"): now})
            )
            conn.execute(
                update(row)
                .where(row.c[row_id] == found_row)
                .values({_row_col(kind, "Deleted"): 1, _row_col(kind, "UpdatedDate"): now})
            )
        elif clean(found_value) != value:
            new = {value_col: value, _row_col(kind, "UpdatedDate"): now}
            if kind == "phone":  # the whole number goes into Phon_Number
                new.update(Phon_CountryCode=None, Phon_AreaCode=None)
            conn.execute(update(row).where(row.c[row_id] == found_row).values(new))

    def _write_address(
        self,
        conn: Connection,
        person_id: int,
        address_id: int | None,
        values: dict[str, str | None],
        now: datetime,
    ) -> None:
        columns = {ADDRESS_COLUMNS[k]: _blank_to_none(v) for k, v in values.items()}
        if "street" in values:  # one line per Addr_Address1..4, as Sage's address screen
            lines = [clean(line) for line in (values["street"] or "").splitlines() if clean(line)]
            lines[3:] = [", ".join(lines[3:])] if lines[3:] else []
            for n in range(4):
                columns[f"Addr_Address{n + 1}"] = lines[n] if n < len(lines) else None
        if address_id is not None:
            conn.execute(
                update(s.address)
                .where(s.address.c.Addr_AddressId == address_id)
                .values(**columns, Addr_UpdatedDate=now)
            )
            return
        new_id = conn.execute(
            insert(s.address).values(**columns, Addr_CreatedDate=now, Addr_UpdatedDate=now)
        ).inserted_primary_key[0]
        conn.execute(
            update(s.person)
            .where(s.person.c.Pers_PersonId == person_id)
            .values(Pers_PrimaryAddressId=new_id, Pers_UpdatedDate=now)
        )

    def _require_live(self, person_id: int) -> None:
        person = self.crm.people_by_ids([person_id]).get(person_id)
        if person is None or person.deleted:
            raise CrmError(
                f"no CRM person has the id {person_id}; find it with `crm-contacts search`"
            )


def _link_tables(kind: str) -> tuple[Table, Table, str, str, str]:
    if kind == "email":
        return s.email_link, s.email, "ELink_LinkID", "Emai_EmailId", "Emai_EmailAddress"
    return s.phone_link, s.phone, "PLink_LinkID", "Phon_PhoneId", "Phon_Number"


def _link_col(kind: str, name: str) -> str:
    return f"{'ELink' if kind == 'email' else 'PLink'}_{name}"


def _row_col(kind: str, name: str) -> str:
    return f"{'Emai' if kind == 'email' else 'Phon'}_{name}"


def _link_target(kind: str) -> str:
    return "ELink_EmailId" if kind == "email" else "PLink_PhoneId"


def _insert_link(
    conn: Connection,
    kind: str,
    entity_id: int,
    record_id: int,
    link_type: str,
    value: str,
    now: datetime,
) -> int:
    link, row, _, _, value_col = _link_tables(kind)
    row_id = conn.execute(
        insert(row).values(
            {
                value_col: value,
                _row_col(kind, "CreatedDate"): now,
                _row_col(kind, "UpdatedDate"): now,
            }
        )
    ).inserted_primary_key[0]
    result = conn.execute(
        insert(link).values(
            {
                _link_col(kind, "EntityID"): entity_id,
                _link_col(kind, "RecordID"): record_id,
                _link_col(kind, "Type"): link_type,
                _link_target(kind): row_id,
                _link_col(kind, "CreatedDate"): now,
                _link_col(kind, "UpdatedDate"): now,
            }
        )
    )
    return int(result.inserted_primary_key[0])


# -- the demo data set -----------------------------------------------------------------


def seed_demo(crm: SageCrm) -> dict[str, int]:
    """Load the demo data set into an empty embedded CRM; a second call changes nothing."""
    writer = EmbeddedCrm(crm)
    with crm.engine.connect() as conn:
        existing = conn.execute(select(func.count()).select_from(s.person)).scalar_one()
    if existing:
        return {"users": len(crm.users()), "people": int(existing), "created": 0}
    for email, first, last in DEMO_USERS:
        if crm.user_by_email(email) is None:
            writer.add_user(email, first, last)
    for p in DEMO_PEOPLE:
        writer.add_person(
            first=p.first,
            last=p.last,
            middle=p.middle,
            company=p.company,
            manager=p.manager,
            **{
                k: getattr(p, k)
                for k in (
                    "title",
                    "email",
                    "email2",
                    "phone",
                    "fax",
                    "home_phone",
                    "mobile",
                    "department",
                    "street",
                    "city",
                    "postcode",
                    "country",
                )
            },
        )
    with crm.engine.begin() as conn:
        for name, address in DEMO_COMPANY_EMAILS.items():
            company_id = writer.company_id(conn, name)
            _insert_link(
                conn, "email", s.COMPANY_ENTITY_ID, company_id, "Business", address, _now()
            )  # type: ignore[arg-type]
    return {"users": len(DEMO_USERS), "people": len(DEMO_PEOPLE), "created": len(DEMO_PEOPLE)}


# -- large generated CRMs ------------------------------------------------------------------


def seed_large(
    crm: SageCrm, people: int, *, seed: int = 42, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Append `people` generated people (and ~1 company per 20) in big batches, each with
    a Business email, half with a Business phone and a quarter with a mobile, all in
    Sage's link tables. Ids are handed out here, so links are written without reading
    anything back."""
    if people < 0:
        raise CrmError("--people must be 0 or more")
    writer = EmbeddedCrm(crm)
    rng = random.Random(seed)
    managers = [u.id for u in crm.users()]
    for n in range(max(0, 5 - len(managers))):
        managers.append(writer.add_user(f"rep{n + 1}@example.com", "Rep", str(n + 1)))
    now = _now()
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
        _link_tables(kind)[3],
        _link_tables(kind)[4],
        _row_col(kind, "CreatedDate"),
        _row_col(kind, "UpdatedDate"),
        _link_tables(kind)[2],
        _link_col(kind, "EntityID"),
        _link_col(kind, "RecordID"),
        _link_col(kind, "Type"),
        _link_target(kind),
        _link_col(kind, "CreatedDate"),
        _link_col(kind, "UpdatedDate"),
    )
    for kind in ("email", "phone")
}
