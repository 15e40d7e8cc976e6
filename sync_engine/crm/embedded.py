"""Writes to the embedded demo CRM: the `crm` sub-commands, its write-back (writer.py),
the demo data set and the large generated CRMs used by the benchmarks (large_crm.py). A
real Sage CRM is never written to.

Changes follow Sage CRM 7.1+'s layout and bookkeeping: a person's emails are `Email`
rows linked through `EmailLink` (entity 13), phones `Phone` rows through `PhoneLink`;
each row written gets its `*_UpdatedDate`, and a removed value is soft-deleted
(`*_Deleted = 1`), as Sage does. Changing only an email touches only the Email row, so
change detection has to look there (DESIGN section 4). Which rows an email or phone
change touches is decided by row_writes.py, the same decision the REST writer sends to
a real Sage: a row another record shares is never changed, a phone keeps its country /
area / number split, a value longer than its column is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, func, insert, select, update

from sync_engine.crm import row_writes as rw
from sync_engine.crm import schema as s
from sync_engine.crm.demo_data import (
    DEMO_COMPANY_EMAILS,
    DEMO_PEOPLE,
    DEMO_USERS,
    DESIGN_RIGHT,
    DemoPerson,
)
from sync_engine.crm.embedded_rows import (
    apply_row_write,
    insert_link,
    insert_row,
    link_tables,
)
from sync_engine.crm.large_crm import append_generated
from sync_engine.crm.rows import column_widths, linked_rows
from sync_engine.crm.source import CrmError, SageCrm, _live
from sync_engine.model import clean


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _blank_to_none(value: str | None) -> str | None:
    return clean(value) or None


# `crm add-person`/`update-person` option -> model field (the write-back's names)
OPTION_FIELDS = {
    "salutation": "title",
    "first": "first_name",
    "middle": "middle_name",
    "last": "last_name",
    "suffix": "suffix",
    "title": "job_title",
    "department": "department",
    "website": "web_page",
    "email": "email",
    "email2": "email2",
    "phone": "business_phone",
    "fax": "business_fax",
    "home_phone": "home_phone",
    "mobile": "mobile_phone",
}
PERSON_COLUMNS = {
    o: rw.PERSON_COLUMNS[f] for o, f in OPTION_FIELDS.items() if f in rw.PERSON_COLUMNS
}
LINKED_OPTIONS = {o: f for o, f in OPTION_FIELDS.items() if f in rw.LINKED}
ADDRESS_COLUMNS = {
    "street": "Addr_Address1",
    "city": "Addr_City",
    "state": "Addr_State",
    "postcode": "Addr_PostCode",
    "country": "Addr_Country",
}
# Address column -> the field as a person calls it (a too-long value names it)
_ADDRESS_NAMES = {f"Addr_Address{n}": "street" for n in range(1, 5)} | {
    column: option for option, column in ADDRESS_COLUMNS.items() if option != "street"
}
WRITTEN_TABLES = ("Person", "Email", "Phone", "Company", "Address")


class ValueTooLong(CrmError):
    """A value longer than the column it goes to: nothing of the change was written."""


__all__ = [
    "DEMO_PEOPLE",
    "DEMO_USERS",
    "DESIGN_RIGHT",
    "DemoPerson",
    "EmbeddedCrm",
    "ValueTooLong",
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
        self._widths: dict[str, int] | None = None

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
        unknown = set(values) - set(PERSON_COLUMNS) - set(LINKED_OPTIONS) - set(ADDRESS_COLUMNS)
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
            self._add_links(conn, int(person_id), values, now)
            address = _address_columns({k: v for k, v in values.items() if k in ADDRESS_COLUMNS})
            if any(address.values()):
                self._write_address(conn, int(person_id), None, address, now)
        return int(person_id)

    def update_person(self, person_id: int, **changes: str | None) -> dict[str, str]:
        """Change the named fields (None = leave as is, '' = make blank), all or nothing.
        Emails and phones go to the person's rows as row_writes.py decides for both
        writers (a row another record shares is never changed, a phone keeps Sage's
        split), the address to its own row; a value longer than its column is refused
        (ValueTooLong) before anything is written. Returns, per email and phone given (by
        model field), the value the person shows once written, for the caller to prove."""
        self._require_live(person_id)
        given = {k: v for k, v in changes.items() if v is not None}
        person = {OPTION_FIELDS[k]: clean(v) for k, v in given.items() if k in PERSON_COLUMNS}
        linked = {OPTION_FIELDS[k]: clean(v) for k, v in given.items() if k in LINKED_OPTIONS}
        address = _address_columns({k: v for k, v in given.items() if k in ADDRESS_COLUMNS})
        if not (person or linked or address or "company" in given or "manager" in given):
            raise CrmError("nothing to change: give at least one field to update")
        widths = self.widths()
        now = _now()
        with self.crm.engine.begin() as conn:
            rows = linked_rows(conn, person_id, rw.kinds_of(linked))
            writes = rw.row_writes(linked, rows)
            others = [(_ADDRESS_NAMES[c], f"Address.{c}", v or "") for c, v in address.items()]
            if "company" in given:
                others.append(("company", "Company.Comp_Name", clean(given["company"])))
            why = rw.first_too_long(widths, person, writes.values(), others)
            if why:
                raise ValueTooLong(why)
            values: dict[str, object] = {rw.PERSON_COLUMNS[f]: v or None for f, v in person.items()}
            if "company" in given:
                values["Pers_CompanyId"] = self.company_id(conn, given["company"] or "")
            if "manager" in given:
                values["Pers_PrimaryUserId"] = self.manager_id(given["manager"])
            if values:
                values["Pers_UpdatedDate"] = now
                conn.execute(
                    update(s.person).where(s.person.c.Pers_PersonId == person_id).values(**values)
                )
            for write in writes.values():
                apply_row_write(conn, person_id, write, now)
            if address:
                current = conn.execute(
                    select(s.person.c.Pers_PrimaryAddressId).where(
                        s.person.c.Pers_PersonId == person_id
                    )
                ).scalar()
                self._write_address(conn, person_id, current, address, now)
        return {name: write.expected for name, write in writes.items()}

    def widths(self) -> dict[str, int]:
        """'Table.Column' -> width, read from the file's own declaration once: the demo
        refuses what a real install's columns would not hold (schema.py has their widths)."""
        if self._widths is None:
            self._widths = column_widths(self.crm.engine, WRITTEN_TABLES)
        return self._widths

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

    def _add_links(
        self, conn: Connection, person_id: int, values: dict[str, str], now: datetime
    ) -> None:
        """A new person's emails and phones, each a row of its own holding the value whole
        (as imported data often does; an edit splits a phone, row_writes.py)."""
        for option, value in values.items():
            if option in LINKED_OPTIONS and clean(value):
                kind, link_type = rw.LINKED[LINKED_OPTIONS[option]]
                _insert_link(conn, kind, s.PERSON_ENTITY_ID, person_id, link_type, value, now)

    def _write_address(
        self,
        conn: Connection,
        person_id: int,
        address_id: int | None,
        columns: dict[str, str | None],
        now: datetime,
    ) -> None:
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


