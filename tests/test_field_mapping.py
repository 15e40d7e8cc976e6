"""Sage's whole contact mapping (DESIGN section 4, second table) on every target: email 1
and 2, business phone, business fax, home phone, mobile, salutation, suffix, department,
web page, the address lines as one street. Written, read back, changed, and a second
sync writes nothing (rule 9). Graph v1.0 has no fax property: not written there."""

from __future__ import annotations

import pytest

from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.mailbox import open_mailbox
from sync_engine.model import FIELD_NAMES, ContactChange, MailboxContact
from sync_engine.service import Engine

ALICE = "alice@example.com"

EVERYTHING = dict(
    salutation="Dr",
    suffix="PhD",
    title="Chief Engineer",
    department="Engines",
    website="https://analytical.example",
    email="ada@analytical.example",
    email2="ada@home.example",
    phone="+44 20 7946 0001",
    fax="+44 20 7946 0002",
    home_phone="+44 20 7946 0003",
    mobile="+44 7700 900001",
    street="1 Engine Row\nFloor 2",
    city="London",
    state="Greater London",
    postcode="EC1A 1AA",
    country="UK",
)


@pytest.fixture
def engine(engine_on_each_target: Engine) -> Engine:
    return engine_on_each_target


def contact(engine: Engine, crm_id: int) -> MailboxContact:
    box = open_mailbox(engine.settings, ALICE)
    try:
        [found] = [c for page in box.list_contacts() for c in page if c.crm_id == crm_id]
        return found
    finally:
        box.close()


def test_every_mapped_field_reaches_the_mailbox_and_follows_the_crm(engine: Engine):
    """Sage's whole mapping on every target; on Graph the business fax goes through its
    MAPI property (String 0x3A24, PidTagBusinessFaxNumber), Graph's contact having none."""
    crm = EmbeddedCrm(engine.crm)
    pid = crm.add_person(first="Ada", middle="M", last="Byron", company="Analytical", **EVERYTHING)
    alice = engine.user(ALICE)
    engine.add(alice, [pid])
    assert engine.sync(alice).count("created") == 1

    wanted = engine.crm.people_by_ids([pid])[pid].fields
    got = contact(engine, pid).fields
    for name in FIELD_NAMES:
        assert getattr(got, name) == getattr(wanted, name), name
    assert wanted.street == "1 Engine Row\nFloor 2"
    assert (got.email2, got.home_phone, got.title) == (
        "ada@home.example",
        EVERYTHING["home_phone"],
        "Dr",
    )

    steady = engine.sync(alice)  # rule 9, with the new fields in the fingerprint
    assert steady.write_requests == 0 and not steady.outcomes

    # Sage edits: only Email and Phone rows change (no Pers_UpdatedDate)
    crm.update_person(pid, email2="ada.b@home.example", home_phone="+44 20 7946 0009", fax="")
    changed = engine.sync(alice)
    assert changed.count("updated") == 1 and changed.write_requests == 1
    got = contact(engine, pid).fields
    assert (got.email, got.email2, got.home_phone) == (
        "ada@analytical.example",
        "ada.b@home.example",
        "+44 20 7946 0009",
    )
    # a CRM blank (the fax removed in Sage) never erases what is in the mailbox (rule 4)
    assert got.business_fax == EVERYTHING["fax"]
    assert engine.sync(alice).write_requests == 0

    crm.update_person(pid, fax="+44 20 7946 0008")
    fax_only = engine.sync(alice)
    assert fax_only.write_requests == 1
    assert contact(engine, pid).fields.business_fax == "+44 20 7946 0008"
    assert engine.sync(alice).write_requests == 0


def test_the_users_own_extra_email_and_phone_are_kept(engine: Engine):
    """Sage writes email 1/2 and one phone of each kind; a third email or a second business
    phone typed in Outlook stays (only the named entries are written)."""
    crm = EmbeddedCrm(engine.crm)
    pid = crm.add_person(first="Keep", last="Mine", email="k@crm.example", phone="+1 1")
    alice = engine.user(ALICE)
    engine.add(alice, [pid])
    engine.sync(alice)
    box = open_mailbox(engine.settings, ALICE)
    try:
        mine = contact(engine, pid)
        box.update([ContactChange(mine.item_id, mine.change_key, (("home_phone", "+1 typed"),))])
    finally:
        box.close()
    crm.update_person(pid, email="k2@crm.example", email2="k.private@crm.example")
    assert engine.sync(alice).count("updated") == 1
    got = contact(engine, pid).fields
    assert (got.email, got.email2, got.home_phone, got.business_phone) == (
        "k2@crm.example",
        "k.private@crm.example",
        "+1 typed",
        "+1 1",
    )


def test_a_private_only_email_stays_one_address(engine: Engine):
    """A person whose only email is Private (Sage's email2). Graph's emailAddresses has no
    empty slots (contact resource, msgraph-metadata: a collection of emailAddress), so there
    it is the first entry and reads back as email 1; a later CRM edit must not add it again."""
    graph = engine.settings.mailbox_backend == "graph"
    crm = EmbeddedCrm(engine.crm)
    pid = crm.add_person(first="Pat", last="Home", email2="pat@home.example")
    alice = engine.user(ALICE)
    engine.add(alice, [pid])
    assert engine.sync(alice).count("created") == 1
    held = ("pat@home.example", "") if graph else ("", "pat@home.example")
    got = contact(engine, pid).fields
    assert (got.email, got.email2) == held
    assert engine.sync(alice).write_requests == 0

    crm.update_person(pid, home_phone="+44 20 7946 0010")  # a later CRM edit
    assert engine.sync(alice).count("updated") == 1
    got = contact(engine, pid).fields
    assert (got.email, got.email2, got.home_phone) == (*held, "+44 20 7946 0010")
    assert engine.sync(alice).write_requests == 0  # rule 9
    assert contact(engine, pid).fields.email2 == held[1]

    crm.update_person(pid, email2="pat.new@home.example")  # the Private email changes
    assert engine.sync(alice).write_requests == 1
    got = contact(engine, pid).fields
    new = ("pat.new@home.example", "") if graph else ("", "pat.new@home.example")
    assert (got.email, got.email2) == new
    assert engine.sync(alice).write_requests == 0
    # never taken for an Outlook edit: the CRM still has no Business email (issue 14)
    assert engine.crm.people_by_ids([pid])[pid].fields.email == ""
