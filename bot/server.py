"""`crm-contacts serve`: the Bolt app over HTTP (waitress) or Socket Mode.

HTTP: `POST /slack/events` (Bolt, signature checked), `GET /healthz` (the state database
answers) and `GET /metrics` (Prometheus), on PORT. Socket Mode when SLACK_APP_TOKEN is set:
no public URL needed; /healthz and /metrics still answer so a platform's health check
works the same way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import waitress
from slack_bolt import App
from slack_bolt.request import BoltRequest

from bot.app import build_app
from sync_engine.config import ConfigError, Settings
from sync_engine.ops.health import PROBE_PATHS, database_check, probe_app
from sync_engine.ops.metrics import ack_timer

if TYPE_CHECKING:
    from sync_engine.service import Engine

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_BODY = 1 << 20  # Slack payloads are a few KiB; anything near this is not from Slack.

# Idle connections must not crowd Slack out (issue 22.5). waitress serves at most
# `connection_limit` connections (default 100) and closes one only after
# `channel_timeout` seconds without activity (default 120, looked at every
# `cleanup_interval`, default 30): about 100 idle TCP connections made `serve` stop
# answering, so Slack's 3-second ack was missed. An idle connection costs no thread, only
# a socket, so allow many and close the quiet ones soon; poll() instead of select(),
# which cannot watch a socket numbered 1024 or more. A slow client that trickles bytes
# still holds a connection until the timeout: deploy behind a buffering proxy
# (docs/operations.md, "The web process behind a proxy").
CONNECTION_LIMIT = 1000
CHANNEL_TIMEOUT = 15  # seconds a connection may sit idle (Slack's requests take < 1 s)
CLEANUP_INTERVAL = 2  # how often idle connections are looked for

StartResponse = Callable[..., Any]


def _reply(
    start_response: StartResponse, status: str, body: str, ctype: str = "text/plain"
) -> list[bytes]:
    data = body.encode()
    start_response(
        status, [("Content-Type", f"{ctype}; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


class OtherFrontEnd(Protocol):
    """A front end served beside Slack in the same web process (Teams: `teams.bridge`)."""

    def handles(self, path: str) -> bool: ...

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]: ...


# Factories of the other front ends `serve` runs beside Slack: (settings, engine) → a WSGI
# app, or None when that front end is not configured. The `web` package registers Teams
# here, so `bot` never imports another front end (import-linter checks it).
FRONT_ENDS: list[Callable[[Settings, Any], OtherFrontEnd | None]] = []


class SlackWsgi:
    """A WSGI app: Bolt on /slack/events, /healthz and /metrics (`probes`), 404 elsewhere.

    Malformed bodies get a 400 here, before Bolt, so junk never reaches a listener.
    Paths another front end handles (`others`, e.g. Teams' /api/messages) go to it.
    """

    def __init__(
        self,
        app: App | None,
        probes: Callable[..., Iterable[bytes]] | None = None,
        others: Sequence[OtherFrontEnd] = (),
    ) -> None:
        self.app = app
        self.probes = probes or probe_app(lambda: (True, {}))
        self.others = list(others)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        for other in self.others:
            if other.handles(path):
                return other(environ, start_response)
        if path in PROBE_PATHS and method in ("GET", "HEAD"):
            return self.probes(environ, start_response)
        if path != EVENTS_PATH or self.app is None:
            return _reply(start_response, "404 Not Found", "Not Found")
        if method != "POST":
            return _reply(start_response, "405 Method Not Allowed", "Use POST")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _reply(start_response, "400 Bad Request", "Bad Request")
        if length > MAX_BODY:
            return _reply(start_response, "413 Payload Too Large", "Too Large")
        if not _plain_int(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP")):
            # Not a request Slack signed: Slack sends Unix seconds (docs.slack.dev,
            # "Verifying requests from Slack"). Bolt would fail on int() with a 500.
            log.info("refused a request without a valid X-Slack-Request-Timestamp")
            return _reply(start_response, "401 Unauthorized", "Unauthorized")
        try:
            body = environ["wsgi.input"].read(length).decode("utf-8")
            request = BoltRequest(
                body=body, query=environ.get("QUERY_STRING", ""), headers=_headers(environ)
            )
            if not isinstance(request.body, dict):
                raise ValueError("body is not an object")
        except Exception as exc:  # malformed: not UTF-8, not JSON, not form, not an object
            log.info("refused a malformed request: %s", type(exc).__name__)
            return _reply(start_response, "400 Bad Request", "Bad Request")
        try:
            with ack_timer("slack"):
                response = self.app.dispatch(request)
        except Exception:
            log.exception("Bolt could not handle a request")
            return _reply(start_response, "400 Bad Request", "Bad Request")
        data = (response.body or "").encode()
        headers = [
            (k, v)
            for k, values in response.headers.items()
            for v in values
            if k.lower() != "content-length"
        ]
        headers.append(("Content-Length", str(len(data))))
        start_response(f"{response.status} {_reason(response.status)}", headers)
        return [data]


def _plain_int(value: object) -> bool:
    text = str(value or "")
    return 0 < len(text) <= 12 and text.isascii() and text.isdigit()


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    return headers


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def connection_limit() -> int:
    """CONNECTION_LIMIT, or fewer where the process may open fewer files (leaving room for
    the database connections and the log): never below waitress's own 100."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return CONNECTION_LIMIT
    if soft == resource.RLIM_INFINITY:
        return CONNECTION_LIMIT
    return max(100, min(CONNECTION_LIMIT, soft - 100))


class HttpServer:
    """A waitress server that can also be started on port 0 and closed (tests)."""

    def __init__(
        self, wsgi: Callable[..., Iterable[bytes]], host: str, port: int, threads: int = 8
    ) -> None:
        self._server: Any = waitress.create_server(
            wsgi,
            host=host,
            port=port,
            threads=threads,
            max_request_body_size=MAX_BODY,
            ident="crm-contacts",
            clear_untrusted_proxy_headers=True,
            connection_limit=connection_limit(),
            channel_timeout=CHANNEL_TIMEOUT,
            cleanup_interval=CLEANUP_INTERVAL,
            asyncore_use_poll=True,
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def serve_forever(self) -> None:
        self._server.run()

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests, and the health check in Socket Mode)."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="crm-contacts-http", daemon=True
        )
        self._thread.start()
        return self._thread

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving; the sockets are closed inside the server's own loop, not under it."""
        done = threading.Event()

        def shut() -> None:
            self._server.close()
            for channel in list(self._server._map.values()):  # open keep-alive connections
                if channel is not self._server.trigger:  # the loop still reads its own trigger
                    channel.close()
            done.set()

        try:
            self._server.trigger.pull_trigger(shut)
        except OSError:
            # The loop's wake-up pipe is already gone (seen once in a loaded test run: EBADF),
            # so the loop cannot run `shut` for us; nothing else can reach it either.
            shut()
        done.wait(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        self._server.task_dispatcher.shutdown()


def web_wsgi(app: App | None, engine: Engine, others: Sequence[OtherFrontEnd] = ()) -> SlackWsgi:
    """What `serve` answers over HTTP: Slack's endpoint, `/healthz` (healthy while the state
    database answers), `/metrics`, and the other front ends' paths (Teams: /api/messages)."""
    return SlackWsgi(app, probes=probe_app(database_check(engine.store.engine)), others=others)


def serve(settings: Settings, host: str = "0.0.0.0") -> None:
    """Run the web process until stopped: Slack (Socket Mode if SLACK_APP_TOKEN is set,
    else HTTP on PORT) and every other front end that is configured (FRONT_ENDS).

    Raises ConfigError (one line) when a Slack token is missing or refused and no other
    front end is configured either.
    """
    from sync_engine.service import Engine

    slack_token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    engine = Engine(settings) if FRONT_ENDS else None
    others = [w for factory in FRONT_ENDS if (w := factory(settings, engine)) is not None]
    if not slack_token and others and engine is not None:
        server = HttpServer(web_wsgi(None, engine, others), host, settings.port)
        log.info("listening on port %s (Slack not configured)", server.port)
        server.serve_forever()
        return
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else ""
    if not slack_token:
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-…) from the "
            "Slack app's OAuth page."
        )
    if not app_token and not settings.slack_signing_secret:
        raise ConfigError(
            "SLACK_SIGNING_SECRET is not set: copy the Signing Secret from the Slack app's "
            "Basic Information page (or set SLACK_APP_TOKEN to use Socket Mode)."
        )
    if app_token and not app_token.startswith("xapp-"):
        raise ConfigError(
            "SLACK_APP_TOKEN must be an app-level token (xapp-…) with connections:write."
        )
    engine = engine or Engine(settings)
    app = build_app(settings, engine, socket_mode=bool(app_token))
    if app_token:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        health = HttpServer(
            web_wsgi(None, engine, others), host, settings.port, threads=2 + 6 * bool(others)
        )
        health.start()
        log.info("Socket Mode; health check on port %s", health.port)
        SocketModeHandler(app, app_token).start()
        return
    server = HttpServer(web_wsgi(app, engine, others), host, settings.port)
    log.info("listening on port %s: POST %s, GET %s", server.port, EVENTS_PATH, HEALTH_PATH)
    server.serve_forever()
