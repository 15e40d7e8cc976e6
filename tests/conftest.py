"""Shared fixtures: an isolated CRM_CONTACTS_HOME per test, the engine on it, the CLI in
process, and a throw-away PostgreSQL database (127.0.0.1:5432, database `test`)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from real_sage import sage_template, sage_url  # noqa: F401 - fixtures: a seeded Sage in PostgreSQL
from typer.testing import CliRunner

if TYPE_CHECKING:
    from sync_engine.service import Engine

ENV_NAMES = (
    "DATABASE_URL",
    "CRM_DATABASE_URL",
    "MAILBOX_BACKEND",
    "CRM_CATEGORY",
    "MASS_DELETE_SHARE",
    "MASS_DELETE_MIN",
    "EWS_URL",
    "EWS_USERNAME",
    "EWS_PASSWORD",
    "EWS_AUTH",
    "EWS_IMPERSONATION",
    "EWS_VERSION",
    "GRAPH_TENANT_ID",
    "GRAPH_CLIENT_ID",
    "GRAPH_CLIENT_SECRET",
    "GRAPH_AUTHORITY",
    "GRAPH_URL",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "SUMMARY_CHANNEL",
    "LOG_FORMAT",
    "TEAMS_APP_ID",
    "TEAMS_APP_PASSWORD",
    "TEAMS_CERTIFICATE_PATH",
    "TEAMS_TENANT_ID",
    "TEAMS_AUTHORITY",
    "TEAMS_OPENID_METADATA",
    "TEAMS_SUMMARY_CHANNEL",
    "TEAMS_PLAYGROUND",
    "ADMIN_CHANNEL",
    "METRICS_PORT",
    "ALERT_AFTER_FAILURES",
)

PG_ADMIN_URL = os.environ.get(
    "CRM_CONTACTS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty CRM_CONTACTS_HOME and a clean environment (no stray .env either)."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "home"
    monkeypatch.setenv("CRM_CONTACTS_HOME", str(path))
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str


class Cli:
    """Runs `crm-contacts` in this process, as a fresh process would (no cached engine)."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str) -> CliResult:
        import bot.cli  # noqa: F401 - registers the commands that need Slack
        from sync_engine.cli import reset_engine, run_cli

        reset_engine()
        handlers = list(logging.getLogger().handlers)
        try:
            with self.runner.isolation() as (out, err, _):
                code = run_cli(list(args))
                sys.stdout.flush()
                sys.stderr.flush()
                return CliResult(code, out.getvalue().decode(), err.getvalue().decode())
        finally:
            reset_engine()
            # a command that set up logging (scheduler, serve) pointed it at this run's
            # stderr, closed now: later log lines would fail there ("--- Logging error ---")
            for handler in list(logging.getLogger().handlers):
                if handler not in handlers:
                    logging.getLogger().removeHandler(handler)

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.code == 0, f"{args} exited {result.code}: {result.err or result.out}"
        return result.out


@pytest.fixture
def cli(home: Path) -> Cli:
    return Cli()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_db(request, home, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    """The state store (and so the people index) once on SQLite, the embedded default,
    and once on PostgreSQL, production; the embedded CRM stays its SQLite file."""
    if request.param == "postgresql":
        monkeypatch.setenv("DATABASE_URL", request.getfixturevalue("pg_url"))
    return request.param


@pytest.fixture
def engine_on_each_db(state_db: str) -> Iterator[Engine]:
    """The engine on the demo CRM, its state store on each database (`state_db`)."""
    from sync_engine.crm.embedded import seed_demo
    from sync_engine.service import Engine

    e = Engine()
    seed_demo(e.crm)
    yield e
    e.close()


@pytest.fixture(params=["local", "ews", "graph"])
def engine_on_each_target(request, home, monkeypatch) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """The engine on the demo CRM, once per mailbox target: local, and EWS and Graph as
    loopback servers speaking the real wire protocol."""
    from servers.ews import ews_server
    from servers.graph import graph_server

    from sync_engine.config import load_settings
    from sync_engine.crm.embedded import seed_demo
    from sync_engine.service import Engine

    servers = {"local": contextlib.nullcontext, "ews": ews_server, "graph": graph_server}
    with servers[request.param]() as server:
        for name, value in (server.env() if server else {}).items():
            monkeypatch.setenv(name, value)
        e = Engine(load_settings())
        seed_demo(e.crm)
        yield e
        e.close()


def _pg_reachable() -> bool:
    import psycopg

    try:
        psycopg.connect(
            "host=127.0.0.1 port=5432 dbname=test user=postgres", connect_timeout=3
        ).close()
        return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of the PostgreSQL server; under CI=true its absence is a failure."""
    if not _pg_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail(
                "PostgreSQL is not reachable at 127.0.0.1:5432 (database test); CI needs it"
            )
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    return PG_ADMIN_URL


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"crm_contacts_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(
        "host=127.0.0.1 port=5432 dbname=test user=postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(
            "host=127.0.0.1 port=5432 dbname=test user=postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
