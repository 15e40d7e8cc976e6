"""Bad input gets one clear line on stderr, a non-zero exit, no traceback, and changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ALICE = "alice@example.com"


@pytest.fixture
def seeded(cli):  # type: ignore[no-untyped-def]
    cli.ok("crm", "seed")
    cli.ok("add", "Fatima", "--as", ALICE)
    return cli


def one_line_error(result, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert result.code != 0
    lines = [line for line in result.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.err
    for word in words:
        assert word in lines[0], lines[0]


def state(cli) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    return cli.ok("list", "--as", ALICE, "--json"), cli.ok(
        "mailbox", "list", "--as", ALICE, "--json"
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["list", "--as", "nobody@example.com"],
            ["no CRM user has the email nobody@example.com", "administrator"],
        ),
        (["list", "--as", "not-an-email"], ["not an email address"]),
        (["add", "--id", "99999", "--as", ALICE], ["no CRM person has the id 99999"]),
        (["remove", "--id", "99999", "--as", ALICE], ["not in your list: 99999"]),
        (["why", "99999", "--as", ALICE], ["nothing recorded for person 99999"]),
        (["search", "", "--as", ALICE], ["give a name, a company or an email"]),
        (["search", "company:", "--as", ALICE], ["needs a company name"]),
        (["search", "zzzzqqq", "--as", ALICE], ["nobody matches 'zzzzqqq'"]),
        (["add", "--as", ALICE], ["give either a search QUERY or one or more --id ID"]),
        (
            ["add", "--id", "abc", "--as", ALICE],
            ["'--id'", "valid integer", "crm-contacts add --help"],
        ),
        (["add", "--bogus", "--as", ALICE], ["No such option: --bogus"]),
        (["sync"], ["give --as EMAIL for one mailbox, or --all"]),
        (["crm", "update-person", "99999", "--first", "X"], ["no CRM person has the id 99999"]),
        (["crm", "delete-person", "99999"], ["no CRM person has the id 99999"]),
        (["crm", "add-person", "--first", "", "--last", ""], ["needs a first or a last name"]),
        (
            ["crm", "add-person", "--first", "A", "--last", "B", "--manager", "ghost@example.com"],
            ["no CRM user has the email ghost@example.com"],
        ),
        (["crm", "add-user", "--email", "alice@example.com"], ["already exists"]),
        (["mailbox", "delete", "no-such-item", "--as", ALICE], ["no contact no-such-item"]),
        (
            ["mailbox", "update", "no-such-item", "--as", ALICE, "--first", "X"],
            ["no contact no-such-item"],
        ),
        (["crm", "seed", "--people", "-5"], ["'--people'", "greater than or equal to 0"]),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(seeded, args, words):
    before = state(seeded)
    one_line_error(seeded(*args), *words)
    assert state(seeded) == before


def test_unknown_command_and_no_arguments(cli):
    one_line_error(cli("frobnicate"), "No such command 'frobnicate'")
    result = cli()
    assert result.code == 2 and "Usage" in result.out and "sync" in result.out


def test_bad_configuration(cli, monkeypatch):
    monkeypatch.setenv("MAILBOX_BACKEND", "notes")
    one_line_error(cli("status"), "MAILBOX_BACKEND")
    monkeypatch.setenv("MAILBOX_BACKEND", "ews")
    cli_ok = cli("crm", "seed")
    assert cli_ok.code == 0
    one_line_error(cli("sync", "--as", ALICE), "EWS_URL is not set")
    monkeypatch.setenv("MAILBOX_BACKEND", "graph")
    one_line_error(cli("sync", "--as", ALICE), "GRAPH_TENANT_ID is not set")
    monkeypatch.setenv("MAILBOX_BACKEND", "local")
    monkeypatch.setenv("SUMMARY_TIME", "25:99")
    one_line_error(cli("status"), "SUMMARY_TIME")


def test_unreadable_state_database(cli, home: Path, monkeypatch):
    home.mkdir(parents=True)
    (home / "state.sqlite").write_bytes(b"this is not a database, just some bytes" * 100)
    one_line_error(cli("status"), "state database")
    assert (home / "state.sqlite").read_bytes().startswith(b"this is not a database")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{home}")  # a directory
    one_line_error(cli("status"), "cannot open the state database")


def test_unreachable_postgres_hides_the_password(cli, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://crm:s3cret-pw@127.0.0.1:1/nowhere")
    result = cli("status")
    one_line_error(result, "cannot open the state database")
    assert "s3cret-pw" not in result.err


def test_unreadable_crm_database(cli, home: Path):
    home.mkdir(parents=True)
    (home / "crm.sqlite").write_bytes(b"garbage" * 1000)
    one_line_error(cli("list", "--as", ALICE), "CRM")


def test_real_sage_crm_is_never_written(cli, home: Path, monkeypatch, tmp_path: Path):
    cli.ok("crm", "seed")
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{home / 'crm.sqlite'}")
    one_line_error(cli("crm", "add-user", "--email", "x@example.com"), "only read")
    one_line_error(cli("crm", "delete-person", "1"), "only read")


def test_usage_error_in_a_real_process(home: Path):
    env = {**os.environ, "CRM_CONTACTS_HOME": str(home)}
    exe = [sys.executable, "-c", "from bot.cli import main; main()"]
    bad = subprocess.run([*exe, "sync", "--as"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: Option '--as' requires an argument. (see `crm-contacts --help`)"
    ]
    listed = subprocess.run(
        [*exe, "list", "--as", ALICE, "--json"], env=env, capture_output=True, text=True
    )
    assert listed.returncode == 1 and json.loads(listed.stdout or "null") is None


def test_a_crm_database_missing_a_sage_table_is_one_line(cli, home: Path, monkeypatch):
    import sqlite3

    cli.ok("crm", "seed")
    broken = home / "sage-copy.sqlite"
    with sqlite3.connect(home / "crm.sqlite") as src, sqlite3.connect(broken) as dst:
        src.backup(dst)
        dst.execute("DROP TABLE PhoneLink")
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{broken}")
    one_line_error(cli("search", "Smith", "--as", ALICE), "refused a query", "PhoneLink")
    one_line_error(cli("add", "--id", "6", "--as", ALICE), "refused a query")
