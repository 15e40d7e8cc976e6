"""Reads CRM people the way Sage CRM's Exchange integration sees them (DESIGN section 4).

`SageCrm` takes a SQLAlchemy URL: the embedded SQLite demo CRM (writable, created on
first use) or a real Sage CRM database, read-only: we never write to it, create nothing
in it, and on SQLite and PostgreSQL the session itself refuses writes.

Every statement is SQLAlchemy Core on the tables of `schema`, so it compiles for SQL
Server as well (TOP, not LIMIT), and every `IN (...)` list is cut into chunks well under
SQL Server's 2,100 parameters per statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    or_,
    select,
)
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from sync_engine.crm import schema as s
from sync_engine.files import SYNCHRONOUS_NORMAL
from sync_engine.model import ContactFields, CrmPerson, CrmUser, clean

# Chunk size for `IN (...)` lists: well under SQLite's and SQL Server's parameter limits.
T = TypeVar("T")

_ID_CHUNK = 900

MSSQL_EXTRA = "pip install 'crm-contacts[mssql]'"


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


def _set(flag: object) -> bool:
    """Sage's nchar yes/no flags, maybe space-padded: 'true'/'Y' set; 'false'/'N'/NULL not."""
    return clean(flag).lower() in ("true", "y", "yes", "1", "t")


def chunks(ids: Iterable[int], size: int = _ID_CHUNK) -> Iterator[list[int]]:
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), size):
        yield wanted[start : start + size]


def open_engine(url: str) -> Engine:
    """A SQLAlchemy engine for the CRM URL; a missing driver or a bad URL is one line."""
    try:
        return create_engine(url, future=True)
    except ModuleNotFoundError as exc:
        if url.startswith("mssql"):
            raise CrmError(
                f"the SQL Server driver is not installed (no module {exc.name!r}): "
                f"{MSSQL_EXTRA}, and use CRM_DATABASE_URL=mssql+pymssql://USER:PASSWORD@HOST:1433/CRM"
            ) from None
        raise CrmError(
            f"the database driver for CRM_DATABASE_URL is not installed (no module {exc.name!r})"
        ) from None
    except NoSuchModuleError:
        scheme = url.split(":", 1)[0]
        raise CrmError(
            f"CRM_DATABASE_URL names an unknown kind of database ({scheme}); for Sage CRM on "
            "SQL Server use mssql+pymssql://USER:PASSWORD@HOST:1433/CRM"
        ) from None
    except (ArgumentError, ValueError):
        raise CrmError(
            "CRM_DATABASE_URL is not a database URL; for SQL Server use "
            "mssql+pymssql://USER:PASSWORD@HOST:1433/CRM"
        ) from None


