"""The demo CRM's data set: three salespeople, four companies, twelve people (with the
names, accents and markup that trip up software), and two companies' own emails."""

from __future__ import annotations

from dataclasses import dataclass


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
    email2: str = ""
    phone: str = ""
    fax: str = ""
    home_phone: str = ""
    department: str = ""
    street: str = ""
    postcode: str = ""
    country: str = ""


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
        email2="maria.lopez@home.example",
        phone="+1 512 555 0100",
        fax="+1 512 555 0199",
        department="Management",
        street="500 Congress Ave\nSuite 200",
        postcode="78701",
        country="USA",
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
        phone="+1 512 555 0102",
        home_phone="+1 512 555 0177",
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
        phone="+34 910 000 001",
        email2="ana.isabel@correo.example",
        city="Madrid",
        country="Spain",
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


# Companies' own emails (EmailLink entity 5): their ids overlap person ids on purpose,
# so the demo itself shows a company's email never becoming a person's.
DEMO_COMPANY_EMAILS = {DESIGN_RIGHT: "info@designright.example", "Acme Corp": "hello@acme.example"}
