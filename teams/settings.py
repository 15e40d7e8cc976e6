"""The Teams front end's settings: read like every other setting (environment or the
home's `.env`, `sync_engine.config.env_file`), kept here so `sync_engine` knows nothing
of Teams (DESIGN 3)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync_engine.config import ConfigError, env_file

PUBLIC_AUTHORITY = "https://login.microsoftonline.com"
# Bot Framework's OpenID metadata: where the keys that sign the channel's tokens are
# published (Microsoft Learn, "Authenticate requests with the Bot Connector API").
PUBLIC_OPENID_METADATA = "https://login.botframework.com/v1/.well-known/openidconfiguration"


class TeamsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # The Entra app registration behind the Azure Bot resource (docs/teams.md).
    teams_app_id: str | None = None
    teams_app_password: SecretStr | None = None  # a client secret of that app
    # …or a certificate: a PEM file with the private key and the certificate.
    teams_certificate_path: Path | None = None
    teams_tenant_id: str | None = None  # our tenant: activities of any other are refused
    teams_authority: str = PUBLIC_AUTHORITY  # national clouds, tests
    teams_openid_metadata: str = PUBLIC_OPENID_METADATA  # national clouds, tests
    # A channel (its id, 19:…@thread.tacv2) where the team summary goes; the app must be
    # installed in its team.
    teams_summary_channel: str | None = None
    # A channel (19:…@thread.tacv2) for admin alerts (as ADMIN_CHANNEL is Slack's).
    teams_admin_channel: str | None = None
    # Microsoft 365 Agents Playground on this machine only: accept activities without a
    # token (the Playground sends none), from this machine only (teams.bridge).
    teams_playground: bool = False
    # Seconds a card action may take before Teams is answered with "working on it" and
    # the card is updated when the work is done (Teams waits about 5 seconds for an
    # invoke's answer; Microsoft Learn, "Universal Actions: Work with Universal Actions").
    teams_invoke_budget: float = Field(default=3.0, gt=0, le=10)

    @property
    def configured(self) -> bool:
        """Whether `crm-contacts serve` answers Teams (POST /api/messages)."""
        return bool(self.teams_app_id or self.teams_playground)

    def problem(self) -> str | None:
        """What is missing or wrong, in one line; None when the settings can run."""
        if self.teams_playground:
            if self.teams_app_id:
                return (
                    "TEAMS_PLAYGROUND is for the local Agents Playground only: unset it, or "
                    "unset TEAMS_APP_ID to try the bot in the Playground."
                )
            if not self.teams_tenant_id:
                return "TEAMS_TENANT_ID is not set: use the Playground's tenant id."
            return None
        if not self.teams_app_id:
            return None
        if not self.teams_tenant_id:
            return (
                "TEAMS_TENANT_ID is not set: the Directory (tenant) ID of your Microsoft 365 "
                "tenant (docs/teams.md)."
            )
        secret = self.teams_app_password.get_secret_value() if self.teams_app_password else ""
        if not secret and self.teams_certificate_path is None:
            return (
                "TEAMS_APP_PASSWORD or TEAMS_CERTIFICATE_PATH is not set: a client secret or a "
                "certificate of the bot's app registration (docs/teams.md)."
            )
        if self.teams_certificate_path is not None and not self.teams_certificate_path.is_file():
            return f"TEAMS_CERTIFICATE_PATH: there is no file {self.teams_certificate_path}"
        return None


def load_teams_settings() -> TeamsSettings:
    """Read the Teams settings; a validation error becomes one line naming the variable."""
    try:
        return TeamsSettings(_env_file=env_file())  # type: ignore[call-arg]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "configuration"
        raise ConfigError(f"{name}: {first['msg']}") from None
