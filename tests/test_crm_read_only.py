"""We never write to a customer's Sage CRM database and create nothing in it (DESIGN
section 4): proven on the real layout by running a whole story (search, add, add-group,
person card, sync twice, list, why, status, crm check, a CRM change seen by the next
sync) against it, on SQLite (file bytes, schema and row counts unchanged) and on
PostgreSQL through a login that has SELECT on exactly the columns docs/sage-crm.md
grants, standing rules included (so nothing we run needs more, not even User_Password's table-wide read)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text

from sync_engine.crm import schema as s
from sync_engine.crm.check import grant_statements
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.crm.source import SageCrm

ALICE = "alice@example.com"


def story(cli) -> None:  # type: ignore[no-untyped-def]
    """Everything a salesperson and an admin do, with a real Sage CRM behind it."""
    found = json.loads(cli.ok("search", "Smith", "--as", ALICE, "--json"))
    assert {p["company"] for p in found} >= {"Acme Corp", "Design Right Inc."}
    assert [p["email"] for p in found if p["company"] == "Acme Corp"] == ["jsmith@acme.example"]
    cli.ok("search", "maria.lopez@designright", "--as", ALICE)
    cli.ok("add", 'company:"Design Right Inc."', "--all", "--as", ALICE)
    cli.ok("add-group", "--as", ALICE)
    cli.ok("rules", "add", "account-manager", "--as", ALICE)  # Comp_PrimaryUserId is granted
    cli.ok("rules", "add", "company-manager", "--as", ALICE)
    first = json.loads(cli.ok("sync", "--as", ALICE, "--json"))["mailboxes"][0]
    assert first["created"] == 9 and first["error"] is None
    again = json.loads(cli.ok("sync", "--as", ALICE, "--json"))["mailboxes"][0]
    assert again["write_requests"] == 0
    box = json.loads(cli.ok("mailbox", "list", "--as", ALICE, "--json"))
    maria = next(c for c in box if c["last_name"] == "Lopez")
    assert (maria["email"], maria["email2"], maria["business_fax"]) == (
        "maria.lopez@designright.example",
        "maria.lopez@home.example",
        "+1 512 555 0199",
    )
    cli.ok("list", "--as", ALICE)
    cli.ok("why", "1", "--as", ALICE)
    cli.ok("status")
    cli.ok("crm", "check")
    refused = cli("crm", "update-person", "1", "--email", "x@example.com")
    assert refused.code == 1 and "only read" in refused.err


def fingerprint(path: Path) -> tuple[str, list[tuple[str, ...]], dict[str, int]]:
    data = hashlib.sha256(path.read_bytes()).hexdigest()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        counts = {
            name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in s.READ
        }
    return data, schema, counts


def test_a_sqlite_sage_database_is_byte_for_byte_the_same_after_a_whole_story(
    cli, home: Path, monkeypatch, tmp_path: Path
):
    sage = tmp_path / "sage" / "CRM.sqlite"
    sage.parent.mkdir()
    seeding = SageCrm(f"sqlite:///{sage}", writable=True)
    seed_demo(seeding)
    with seeding.engine.begin() as conn:  # a customer's file: rollback journal, not WAL
        conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
    seeding.close()
    before = fingerprint(sage)
    files_before = sorted(p.name for p in sage.parent.iterdir())

    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{sage}")
    story(cli)

    assert fingerprint(sage) == before
    assert sorted(p.name for p in sage.parent.iterdir()) == files_before  # no -wal, no -shm


# -- PostgreSQL, through a login with exactly the documented grants ------------------------


@pytest.fixture
def sage_pg(pg_url: str) -> Iterator[str]:
    """The demo CRM in the real layout on PostgreSQL, plus Sage's User_Password column we
    must never read; yields the URL of a login with SELECT on our columns only."""
    admin = SageCrm(pg_url, writable=True)
    seed_demo(admin)
    with admin.engine.begin() as conn:
        conn.execute(text('ALTER TABLE "Users" ADD COLUMN "User_Password" varchar(150)'))
        conn.execute(text('UPDATE "Users" SET "User_Password" = \'not-for-us\''))
    admin.close()
    role = f"crm_ro_{uuid.uuid4().hex[:8]}"
    database = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(
        f"host=127.0.0.1 port=5432 dbname={database} user=postgres", autocommit=True
    ) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        for grant in grant_statements("postgresql", role):
            conn.execute(grant)
    try:
        yield pg_url.replace("postgres@", f"{role}@", 1)
    finally:
        with psycopg.connect(
            f"host=127.0.0.1 port=5432 dbname={database} user=postgres", autocommit=True
        ) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def pg_snapshot(url: str) -> tuple[list[tuple[object, ...]], dict[str, int]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        objects = conn.execute(
            text(
                "SELECT relname, relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' ORDER BY relname"
            )
        ).all()
        counts = {
            name: conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
            for name in s.READ
        }
    engine.dispose()
    return [tuple(r) for r in objects], counts


@pytest.mark.postgres
def test_a_postgresql_sage_database_read_through_a_select_only_login(
    cli, home: Path, monkeypatch, pg_url: str, sage_pg: str
):
    before = pg_snapshot(pg_url)
    monkeypatch.setenv("CRM_DATABASE_URL", sage_pg)
    story(cli)
    # the login cannot write, and our session would refuse to even if it could
    reader = SageCrm(sage_pg)
    with (
        reader.engine.connect() as conn,
        pytest.raises(Exception, match=r"read-only transaction|permission denied"),
    ):
        conn.execute(text('UPDATE "Person" SET "Pers_Title" = \'x\''))
    reader.close()
    # a CRM change made in Sage reaches the mailbox through the same read-only login
    admin = SageCrm(pg_url, writable=True)
    EmbeddedCrm(admin).update_person(1, email="maria@designright.example")
    admin.close()
    synced = json.loads(cli.ok("sync", "--as", ALICE, "--json"))["mailboxes"][0]
    assert synced["updated"] == 1
    assert pg_snapshot(pg_url) == before  # no table, index or view created, no row added
