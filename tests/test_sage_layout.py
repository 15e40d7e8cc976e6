"""Sage CRM 7.1+'s real layout (DESIGN section 4): emails and phones through the link
tables, entity 13 (Person) never mixed up with 5 (Company), every Deleted flag of row
and link honoured, users who are not salespeople refused, and change detection over
the whole person (an email-only edit reaches Outlook in the next scheduler cycle)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, inspect, select, update

from sync_engine.answers import UnknownUser
from sync_engine.config import load_settings
from sync_engine.crm import schema as s
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.mailbox.local import LocalMailbox
from sync_engine.schedule import Scheduler
from sync_engine.service import Engine

ALICE = "alice@example.com"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    e = Engine(load_settings())
    seed_demo(e.crm)
    yield e
    e.close()


@pytest.fixture
def crm(engine: Engine) -> EmbeddedCrm:
    return EmbeddedCrm(engine.crm)


def fields(engine: Engine, person_id: int):  # type: ignore[no-untyped-def]
    return engine.crm.people_by_ids([person_id])[person_id].fields


def test_person_has_no_email_or_phone_columns(engine: Engine):
    columns = {c["name"] for c in inspect(engine.crm.engine).get_columns("Person")}
    assert not {c for c in columns if "Email" in c or "Phone" in c}
    assert {"Email", "EmailLink", "Phone", "PhoneLink"} <= set(
        inspect(engine.crm.engine).get_table_names()
    )


def test_emails_and_phones_come_from_the_link_tables(engine: Engine, crm: EmbeddedCrm):
    pid = crm.add_person(
        first="Ada",
        last="Byron",
        company="Analytical Ltd",
        email="ada@analytical.example",
        email2="ada@home.example",
        phone="+44 20 7946 0001",
        fax="+44 20 7946 0002",
        home_phone="+44 20 7946 0003",
        mobile="+44 7700 900001",
        salutation="Lady",
        suffix="FRS",
        department="Engines",
        website="https://analytical.example",
        street="1 Engine Row\nFloor 2",
        city="London",
        postcode="EC1A 1AA",
        country="UK",
    )
    with engine.crm.engine.connect() as conn:
        emails = conn.execute(
            select(s.email_link.c.ELink_Type, s.email.c.Emai_EmailAddress)
            .join(s.email, s.email.c.Emai_EmailId == s.email_link.c.ELink_EmailId)
            .where(s.email_link.c.ELink_RecordID == pid, s.email_link.c.ELink_EntityID == 13)
        ).all()
    assert sorted(emails) == [
        ("Business", "ada@analytical.example"),
        ("Private", "ada@home.example"),
    ]
    f = fields(engine, pid)
    assert (f.email, f.email2) == ("ada@analytical.example", "ada@home.example")
    assert (f.business_phone, f.business_fax, f.home_phone, f.mobile_phone) == (
        "+44 20 7946 0001",
        "+44 20 7946 0002",
        "+44 20 7946 0003",
        "+44 7700 900001",
    )
    assert (f.title, f.suffix, f.department, f.web_page) == (
        "Lady",
        "FRS",
        "Engines",
        "https://analytical.example",
    )
    assert (f.street, f.city, f.postal_code, f.country) == (
        "1 Engine Row\nFloor 2",
        "London",
        "EC1A 1AA",
        "UK",
    )


def test_phone_parts_are_joined_country_area_number(engine: Engine, crm: EmbeddedCrm):
    pid = crm.add_person(first="Parts", last="Phone", phone="0")
    with engine.crm.engine.begin() as conn:
        conn.execute(
            update(s.phone)
            .where(s.phone.c.Phon_Number == "0")
            .values(Phon_CountryCode="+1 ", Phon_AreaCode=" 512", Phon_Number="555 0100 ")
        )
    assert fields(engine, pid).business_phone == "+1 512 555 0100"


def test_a_companys_email_never_becomes_the_person_with_the_same_id(
    engine: Engine, crm: EmbeddedCrm
):
    pid = crm.add_person(first="No", last="Mail", company="Same Id Ltd")
    crm.link_email(s.COMPANY_ENTITY_ID, pid, "office@sameid.example", "Business")
    crm.link_email(s.COMPANY_ENTITY_ID, pid, "private@sameid.example", "Private")
    assert (fields(engine, pid).email, fields(engine, pid).email2) == ("", "")
    crm.link_email(s.PERSON_ENTITY_ID, pid, "no.mail@sameid.example", "Business")
    assert fields(engine, pid).email == "no.mail@sameid.example"
    # and the demo itself: company 1 (Design Right) has an email; person 1 keeps hers
    assert fields(engine, 1).email == "maria.lopez@designright.example"


def test_deleted_links_and_rows_are_ignored(engine: Engine, crm: EmbeddedCrm):
    pid = crm.add_person(
        first="Del", last="Eted", email="a@x.example", mobile="+1 1", city="Paris", phone="+1 2"
    )
    with engine.crm.engine.begin() as conn:
        conn.execute(
            update(s.email_link).where(s.email_link.c.ELink_RecordID == pid).values(ELink_Deleted=1)
        )
        phone_id = conn.execute(
            select(s.phone_link.c.PLink_PhoneId).where(
                s.phone_link.c.PLink_RecordID == pid, s.phone_link.c.PLink_Type == "Mobile"
            )
        ).scalar_one()
        conn.execute(
            update(s.phone).where(s.phone.c.Phon_PhoneId == phone_id).values(Phon_Deleted=1)
        )
        conn.execute(update(s.address).values(Addr_Deleted=1))
    f = fields(engine, pid)
    assert (f.email, f.mobile_phone, f.city, f.business_phone) == ("", "", "", "+1 2")
    # 0 counts as live, as NULL does
    with engine.crm.engine.begin() as conn:
        conn.execute(
            update(s.email_link).where(s.email_link.c.ELink_RecordID == pid).values(ELink_Deleted=0)
        )
    assert fields(engine, pid).email == "a@x.example"
    crm.delete_person(pid)
    assert engine.crm.people_by_ids([pid])[pid].deleted


def test_two_links_of_one_type_show_the_lowest_link_id(engine: Engine, crm: EmbeddedCrm):
    pid = crm.add_person(first="Two", last="Mails", email="first@x.example")
    crm.link_email(s.PERSON_ENTITY_ID, pid, "second@x.example", "Business")
    with engine.crm.engine.begin() as conn:  # the newer link's email row is older
        conn.execute(update(s.email).values(Emai_UpdatedDate=datetime(2001, 1, 1)))
    assert fields(engine, pid).email == "first@x.example"
    # both soft-deleted but the second: the second shows
    with engine.crm.engine.begin() as conn:
        first_link = conn.execute(
            select(s.email_link.c.ELink_LinkID)
            .where(s.email_link.c.ELink_RecordID == pid, s.email_link.c.ELink_EntityID == 13)
            .order_by(s.email_link.c.ELink_LinkID)
        ).first()[0]  # type: ignore[index]
        conn.execute(
            update(s.email_link)
            .where(s.email_link.c.ELink_LinkID == first_link)
            .values(ELink_Deleted=1)
        )
    assert fields(engine, pid).email == "second@x.example"


def test_private_email_is_email_2_and_other_types_are_not_mapped(engine: Engine, crm: EmbeddedCrm):
    pid = crm.add_person(first="Priv", last="Ate", email2="me@home.example")
    crm.link_email(s.PERSON_ENTITY_ID, pid, "other@x.example", "Other")
    f = fields(engine, pid)
    assert (f.email, f.email2) == ("", "me@home.example")


@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("User_Disabled", "true ", "deactivated (disabled)"),
        ("User_Resource", "true", "a resource"),
        ("User_IsTemplate", "Y", "a user template"),
        ("User_Deleted", 1, "deactivated (deleted)"),
    ],
)
def test_users_who_are_not_salespeople_are_refused(
    engine: Engine, column: str, value: object, why: str
):
    engine.user(ALICE)
    with engine.crm.engine.begin() as conn:
        conn.execute(
            update(s.users).where(s.users.c.User_EmailAddress == ALICE).values({column: value})
        )
    with pytest.raises(UnknownUser, match=re.escape(why)):
        engine.user(ALICE)


def test_padded_false_flags_are_unset(engine: Engine):
    with engine.crm.engine.begin() as conn:
        conn.execute(
            update(s.users).values(User_Disabled="false", User_Resource=None, User_IsTemplate="N ")
        )
    assert engine.user(ALICE).inactive == ""


def test_a_disabled_user_is_refused_on_the_command_line(cli):
    cli.ok("crm", "seed")
    cli.ok("crm", "add-user", "--email", "gone@example.com", "--disabled")
    result = cli("list", "--as", "gone@example.com")
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        "error: the CRM user gone@example.com is deactivated (disabled) in Sage CRM, so not a "
        "salesperson; ask your CRM administrator (Administration | Users)"
    ]


def test_a_live_user_wins_over_a_disabled_twin(engine: Engine, crm: EmbeddedCrm):
    with engine.crm.engine.begin() as conn:
        conn.execute(
            insert(s.users).values(
                User_Logon="alice-old", User_EmailAddress=ALICE, User_Disabled="true "
            )
        )
    assert engine.user(ALICE).logon == "alice"


# -- change detection over the whole person -------------------------------------------------


def test_changes_since_sees_every_row_a_person_is_read_from(engine: Engine, crm: EmbeddedCrm):
    pid = crm.add_person(
        first="Chan", last="Ges", company="Watch Ltd", email="c@x.example", phone="+1", city="Rome"
    )
    other = crm.add_person(first="Not", last="Me", company="Other Ltd")
    since = engine.crm.latest_change()
    assert since is not None
    assert engine.crm.changes_since(since) == {}

    def bump(table, **where) -> datetime:  # type: ignore[no-untyped-def]
        stamp = _now() + timedelta(seconds=1)
        column = next(c for c in table.c if c.name.endswith("_UpdatedDate"))
        with engine.crm.engine.begin() as conn:
            conn.execute(
                update(table)
                .where(*(table.c[k] == v for k, v in where.items()))
                .values({column.name: stamp})
            )
        return stamp

    with engine.crm.engine.connect() as conn:
        company_id, address_id = conn.execute(
            select(s.person.c.Pers_CompanyId, s.person.c.Pers_PrimaryAddressId).where(
                s.person.c.Pers_PersonId == pid
            )
        ).one()
        email_id = conn.execute(
            select(s.email_link.c.ELink_EmailId).where(s.email_link.c.ELink_RecordID == pid)
        ).scalar_one()
        phone_id = conn.execute(
            select(s.phone_link.c.PLink_PhoneId).where(s.phone_link.c.PLink_RecordID == pid)
        ).scalar_one()
    for table, where in (
        (s.person, {"Pers_PersonId": pid}),
        (s.company, {"Comp_CompanyId": company_id}),
        (s.address, {"Addr_AddressId": address_id}),
        (s.email, {"Emai_EmailId": email_id}),
        (s.email_link, {"ELink_EmailId": email_id}),
        (s.phone, {"Phon_PhoneId": phone_id}),
        (s.phone_link, {"PLink_PhoneId": phone_id}),
    ):
        stamp = bump(table, **where)
        assert engine.crm.changes_since(since) == {pid: stamp}, table.name
        assert engine.crm.latest_change() == stamp, table.name
        assert engine.crm.changes_since(since, ids=[other]) == {}
        since = stamp


def test_changes_since_none_is_every_person_and_ids_narrow_it(engine: Engine):
    everyone = engine.crm.changes_since(None)
    assert set(everyone) == set(range(1, 13))
    assert set(engine.crm.changes_since(None, ids=[2, 5, 999])) == {2, 5}


def test_a_company_email_change_is_not_a_persons_change(engine: Engine, crm: EmbeddedCrm):
    since = engine.crm.latest_change()
    crm.link_email(s.COMPANY_ENTITY_ID, 3, "new@company.example")
    assert engine.crm.changes_since(since) == {}


def test_an_email_only_edit_reaches_outlook_in_the_next_cycle(engine: Engine, crm: EmbeddedCrm):
    alice = engine.user(ALICE)
    engine.add_group(alice)
    clock = [datetime.now(UTC)]
    scheduler = Scheduler(engine, now=lambda: clock[0])
    assert scheduler.run_cycle().synced == [ALICE]
    ana = next(p for p in engine.my_list(alice) if p.last_name == "García")
    clock[0] += timedelta(seconds=60)
    assert scheduler.run_cycle().due == 0

    with engine.crm.engine.connect() as conn:
        before = conn.execute(
            select(s.person.c.Pers_UpdatedDate).where(s.person.c.Pers_PersonId == ana.id)
        ).scalar_one()
    crm.update_person(ana.id, email="ana@acme-new.example", fax="+34 910 000 009")
    with engine.crm.engine.connect() as conn:  # only the Email and Phone rows moved
        assert (
            conn.execute(
                select(s.person.c.Pers_UpdatedDate).where(s.person.c.Pers_PersonId == ana.id)
            ).scalar_one()
            == before
        )
    clock[0] += timedelta(seconds=60)
    assert scheduler.run_cycle().synced == [ALICE]
    box = LocalMailbox(engine.settings.local_mailbox_url, ALICE)
    try:
        [contact] = [
            c for page in box.list_contacts() for c in page if c.fields.last_name == "García"
        ]
    finally:
        box.close()
    assert (contact.fields.email, contact.fields.business_fax) == (
        "ana@acme-new.example",
        "+34 910 000 009",
    )
    clock[0] += timedelta(seconds=60)
    assert scheduler.run_cycle().due == 0  # and once only


def test_removing_an_email_soft_deletes_link_and_row(engine: Engine, crm: EmbeddedCrm):
    pid = crm.add_person(first="Gone", last="Mail", email="gone@x.example")
    since = engine.crm.latest_change()
    crm.update_person(pid, email="")
    assert fields(engine, pid).email == ""
    with engine.crm.engine.connect() as conn:
        rows = conn.execute(
            select(s.email_link.c.ELink_Deleted, s.email.c.Emai_Deleted)
            .join(s.email, s.email.c.Emai_EmailId == s.email_link.c.ELink_EmailId)
            .where(s.email_link.c.ELink_RecordID == pid, s.email_link.c.ELink_EntityID == 13)
        ).all()
    assert rows == [(1, 1)]
    assert pid in engine.crm.changes_since(since)


def test_crm_commands_write_the_link_tables(cli):
    cli.ok("crm", "seed")
    pid = cli.ok(
        "crm",
        "add-person",
        "--first",
        "Cli",
        "--last",
        "Person",
        "--company",
        "Cli Ltd",
        "--manager",
        ALICE,
        "--email",
        "cli@x.example",
        "--email2",
        "cli@home.example",
        "--phone",
        "+1 100",
        "--mobile",
        "+1 200",
        "--fax",
        "+1 300",
        "--home-phone",
        "+1 400",
    ).strip()
    cli.ok("crm", "update-person", pid, "--email2", "", "--fax", "+1 301", "--city", "Oslo")
    cli.ok("add", "--id", pid, "--as", ALICE)
    cli.ok("sync", "--as", ALICE)
    [mine] = [
        c
        for c in json.loads(cli.ok("mailbox", "list", "--as", ALICE, "--json"))
        if c["crm_id"] == int(pid)
    ]
    assert (
        mine["email"],
        mine["email2"],
        mine["business_phone"],
        mine["mobile_phone"],
        mine["business_fax"],
        mine["home_phone"],
        mine["city"],
    ) == ("cli@x.example", "", "+1 100", "+1 200", "+1 301", "+1 400", "Oslo")
    nothing = cli("crm", "update-person", pid)
    assert nothing.code == 1 and "nothing to change" in nothing.err


def test_the_demo_shows_emails_and_phones_in_the_mailbox(cli):
    out = cli.ok("demo")
    # the closing picture of Alice's Contacts folder, from the link tables
    folder = out[out.rindex("Alice's Contacts folder") :]
    for shown in (
        "ana.garcia@acme.example",
        "ana.isabel@correo.example",  # email 2 (Private)
        "business +34 910 000 001",
        "mobile +34 600 000 001",
        "home +1 512 555 0177",
    ):
        assert shown in folder, shown
