"""Builds the Bolt app: the Web API client and the listeners. Wiring only, no behaviour."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot import actions, commands, events, views
from sync_engine.config import ConfigError, Settings
from sync_engine.service import Engine

log = logging.getLogger(__name__)

# Slack 429s are retried after their Retry-After; a few tries, then the error surfaces.
RATE_LIMIT_RETRIES = 3


def web_client(settings: Settings) -> WebClient:
    """The Web API client: SLACK_API_URL (tests, proxies) and 429 retries built in."""
    if settings.slack_bot_token is None or not settings.slack_bot_token.get_secret_value():
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-…) from the Slack app's OAuth page."
        )
    kwargs: dict[str, Any] = {}
    if settings.slack_api_url:
        kwargs["base_url"] = settings.slack_api_url.rstrip("/") + "/"
    client = WebClient(token=settings.slack_bot_token.get_secret_value(), **kwargs)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES))
    return client


def build_app(settings: Settings, engine: Engine, *, socket_mode: bool = False) -> App:
    """A Bolt app with every listener; signature checks stay on for HTTP requests.

    Raises ConfigError with one line when a token is missing or Slack refuses it, so
    `crm-contacts serve` fails fast instead of answering every request with an error.
    """
    client = web_client(settings)
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    )
    if not secret and not socket_mode:
        raise ConfigError(
            "SLACK_SIGNING_SECRET is not set: copy the Signing Secret from the Slack app's "
            "Basic Information page (or set SLACK_APP_TOKEN to use Socket Mode)."
        )
    try:
        app = App(
            client=client,
            signing_secret=secret,
            # Listeners only parse, hand their work to bot.work's pools and ack, in the
            # thread that received the request: the ack never waits for a free worker.
            process_before_response=True,
            name="crm-contacts",
            logger=_bolt_logger(),
        )
    except (BoltError, SlackApiError) as exc:
        raise ConfigError(
            f"Slack refused SLACK_BOT_TOKEN ({_slack_error(exc)}): check the token and "
            "SLACK_API_URL."
        ) from None

    commands.register(app, engine)
    actions.register(app, engine)
    views.register(app, engine)
    events.register(app, engine)

    @app.error
    def on_error(error: Exception) -> BoltResponse:
        """A listener or middleware choked on a signed payload: 400 and one log line.

        Listeners only read the payload and queue the work (bot.work, where problems are
        told to the user), so what fails here is a payload of the wrong shape; a traceback
        would say nothing more than where.
        """
        log.warning(
            "refused a malformed Slack payload: %s at %s",
            type(error).__name__,
            _where(error),
            extra={"event": "bad_payload"},
        )
        return BoltResponse(status=400, body="Bad Request")

    return app


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno} ({last.name})"


class _NoTokenFromEnvWarning(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN is unused when given a client; that is on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "will be unused" not in record.getMessage()


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger("bot.bolt")
    if not any(isinstance(f, _NoTokenFromEnvWarning) for f in logger.filters):
        logger.addFilter(_NoTokenFromEnvWarning())
    return logger


def _slack_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            return str(response.get("error") or "error")
        except Exception:
            return "error"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
