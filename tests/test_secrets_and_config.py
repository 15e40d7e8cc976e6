"""No credential is shown, logged or stored; configuration is read from our own places
and a wrong setting is blamed by name, in one line (issue 15, items 3, 4 and 8)."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import sqlite3
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from sync_engine.config import ConfigError, load_settings
from sync_engine.logs import setup_logging
from sync_engine.masking import mask_urls, url_secrets

ALICE = "alice@example.com"


# ---------------------------------------------------------------- one masking function


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("postgresql://crm:s3cret@db:5432/x", "postgresql://crm:***@db:5432/x"),
        (
            "postgresql+psycopg://crm:p@ss@127.0.0.1:1/x",
            "postgresql+psycopg://crm:***@127.0.0.1:1/x",
        ),
        (
            "at http://user:password@host/EWS/Exchange.asmx for",
            "at http://user:***@host/EWS/Exchange.asmx for",
        ),
        ("(https://u:pa/ss@host/x)", "(https://u:***@host/x)"),
        ("https://ghp_token@host/repo", "https://***@host/repo"),
        ("https://host/people/a@b.com", "https://host/people/a@b.com"),
        ("sqlite:////home/x/state.sqlite", "sqlite:////home/x/state.sqlite"),
        ("no url here: user:pw@host", "no url here: user:pw@host"),
    ],
)
def test_every_credential_in_a_url_is_masked(raw: str, shown: str) -> None:
    assert mask_urls(raw) == shown


def test_the_log_masks_a_password_with_an_at_sign() -> None:
    stream = io.StringIO()
    setup_logging("json", stream=stream)
    try:
        logging.getLogger("t").warning("cannot open postgresql://crm:p@ss@db/x")
    finally:
        setup_logging("text")
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["msg"] == "cannot open postgresql://crm:***@db/x"


def one_line(result, *words: str) -> str:  # type: ignore[no-untyped-def]
    assert result.code != 0
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err + result.out
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_ews_url_credentials_never_reach_the_terminal_or_the_run_history(
    cli, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a password of every character class a hostile tester tried (issue 22.5)."""
    cli.ok("crm", "seed")
    cli.ok("add", "Priya", "--as", ALICE)
    monkeypatch.setenv("MAILBOX_BACKEND", "ews")
    url = f"http://svc:{EVERY_CLASS}@127.0.0.1:{closed_port()}/EWS/Exchange.asmx"
    monkeypatch.setenv("EWS_URL", url)
    monkeypatch.setenv("EWS_USERNAME", "svc-crm")
    monkeypatch.setenv("EWS_PASSWORD", "hunter2")
    monkeypatch.setenv("EWS_RETRY_MAX_WAIT", "0")
    monkeypatch.setenv("EWS_TIMEOUT", "2")
    result = cli("sync", "--as", ALICE)
    assert result.code == 1
    assert "hunter2" not in result.out + result.err
    assert not leaked(result.out + result.err, EVERY_CLASS), result.err
    assert "svc:***@127.0.0.1" in result.err
    status = json.loads(cli.ok("status", "--json"))["mailboxes"]
    assert status[0]["last_status"] == "failed"
    error = status[0]["last_error"]
    assert "hunter2" not in error and "svc:***@" in error
    assert not leaked(error, EVERY_CLASS), error
    shown = cli.ok("status")
    assert "hunter2" not in shown and not leaked(shown, EVERY_CLASS)
    with sqlite3.connect(home / "state.sqlite") as db:  # the run history itself
        history = " ".join(
            str(v) for row in db.execute("SELECT error, result FROM runs") for v in row
        )
    assert "svc:***@" in history and not leaked(history, EVERY_CLASS), history


# ---------------------------------------------------------------- database URLs, by name


@pytest.mark.parametrize(
    ("name", "url", "words"),
    [
        (
            "CRM_DATABASE_URL",
            "postgresql://u:p@localhost:abc/db",
            ["CRM_DATABASE_URL", "port", "abc"],
        ),
        ("CRM_DATABASE_URL", "not a url", ["CRM_DATABASE_URL", "not a database URL"]),
        ("CRM_DATABASE_URL", "::::", ["CRM_DATABASE_URL", "not a database URL"]),
        ("DATABASE_URL", "postgresql://crm:p@ss@127.0.0.1:1/x", ["DATABASE_URL", "%40"]),
        ("CRM_DATABASE_URL", "mssql+pyodbc://sa:p@ss@sage/CRM", ["CRM_DATABASE_URL", "%40"]),
    ],
)
def test_a_bad_database_url_is_one_line_naming_the_setting(
    cli, monkeypatch: pytest.MonkeyPatch, name: str, url: str, words: list[str]
) -> None:
    monkeypatch.setenv(name, url)
    line = one_line(cli("search", "Smith", "--as", ALICE), *words)
    assert "state database" not in line or name == "DATABASE_URL"
    assert "ss@" not in line and "p@ss" not in line


# ---------------------------------------------------------------- which .env is read


