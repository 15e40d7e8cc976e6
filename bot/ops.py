"""The clock process's watchers, wired to the chat front ends: metrics, `/healthz` at
METRICS_PORT, and admin alerts to ADMIN_CHANNEL.

`bot` builds on `sync_engine`: the engine knows problems and an `AlertSender` protocol,
this module knows Slack (a Teams sender joins `admin_senders` the same way).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sync_engine.ops.alerts import AlertSender, Announcer
from sync_engine.ops.clock import ClockWatch
from sync_engine.ops.health import ClockHealth, probe_app

if TYPE_CHECKING:
    from bot.server import HttpServer
    from sync_engine.config import Settings
    from sync_engine.schedule import Scheduler

log = logging.getLogger("crm_contacts.scheduler")

# Alert senders of the other front ends: (settings, engine) → a sender or None. The `web`
# package registers Teams' here; `bot` never imports another front end.
ADMIN_SENDERS: list[Callable[[Settings, Any], AlertSender | None]] = []


def admin_senders(settings: Settings) -> list[AlertSender]:
    """Where admin alerts go: ADMIN_CHANNEL in Slack when it and the bot token are set."""
    senders: list[AlertSender] = []
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    if settings.admin_channel and token:
        from bot.alerts import SlackAlerts
        from bot.app import web_client

        senders.append(SlackAlerts(web_client(settings), settings.admin_channel))
    elif settings.admin_channel:
        log.warning(
            "ADMIN_CHANNEL is set but SLACK_BOT_TOKEN is not: admin alerts are not sent",
            extra={"event": "alerts_off"},
        )
    return senders


def watch(
    clock: Scheduler, *, listen: bool, host: str = "0.0.0.0", port: int | None = None
) -> HttpServer | None:
    """Add the after-cycle watch to `clock` (metrics, health, alerts) and, when `listen`
    and METRICS_PORT (or `port`) is set, serve `/metrics` and `/healthz` there; returns the
    listener to close, if any."""
    settings = clock.settings
    health = ClockHealth(timedelta(seconds=settings.sync_interval_seconds), clock.now)
    others = [s for f in ADMIN_SENDERS if (s := f(settings, clock.engine)) is not None]
    announcer = Announcer(clock.engine.store, admin_senders(settings) + others)
    clock.after_cycle.append(ClockWatch(clock, health, announcer))
    port = settings.metrics_port if port is None else port
    if not listen or port is None:
        return None
    from bot.server import HttpServer

    listener = HttpServer(probe_app(health.check), host, port, threads=2)
    listener.start()
    log.info(
        "metrics and health on port %s: GET /metrics, GET /healthz",
        listener.port,
        extra={"event": "metrics_listening", "port": listener.port},
    )
    return listener
