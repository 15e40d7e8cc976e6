"""Write-back to a real Sage CRM through its REST API (issue 14), against the loopback
Sage REST server in front of a CRM database the engine only reads: an Outlook edit
reaches Sage on every target, only the changed fields are sent, Sage's refusals, the
request count, and the fault run (Sage down during write-back loses nothing)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from outlook import ALICE, by_last, outlook_edit
from servers.ews import ews_server
from servers.graph import graph_server
from servers.sage_rest import SageRestServer, sage_rest_server

from sync_engine.config import load_settings
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.crm.source import SageCrm
from sync_engine.service import Engine


@contextlib.contextmanager
def real_crm(home: Path, monkeypatch) -> Iterator[SageRestServer]:  # type: ignore[no-untyped-def]
    """A Sage CRM database (the demo people) the engine reads through CRM_DATABASE_URL,
    and Sage's REST API in front of it, with a dedicated CRM user for the sync."""
    home.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{home / 'sage.sqlite'}"
    crm = SageCrm(url, writable=True)
    seed_demo(crm)
    EmbeddedCrm(crm).add_user("crmsync@example.com", "CRM", "Sync", logon="crmsync")
    EmbeddedCrm(crm).add_user("gone@example.com", "Old", "Sync", logon="oldsync", disabled=True)
    crm.close()
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    with sage_rest_server(url) as sage:
        for name, value in sage.env().items():
            monkeypatch.setenv(name, value)
        yield sage


@pytest.fixture
def sage(home, monkeypatch) -> Iterator[SageRestServer]:  # type: ignore[no-untyped-def]
    with real_crm(home, monkeypatch) as server:
        yield server


@pytest.fixture
def engine(sage) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    e = Engine(load_settings())
    yield e
    e.close()


def resource(path: str) -> str:
    """`Person('1')` of a request path, without the query (`?returnPartial=false`)."""
    return path.split("?", 1)[0].rsplit("/", 1)[1]


def synced(engine: Engine):  # type: ignore[no-untyped-def]
    alice = engine.user(ALICE)
    people = engine.search(alice, 'company:"Design Right Inc."', limit=50).people
    engine.add(alice, [p.id for p in people])
    assert engine.sync(alice).error is None
    return alice, {p.last_name: p.id for p in people}


@pytest.mark.parametrize("target", ["local", "ews", "graph"])
def test_an_outlook_edit_reaches_sage_through_rest_and_never_echoes(
    target, home, monkeypatch, sage
):  # type: ignore[no-untyped-def]
    servers = {"local": contextlib.nullcontext, "ews": ews_server, "graph": graph_server}
    with servers[target]() as server:
        for name, value in (server.env() if server else {}).items():
            monkeypatch.setenv(name, value)
        engine = Engine(load_settings())
        try:
            alice, ids = synced(engine)
            maria = by_last(engine, "Lopez")
            outlook_edit(
                engine, maria, business_phone="+44 20 7946 0999", job_title="Design Director"
            )
            sage.requests.clear()
            result = engine.sync(alice)
            assert result.error is None and result.count("written_back") == 1
            pid = ids["Lopez"]
            # only the changed fields, each on its own resource
            paths = [(m, resource(p), b) for m, p, b in sage.writes()]
            assert paths[0] == ("PATCH", f"Person('{pid}')", {"Pers_Title": "Design Director"})
            assert paths[1][0] == "PATCH" and paths[1][1].startswith("Phone('")
            # split as Sage keeps a phone (the row had the whole number in Phon_Number)
            assert paths[1][2] == {
                "Phon_CountryCode": "+44",
                "Phon_AreaCode": "20",
                "Phon_Number": "7946 0999",
            }
            assert result.crm_requests == len(sage.requests) == 2
            # what Sage took is what the next read of its database finds
            fields = engine.crm.people_by_ids([pid])[pid].fields
            assert (fields.business_phone, fields.job_title) == (
                "+44 20 7946 0999",
                "Design Director",
            )
            sage.requests.clear()
            for _ in range(2):  # no echo
                again = engine.sync(alice)
                assert not again.outcomes and again.crm_requests == 0
            assert sage.requests == []
        finally:
            engine.close()


def test_a_missing_email_row_is_created_and_linked(engine: Engine, sage: SageRestServer):
    alice, ids = synced(engine)
    pid = ids["Brontë"]
    assert engine.crm.people_by_ids([pid])[pid].fields.email2 == ""
    outlook_edit(engine, by_last(engine, "Brontë"), email2="zoe@home.example")
    result = engine.sync(alice)
    assert result.count("written_back") == 1
    assert [(m, resource(p)) for m, p, _ in sage.writes()][-2:] == [
        ("POST", "Email"),
        ("POST", "EmailLink"),
    ]
    assert engine.crm.people_by_ids([pid])[pid].fields.email2 == "zoe@home.example"
    assert not engine.sync(alice).outcomes