def test_dotenv_comes_from_the_home_or_a_named_file_never_the_working_directory(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = Path.cwd()
    (cwd / ".env").write_text("CRM_CATEGORY=From the working directory\n")
    assert load_settings().crm_category == "CRM Contact"
    home.mkdir(parents=True)
    (home / ".env").write_text("CRM_CATEGORY=From the home\n")
    assert load_settings().crm_category == "From the home"
    named = tmp_path / "crm-contacts.env"
    named.write_text("CRM_CATEGORY=From the named file\n")
    monkeypatch.setenv("CRM_CONTACTS_ENV_FILE", str(named))
    assert load_settings().crm_category == "From the named file"
    monkeypatch.setenv("CRM_CONTACTS_ENV_FILE", str(tmp_path / "missing.env"))
    with pytest.raises(ConfigError, match="CRM_CONTACTS_ENV_FILE"):
        load_settings()


# ------------------------------------- a password of every character class (issue 22.5)

# One distinctive password per class a hostile tester tried: each once in the user part
# and once as ?password=. The old pattern ended a URL at a quote, '<', '>' or '`', so
# the '@' after it was never reached, and it never looked at ?password= at all.
CLASSES = {
    "quote": "Wq7z'Zk9q",
    "double quote": 'Wq7z"Zk9q',
    "less than": "Wq7z<Zk9q",
    "greater than": "Wq7z>Zk9q",
    "backtick": "Wq7z`Zk9q",
    "at sign": "Wq7z@Zk9q",
}
EVERY_CLASS = "Wq7z'Zk9q\"Pm3x<Rt5v>Yx2w`Hv8k@Jn4c"


def leaked(text: str, password: str) -> list[str]:
    """The password, or any piece of it between its special characters, found in text."""
    pieces = [p for p in re.split(r"['\"<>`@]", password) if len(p) >= 4]
    return [p for p in [password, *pieces] if p in text]


@pytest.mark.parametrize("password", CLASSES.values(), ids=CLASSES.keys())
def test_a_password_of_every_character_class_is_masked(password: str) -> None:
    for text in (
        f"cannot open postgresql+psycopg://crm:{password}@db.example:5432/crm: refused",
        f"at 'http://svc:{password}@mail.example/EWS/Exchange.asmx'",
        f"postgresql+psycopg://crm@db.example/crm?sslmode=require&password={password}",
        f"mssql+pyodbc://sa@sage/CRM?password={password}&driver=x",
    ):
        shown = mask_urls(text)
        assert not leaked(shown, password), shown
        assert "***" in shown


def test_a_braced_odbc_password_is_masked_whole() -> None:
    """Sage CRM runs on SQL Server: an ODBC connection string quotes a password holding
    ';' in braces (a '}' in it doubled), as `PWD={...}`, plain or percent-encoded inside
    `odbc_connect`; the whole value is the secret, not just what comes before the ';'."""
    password = "Wq7z;Zk9q}Pm3x"
    braced = "{Wq7z;Zk9q}}Pm3x}"
    plain = f"DRIVER={{ODBC Driver 18 for SQL Server}};SERVER=sage;UID=crm;PWD={braced};"
    url = "mssql+pyodbc:///?odbc_connect=" + quote_plus(plain)
    for text in (f"login failed: {plain}", f"cannot open {url}: refused"):
        shown = mask_urls(text)
        assert not [p for p in ("Wq7z", "Zk9q", "Pm3x") if p in shown], shown
        assert "SERVER=sage" in shown or "SERVER%3Dsage" in shown  # only the secret goes
    assert password in url_secrets(url)  # masked wherever a driver quotes it alone


def test_the_log_masks_every_character_class_and_password_params() -> None:
    stream = io.StringIO()
    setup_logging("json", stream=stream)
    try:
        log = logging.getLogger("t")
        log.warning("cannot open postgresql://crm:%s@db/x", EVERY_CLASS)
        log.warning("cannot open postgresql://crm@db/x?password=%s", EVERY_CLASS)
        log.warning("failed", extra={"error": f"http://svc:{EVERY_CLASS}@mail/EWS said no"})
    finally:
        setup_logging("text")
    text = stream.getvalue()
    assert not leaked(text, EVERY_CLASS), text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["msg"] == "cannot open postgresql://crm:***@db/x"
    assert lines[1]["msg"] == "cannot open postgresql://***@db/x?password=***"
    assert lines[2]["error"] == "http://svc:***@mail/EWS said no"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://crm:{quote(EVERY_CLASS, safe=chr(39) + chr(34) + '<>`')}@127.0.0.1:1/crm",
        # an unencoded '@' in a query would make the host; every other class is there
        f"postgresql+psycopg://crm@127.0.0.1:1/crm?password={EVERY_CLASS.split('@')[0]}",
    ],
    ids=["user part", "password parameter"],
)
def test_crm_check_never_shows_the_password(cli, monkeypatch, url: str) -> None:
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    result = cli("crm", "check")
    line = one_line(result, "cannot reach the CRM database")
    assert "127.0.0.1" in line
    assert not leaked(result.out + result.err, EVERY_CLASS), line


def test_crm_check_shows_the_url_it_reads_masked(cli, monkeypatch, pg_url: str) -> None:
    """A reachable server (trust auth takes any password): the first line names the URL."""
    secret = quote(EVERY_CLASS, safe=chr(39) + chr(34) + "<>`")
    url = pg_url.replace("postgres@", f"postgres:{secret}@")
    url += f"?password={EVERY_CLASS.split('@')[0]}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    result = cli("crm", "check")
    assert "CRM database: postgresql+psycopg://postgres:***@127.0.0.1:5432/" in result.out
    assert "password=***" in result.out
    assert not leaked(result.out + result.err, EVERY_CLASS), result.out + result.err
