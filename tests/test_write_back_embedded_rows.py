"""The embedded demo CRM holds the REST writer's rules for Email/Phone rows (DESIGN
section 7): a row another record shares is never changed (the person gets a row of their
own, only their link moves, nothing is left unlinked), a phone keeps Sage's country /
area / number split, a value longer than its column fails that person alone; through
write-back and through `crm update-person` alike. And write-back's managed scope counts
a company's Account Manager as the company-manager standing rule does.

The state store is SQLite or PostgreSQL; the embedded CRM is its SQLite file, whose
columns have a real install's widths (schema.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import real_sage
from outlook import ALICE, by_last, outlook_edit
from sqlalchemy import func, insert, select, update

from sync_engine.config import load_settings
from sync_engine.crm import schema as s
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.crm.source import SageCrm
from sync_engine.service import Engine

NOT_MANAGED = "WRITE_BACK_SCOPE=managed"


@pytest.fixture
def engine(state_db: str) -> Iterator[Engine]:
    e = Engine(load_settings())
    seed_demo(e.crm)
    yield e
    e.close()


def person_id(crm: SageCrm, first: str, last: str, middle: str | None = None) -> int:
    return real_sage.person_id(str(crm.engine.url), first, last, middle)


def business_phone_row(crm: SageCrm, pid: int) -> tuple[int, int]:
    """(link id, phone row id) of the person's live Business phone link."""
    pl = s.phone_link
    with crm.engine.connect() as conn:
        link, row = conn.execute(
            select(pl.c.PLink_LinkID, pl.c.PLink_PhoneId).where(
                pl.c.PLink_EntityID == s.PERSON_ENTITY_ID,
                pl.c.PLink_RecordID == pid,
                pl.c.PLink_Type == "Business",
                pl.c.PLink_Deleted.is_(None),
            )
        ).one()
    return int(link), int(row)


def share_marias_phone(crm: SageCrm) -> tuple[int, int, int, int]:
    """Maria's business phone row made Design Right's switchboard and John Paul Smith's
    phone too, as a Sage user linking the company's number to its people leaves it.
    Returns (Maria, John, the company, the shared row)."""
    maria, john = person_id(crm, "Maria", "Lopez"), person_id(crm, "John", "Smith", "Paul")
    _, shared = business_phone_row(crm, maria)
    pl = s.phone_link
    with crm.engine.begin() as conn:
        company = conn.execute(
            select(s.person.c.Pers_CompanyId).where(s.person.c.Pers_PersonId == maria)
        ).scalar_one()
        conn.execute(
            update(pl)
            .where(pl.c.PLink_LinkID == business_phone_row(crm, john)[0])
            .values(PLink_PhoneId=shared)
        )
        conn.execute(
            insert(pl).values(
                PLink_EntityID=s.COMPANY_ENTITY_ID,
                PLink_RecordID=company,
                PLink_Type="Business",
                PLink_PhoneId=shared,
            )
        )
    return maria, john, int(company), shared


def phone_row(crm: SageCrm, row_id: int) -> tuple[str | None, str | None, str | None]:
    ph = s.phone
    with crm.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(
                select(ph.c.Phon_CountryCode, ph.c.Phon_AreaCode, ph.c.Phon_Number).where(
                    ph.c.Phon_PhoneId == row_id
                )
            ).one()
        )


def linked_to(crm: SageCrm, row_id: int) -> list[tuple[int, int]]:
    """(entity, record) of every live link to the phone row."""
    pl = s.phone_link
    with crm.engine.connect() as conn:
        rows = conn.execute(
            select(pl.c.PLink_EntityID, pl.c.PLink_RecordID).where(
                pl.c.PLink_PhoneId == row_id, pl.c.PLink_Deleted.is_(None)
            )
        ).all()
    return sorted((int(e), int(r)) for e, r in rows)


def unlinked_phone_rows(crm: SageCrm) -> int:
    """Live Phone rows no live link points at (what a half-done create leaves behind)."""
    ph, pl = s.phone, s.phone_link
    linked = select(pl.c.PLink_PhoneId).where(pl.c.PLink_Deleted.is_(None))
    with crm.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    ph.c.Phon_Deleted.is_(None), ph.c.Phon_PhoneId.not_in(linked)
                )
            ).scalar_one()
        )


