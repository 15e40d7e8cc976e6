"""The `crm-contacts` entry point: the engine's commands plus the processes that need Slack.

`bot` builds on `sync_engine` (never the reverse), so the commands that run the Slack
app (`serve`) and the scheduler that posts summaries to Slack are added here.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.alerts import CHANNEL_REFUSALS
from sync_engine.cli import app, engine, fail, friendly, out, run_cli, settings

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from sync_engine.config import Settings
    from sync_engine.digests import SummaryPoster, TeamDigest, TeamPoster
    from sync_engine.service import Engine

log = logging.getLogger("crm_contacts.scheduler")

# Digest posters of the other front ends the clock also serves: (settings, engine) →
# (an AccountPoster or None, a team-summary poster or None, its channel). The `web`
# package registers Teams here; `bot` never imports another front end.
POSTERS: list[Callable[[Settings, Engine], tuple[Any, Any, str | None]]] = []


@app.command()
@friendly
def serve() -> None:
    """Run the Slack bot (HTTP on $PORT, or Socket Mode when SLACK_APP_TOKEN is set)."""
    from bot.server import serve as run
    from sync_engine.logs import setup_logging

    s = settings()
    setup_logging(s.log_format)  # LOG_FORMAT=json: one JSON object a line, secrets masked
    run(s)


@app.command()
@friendly
def scheduler(
    once: Annotated[
        bool, typer.Option("--once", help="Run one cycle (and any digest due now), then exit.")
    ] = False,
) -> None:
    """Run the clock process: syncs mailboxes with work every SYNC_INTERVAL_SECONDS,
    reconciles every mailbox daily, posts daily digests at SUMMARY_TIME."""
    from bot.ops import watch
    from sync_engine.logs import setup_logging
    from sync_engine.queue import SchedulerLock
    from sync_engine.schedule import Scheduler, run_forever

    setup_logging(settings().log_format)
    e = engine()
    dialect = e.store.engine.dialect.name
    lock = SchedulerLock(e.store) if dialect == "sqlite" else None
    if lock is not None and not lock.acquire():
        raise fail(
            f"another scheduler (pid {lock.holder()}) is already running on this SQLite state "
            "database; SQLite supports one scheduler process. Stop the other one, or set "
            "DATABASE_URL to PostgreSQL to run several side by side."
        )
    listener = None
    try:
        poster, team = _slack_posters(e.settings, e)
        account, channel = None, None
        for factory in POSTERS:
            other, other_team, other_channel = factory(e.settings, e)
            account = account or other
            if other_team is not None:
                team = _both(team, other_team) if team else other_team
                channel = channel or other_channel
        clock = Scheduler(
            e,
            summary_poster=poster,
            team_poster=team,
            account_poster=account,
            team_channel=e.settings.summary_channel or channel,
        )
        listener = watch(clock, listen=not once)  # metrics, /healthz, admin alerts (bot/ops.py)
        log.info(
            "scheduler started",
            extra={
                "event": "started",
                "database": dialect,
                "interval_s": e.settings.sync_interval_seconds,
                "summary_time": e.settings.summary_time,
                "summaries": poster is not None or account is not None,
                "team_summary": team is not None,
            },
        )
        if not once:
            run_forever(clock)
            return
        report = clock.run_cycle()
        clock.run_summaries()
        out.print(
            f"{report.mailboxes} mailboxes, {report.due} with work: {len(report.synced)} synced, "
            f"{len(report.failed)} failed, {report.taken_by_others} taken by another process",
            markup=False,
        )
        if report.error:
            raise fail(report.error)
        if report.failed:
            raise typer.Exit(1)
    finally:
        if listener is not None:
            listener.close()
        if lock is not None:
            lock.release()


def _slack_posters(s: Settings, e: Engine) -> tuple[SummaryPoster | None, TeamPoster | None]:
    """Digest posters bound to a Slack client, or none (one log line) without a bot token."""
    if s.slack_bot_token is None or not s.slack_bot_token.get_secret_value():
        log.info(
            "SLACK_BOT_TOKEN is not set: daily summaries are skipped",
            extra={"event": "summaries_off"},
        )
        return None, None
    from bot.app import web_client
    from bot.summary import post_daily_summary

    client = web_client(s)

    def poster(user, slack_user_id, since, until):  # type: ignore[no-untyped-def]
        return post_daily_summary(client, e, user, slack_user_id, since, until)

    channel = s.summary_channel
    if not channel:
        return poster, None
    return poster, lambda digest: _post_team_summary(client, channel, digest)


def _both(first: TeamPoster, second: TeamPoster) -> TeamPoster:
    """The team summary to two places, each on its own. Once one has it, the other's
    failure is logged and the period kept (giving it back would post it again where it
    went, at every tick); when neither has it, the failure goes to the scheduler."""

    def post(digest: TeamDigest) -> bool:
        done, failed = False, None
        for poster in (first, second):
            try:
                done = bool(poster(digest)) or done
            except Exception as exc:
                failed = failed or exc
        if failed is not None and not done:
            raise failed
        if failed is not None:
            log.warning(
                "team summary not sent to one of its channels; the other has it",
                extra={"event": "team_summary_failed", "error": type(failed).__name__},
            )
        return done

    return post


def _post_team_summary(client: WebClient, channel: str, digest: TeamDigest) -> bool:
    """The team digest in SUMMARY_CHANNEL: counts per salesperson, no contact details."""
    from slack_sdk.errors import SlackApiError

    from bot.summary import team_summary_message
    from sync_engine.digests import SummaryChannelRefused

    text, blocks = team_summary_message(digest)
    try:
        client.chat_postMessage(channel=channel, text=text, blocks=blocks)
    except SlackApiError as exc:
        reason = str(exc.response.get("error") or "")
        if reason in CHANNEL_REFUSALS:
            raise SummaryChannelRefused(channel, reason) from None
        raise
    return True


def main() -> None:
    sys.exit(run_cli())
