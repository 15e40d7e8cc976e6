"""Configuration, read once from the environment (or a `.env` file) through pydantic-settings.

The names are the contract of DESIGN.md section 5; secrets are `SecretStr` so they never
show up in a repr, a log line or an error message.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """Configuration is missing or wrong; the message says which name to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    crm_contacts_home: Path = Field(default=Path("~/.local/share/crm-contacts"))
    database_url: str | None = None
    crm_database_url: str | None = None
    mailbox_backend: Literal["local", "ews", "graph"] = "local"
    crm_category: str = "CRM Contact"

    # Rule 8 (mass-delete guard): hold deletes back above this share AND this count.
    mass_delete_share: float = Field(default=0.25, ge=0, le=1)
    mass_delete_min: int = Field(default=5, ge=0)

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

    @field_validator("crm_contacts_home")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

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


def _normalise_url(url: str | None) -> str | None:
    """Accept the `postgres://` and `postgresql://` spellings hosts hand out; use psycopg 3."""
    if not url:
        return None
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation error into one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "configuration"
        raise ConfigError(f"{name}: {first['msg']}") from None
