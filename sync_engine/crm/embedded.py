"""Writes to the embedded demo CRM: the `crm` sub-commands, the demo data set and the
large generated CRMs used by the benchmarks. A real Sage CRM is never written to."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert, select, update

from sync_engine.crm import schema as s
from sync_engine.crm.source import CrmError, SageCrm
from sync_engine.model import clean


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _blank_to_none(value: str | None) -> str | None:
    return clean(value) or None


class EmbeddedCrm:
    """Changes to the embedded CRM, with Sage's bookkeeping (updated date, soft delete)."""

    def __init__(self, crm: SageCrm) -> None:
        if not crm.writable:
            raise CrmError(
                "the CRM at CRM_DATABASE_URL is a real Sage CRM and is only read; "
                "make this change in Sage CRM itself"
            )
        self.crm = crm

    def add_user(self, email: str, first: str = "", last: str = "", logon: str = "") -> int:
        email = clean(email).lower()
        if "@" not in email:
            raise CrmError(f"'{email}' is not an email address")
        if self.crm.user_by_email(email):
            raise CrmError(f"a CRM user with email {email} already exists")
        with self.crm.engine.begin() as conn:
            result = conn.execute(
                insert(s.users).values(
                    User_Logon=clean(logon) or email.split("@")[0],
                    User_FirstName=_blank_to_none(first),
                    User_LastName=_blank_to_none(last),
                    User_EmailAddress=email,
                )
            )
            return int(result.inserted_primary_key[0])

    def company_id(self, conn, name: str) -> int | None:  # type: ignore[no-untyped-def]
        """The id of the live company with this exact name, created if missing."""
        name = clean(name)
        if not name:
            return None
        found = conn.execute(
            select(s.company.c.Comp_CompanyId).where(
                s.company.c.Comp_Name == name, s.company.c.Comp_Deleted.is_(None)
            )
        ).scalar()
        if found is not None:
            return int(found)
        result = conn.execute(insert(s.company).values(Comp_Name=name, Comp_UpdatedDate=_now()))
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
        email: str = "",
        title: str = "",
        manager: str | None = None,
        phone: str = "",
        mobile: str = "",
        city: str = "",
        street: str = "",
        postcode: str = "",
        country: str = "",
        salutation: str = "",
    ) -> int:
        if not clean(first) and not clean(last):
            raise CrmError("a person needs a first or a last name")
        manager_id = self.manager_id(manager)
        now = _now()
        with self.crm.engine.begin() as conn:
            address_id = None
            if any(clean(v) for v in (street, city, postcode, country)):
                address_id = conn.execute(
                    insert(s.address).values(
                        Addr_Address1=_blank_to_none(street),
                        Addr_City=_blank_to_none(city),
                        Addr_PostCode=_blank_to_none(postcode),
                        Addr_Country=_blank_to_none(country),
                    )
                ).inserted_primary_key[0]
            person_id = conn.execute(
                insert(s.person).values(
                    Pers_CompanyId=self.company_id(conn, company),
                    Pers_PrimaryUserId=manager_id,
                    Pers_PrimaryAddressId=address_id,
                    Pers_Salutation=_blank_to_none(salutation),
                    Pers_FirstName=_blank_to_none(first),
                    Pers_MiddleName=_blank_to_none(middle),
                    Pers_LastName=_blank_to_none(last),
                    Pers_Title=_blank_to_none(title),
                    Pers_EmailAddress=_blank_to_none(email),
                    Pers_PhoneNumber=_blank_to_none(phone),
                    Pers_CreatedDate=now,
                    Pers_UpdatedDate=now,
                )
            ).inserted_primary_key[0]
            if clean(mobile):
                phone_id = conn.execute(
                    insert(s.phone).values(Phon_Number=clean(mobile))
                ).inserted_primary_key[0]
                conn.execute(
                    insert(s.phone_link).values(
                        PLink_EntityID=s.PERSON_ENTITY_ID,
                        PLink_RecordID=person_id,
                        PLink_Type="Mobile",
                        PLink_PhoneId=phone_id,
                    )
                )
        return int(person_id)

    def update_person(self, person_id: int, **changes: str | None) -> None:
        """Change the named fields (None = leave as is, '' = make blank)."""
        columns = {
            "first": "Pers_FirstName",
            "middle": "Pers_MiddleName",
            "last": "Pers_LastName",
            "email": "Pers_EmailAddress",
            "title": "Pers_Title",
            "phone": "Pers_PhoneNumber",
            "department": "Pers_Department",
        }
        self._require_live(person_id)
        values: dict[str, object] = {
            columns[k]: _blank_to_none(v)
            for k, v in changes.items()
            if k in columns and v is not None
        }
        with self.crm.engine.begin() as conn:
            if changes.get("company") is not None:
                values["Pers_CompanyId"] = self.company_id(conn, changes["company"] or "")
            if changes.get("manager") is not None:
                values["Pers_PrimaryUserId"] = self.manager_id(changes["manager"])
            if not values:
                raise CrmError("nothing to change: give at least one field to update")
            values["Pers_UpdatedDate"] = _now()
            conn.execute(
                update(s.person).where(s.person.c.Pers_PersonId == person_id).values(**values)
            )

    def delete_person(self, person_id: int) -> None:
        """Soft delete, as Sage does: Pers_Deleted = 1 and a new updated date."""
        self._require_live(person_id)
        with self.crm.engine.begin() as conn:
            conn.execute(
                update(s.person)
                .where(s.person.c.Pers_PersonId == person_id)
                .values(Pers_Deleted=1, Pers_UpdatedDate=_now())
            )

    def purge_person(self, person_id: int) -> None:
        """Hard delete (the row is gone), as a database clean-up would do."""
        with self.crm.engine.begin() as conn:
            conn.execute(s.person.delete().where(s.person.c.Pers_PersonId == person_id))

    def _require_live(self, person_id: int) -> None:
        person = self.crm.people_by_ids([person_id]).get(person_id)
        if person is None or person.deleted:
            raise CrmError(
                f"no CRM person has the id {person_id}; find it with `crm-contacts search`"
            )


