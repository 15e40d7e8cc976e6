"""A real-layout Sage CRM on PostgreSQL for the write-back tests (issue 19): Sage's 7.1+
tables with the column widths of a real install (`Pers_Title` 50, `Pers_WebSite` 40,
`Phon_Number` 21), the demo people in it, a dedicated REST user, and the loopback Sage
REST API in front of the same database. The engine reads it through CRM_DATABASE_URL,
read-only, as it reads a customer's database.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from outlook import ALICE, by_last, contacts, outlook_edit
from servers.sage_rest import SageRestServer, sage_rest_server
from sqlalchemy import create_engine, select, text

from sync_engine.config import load_settings
from sync_engine.crm import schema as s
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.crm.source import SageCrm
from sync_engine.service import Engine

ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
REAL_WIDTHS = {
    ("Person", "Pers_Title"): 50,
    ("Person", "Pers_WebSite"): 40,
    ("Phone", "Phon_Number"): 21,
}


def seed_sage(url: str) -> None:
    """The demo people, a REST user and a real install's widths in the database at `url`."""
    seeding = SageCrm(url, writable=True)
    seed_demo(seeding)
    EmbeddedCrm(seeding).add_user("crmsync@example.com", "CRM", "Sync", logon="crmsync")
    with seeding.engine.begin() as conn:  # a real install's widths, whatever schema.py says
        for (table, column), width in REAL_WIDTHS.items():
            conn.execute(
                text(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE varchar({width})')
            )
    seeding.close()


def _admin(statement: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture(scope="session")
def sage_template(pg_server: str) -> Iterator[str]:
    """One seeded Sage database per test session, copied for each test (a copy takes a
    third of the time of creating and seeding one)."""
    name = f"crm_contacts_sage_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        seed_sage(pg_server.rsplit("/", 1)[0] + f"/{name}")
        yield name
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sage_url(sage_template: str, pg_server: str) -> Iterator[str]:
    """A fresh copy of the seeded Sage database for one test, dropped afterwards."""
    name = f"crm_contacts_t_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{sage_template}"')
    try:
        yield pg_server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def real_sage(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SageRestServer]:
    """Sage's REST API in front of the Sage database at `url`, which the engine reads."""
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    with sage_rest_server(url) as sage:
        for name, value in sage.env().items():
            monkeypatch.setenv(name, value)
        yield sage


def sql(url: str, statement: str, **params: Any) -> list[tuple]:
    """Run SQL against the Sage database as its own admin would (not through us)."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def person_id(url: str, first: str, last: str, middle: str | None = None) -> int:
    p = s.person
    query = select(p.c.Pers_PersonId).where(p.c.Pers_FirstName == first, p.c.Pers_LastName == last)
    if middle is not None:
        query = query.where(p.c.Pers_MiddleName == middle)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def open_engine() -> Engine:
    return Engine(load_settings())


def synced(engine: Engine, query: str = 'company:"Design Right Inc."'):  # type: ignore[no-untyped-def]
    """Alice with these people in her list, synced once."""
    alice = engine.user(ALICE)
    people = engine.search(alice, query, limit=50).people
    engine.add(alice, [p.id for p in people])
    first = engine.sync(alice)
    assert first.error is None, first.error
    return alice


__all__ = ["ALICE", "by_last", "contacts", "outlook_edit", "real_sage", "sql", "synced"]