def test_sage_refusing_one_person_fails_that_person_only(engine: Engine, sage: SageRestServer):
    alice, _ = synced(engine)
    outlook_edit(engine, by_last(engine, "Brontë"), job_title="A")
    outlook_edit(engine, by_last(engine, "O'Brien"), job_title="B")
    sage.inject(400)  # the first PATCH is refused (say, a field Sage will not take)
    result = engine.sync(alice)
    assert result.count("failed") == 1 and result.count("written_back") == 1
    [failure] = result.as_json()["failures"]
    # the salesperson reads their outcome; Sage's own words are the admin's
    assert failure["reason"].startswith("not written to the CRM; your admin has the details")
    [note] = result.admin_notes
    assert "HTTP 400" in note and "injected 400" in note
    again = engine.sync(alice)  # the refused edit is still there, and goes now
    assert again.count("written_back") == 1 and again.count("failed") == 0


def test_throttled_sage_is_retried_after_its_retry_after(engine: Engine, sage: SageRestServer):
    alice, _ = synced(engine)
    outlook_edit(engine, by_last(engine, "Brontë"), job_title="A")
    sage.inject(429, times=2, retry_after=1)
    result = engine.sync(alice)
    assert result.count("written_back") == 1
    assert result.crm_requests == 3  # two throttled answers, then the write


def test_fault_run_sage_down_during_write_back_loses_nothing(engine: Engine, sage):  # type: ignore[no-untyped-def]
    alice, ids = synced(engine)
    pid = ids["Brontë"]
    outlook_edit(engine, by_last(engine, "Brontë"), mobile_phone="+44 7700 900123")
    sage.down()
    down = engine.sync(alice)
    assert down.count("written_back") == 0 and down.count("failed") == 1
    assert "your admin has the details" in down.failed[0].detail
    assert "busy or down" in down.admin_notes[0]  # Sage down is the admin's to know
    # the edit stays in Outlook, nothing was overwritten, and the next sync sees it again
    assert by_last(engine, "Brontë").fields.mobile_phone == "+44 7700 900123"
    assert engine.sync(alice).count("failed") == 1
    sage.up()
    back = engine.sync(alice)
    assert back.count("written_back") == 1
    assert engine.crm.people_by_ids([pid])[pid].fields.mobile_phone == "+44 7700 900123"
    assert not engine.sync(alice).outcomes


def test_a_disabled_sync_user_or_a_bad_password_is_refused_for_the_whole_run(
    home, monkeypatch, sage
):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SAGE_REST_USER", "oldsync")
    sage.passwords["oldsync"] = "pw"
    monkeypatch.setenv("SAGE_REST_PASSWORD", "pw")
    engine = Engine(load_settings())
    try:
        alice, _ = synced(engine)
        outlook_edit(engine, by_last(engine, "Brontë"), job_title="A")
        outlook_edit(engine, by_last(engine, "O'Brien"), job_title="B")
        result = engine.sync(alice)
        assert result.count("failed") == 2 and result.crm_requests == 1  # one try, then stop
        assert "your admin has the details" in result.failed[0].detail
        assert "disabled" in result.admin_notes[0] and "disabled" not in str(result.outcomes)
        assert "pw" not in str(result.as_json())
    finally:
        engine.close()


def test_write_back_is_off_for_a_real_crm_without_sage_rest_url(home, monkeypatch, sage):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("SAGE_REST_URL")
    engine = Engine(load_settings())
    try:
        assert engine.writer is None
        assert "write-back: off" in engine.write_back_status()
        alice, _ = synced(engine)
        outlook_edit(engine, by_last(engine, "Brontë"), job_title="A")
        assert engine.sync(alice).count("written_back") == 0
        assert sage.requests == []
    finally:
        engine.close()


def test_a_create_answered_without_its_key_is_a_failure(engine: Engine, sage: SageRestServer):
    alice, ids = synced(engine)
    sage.omit_key = True  # 201, but no `$key`: we cannot link the row (nor find it again)
    outlook_edit(engine, by_last(engine, "Brontë"), email2="zoe@home.example")
    result = engine.sync(alice)
    assert result.count("failed") == 1 and "no $key" in result.admin_notes[0]
    assert [m for m, p, _ in sage.writes() if "Link" in p] == []  # nothing linked to None
    assert engine.crm.people_by_ids([ids["Brontë"]])[ids["Brontë"]].fields.email2 == ""
