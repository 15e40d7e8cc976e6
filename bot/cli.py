"""The `crm-contacts` entry point: the engine's commands plus the processes that need Slack.

`bot` builds on `sync_engine` (never the reverse), so the commands that run the Slack
app (`serve`) and the scheduler that posts summaries to Slack are added here.
"""

from __future__ import annotations

import sys

from sync_engine.cli import app, friendly, run_cli, settings


@app.command()
@friendly
def serve() -> None:
    """Run the Slack bot (HTTP on $PORT, or Socket Mode when SLACK_APP_TOKEN is set)."""
    from bot.server import serve as run

    run(settings())


def main() -> None:
    sys.exit(run_cli())
