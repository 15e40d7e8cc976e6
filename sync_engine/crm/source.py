"""Reads CRM people the way Sage CRM's Exchange integration sees them.

`SageCrm` takes a SQLAlchemy URL: the embedded SQLite demo CRM (writable, created on
first use) or a real Sage CRM database (read-only: we never write to it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, case, create_engine, event, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from sync_engine.crm import schema as s
from sync_engine.model import ContactFields, CrmPerson, CrmUser, clean

# Chunk size for `IN (...)` lists: well under SQLite's and SQL Server's parameter limits.
_ID_CHUNK = 900


class CrmError(Exception):
    """The CRM cannot be read or refused a change; the message says what to do."""


def _live(column) -> object:  # type: ignore[no-untyped-def]
    """Sage marks a deleted row with *_Deleted = 1 and leaves NULL (or 0) for live rows."""
    return or_(column.is_(None), column == 0)


def _first_line(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig or exc).strip().splitlines()
    return f"{type(orig or exc).__name__}: {text[0] if text else ''}"[:200]


def _phone(country: object, area: object, number: object) -> str:
    return " ".join(p for p in (clean(country), clean(area), clean(number)) if p)


class SageCrm:
    """A CRM reachable through SQLAlchemy, with Sage's table and column names."""

    def __init__(self, url: str, *, writable: bool = False) -> None:
        self.url = url
        self.writable = writable
        self.engine: Engine = create_engine(url, future=True)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
            if writable:
                self._create_embedded()

    def _create_embedded(self) -> None:
        try:
            s.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise CrmError(f"cannot open the embedded CRM at {self.url}: {exc.orig}") from None

    def close(self) -> None:
        self.engine.dispose()

    # -- users -------------------------------------------------------------------------

    def user_by_email(self, email: str) -> CrmUser | None:
        """The user with this email; a live account wins over deactivated ones (Sage keeps
        those), and the newest live one over older ones."""
        deactivated = case((s.users.c.User_Deleted == 1, 1), else_=0)
        query = (
            select(s.users)
            .where(func.lower(s.users.c.User_EmailAddress) == clean(email).lower())
            .order_by(deactivated, s.users.c.User_UserId.desc())
        )
        with self._connect() as conn:
            row = conn.execute(query).mappings().first()
        return _user(row) if row else None

    def user_by_id(self, user_id: int) -> CrmUser | None:
        with self._connect() as conn:
            row = (
                conn.execute(select(s.users).where(s.users.c.User_UserId == user_id))
                .mappings()
                .first()
            )
        return _user(row) if row else None

    def users(self) -> list[CrmUser]:
        with self._connect() as conn:
            rows = conn.execute(select(s.users).order_by(s.users.c.User_UserId)).mappings().all()
        return [_user(r) for r in rows]

    # -- people ------------------------------------------------------------------------

    def people_by_ids(self, ids: Iterable[int]) -> dict[int, CrmPerson]:
        """Every person among `ids` still in the CRM, soft-deleted ones flagged `deleted`."""
        wanted = sorted(set(ids))
        found: dict[int, CrmPerson] = {}
        with self._connect() as conn:
            for start in range(0, len(wanted), _ID_CHUNK):
                chunk = wanted[start : start + _ID_CHUNK]
                query = _person_query().where(s.person.c.Pers_PersonId.in_(chunk))
                rows = conn.execute(query).mappings().all()
                mobiles = self._mobiles(conn, chunk)
                for row in rows:
                    found[row["Pers_PersonId"]] = _person(row, mobiles)
        return found

    def people_managed_by(self, user_id: int) -> list[CrmPerson]:
        """Sage's "Add Group Of Contacts": every live person whose Account Manager is the user."""
        query = (
            _person_query()
            .where(s.person.c.Pers_PrimaryUserId == user_id, _live(s.person.c.Pers_Deleted))
            .order_by(s.person.c.Pers_LastName, s.person.c.Pers_FirstName, s.person.c.Pers_PersonId)
        )
        with self._connect() as conn:
            rows = conn.execute(query).mappings().all()
            ids = [r["Pers_PersonId"] for r in rows]
            mobiles: dict[int, str] = {}
            for start in range(0, len(ids), _ID_CHUNK):
                mobiles.update(self._mobiles(conn, ids[start : start + _ID_CHUNK]))
        return [_person(r, mobiles) for r in rows]

    def count_live_people(self) -> int:
        with self._connect() as conn:
            query = select(func.count()).select_from(s.person).where(_live(s.person.c.Pers_Deleted))
            return int(conn.execute(query).scalar_one())

    def latest_change(self) -> datetime | None:
        with self._connect() as conn:
            people = conn.execute(select(func.max(s.person.c.Pers_UpdatedDate))).scalar_one()
            companies = conn.execute(select(func.max(s.company.c.Comp_UpdatedDate))).scalar_one()
        stamps = [t for t in (people, companies) if t is not None]
        return max(stamps) if stamps else None

    def iter_people(self, batch: int = 5000) -> Iterator[CrmPerson]:
        """Every live person, for the naive search baseline and exports."""
        query = (
            _person_query().where(_live(s.person.c.Pers_Deleted)).order_by(s.person.c.Pers_PersonId)
        )
        with self._connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(query).mappings()
            for row in result:
                yield _person(row, {})

    def _mobiles(self, conn, ids: list[int]) -> dict[int, str]:  # type: ignore[no-untyped-def]
        query = (
            select(
                s.phone_link.c.PLink_RecordID,
                s.phone.c.Phon_CountryCode,
                s.phone.c.Phon_AreaCode,
                s.phone.c.Phon_Number,
            )
            .select_from(
                s.phone_link.join(s.phone, s.phone.c.Phon_PhoneId == s.phone_link.c.PLink_PhoneId)
            )
            .where(
                s.phone_link.c.PLink_EntityID == s.PERSON_ENTITY_ID,
                s.phone_link.c.PLink_RecordID.in_(ids),
                s.phone_link.c.PLink_Type == "Mobile",
                _live(s.phone_link.c.PLink_Deleted),
                _live(s.phone.c.Phon_Deleted),
            )
            .order_by(s.phone_link.c.PLink_LinkId)  # several mobiles: the newest, every time
        )
        return {row[0]: _phone(row[1], row[2], row[3]) for row in conn.execute(query)}

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """A connection whose every failure, connecting or querying, is a plain CrmError."""
        try:
            conn = self.engine.connect()
        except SQLAlchemyError as exc:
            raise CrmError(
                f"cannot reach the CRM database ({_first_line(exc)}); check CRM_DATABASE_URL"
            ) from None
        try:
            with conn:
                yield conn
        except SQLAlchemyError as exc:
            raise CrmError(
                f"the CRM database refused a query ({_first_line(exc)}); check that CRM_DATABASE_URL "
                "names a Sage CRM database and that its login may read Person, Company, Users, "
                "Address, Phone and PhoneLink"
            ) from None