def synced(engine: Engine):  # type: ignore[no-untyped-def]
    """Alice with the Design Right people in her list, synced once."""
    alice = engine.user(ALICE)
    people = engine.search(alice, 'company:"Design Right Inc."', limit=50).people
    engine.add(alice, [p.id for p in people])
    assert engine.sync(alice).error is None
    return alice


def shows(engine: Engine, pid: int):  # type: ignore[no-untyped-def]
    return engine.crm.people_by_ids([pid])[pid].fields


def test_a_phone_shared_with_the_company_keeps_the_companys_number(engine: Engine):
    crm = engine.crm
    maria, john, company, shared = share_marias_phone(crm)
    maria_link, _ = business_phone_row(crm, maria)
    unlinked = unlinked_phone_rows(crm)  # John's own row, left when his link moved
    alice = synced(engine)
    outlook_edit(engine, by_last(engine, "Lopez"), business_phone="+1 512 555 0999")

    result = engine.sync(alice)
    assert result.names("written_back") == ["Maria Lopez"], result.outcomes
    # the shared row, so the company's switchboard and John's phone, is untouched
    assert phone_row(crm, shared) == (None, None, "+1 512 555 0100")
    assert shows(engine, john).business_phone == "+1 512 555 0100"
    assert linked_to(crm, shared) == [(s.COMPANY_ENTITY_ID, company), (s.PERSON_ENTITY_ID, john)]
    # Maria's own link moved to a row of her own, split as Sage keeps a phone
    assert business_phone_row(crm, maria)[0] == maria_link
    own = business_phone_row(crm, maria)[1]
    assert own != shared and phone_row(crm, own) == ("+1", "512", "555 0999")
    assert shows(engine, maria).business_phone == "+1 512 555 0999"
    assert unlinked_phone_rows(crm) == unlinked  # no row made and left behind
    assert not engine.sync(alice).outcomes  # and nothing echoes


def test_the_rows_country_and_area_codes_are_kept(engine: Engine):
    crm = engine.crm
    maria = person_id(crm, "Maria", "Lopez")
    _, row = business_phone_row(crm, maria)
    with crm.engine.begin() as conn:  # as Sage's own Exchange integration keeps a number
        conn.execute(
            update(s.phone)
            .where(s.phone.c.Phon_PhoneId == row)
            .values(Phon_CountryCode="1", Phon_AreaCode="512", Phon_Number="555 0100")
        )
    alice = synced(engine)
    assert by_last(engine, "Lopez").fields.business_phone == "1 512 555 0100"
    outlook_edit(engine, by_last(engine, "Lopez"), business_phone="+1 512 555 0999")
    outlook_edit(engine, by_last(engine, "Brontë"), business_phone="+44 20 7946 0999")

    result = engine.sync(alice)
    assert sorted(result.names("written_back")) == ["Maria Lopez", "Zoë Brontë"]
    assert phone_row(crm, row) == ("1", "512", "555 0999")  # only the number changed
    assert shows(engine, maria).business_phone == "1 512 555 0999"
    # a number the row's codes do not start is split as the REST writer splits it
    zoe = person_id(crm, "Zoë", "Brontë")
    assert phone_row(crm, business_phone_row(crm, zoe)[1]) == ("+44", "20", "7946 0999")
    assert not engine.sync(alice).outcomes


def test_a_too_long_value_fails_that_person_alone(engine: Engine):
    alice = synced(engine)
    long_title = "Senior Vice President of Global Strategic Partnerships"  # 54 > 50
    with_ext = "+44 20 7946 0999 ext 12345"  # 26 characters; its number part 19 <= 21
    outlook_edit(engine, by_last(engine, "O'Brien"), job_title=long_title, department="Sales")
    outlook_edit(engine, by_last(engine, "Brontë"), business_phone=with_ext)
    outlook_edit(engine, by_last(engine, "Natarajan"), web_page="https://priya.example")

    result = engine.sync(alice)
    assert sorted(result.names("written_back")) == ["Priya Natarajan", "Zoë Brontë"]
    [failed] = result.failed
    assert failed.name == "Seán O'Brien"
    assert "54 characters long; the CRM takes at most 50" in failed.detail
    sean = shows(engine, person_id(engine.crm, "Seán", "O'Brien"))
    assert (sean.job_title, sean.department) == ("Sales Director", "")  # nothing of it
    zoe = person_id(engine.crm, "Zoë", "Brontë")
    assert phone_row(engine.crm, business_phone_row(engine.crm, zoe)[1]) == (
        "+44",
        "20",
        "7946 0999 ext 12345",
    )
    # kept in Outlook and failed again next sync; the others are not held back by him
    again = engine.sync(alice)
    assert again.names("failed") == ["Seán O'Brien"] and again.count("written_back") == 0
    assert by_last(engine, "O'Brien").fields.job_title == long_title


