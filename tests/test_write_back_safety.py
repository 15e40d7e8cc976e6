"""Write to Sage CRM only what it has provably stored (issue 19), on a real-layout Sage CRM
in PostgreSQL with a real install's column widths, behind a Sage REST API that behaves as
Sage's own material says a real one may (tests/servers/sage_rest.py): a shared phone row,
link resources missing, a redirect, a value a table-level script did not keep, a value
longer than its column, a phone's country and area codes, a refused login, hostile
values, and who may write back to whom."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from real_sage import (
    by_last,
    open_engine,
    outlook_edit,
    person_id,
    real_sage,
    sql,
    synced,
)
from servers.sage_rest import SageRestServer

from sync_engine.service import Engine

pytestmark = pytest.mark.postgres

NOT_WRITTEN = "not written to the CRM; your admin has the details"


@pytest.fixture
def sage(sage_url, home, monkeypatch) -> Iterator[SageRestServer]:  # type: ignore[no-untyped-def]
    with real_sage(sage_url, monkeypatch) as server:
        server.url = sage_url  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def engine(sage) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    e = open_engine()
    yield e
    e.close()


def crm_fields(engine: Engine, pid: int):  # type: ignore[no-untyped-def]
    return engine.crm.people_by_ids([pid])[pid].fields


def unlinked_live_rows(url: str, table: str) -> int:
    """Live Email/Phone rows no live link points at (what a failed create leaves behind)."""
    key, link, target, prefix, lprefix = {
        "Email": ("Emai_EmailId", "EmailLink", "ELink_EmailId", "Emai", "ELink"),
        "Phone": ("Phon_PhoneId", "PhoneLink", "PLink_PhoneId", "Phon", "PLink"),
    }[table]
    [(n,)] = sql(
        url,
        f'SELECT count(*) FROM "{table}" r WHERE r."{prefix}_Deleted" IS NULL AND NOT EXISTS '
        f'(SELECT 1 FROM "{link}" l WHERE l."{target}" = r."{key}" AND l."{lprefix}_Deleted" IS NULL)',
    )
    return int(n)


def test_a_phone_shared_with_the_company_is_never_changed(engine: Engine, sage):  # type: ignore[no-untyped-def]
    url = sage.url
    maria, john = person_id(url, "Maria", "Lopez"), person_id(url, "John", "Smith", "Paul")
    # Maria's business phone row is also Design Right's switchboard and John's phone
    [(phone_id, company_id)] = sql(
        url,
        'SELECT l."PLink_PhoneId", p."Pers_CompanyId" FROM "PhoneLink" l JOIN "Person" p '
        'ON p."Pers_PersonId" = l."PLink_RecordID" WHERE l."PLink_EntityID" = 13 '
        'AND l."PLink_RecordID" = :pid AND l."PLink_Type" = \'Business\'',
        pid=maria,
    )
    sql(
        url,
        'UPDATE "PhoneLink" SET "PLink_PhoneId" = :phone WHERE "PLink_RecordID" = :john '
        'AND "PLink_EntityID" = 13 AND "PLink_Type" = \'Business\'',
        phone=phone_id,
        john=john,
    )
    sql(
        url,
        'INSERT INTO "PhoneLink" ("PLink_LinkID", "PLink_EntityID", "PLink_RecordID", '
        '"PLink_Type", "PLink_PhoneId") VALUES (900, 5, :company, \'Business\', :phone)',
        company=company_id,
        phone=phone_id,
    )
    alice = synced(engine)
    outlook_edit(engine, by_last(engine, "Lopez"), business_phone="+1 512 555 0999")

    result = engine.sync(alice)
    assert result.count("written_back") == 1, result.outcomes
    # the shared row, so the company's number and John's, is untouched
    [(number,)] = sql(
        url, 'SELECT "Phon_Number" FROM "Phone" WHERE "Phon_PhoneId" = :p', p=phone_id
    )
    assert number == "+1 512 555 0100"
    assert crm_fields(engine, john).business_phone == "+1 512 555 0100"
    # Maria has a row of her own now: her own link moved to it, nobody else's
    assert crm_fields(engine, maria).business_phone == "+1 512 555 0999"
    linked = sql(
        url,
        'SELECT "PLink_RecordID", "PLink_EntityID" FROM "PhoneLink" '
        'WHERE "PLink_PhoneId" = :p AND "PLink_Deleted" IS NULL ORDER BY 1',
        p=phone_id,
    )
    assert sorted(linked) == sorted([(john, 13), (company_id, 5)])
    assert not engine.sync(alice).outcomes  # and nothing echoes


def test_three_failing_syncs_leave_no_orphan_row(engine: Engine, sage):  # type: ignore[no-untyped-def]
    sage.link_resources = False  # this Sage answers no EmailLink/PhoneLink resource
    alice = synced(engine)
    before = unlinked_live_rows(sage.url, "Email")
    outlook_edit(engine, by_last(engine, "Brontë"), email2="zoe@home.example")
    results = [engine.sync(alice) for _ in range(3)]
    assert unlinked_live_rows(sage.url, "Email") == before  # no row left behind
    for result in results:
        assert result.count("failed") == 1 and result.count("written_back") == 0
        assert result.failed[0].detail.startswith(NOT_WRITTEN)
        assert "EmailLink" in result.admin_notes[0] and "deleted again" in result.admin_notes[0]
    assert by_last(engine, "Brontë").fields.email2 == "zoe@home.example"  # Outlook keeps it
    # where the delete fails too, the row is remembered and reused: one, not one a sync
    sage.refuse_delete = True
    sage.requests.clear()
    for _ in range(3):
        assert engine.sync(alice).count("failed") == 1
    assert unlinked_live_rows(sage.url, "Email") == before + 1
    assert [m for m, p, _ in sage.writes() if "/Email?" in p] == ["POST"]


def test_a_remembered_row_that_cannot_be_reused_now_is_kept_not_doubled(engine: Engine, sage):  # type: ignore[no-untyped-def]
    """A row left by an earlier try is reused; when Sage refuses that reuse for a while (a
    500), the row stays remembered: no second row is made beside it."""
    sage.link_resources = False
    sage.refuse_delete = True
    alice = synced(engine)
    before = unlinked_live_rows(sage.url, "Email")
    outlook_edit(engine, by_last(engine, "Brontë"), email2="zoe@home.example")
    assert engine.sync(alice).count("failed") == 1
    assert unlinked_live_rows(sage.url, "Email") == before + 1  # remembered for reuse
    for _ in range(2):
        sage.inject(500)  # the reuse (its PATCH) is refused this time
        assert engine.sync(alice).count("failed") == 1
    assert unlinked_live_rows(sage.url, "Email") == before + 1  # still the one row
    assert [m for m, p, _ in sage.writes() if "/Email?" in p] == ["POST"]


def test_a_redirect_is_no_success_and_the_outlook_value_is_kept(engine: Engine, sage):  # type: ignore[no-untyped-def]
    alice = synced(engine)
    pid = person_id(sage.url, "Zoë", "Brontë")
    outlook_edit(engine, by_last(engine, "Brontë"), job_title="Head of Operations")
    sage.redirect_to = "https://crm.example.com"  # IIS sends http to https
    for _ in range(2):
        result = engine.sync(alice)
        assert result.count("written_back") == 0 and result.count("failed") == 1
        assert "set SAGE_REST_URL to the https address" in result.admin_notes[0]
        assert "https://crm.example.com/sdata/" in result.admin_notes[0]
        assert crm_fields(engine, pid).job_title == "Office Manager"
        # never overwritten with the old CRM value
        assert by_last(engine, "Brontë").fields.job_title == "Head of Operations"
    sage.redirect_to = None
    assert engine.sync(alice).count("written_back") == 1
    assert crm_fields(engine, pid).job_title == "Head of Operations"


def test_a_value_sage_did_not_store_is_reported_and_the_outlook_value_kept(engine: Engine, sage):  # type: ignore[no-untyped-def]
    alice = synced(engine)
    pid = person_id(sage.url, "Zoë", "Brontë")
    sage.scripts["Pers_Title"] = lambda v: v.upper() if v else v  # a table-level script
    outlook_edit(engine, by_last(engine, "Brontë"), job_title="Head of Operations")
    result = engine.sync(alice)
    assert result.count("written_back") == 0 and result.count("failed") == 1
    reason = result.failed[0].detail
    assert "did not keep your job title" in reason and "'HEAD OF OPERATIONS'" in reason
    assert "returnPartial=false" in sage.writes()[-1][1]  # asked Sage to read back
    again = engine.sync(alice)  # retried, reported, and Outlook keeps its value
    assert again.count("failed") == 1
    assert by_last(engine, "Brontë").fields.job_title == "Head of Operations"
    assert crm_fields(engine, pid).job_title == "HEAD OF OPERATIONS"


def test_one_long_value_fails_one_person_and_the_others_are_written(engine: Engine, sage):  # type: ignore[no-untyped-def]
    alice = synced(engine)
    long_title = "Senior Vice President of Global Strategic Partnerships"  # 54 > 50
    outlook_edit(engine, by_last(engine, "Brontë"), job_title=long_title)
    outlook_edit(engine, by_last(engine, "O'Brien"), job_title="Sales Lead")
    outlook_edit(engine, by_last(engine, "Natarajan"), web_page="https://priya.example")
    sage.requests.clear()
    result = engine.sync(alice)
    assert result.count("written_back") == 2 and result.count("failed") == 1
    [failed] = result.failed
    assert failed.name == "Zoë Brontë"
    assert "54 characters long; the CRM takes at most 50" in failed.detail
    assert not any("Brontë" in str(b) or long_title in str(b) for _, _, b in sage.requests)
    assert crm_fields(engine, person_id(sage.url, "Seán", "O'Brien")).job_title == "Sales Lead"
    # and the same next sync: the others are not held back by her
    assert engine.sync(alice).count("failed") == 1
    # a 500 from Sage for one record (its own failure) fails that person, not the run
    outlook_edit(engine, by_last(engine, "O'Brien"), job_title="Head of Sales")
    outlook_edit(engine, by_last(engine, "Natarajan"), department="Design")
    sage.inject(500)  # the first request: Priya's (people go in id order)
    again = engine.sync(alice)
    assert sorted(o.name for o in again.failed) == ["Priya Natarajan", "Zoë Brontë"]
    assert again.names("written_back") == ["Seán O'Brien"]
    assert "injected 500" in again.admin_notes[0]


def test_country_and_area_codes_are_kept(engine: Engine, sage):  # type: ignore[no-untyped-def]
    url = sage.url
    maria = person_id(url, "Maria", "Lopez")
    sql(
        url,
        'UPDATE "Phone" SET "Phon_CountryCode" = \'1\', "Phon_AreaCode" = \'512\', '
        "\"Phon_Number\" = '555 0100' WHERE \"Phon_Number\" = '+1 512 555 0100'",
    )
    alice = synced(engine)
    assert by_last(engine, "Lopez").fields.business_phone == "1 512 555 0100"
    outlook_edit(engine, by_last(engine, "Lopez"), business_phone="+1 512 555 0999")
    sage.requests.clear()
    assert engine.sync(alice).count("written_back") == 1
    [(method, _, body)] = sage.writes()
    assert method == "PATCH" and body == {"Phon_Number": "555 0999"}
    rows = sql(
        url,
        'SELECT "Phon_CountryCode", "Phon_AreaCode", "Phon_Number" FROM "Phone" '
        "WHERE \"Phon_Number\" = '555 0999'",
    )
    assert rows == [("1", "512", "555 0999")]
    assert crm_fields(engine, maria).business_phone == "1 512 555 0999"
    # a number the row's codes do not start is split as Sage's integration splits it
    outlook_edit(engine, by_last(engine, "Brontë"), mobile_phone="+44 7700 900123")
    outlook_edit(engine, by_last(engine, "O'Brien"), home_phone="+44 20 7946 0999")
    assert engine.sync(alice).count("written_back") == 2
    rows = sql(
        url,
        'SELECT "Phon_CountryCode", coalesce("Phon_AreaCode", \'\'), "Phon_Number" '
        'FROM "Phone" ORDER BY "Phon_PhoneId" DESC LIMIT 2',
    )
    assert sorted(rows) == [("+44", "", "7700 900123"), ("+44", "20", "7946 0999")]


def test_hostile_values_are_refused_for_that_person_and_never_sent(engine: Engine, sage):  # type: ignore[no-untyped-def]
    alice = synced(engine, 'company:"Acme Corp"')
    hostile = {
        "Smith": {"email": "/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn=js"},
        "García": {"web_page": "javascript:alert(document.cookie)"},
        "Chen": {"job_title": "<img src=x onerror=alert(1)>", "mobile_phone": "1" * 200_000},
    }
    for last, values in hostile.items():
        outlook_edit(engine, by_last(engine, last), **values)
    sage.requests.clear()
    result = engine.sync(alice)
    assert result.count("failed") == 3 and sage.requests == []
    reasons = {o.name: o.detail for o in result.failed}
    assert "not an email address" in reasons["John Smith"]
    assert "not an http or https address" in reasons["Ana Isabel García"]
    assert "looks like HTML" in reasons["Wei Chen"] and "200,000 characters" in reasons["Wei Chen"]
    outlook_edit(
        engine, by_last(engine, "Chen"), job_title="IT \x1b]8;;https://evil.example\x1b\\Boss"
    )
    assert "control or text-direction" in engine.sync(alice).failed[-1].detail


def test_managed_scope_writes_back_only_the_salespersons_own_people(
    engine: Engine, sage, monkeypatch
):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WRITE_BACK_SCOPE", "managed")
    scoped = open_engine()
    try:
        url = sage.url
        [(alice_id,)] = sql(
            url,
            'SELECT "User_UserId" FROM "Users" WHERE "User_Logon" = \'alice\' '
            "OR \"User_EmailAddress\" = 'alice@example.com'",
        )
        # Alice manages Design Right (the company), not its people; Northwind is not hers
        sql(
            url,
            'UPDATE "Company" SET "Comp_PrimaryUserId" = :u WHERE "Comp_Name" = :n',
            u=alice_id,
            n="Design Right Inc.",
        )
        alice = synced(scoped, "Northwind")
        synced(scoped)
        outlook_edit(scoped, by_last(scoped, "Brontë"), job_title="Ops")  # her company's
        outlook_edit(scoped, by_last(scoped, "Andersson"), job_title="Buyer")  # not hers
        result = scoped.sync(alice)
        assert result.names("written_back") == ["Zoë Brontë"]
        [refused] = result.failed
        assert refused.name == "Björn Andersson" and "WRITE_BACK_SCOPE=managed" in refused.detail
    finally:
        scoped.close()


def test_the_salesperson_reads_their_outcome_and_the_admin_reads_sages_words(cli, sage):  # type: ignore[no-untyped-def]
    me = "alice@example.com"
    cli.ok("add", 'company:"Design Right Inc."', "--all", "--as", me)
    cli.ok("sync", "--as", me)
    box = json.loads(cli.ok("mailbox", "list", "--as", me, "--json"))
    zoe = next(c for c in box if c["last_name"] == "Brontë")
    cli.ok("mailbox", "update", zoe["id"], "--as", me, "--job-title", "COO")
    sage.inject(500)
    shown = cli("sync", "--as", me)
    assert NOT_WRITTEN in shown.out and "injected 500" not in shown.out
    listed = json.loads(cli.ok("list", "--as", me, "--json"))
    [status] = [p["status"] for p in listed if p["last_name"] == "Brontë"]
    assert status.startswith(f"failed: {NOT_WRITTEN}")
    assert "injected 500" not in json.dumps(listed)
    admin = cli.ok("status")
    assert "injected 500" in admin and "Zoë Brontë" in admin
    [mailbox] = json.loads(cli.ok("status", "--json"))["mailboxes"]
    assert "injected 500" in json.dumps(mailbox["write_back_notes"])
