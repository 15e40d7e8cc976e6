"""`crm-contacts crm check` for the Sage admin, and how a bad CRM_DATABASE_URL reads:
one clear answer for a good database, one without EmailLink (older than 7.1), one with
a column missing, an unreachable server, and a missing SQL Server driver."""

from __future__ import annotations

import re
import sqlite3
import sys
from pathlib import Path

from sync_engine.crm import schema as s
from sync_engine.crm.check import grant_statements

ALICE = "alice@example.com"


def sage_copy(cli, home: Path, name: str, *sql: str) -> Path:  # type: ignore[no-untyped-def]
    """A copy of the demo CRM standing in for a customer's Sage database, changed by `sql`."""
    cli.ok("crm", "seed")
    copy = home / name
    with sqlite3.connect(home / "crm.sqlite") as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
        for statement in sql:
            dst.execute(statement)
    return copy


def test_a_good_database_is_all_readable(cli, home: Path, monkeypatch):
    copy = sage_copy(cli, home, "sage.sqlite")
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{copy}")
    result = cli("crm", "check")
    assert result.code == 0, result.err
    for table in s.READ:
        assert f"ok  {table}: {len(s.READ[table])} columns readable" in result.out
    assert "live people: 12; with a business email: 12; salespeople: 3 live of 3 users" in (
        result.out
    )
    assert re.search(r"one search \('Lopez'\): \d+ ms, 1 found", result.out)
    assert "CREATE INDEX" not in result.out  # the demo CRM has every index we use
    assert result.out.strip().endswith("All tables and columns we read are readable.")
    assert result.err == ""


def test_counts_leave_out_deleted_people_and_users_who_are_not_salespeople(
    cli, home: Path, monkeypatch
):
    copy = sage_copy(
        cli,
        home,
        "sage.sqlite",
        "UPDATE Person SET Pers_Deleted = 1 WHERE Pers_PersonId = 2",
        "UPDATE EmailLink SET ELink_Deleted = 1 WHERE ELink_RecordID = 3 AND ELink_EntityID = 13",
        "UPDATE Users SET User_Disabled = 'true ' WHERE User_UserId = 3",
    )
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{copy}")
    out = cli.ok("crm", "check")
    assert "live people: 11; with a business email: 10; salespeople: 2 live of 3 users" in out


def test_a_database_without_emaillink_is_older_than_7_1(cli, home: Path, monkeypatch):
    copy = sage_copy(cli, home, "sage70.sqlite", "DROP TABLE EmailLink")
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{copy}")
    result = cli("crm", "check")
    assert result.code == 1
    assert "MISSING  missing table EmailLink" in result.out
    assert "older than Sage CRM 7.1?" in result.out
    assert "ok  Person: 15 columns readable" in result.out
    assert "live people" not in result.out  # no counts from a database we cannot read
    assert result.err.strip().splitlines() == [
        "error: the CRM database lacks 2 thing(s) we read (listed above); see docs/sage-crm.md"
    ]


def test_a_missing_column_is_named(cli, home: Path, monkeypatch):
    copy = sage_copy(cli, home, "custom.sqlite", "ALTER TABLE Person DROP COLUMN Pers_Suffix")
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{copy}")
    result = cli("crm", "check")
    assert result.code == 1
    assert "MISSING  Person: missing column Pers_Suffix" in result.out
    assert "older than" not in result.out
    assert len(result.err.strip().splitlines()) == 1
    # and a search on it stops at its first query with one line pointing at `crm check`
    search = cli("search", "Smith", "--as", ALICE)
    assert search.code == 1 and len(search.err.strip().splitlines()) == 1
    assert "Pers_Suffix" in search.err and "crm check" in search.err


def test_an_unreachable_server_is_one_line(cli, monkeypatch):
    monkeypatch.setenv("CRM_DATABASE_URL", "postgresql+psycopg://crm:s3cret@127.0.0.1:1/crm")
    result = cli("crm", "check")
    assert result.code == 1 and result.out == ""
    [line] = result.err.strip().splitlines()
    assert line.startswith("error: cannot reach the CRM database (")
    assert "s3cret" not in result.err


def test_a_missing_sql_server_driver_names_the_extra(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymssql", None)  # as on an install without the extra
    monkeypatch.setenv("CRM_DATABASE_URL", "mssql+pymssql://crm:s3cret@sql.example:1433/CRM")
    for args in (("crm", "check"), ("search", "Smith", "--as", ALICE)):
        result = cli(*args)
        assert result.code == 1
        [line] = result.err.strip().splitlines()
        assert "the SQL Server driver is not installed" in line
        assert "pip install 'crm-contacts[mssql]'" in line
        assert "s3cret" not in result.err


def test_a_sqlite_url_naming_no_file_creates_nothing(cli, home: Path, monkeypatch):
    missing = home / "nowhere" / "sage.sqlite"
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{missing}")
    result = cli("crm", "check")
    assert result.code == 1 and "names no SQLite file" in result.err
    assert not missing.exists()


def test_index_suggestions_are_printed_never_run(cli, home: Path, monkeypatch):
    drops = [
        f"DROP INDEX {index.name}"
        for table in s.TABLES.values()
        for index in table.indexes
        if index.name in ("ix_elink_updateddate", "ix_pers_last_first", "ix_comp_name")
    ]
    copy = sage_copy(cli, home, "bare.sqlite", *drops)
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{copy}")

    def schema_rows() -> list[tuple[str, ...]]:
        with sqlite3.connect(copy) as conn:
            return conn.execute(
                "SELECT type, name, sql FROM sqlite_master ORDER BY name"
            ).fetchall()

    before = schema_rows()
    result = cli("crm", "check")
    assert result.code == 0, result.err
    suggested = [line.strip() for line in result.out.splitlines() if "CREATE INDEX" in line]
    assert suggested == [
        'CREATE INDEX ix_pers_last_first ON "Person" ("Pers_LastName", "Pers_FirstName");',
        'CREATE INDEX ix_comp_name ON "Company" ("Comp_Name");',
        'CREATE INDEX ix_elink_updateddate ON "EmailLink" ("ELink_UpdatedDate");',
    ]
    assert schema_rows() == before


def test_the_docs_grant_exactly_the_columns_we_read():
    docs = (Path(__file__).parents[1] / "docs" / "sage-crm.md").read_text()
    grants = [line for line in docs.splitlines() if line.startswith("GRANT ")]
    assert grants == grant_statements("mssql")
    assert "User_Password" not in "\n".join(grants)