def test_managed_scope_counts_a_company_manager_as_the_standing_rule_does(
    home, state_db, monkeypatch
):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WRITE_BACK_SCOPE", "managed")
    engine = Engine(load_settings())
    try:
        seed_demo(engine.crm)
        crm = EmbeddedCrm(engine.crm)
        # Alice is Account Manager of Design Right and of Northwind; Northwind is deleted
        crm.update_company("Design Right Inc.", manager=ALICE)
        northwind = crm.update_company("Northwind Traders", manager=ALICE)
        with engine.crm.engine.begin() as conn:
            conn.execute(
                update(s.company)
                .where(s.company.c.Comp_CompanyId == northwind)
                .values(Comp_Deleted=1)
            )
        alice = engine.user(ALICE)
        brought = engine.rules.add(alice, "company-manager")
        assert brought.people == 5  # Design Right's people, none of the deleted Northwind's
        fatima = person_id(engine.crm, "Fatima", "Al-Sayed")
        engine.add(alice, [fatima])
        assert engine.sync(alice).error is None
        outlook_edit(engine, by_last(engine, "Brontë"), job_title="Ops")  # her live company's
        outlook_edit(engine, by_last(engine, "Al-Sayed"), job_title="Buyer")  # deleted one's

        result = engine.sync(alice)
        assert result.names("written_back") == ["Zoë Brontë"]
        [refused] = result.failed
        assert refused.name == "Fatima Al-Sayed" and NOT_MANAGED in refused.detail
        assert shows(engine, fatima).job_title == "Procurement"
    finally:
        engine.close()


def test_crm_update_person_never_changes_a_shared_row(cli):  # type: ignore[no-untyped-def]
    cli.ok("crm", "seed")
    crm = SageCrm(load_settings().crm_url, writable=True)
    try:
        maria, john, company, shared = share_marias_phone(crm)
        unlinked = unlinked_phone_rows(crm)
        cli.ok("crm", "update-person", str(maria), "--phone", "+1 512 555 0999")
        assert phone_row(crm, shared) == (None, None, "+1 512 555 0100")
        assert linked_to(crm, shared) == [
            (s.COMPANY_ENTITY_ID, company),
            (s.PERSON_ENTITY_ID, john),
        ]
        own = business_phone_row(crm, maria)[1]
        assert phone_row(crm, own) == ("+1", "512", "555 0999")
        assert unlinked_phone_rows(crm) == unlinked
        # a blank takes only Maria's link away: the row stays the company's and John's
        cli.ok("crm", "update-person", str(john), "--phone", "")
        assert linked_to(crm, shared) == [(s.COMPANY_ENTITY_ID, company)]
        assert phone_row(crm, shared) == (None, None, "+1 512 555 0100")
        with crm.engine.connect() as conn:
            [deleted] = conn.execute(
                select(s.phone.c.Phon_Deleted).where(s.phone.c.Phon_PhoneId == shared)
            ).one()
        assert deleted is None
        # a value longer than its column: one line, exit 1, and nothing of the change
        long_title = "Senior Vice President of Global Strategic Partnerships"
        refused = cli("crm", "update-person", str(maria), "--title", long_title, "--city", "Oslo")
        assert refused.code == 1
        assert refused.err.strip().splitlines() == [
            "error: the job title is 54 characters long; the CRM takes at most 50"
        ]
        assert "Traceback" not in refused.err
        person = crm.people_by_ids([maria])[maria].fields
        assert (person.job_title, person.city) == ("CEO", "Austin")
    finally:
        crm.close()