def _address_columns(values: dict[str, str | None]) -> dict[str, str | None]:
    """Address option -> value, as the Address columns it goes to (blank: NULL)."""
    columns = {ADDRESS_COLUMNS[k]: _blank_to_none(v) for k, v in values.items()}
    if "street" in values:  # one line per Addr_Address1..4, as Sage's address screen
        lines = [clean(line) for line in (values["street"] or "").splitlines() if clean(line)]
        lines[3:] = [", ".join(lines[3:])] if lines[3:] else []
        for n in range(4):
            columns[f"Addr_Address{n + 1}"] = lines[n] if n < len(lines) else None
    return columns


def _insert_link(
    conn: Connection,
    kind: str,
    entity_id: int,
    record_id: int,
    link_type: str,
    value: str,
    now: datetime,
) -> int:
    """A new row holding `value` whole, linked to the record; the link's id."""
    row_id = insert_row(conn, kind, {link_tables(kind)[4]: value}, now)
    return insert_link(conn, kind, entity_id, record_id, link_type, row_id, now)


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
    """Append `people` generated people to the embedded CRM (large_crm.py), managed by
    its users (five made up when it has fewer)."""
    if people < 0:
        raise CrmError("--people must be 0 or more")
    writer = EmbeddedCrm(crm)
    managers = [u.id for u in crm.users()]
    for n in range(max(0, 5 - len(managers))):
        managers.append(writer.add_user(f"rep{n + 1}@example.com", "Rep", str(n + 1)))
    return append_generated(crm, people, managers, seed=seed, progress=progress)