# -- the demo data set -----------------------------------------------------------------


@dataclass(frozen=True)
class DemoPerson:
    first: str
    last: str
    company: str
    manager: str
    middle: str = ""
    title: str = ""
    email: str = ""
    mobile: str = ""
    city: str = ""


DEMO_USERS = (
    ("alice@example.com", "Alice", "Walker"),
    ("bob@example.com", "Bob", "Marsh"),
    ("carol@example.com", "Carol", "Nguyen"),
)

DESIGN_RIGHT = "Design Right Inc."

DEMO_PEOPLE = (
    DemoPerson(
        "Maria",
        "Lopez",
        DESIGN_RIGHT,
        "bob@example.com",
        title="CEO",
        email="maria.lopez@designright.example",
        mobile="+1 555 0101",
        city="Austin",
    ),
    DemoPerson(
        "John",
        "Smith",
        DESIGN_RIGHT,
        "bob@example.com",
        middle="Paul",
        title="Head of Purchasing",
        email="john.smith@designright.example",
        city="Austin",
    ),
    DemoPerson(
        "Priya",
        "Natarajan",
        DESIGN_RIGHT,
        "carol@example.com",
        title="Lead Designer",
        email="priya@designright.example",
    ),
    DemoPerson(
        "Zoë",
        "Brontë",
        DESIGN_RIGHT,
        "bob@example.com",
        title="Office Manager",
        email="zoe@designright.example",
    ),
    DemoPerson(
        "Seán",
        "O'Brien",
        DESIGN_RIGHT,
        "carol@example.com",
        title="Sales Director",
        email="sean.obrien@designright.example",
    ),
    DemoPerson(
        "John",
        "Smith",
        "Acme Corp",
        "alice@example.com",
        title="Buyer",
        email="jsmith@acme.example",
    ),
    DemoPerson(
        "Ana",
        "García",
        "Acme Corp",
        "alice@example.com",
        middle="Isabel",
        title="CFO",
        email="ana.garcia@acme.example",
        mobile="+34 600 000 001",
    ),
    DemoPerson(
        "Wei",
        "Chen",
        "Acme Corp",
        "alice@example.com",
        title="IT Manager",
        email="wei.chen@acme.example",
    ),
    DemoPerson(
        "Tom",
        "Baker",
        "Harbour & Sons <Ltd>",
        "alice@example.com",
        title="Owner",
        email="tom@harbour.example",
    ),
    DemoPerson(
        "Fatima",
        "Al-Sayed",
        "Northwind Traders",
        "carol@example.com",
        title="Procurement",
        email="fatima@northwind.example",
    ),
    DemoPerson(
        "Björn",
        "Andersson",
        "Northwind Traders",
        "bob@example.com",
        email="bjorn@northwind.example",
    ),
    DemoPerson(
        "<!channel>",
        "& Co",
        "Prank Industries",
        "carol@example.com",
        title="<b>not bold</b>",
        email="prank@example.com",
    ),
)


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
            email=p.email,
            title=p.title,
            manager=p.manager,
            mobile=p.mobile,
            city=p.city,
        )
    return {"users": len(DEMO_USERS), "people": len(DEMO_PEOPLE), "created": len(DEMO_PEOPLE)}


