"""The `crm-contacts` entry point: the engine's commands, Slack's (`bot.cli`) and Teams'.

Teams joins through the extension points `bot` offers (`bot.server.FRONT_ENDS` for the
web process, `bot.cli.POSTERS` for the clock), each only when TEAMS_* is configured.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

import bot.cli  # noqa: F401 - registers serve and scheduler
from bot.cli import POSTERS
from bot.ops import ADMIN_SENDERS
from bot.server import FRONT_ENDS
from sync_engine.cli import app, friendly, out, run_cli
from sync_engine.config import ConfigError

if TYPE_CHECKING:
    from sync_engine.config import Settings
    from sync_engine.service import Engine

teams_app = typer.Typer(help="Microsoft Teams: the app package an admin uploads.")
app.add_typer(teams_app, name="teams")


def teams_web(settings: Settings, engine: Engine) -> Any:
    """The Teams front end for `serve`, or None when TEAMS_APP_ID (or the Playground) is
    not set; a wrong setting is one line (ConfigError)."""
    from teams.settings import load_teams_settings

    teams = load_teams_settings()
    if not teams.configured:
        return None
    problem = teams.problem()
    if problem:
        raise ConfigError(problem)
    from teams.front import TeamsFront

    return TeamsFront(engine, teams).wsgi


def teams_clock(settings: Settings, engine: Engine) -> tuple[Any, Any, str | None]:
    """Digests and the team summary in Teams for the clock, when TEAMS_* is configured
    (the Teams SDK is only imported then)."""
    from teams.settings import load_teams_settings

    teams = load_teams_settings()
    if not teams.configured:
        return None, None, None
    problem = teams.problem()
    if problem:  # as `serve` says it: the clock must not post nothing in silence
        raise ConfigError(problem)
    from teams.posters import clock_posters

    return clock_posters(engine, teams)


def teams_alerts(settings: Settings, engine: Engine) -> Any:
    """Admin alerts to TEAMS_ADMIN_CHANNEL, when Teams is configured and it is set."""
    from teams.settings import load_teams_settings

    teams = load_teams_settings()
    if not teams.configured or teams.problem() or not teams.teams_admin_channel:
        return None
    from teams.alerts import TeamsAlerts
    from teams.posters import clock_sender

    return TeamsAlerts(engine, clock_sender(teams), teams.teams_admin_channel)


FRONT_ENDS.append(teams_web)
POSTERS.append(teams_clock)
ADMIN_SENDERS.append(teams_alerts)


@teams_app.command("package")
@friendly
def package(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the zip.")] = Path(
        "crm-contacts-teams.zip"
    ),
    app_id: Annotated[
        str | None, typer.Option("--app-id", help="The bot's app id (default: TEAMS_APP_ID).")
    ] = None,
    domain: Annotated[
        str | None,
        typer.Option("--domain", help="Your server's host name, e.g. crm-contacts.example.com."),
    ] = None,
) -> None:
    """Write the Teams app package (manifest.json and icons) an admin uploads."""
    from teams.package import write_package
    from teams.settings import load_teams_settings

    bot_id = app_id or load_teams_settings().teams_app_id
    if not bot_id:
        raise ConfigError("give --app-id or set TEAMS_APP_ID: the bot's Microsoft App ID")
    written = write_package(output, bot_id, domain)
    out.print(f"wrote {written} (upload it in Teams admin center → Manage apps)", markup=False)


def main() -> None:
    sys.exit(run_cli())
