"""A refused login pauses write-back (issue 19): Sage locks an account out after a number
of failed logons, so after one 401 no sync sends anything until SAGE_REST_USER or
SAGE_REST_PASSWORD change; the pause is in status, check-mailbox, the run's warnings and
the digest. On a real-layout Sage CRM in PostgreSQL, with the state store on SQLite and
on PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from real_sage import by_last, open_engine, outlook_edit, real_sage, synced

from bot.summary import digest_message
from sync_engine.store import utcnow
from sync_engine.write_back_state import PAUSED_FOR_SALESPERSON

pytestmark = pytest.mark.postgres
ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


@pytest.fixture
def second_pg_url(pg_server: str) -> Iterator[str]:
    """Another fresh PostgreSQL database, for the state store beside the Sage one."""
    name = f"crm_contacts_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("state", ["sqlite", "postgresql"])
def test_no_request_after_a_401_until_the_settings_change(
    state, request, sage_url, home, monkeypatch
):  # type: ignore[no-untyped-def]
    if state == "postgresql":
        monkeypatch.setenv("DATABASE_URL", request.getfixturevalue("second_pg_url"))
    with real_sage(sage_url, monkeypatch) as sage:
        monkeypatch.setenv("SAGE_REST_PASSWORD", "an old password")
        engine = open_engine()
        try:
            alice = synced(engine)
            outlook_edit(engine, by_last(engine, "Brontë"), job_title="Head of Operations")
            sage.requests.clear()
            first, *again = [engine.sync(alice) for _ in range(3)]
            # one try, then none: each would count towards Sage's lock-out
            assert len(sage.requests) == 1 and not sage.locked_out("crmsync")
            assert (first.count("failed"), first.crm_requests) == (1, 1)
            assert PAUSED_FOR_SALESPERSON in first.warnings
            for result in again:
                assert result.count("failed") == 1 and result.crm_requests == 0
            # the admin sees why, and that Sage may lock the account
            paused = engine.write_back_paused()
            assert paused and "HTTP 401" in paused and "Account Lockout Threshold" in paused
            assert paused in engine.check_mailbox(alice)
            # the salesperson's digest says it is paused, without Sage's words
            digest = json.dumps(
                digest_message(engine, alice, utcnow() - timedelta(hours=1), utcnow())
            )
            assert "write-back is paused" in digest and "HTTP 401" not in digest
        finally:
            engine.close()
        restarted = open_engine()  # the same wrong password in a new process: still paused
        try:
            assert restarted.sync(alice).crm_requests == 0 and len(sage.requests) == 1
        finally:
            restarted.close()
        monkeypatch.setenv("SAGE_REST_PASSWORD", "s3cret")  # the admin fixed the setting
        fixed = open_engine()
        try:
            assert fixed.write_back_paused() is None
            assert fixed.sync(alice).count("written_back") == 1
            assert by_last(fixed, "Brontë").fields.job_title == "Head of Operations"
        finally:
            fixed.close()
