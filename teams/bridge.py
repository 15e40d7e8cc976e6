"""The Teams SDK inside our WSGI web process: one asyncio loop in a thread of its own.

Why: `crm-contacts serve` is one waitress process for Slack and Teams (the Procfile does
not change), and the Teams SDK is asyncio. The SDK lets an app bring its own HTTP
server (`HttpServerAdapter`): ours keeps the SDK's route handler, and the WSGI app below
hands each POST /api/messages to it on the loop. Token checks, activity parsing and
routing stay the SDK's; our handlers never block the loop (engine work runs in the
bounded pools of `bot`-style work queues, `teams.work`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from microsoft_teams.apps.http.adapter import HttpRequest, HttpResponse, HttpRouteHandler

from sync_engine.ops.metrics import ack_timer

log = logging.getLogger(__name__)

T = TypeVar("T")
MESSAGES_PATH = "/api/messages"
# Bot Framework activities are a few KiB; anything near this is not from Teams.
MAX_BODY = 1 << 20
# How long a request may wait for the SDK before it is answered 503 (an invoke's own
# answer comes well before: `TeamsSettings.teams_invoke_budget`).
REQUEST_TIMEOUT = 12.0
StartResponse = Callable[..., Any]


class LoopThread:
    """An asyncio loop running for ever in a daemon thread; `run` waits for a coroutine."""

    def __init__(self, name: str = "crm-contacts-teams") -> None:
        self.loop = asyncio.new_event_loop()
        self._stopped = False
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self._stopped:
            coro.close()
            raise RuntimeError("the Teams loop has stopped")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self, grace: float = 5.0) -> None:
        """Let the sends under way finish (a few seconds at most), then stop the loop."""

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if tasks:
                await asyncio.wait(tasks, timeout=grace)

        with contextlib.suppress(Exception):
            self.run(drain(), grace + 1)
        self._stopped = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class RouteAdapter:
    """The SDK's `HttpServerAdapter`: it registers its messaging route here, we serve it."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], HttpRouteHandler] = {}

    def register_route(self, method: str, path: str, handler: HttpRouteHandler) -> None:
        self.routes[(method, path)] = handler

    def serve_static(self, path: str, directory: str) -> None:  # no tabs or pages here
        return None

    async def start(self, port: int) -> None:
        raise NotImplementedError("crm-contacts serve runs the HTTP server (waitress)")

    async def stop(self) -> None:
        return None


def _reply(start_response: StartResponse, status: str, body: object) -> list[bytes]:
    data = b"" if body is None else json.dumps(body).encode()
    headers = [("Content-Length", str(len(data)))]
    if data:
        headers.append(("Content-Type", "application/json; charset=utf-8"))
    start_response(status, headers)
    return [data]


class TeamsWsgi:
    """POST /api/messages → the SDK's handler on the loop; 404 for anything else.

    `loopback_only` (TEAMS_PLAYGROUND, no token checked): a request from another machine
    is refused, since without a token it could claim to be anyone; `serve` listens on
    every interface."""

    def __init__(
        self, adapter: RouteAdapter, loop: LoopThread, loopback_only: bool = False
    ) -> None:
        self.adapter = adapter
        self.loop = loop
        self.loopback_only = loopback_only

    def handles(self, path: str) -> bool:
        return path == MESSAGES_PATH

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") != MESSAGES_PATH:
            return _reply(start_response, "404 Not Found", {"error": "Not Found"})
        if environ.get("REQUEST_METHOD") != "POST":
            return _reply(start_response, "405 Method Not Allowed", {"error": "Use POST"})
        if self.loopback_only and not _loopback(str(environ.get("REMOTE_ADDR") or "")):
            log.warning(
                "refused a Teams request from another machine (TEAMS_PLAYGROUND)",
                extra={"event": "teams_playground_remote"},
            )
            return _reply(start_response, "403 Forbidden", {"error": "Forbidden"})
        handler = self.adapter.routes.get(("POST", MESSAGES_PATH))
        if handler is None:
            return _reply(start_response, "503 Service Unavailable", {"error": "Starting"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _reply(start_response, "400 Bad Request", {"error": "Bad Request"})
        if length > MAX_BODY:
            return _reply(start_response, "413 Payload Too Large", {"error": "Too Large"})
        try:
            body = json.loads(environ["wsgi.input"].read(length).decode("utf-8"))
            if not isinstance(body, dict) or not isinstance(body.get("type"), str):
                raise ValueError("not an activity")
        except (ValueError, UnicodeDecodeError) as exc:
            log.info("refused a malformed Teams request: %s", type(exc).__name__)
            return _reply(start_response, "400 Bad Request", {"error": "Bad Request"})
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        request = HttpRequest(body=body, headers=headers)
        try:
            with ack_timer("teams"):  # the same ack-latency metric as Slack's
                response: HttpResponse = self.loop.run(handler(request), REQUEST_TIMEOUT)
        except FutureTimeout:
            log.warning("a Teams activity took too long to answer", extra={"event": "slow"})
            return _reply(start_response, "503 Service Unavailable", {"error": "Busy"})
        status = int(response.get("status") or 200)
        return _reply(start_response, f"{status} {_reason(status)}", response.get("body"))


def _loopback(address: str) -> bool:
    """Whether a peer address is this machine's loopback (IPv4, IPv6, IPv4-mapped)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
