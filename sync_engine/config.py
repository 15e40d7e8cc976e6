"""Configuration, read once from the environment (or a `.env` file) through pydantic-settings.

The names are the contract of DESIGN.md section 5; secrets are `SecretStr` so they never
show up in a repr, a log line or an error message.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync_engine.masking import remember_secrets, url_secrets


class ConfigError(Exception):
    """Configuration is missing or wrong; the message says which name to set."""


ENV_FILE_NAME = "CRM_CONTACTS_ENV_FILE"
DEFAULT_HOME = "~/.local/share/crm-contacts"


class Settings(BaseSettings):
    # No .env from the working directory: `serve` started in the wrong folder must not
    # pick up someone else's settings. load_settings() names the file (see env_file()).
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    crm_contacts_home: Path = Field(default=Path(DEFAULT_HOME))
    database_url: str | None = None
    crm_database_url: str | None = None
    # hybrid: Graph for mailboxes Exchange Online holds, EWS for those on Exchange Server
    mailbox_backend: Literal["local", "ews", "graph", "hybrid"] = "local"
    crm_category: str = "CRM Contact"

    # Rule 8 (mass-delete guard): hold deletes back above this share AND this count.
    mass_delete_share: float = Field(default=0.25, ge=0, le=1)
    mass_delete_min: int = Field(default=5, ge=0)

    # Write-back (issue 14): Outlook edits of linked contacts go to the CRM. Who wins when
    # both sides changed a field: the CRM (Sage's default) or the latest edit.
    write_back_conflict: Literal["crm", "latest"] = "crm"
    # Whose edits of whom reach Sage (issue 19): `listed` (any person in the salesperson's
    # list, as Sage's integration) or `managed` (their own or their companies' people).
    write_back_scope: Literal["listed", "managed"] = "listed"
    # The mass-edit guard, like rule 8: hold write-backs above this share AND this count.
    mass_edit_share: float = Field(default=0.25, ge=0, le=1)
    mass_edit_min: int = Field(default=5, ge=0)
    # A real Sage CRM is written through its REST API only, never its database; write-back
    # is off for it until SAGE_REST_URL is set (https://{server}/sdata/{install}j/sagecrm2/-).
    sage_rest_url: str | None = None
    sage_rest_user: str | None = None
    sage_rest_password: SecretStr | None = None
    sage_rest_timeout: float = Field(default=30, gt=0)
    sage_rest_retry_max_wait: float = Field(default=60, ge=0)

    ews_url: str | None = None
    ews_username: str | None = None
    ews_password: SecretStr | None = None
    ews_auth: Literal["ntlm", "basic", "oauth"] = "ntlm"
    ews_impersonation: bool = True
    ews_version: str | None = None
    ews_timeout: float = Field(default=60, gt=0)  # seconds one EWS request may take
    ews_retry_max_wait: float = Field(default=120, ge=0)  # total back-off before giving up

    graph_tenant_id: str | None = None
    graph_client_id: str | None = None
    graph_client_secret: SecretStr | None = None
    graph_authority: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com/v1.0"
    # How Graph lists a Contacts folder: delta (only what changed) or the whole folder each
    # time; auto = delta, except where contact delta is not offered (21Vianet).
    graph_listing: Literal["auto", "delta", "full"] = "auto"

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str | None = None
    slack_team_id: str | None = None  # our workspace; read from auth.test when not set
    port: int = 3000

    sync_interval_seconds: int = Field(default=60, ge=1)
    summary_time: str = "08:00"
    summary_channel: str | None = None
    log_format: Literal["text", "json"] = "text"

    # Operations (issue 22): admin alerts, the clock's /metrics and /healthz listener.
    admin_channel: str | None = None  # where admin alerts go (a Slack channel id)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    alert_after_failures: int = Field(default=3, ge=1)  # a mailbox failing this many in a row

    @field_validator("crm_contacts_home")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("database_url", "crm_database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value:
            problem = database_url_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("summary_time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        hour, _, minute = value.partition(":")
        if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
            raise ValueError("SUMMARY_TIME must be HH:MM, for example 08:00")
        return f"{int(hour):02d}:{int(minute):02d}"

    @cached_property
    def state_url(self) -> str:
        """The state store: DATABASE_URL, or SQLite in the home."""
        return (
            _normalise_url(self.database_url)
            or f"sqlite:///{self.crm_contacts_home / 'state.sqlite'}"
        )

    @cached_property
    def crm_url(self) -> str:
        """The CRM: CRM_DATABASE_URL, or the embedded demo CRM in the home."""
        return (
            _normalise_url(self.crm_database_url)
            or f"sqlite:///{self.crm_contacts_home / 'crm.sqlite'}"
        )

    @cached_property
    def local_mailbox_url(self) -> str:
        return f"sqlite:///{self.crm_contacts_home / 'mailboxes.sqlite'}"


def database_url_problem(url: str) -> str | None:
    """Why `url` cannot be a SQLAlchemy database URL, in a few words; None when it can."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    scheme, sep, rest = url.partition("://")
    if not sep or not scheme or any(c.isspace() for c in url):
        return (
            "is not a database URL; write it as dialect+driver://user:password@host:port/database"
        )
    authority = rest.split("/", 1)[0]
    if authority.count("@") > 1:
        return "has an '@' in its user name or password; write it as %40"
    try:
        make_url(url)
    except ValueError:  # SQLAlchemy's int() of the port
        port = authority.rsplit("@", 1)[-1].rpartition(":")[2]
        return f"has a port that is not a number ('{port[:20]}')"
    except ArgumentError:
        return (
            "is not a database URL; write it as dialect+driver://user:password@host:port/database"
        )
    return None


def _normalise_url(url: str | None) -> str | None:
    """Accept the `postgres://` and `postgresql://` spellings hosts hand out; use psycopg 3."""
    if not url:
        return None
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def env_file(overrides: dict[str, object] | None = None) -> Path | None:
    """The .env file to read: CRM_CONTACTS_ENV_FILE when set (it must exist), else `.env`
    in CRM_CONTACTS_HOME when there is one; never the working directory's."""
    named = os.environ.get(ENV_FILE_NAME)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"{ENV_FILE_NAME}: there is no file {named}")
        return path
    from sync_engine.files import check_home, no_link

    home = (overrides or {}).get("crm_contacts_home") or _env_value("CRM_CONTACTS_HOME")
    home_path = Path(str(home or DEFAULT_HOME)).expanduser()
    check_home(home_path)  # a .env someone else could have planted is never read
    path = home_path / ".env"
    no_link(path)
    return path if path.is_file() else None


def _env_value(name: str) -> str | None:
    """An environment variable whatever its case, as pydantic-settings reads it."""
    for key, value in os.environ.items():
        if key.upper() == name:
            return value
    return None


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation error into one line naming the variable."""
    try:
        settings = Settings(_env_file=env_file(overrides), **overrides)  # type: ignore[arg-type,call-arg]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "configuration"
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] != "value_error":
            raise ConfigError(f"{name}: {message}") from None
        # our validators' words: "CRM_DATABASE_URL has a port that is not a number ('x')"
        raise ConfigError(message if message.startswith(name) else f"{name} {message}") from None
    remember_secrets(secrets_of(settings))
    return settings


def secrets_of(settings: Settings) -> set[str]:
    """Every secret the settings hold (each SecretStr, and the password and secret
    parameters of each *_URL as it parses): masked wherever they appear
    (sync_engine.masking), even in an error that quotes one without its URL."""
    found: set[str] = set()
    for name, value in settings:
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif name.endswith("_url") and isinstance(value, str):
            found |= url_secrets(value)
    return found