# -- large generated CRMs ------------------------------------------------------------------

_FIRST = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Lisa",
    "Daniel",
    "Nancy",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Paul",
    "Emily",
    "Andrew",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Dorothy",
    "George",
    "Melissa",
    "Timothy",
    "Deborah",
    "Zoë",
    "Seán",
    "Björn",
    "Ana",
    "Wei",
    "Priya",
    "Fatima",
    "Maria",
    "José",
    "Chloé",
    "Mateo",
    "Aiko",
    "Olu",
    "Nadia",
    "Ingrid",
    "Rahul",
    "Yusuf",
]
_LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "O'Brien",
    "Brontë",
    "Andersson",
    "Chen",
    "Natarajan",
    "Al-Sayed",
    "Müller",
    "Dubois",
    "Rossi",
    "Kowalski",
    "Novak",
    "Tanaka",
    "Okafor",
    "Ivanova",
]
_WORDS = [
    "Design",
    "Right",
    "Acme",
    "North",
    "Wind",
    "Blue",
    "Harbour",
    "Summit",
    "Pioneer",
    "Apex",
    "Vertex",
    "Global",
    "Prime",
    "Quantum",
    "Silver",
    "Oak",
    "Maple",
    "River",
    "Stone",
    "Bright",
    "Future",
    "Delta",
    "Alpha",
    "Omega",
    "Nova",
    "Stellar",
    "Urban",
    "Coastal",
]
_SUFFIX = ("Inc.", "Ltd", "LLC", "GmbH", "& Sons", "Group", "Partners", "Co.")


def seed_large(
    crm: SageCrm, people: int, *, seed: int = 42, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Append `people` generated people (and ~1 company per 20) in big batches."""
    if people < 0:
        raise CrmError("--people must be 0 or more")
    writer = EmbeddedCrm(crm)
    rng = random.Random(seed)
    managers = [u.id for u in crm.users()]
    for n in range(max(0, 5 - len(managers))):
        managers.append(writer.add_user(f"rep{n + 1}@example.com", "Rep", str(n + 1)))
    now = _now()
    companies = max(1, people // 20)
    with crm.engine.begin() as conn:
        first_company = (
            conn.execute(select(func.max(s.company.c.Comp_CompanyId))).scalar() or 0
        ) + 1
        rows = []
        for i in range(companies):
            name = f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} {rng.choice(_SUFFIX)} {first_company + i}"
            rows.append(
                {"Comp_CompanyId": first_company + i, "Comp_Name": name, "Comp_UpdatedDate": now}
            )
        for start in range(0, len(rows), 20000):
            conn.execute(insert(s.company), rows[start : start + 20000])
    done = 0
    chunk = 50000
    while done < people:
        batch = []
        for _ in range(min(chunk, people - done)):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            middle = rng.choice(_FIRST) if rng.random() < 0.2 else None
            batch.append(
                {
                    "Pers_CompanyId": first_company + rng.randrange(companies),
                    "Pers_PrimaryUserId": rng.choice(managers),
                    "Pers_FirstName": first,
                    "Pers_MiddleName": middle,
                    "Pers_LastName": last,
                    "Pers_Title": rng.choice(("Buyer", "CEO", "CFO", "Engineer", "Manager", None)),
                    "Pers_EmailAddress": f"{first}.{last}.{done + len(batch)}@example.net".lower(),
                    "Pers_CreatedDate": now,
                    "Pers_UpdatedDate": now,
                }
            )
        with crm.engine.begin() as conn:
            conn.execute(insert(s.person), batch)
        done += len(batch)
        if progress:
            progress(len(batch))
    return {"people": people, "companies": companies}