class StaleEmbeddedCrm(CrmError):
    """The embedded demo CRM was made by an older release, with another table layout."""

    def __init__(self, path: str, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(
            f"the embedded demo CRM {path} was made by an older release (another table "
            "layout); `crm-contacts demo` recreates it, or delete the file"
        )


class SageCrm:
    """A CRM reachable through SQLAlchemy, with Sage's table and column names.

    `writable` means our own embedded demo CRM (created here, seeded by the demo);
    `recreate_stale` lets the demo drop an embedded CRM left by an older release.
    """

    def __init__(self, url: str, *, writable: bool = False, recreate_stale: bool = False) -> None:
        self.url = url
        self.writable = writable
        self.engine: Engine = open_engine(url)
        dialect = self.engine.dialect.name
        if dialect == "sqlite" and not writable:
            path = self.engine.url.database or ""
            if not path or path == ":memory:" or not Path(path).is_file():
                raise CrmError(
                    f"CRM_DATABASE_URL names no SQLite file ({path or 'none'}); "
                    "give the path of an existing database"
                )
        if dialect == "sqlite":
            event.listen(
                self.engine, "connect", _sqlite_embedded if writable else _sqlite_read_only
            )
        elif dialect == "postgresql" and not writable:
            event.listen(self.engine, "connect", _postgres_read_only)
        if writable:
            self._create_embedded(recreate_stale=recreate_stale)

    def _create_embedded(self, *, recreate_stale: bool) -> None:
        try:
            missing = _missing_columns(self.engine)
            if missing and not recreate_stale:
                raise StaleEmbeddedCrm(self.engine.url.database or self.url, missing)
            if missing:  # our own demo data: dropped whole, the file (and its mode) kept
                old = MetaData()
                old.reflect(self.engine)
                old.drop_all(self.engine)
            s.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise CrmError(f"cannot open the embedded CRM at {self.url}: {exc.orig}") from None

    def close(self) -> None:
        self.engine.dispose()

    # -- users -------------------------------------------------------------------------

    def user_by_email(self, email: str) -> CrmUser | None:
        """The user with this email; a salesperson wins over deleted, disabled, resource and
        template users (Sage keeps those), and the newest over older ones."""
        query = select(*s.cols(s.users)).where(
            func.lower(s.users.c.User_EmailAddress) == clean(email).lower()
        )
        with self._connect() as conn:
            found = [_user(r) for r in conn.execute(query).mappings()]
        found.sort(key=lambda u: (bool(u.inactive), -u.id))
        return found[0] if found else None

    def user_by_id(self, user_id: int) -> CrmUser | None:
        with self._connect() as conn:
            row = conn.execute(_USER_BY_ID, {"user_id": user_id}).mappings().first()
        return _user(row) if row else None

    def users(self) -> list[CrmUser]:
        query = select(*s.cols(s.users)).order_by(s.users.c.User_UserId)
        with self._connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_user(r) for r in rows]

    # -- people ------------------------------------------------------------------------

    def people_by_ids(self, ids: Iterable[int]) -> dict[int, CrmPerson]:
        """Every person among `ids` still in the CRM, soft-deleted ones flagged `deleted`."""
        found: dict[int, CrmPerson] = {}
        with self._connect() as conn:
            for chunk in chunks(ids):
                rows = conn.execute(person_query().where(s.person.c.Pers_PersonId.in_(chunk)))
                rows = rows.mappings().all()
                emails, phones = _emails(conn, chunk), _phones(conn, chunk)
                for row in rows:
                    found[row["Pers_PersonId"]] = _person(row, emails, phones)
        return found

    def people_managed_by(self, user_id: int) -> list[CrmPerson]:
        """Sage's "Add Group Of Contacts": every live person whose Account Manager is the user."""
        query = (
            person_query()
            .where(s.person.c.Pers_PrimaryUserId == user_id, _live(s.person.c.Pers_Deleted))
            .order_by(s.person.c.Pers_LastName, s.person.c.Pers_FirstName, s.person.c.Pers_PersonId)
        )
        with self._connect() as conn:
            rows = conn.execute(query).mappings().all()
            emails: dict[int, dict[str, str]] = {}
            phones: dict[int, dict[str, str]] = {}
            for chunk in chunks(r["Pers_PersonId"] for r in rows):
                emails.update(_emails(conn, chunk))
                phones.update(_phones(conn, chunk))
        return [_person(r, emails, phones) for r in rows]

    def count_live_people(self) -> int:
        with self._connect() as conn:
            query = select(func.count(s.person.c.Pers_PersonId)).where(
                _live(s.person.c.Pers_Deleted)
            )
            return int(conn.execute(query).scalar_one())

    def latest_change(self) -> datetime | None:
        """The newest UpdatedDate of any row a person's contact is read from (Person,
        Company, Email, EmailLink, Phone, PhoneLink, Address): the sync watermark."""
        with self._connect() as conn:
            row = conn.execute(_LATEST_CHANGE).one()
        found = [t for t in row if t is not None]
        return max(found) if found else None

    def changes_since(
        self, since: datetime | None, ids: Iterable[int] | None = None
    ) -> dict[int, datetime]:
        """Person id -> the time of that person's latest change after `since`, across their
        Person row, company, default address, and email and phone rows and links.

        Soft deletes count (Sage bumps the UpdatedDate when it sets Deleted); hard-deleted
        rows leave no trace, the daily reconcile finds those. `since=None` means every
        person (one with no stamp at all maps to datetime.min); `ids` limits the answer
        to those people."""
        out: dict[int, datetime] = {}
        id_chunks: list[list[int] | None] = [None] if ids is None else list(chunks(ids))
        with self._connect() as conn:
            if since is None:
                for chunk in id_chunks:
                    query = select(s.person.c.Pers_PersonId)
                    if chunk is not None:
                        query = query.where(s.person.c.Pers_PersonId.in_(chunk))
                    for (pid,) in conn.execute(query):
                        out.setdefault(int(pid), datetime.min)
            for query in change_queries(since):
                for chunk in id_chunks:
                    q = query if chunk is None else query.where(query.person_id.in_(chunk))
                    for pid, stamp in conn.execute(q.select):
                        if pid is None or stamp is None:
                            continue
                        pid = int(pid)
                        if stamp > out.get(pid, datetime.min):
                            out[pid] = stamp
        return out

    def iter_people(self, batch: int = _ID_CHUNK) -> Iterator[CrmPerson]:
        """Every live person, id order, in keyset pages of `batch` (each with its emails
        and phones): for the naive search baseline and exports."""
        last = 0
        while True:
            query = (
                person_query()
                .where(_live(s.person.c.Pers_Deleted), s.person.c.Pers_PersonId > last)
                .order_by(s.person.c.Pers_PersonId)
                .limit(batch)
            )
            with self._connect() as conn:
                rows = conn.execute(query).mappings().all()
                if not rows:
                    return
                ids = [r["Pers_PersonId"] for r in rows]
                emails, phones = _emails(conn, ids), _phones(conn, ids)
            for row in rows:
                yield _person(row, emails, phones)
            last = ids[-1]

    def emails_of(self, ids: Iterable[int]) -> dict[int, dict[str, str]]:
        """Person id -> {'Business': address, 'Private': address} (live links only)."""
        out: dict[int, dict[str, str]] = {}
        with self._connect() as conn:
            for chunk in chunks(ids):
                out.update(_emails(conn, chunk))
        return out

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
                f"the CRM database refused a query ({_first_line(exc)}); run `crm-contacts crm "
                "check` to see which Sage CRM table, column or grant is missing"
            ) from None