def _person_query():  # type: ignore[no-untyped-def]
    p, c, a, u = s.person, s.company, s.address, s.users
    return select(
        p,
        c.c.Comp_Name,
        c.c.Comp_Deleted,
        a.c.Addr_Address1,
        a.c.Addr_Address2,
        a.c.Addr_Address3,
        a.c.Addr_Address4,
        a.c.Addr_City,
        a.c.Addr_State,
        a.c.Addr_PostCode,
        a.c.Addr_Country,
        u.c.User_FirstName,
        u.c.User_LastName,
        u.c.User_Logon,
    ).select_from(
        p.outerjoin(c, and_(p.c.Pers_CompanyId == c.c.Comp_CompanyId))
        .outerjoin(
            a, and_(p.c.Pers_PrimaryAddressId == a.c.Addr_AddressId, _live(a.c.Addr_Deleted))
        )
        .outerjoin(u, p.c.Pers_PrimaryUserId == u.c.User_UserId)
    )


def _person(row, mobiles: dict[int, str]) -> CrmPerson:  # type: ignore[no-untyped-def]
    street = "\n".join(
        clean(row[k])
        for k in ("Addr_Address1", "Addr_Address2", "Addr_Address3", "Addr_Address4")
        if clean(row[k])
    )
    company_name = "" if row["Comp_Deleted"] == 1 else row["Comp_Name"]
    fields = ContactFields.of(
        title=row["Pers_Salutation"],
        first_name=row["Pers_FirstName"],
        middle_name=row["Pers_MiddleName"],
        last_name=row["Pers_LastName"],
        suffix=row["Pers_Suffix"],
        company=company_name,
        job_title=row["Pers_Title"],
        department=row["Pers_Department"],
        web_page=row["Pers_WebSite"],
        email=row["Pers_EmailAddress"],
        business_phone=_phone(
            row["Pers_PhoneCountryCode"], row["Pers_PhoneAreaCode"], row["Pers_PhoneNumber"]
        ),
        mobile_phone=mobiles.get(row["Pers_PersonId"], ""),
        street=street,
        city=row["Addr_City"],
        state=row["Addr_State"],
        postal_code=row["Addr_PostCode"],
        country=row["Addr_Country"],
    ).with_derived()
    manager = " ".join(clean(row[k]) for k in ("User_FirstName", "User_LastName") if clean(row[k]))
    return CrmPerson(
        id=int(row["Pers_PersonId"]),
        fields=fields,
        manager_id=row["Pers_PrimaryUserId"],
        manager_name=manager or clean(row["User_Logon"]),
        deleted=row["Pers_Deleted"] == 1,
        updated_at=row["Pers_UpdatedDate"],
    )


def _user(row) -> CrmUser:  # type: ignore[no-untyped-def]
    return CrmUser(
        id=int(row["User_UserId"]),
        logon=clean(row["User_Logon"]),
        email=clean(row["User_EmailAddress"]).lower(),
        first_name=clean(row["User_FirstName"]),
        last_name=clean(row["User_LastName"]),
        deleted=row["User_Deleted"] == 1,
    )


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