# -- the queries (pure: they build statements, the class above runs them) -----------------

_UPDATED = (
    s.person.c.Pers_UpdatedDate,
    s.company.c.Comp_UpdatedDate,
    s.email.c.Emai_UpdatedDate,
    s.email_link.c.ELink_UpdatedDate,
    s.phone.c.Phon_UpdatedDate,
    s.phone_link.c.PLink_UpdatedDate,
    s.address.c.Addr_UpdatedDate,
)

# Statements every sync runs, built once: building one (and its cache key) cost more of
# our CPU than running it (bench/bench_scale.py)
_LATEST_CHANGE = select(*(select(func.max(col)).scalar_subquery() for col in _UPDATED))
_USER_BY_ID = select(*s.cols(s.users)).where(s.users.c.User_UserId == bindparam("user_id"))


def person_query():  # type: ignore[no-untyped-def]
    """A person with their company, default address and Account Manager's name."""
    p, c, a, u = s.person, s.company, s.address, s.users
    return select(
        *s.cols(p),
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


def email_query(ids: list[int]):  # type: ignore[no-untyped-def]
    """The live Business and Private emails of these people, oldest link first."""
    el, e = s.email_link, s.email
    return (
        select(
            el.c.ELink_RecordID,
            el.c.ELink_Type,
            e.c.Emai_EmailAddress,
            e.c.Emai_EmailId,
            el.c.ELink_LinkID,
        )
        .select_from(el.join(e, e.c.Emai_EmailId == el.c.ELink_EmailId))
        .where(
            el.c.ELink_EntityID == s.PERSON_ENTITY_ID,  # 5 would be a company's email
            el.c.ELink_RecordID.in_(ids),
            el.c.ELink_Type.in_(s.EMAIL_TYPES),
            _live(el.c.ELink_Deleted),
            _live(e.c.Emai_Deleted),
        )
        .order_by(el.c.ELink_LinkID)
    )


def phone_query(ids: list[int]):  # type: ignore[no-untyped-def]
    """The live Business, Fax, Home and Mobile phones of these people, oldest link first."""
    pl, ph = s.phone_link, s.phone
    return (
        select(
            pl.c.PLink_RecordID,
            pl.c.PLink_Type,
            ph.c.Phon_CountryCode,
            ph.c.Phon_AreaCode,
            ph.c.Phon_Number,
            ph.c.Phon_PhoneId,
            pl.c.PLink_LinkID,
        )
        .select_from(pl.join(ph, ph.c.Phon_PhoneId == pl.c.PLink_PhoneId))
        .where(
            pl.c.PLink_EntityID == s.PERSON_ENTITY_ID,
            pl.c.PLink_RecordID.in_(ids),
            pl.c.PLink_Type.in_(s.PHONE_TYPES),
            _live(pl.c.PLink_Deleted),
            _live(ph.c.Phon_Deleted),
        )
        .order_by(pl.c.PLink_LinkID)
    )


class ChangeQuery:
    """One source of a person's changes: (person id, UpdatedDate) rows, and the column
    that holds the person id (to narrow it to some people)."""

    def __init__(self, select_, person_id) -> None:  # type: ignore[no-untyped-def]
        self.select = select_
        self.person_id = person_id

    def where(self, *criteria) -> ChangeQuery:  # type: ignore[no-untyped-def]
        return ChangeQuery(self.select.where(*criteria), self.person_id)


def change_queries(since: datetime | None) -> list[ChangeQuery]:
    """One query per table a person is read from; each uses that table's UpdatedDate."""
    p, c, a = s.person, s.company, s.address
    el, e, pl, ph = s.email_link, s.email, s.phone_link, s.phone
    pid = p.c.Pers_PersonId
    sources = [
        (select(pid, p.c.Pers_UpdatedDate), pid, p.c.Pers_UpdatedDate),
        (
            select(pid, c.c.Comp_UpdatedDate).select_from(
                p.join(c, p.c.Pers_CompanyId == c.c.Comp_CompanyId)
            ),
            pid,
            c.c.Comp_UpdatedDate,
        ),
        (
            select(pid, a.c.Addr_UpdatedDate).select_from(
                p.join(a, p.c.Pers_PrimaryAddressId == a.c.Addr_AddressId)
            ),
            pid,
            a.c.Addr_UpdatedDate,
        ),
        (
            select(el.c.ELink_RecordID, el.c.ELink_UpdatedDate).where(
                el.c.ELink_EntityID == s.PERSON_ENTITY_ID
            ),
            el.c.ELink_RecordID,
            el.c.ELink_UpdatedDate,
        ),
        (
            select(el.c.ELink_RecordID, e.c.Emai_UpdatedDate)
            .select_from(el.join(e, e.c.Emai_EmailId == el.c.ELink_EmailId))
            .where(el.c.ELink_EntityID == s.PERSON_ENTITY_ID),
            el.c.ELink_RecordID,
            e.c.Emai_UpdatedDate,
        ),
        (
            select(pl.c.PLink_RecordID, pl.c.PLink_UpdatedDate).where(
                pl.c.PLink_EntityID == s.PERSON_ENTITY_ID
            ),
            pl.c.PLink_RecordID,
            pl.c.PLink_UpdatedDate,
        ),
        (
            select(pl.c.PLink_RecordID, ph.c.Phon_UpdatedDate)
            .select_from(pl.join(ph, ph.c.Phon_PhoneId == pl.c.PLink_PhoneId))
            .where(pl.c.PLink_EntityID == s.PERSON_ENTITY_ID),
            pl.c.PLink_RecordID,
            ph.c.Phon_UpdatedDate,
        ),
    ]
    out = []
    for query, person_id, stamp in sources:
        if since is not None:
            query = query.where(stamp > since)
            if stamp is a.c.Addr_UpdatedDate:  # from the few changed addresses, not every person
                query = query.where(
                    p.c.Pers_PrimaryAddressId.in_(select(a.c.Addr_AddressId).where(stamp > since))
                )
        out.append(ChangeQuery(query, person_id))
    return out


def _typed(
    rows: Iterable[tuple[object, object, T]], types: tuple[str, ...]
) -> dict[int, dict[str, T]]:
    """Person id -> type -> value. Rows come oldest link first and the first non-blank
    value of a type wins, so a person with two Business emails (or two Mobile phones)
    always shows the one linked first (the lowest link id), whatever order the
    database returns otherwise."""
    canonical = {t.lower(): t for t in types}
    out: dict[int, dict[str, T]] = {}
    for record_id, raw_kind, value in rows:
        kind = canonical.get(clean(raw_kind).lower())
        if kind and value:
            out.setdefault(int(record_id), {}).setdefault(kind, value)  # type: ignore[call-overload]
    return out


def _emails(conn: Connection, ids: list[int]) -> dict[int, dict[str, str]]:
    rows = ((r[0], r[1], clean(r[2])) for r in conn.execute(email_query(ids)))
    return _typed(rows, s.EMAIL_TYPES)


def _phones(conn: Connection, ids: list[int]) -> dict[int, dict[str, str]]:
    rows = ((r[0], r[1], _phone(r[2], r[3], r[4])) for r in conn.execute(phone_query(ids)))
    return _typed(rows, s.PHONE_TYPES)


def _person(row, emails: dict[int, dict[str, str]], phones: dict[int, dict[str, str]]) -> CrmPerson:  # type: ignore[no-untyped-def]
    pid = int(row["Pers_PersonId"])
    street = "\n".join(
        clean(row[k])
        for k in ("Addr_Address1", "Addr_Address2", "Addr_Address3", "Addr_Address4")
        if clean(row[k])
    )
    company_name = "" if row["Comp_Deleted"] == 1 else row["Comp_Name"]
    email, phone = emails.get(pid, {}), phones.get(pid, {})
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
        email=email.get("Business"),
        email2=email.get("Private"),
        business_phone=phone.get("Business"),
        business_fax=phone.get("Fax"),
        home_phone=phone.get("Home"),
        mobile_phone=phone.get("Mobile"),
        street=street,
        city=row["Addr_City"],
        state=row["Addr_State"],
        postal_code=row["Addr_PostCode"],
        country=row["Addr_Country"],
    ).with_derived()
    manager = " ".join(clean(row[k]) for k in ("User_FirstName", "User_LastName") if clean(row[k]))
    return CrmPerson(
        id=pid,
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
        disabled=_set(row["User_Disabled"]),
        resource=_set(row["User_Resource"]),
        template=_set(row["User_IsTemplate"]),
    )


def _missing_columns(engine: Engine) -> list[str]:
    """Table.Column names of our layout absent from tables the file already has."""
    found = inspect(engine)
    present = set(found.get_table_names())
    missing = []
    for table in s.metadata.sorted_tables:
        if table.name in present:
            have = {c["name"] for c in found.get_columns(table.name)}
            missing += [f"{table.name}.{c.name}" for c in table.columns if c.name not in have]
    return missing


def _sqlite_embedded(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(SYNCHRONOUS_NORMAL)
    cursor.close()


def _sqlite_read_only(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """A Sage-shaped SQLite file we do not own: no journal mode change (that would persist
    in the file), and the connection refuses every write."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _postgres_read_only(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """Every transaction of ours on a customer's PostgreSQL is read-only (belt and braces
    next to a login with SELECT grants only)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cursor.close()
    dbapi_connection.commit()
