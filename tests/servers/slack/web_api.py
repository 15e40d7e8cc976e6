"""slack.com/api and response_url on 127.0.0.1 (`SlackStandIn`), recording every call."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from .rules import (
    APP_TOKEN,
    BOT_TOKEN,
    DEFAULT_SCOPES,
    LIMITS,
    MESSAGE_TEXT_LIMIT,
    RESPONSE_URL_SECONDS,
    RESPONSE_URL_USES,
    TEAM_ID,
    TRIGGER_SECONDS,
    block_kit_problems,
    message_text_length,
)
from .socket_mode import SocketModeLink


@dataclass
class Call:
    """One request the bot made: a Web API method, or a response_url POST."""

    method: str  # e.g. "chat.postMessage", or "response_url"
    params: dict[str, Any]
    status: int
    name: str = ""  # the response_url's name
    at: float = field(default_factory=time.monotonic)
    error: str = ""  # what Slack answered instead of ok (`msg_blocks_too_long`, `used_url`, …)

    @property
    def blocks(self) -> list[dict[str, Any]]:
        blocks = self.params.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        return list(blocks)

    @property
    def view(self) -> dict[str, Any]:
        view = self.params.get("view") or {}
        return json.loads(view) if isinstance(view, str) else dict(view)


class SlackStandIn:
    """slack.com/api and response_url on 127.0.0.1, recording everything."""

    def __init__(self, token: str = BOT_TOKEN, scopes: frozenset[str] = DEFAULT_SCOPES) -> None:
        self.token = token
        self.scopes = set(scopes)
        self.users: dict[str, dict[str, Any]] = {}
        # channel id -> {"private": bool, "member": bool}; an unknown C… id is a public
        # channel the bot was never invited to
        self.channels: dict[str, dict[str, bool]] = {}
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self._rate_limits: dict[str, list[int]] = {}
        self._throttled: dict[str, tuple[float, int]] = {}
        self._delays: dict[str, float] = {}
        self._triggers: dict[str, tuple[float, bool]] = {}  # id -> (issued, used)
        self._response_urls: dict[str, list[float]] = {}  # name -> [issued, uses]
        self._views: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._ts = itertools.count(1)
        self.socket_mode: SocketModeLink | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> SlackStandIn:
        self._thread.start()
        return self

    def close(self) -> None:
        if self.socket_mode is not None:
            self.socket_mode.close()
        self._server.shutdown()
        self._server.server_close()

    def enable_socket_mode(self) -> SocketModeLink:
        """Serve Socket Mode: apps.connections.open hands out a ws:// URL on 127.0.0.1."""
        self.socket_mode = SocketModeLink()
        return self.socket_mode

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def response_url(self, name: str) -> str:
        """A response_url for one interaction; its 30 minutes start now."""
        with self._lock:
            self._response_urls.setdefault(name, [time.monotonic(), 0])
        return f"{self.url}/respond/{name}"

    def issue_trigger(self, trigger_id: str) -> str:
        """A trigger_id for one click; its 3 seconds start now."""
        with self._lock:
            self._triggers[trigger_id] = (time.monotonic(), False)
        return trigger_id

    # -- set-up -------------------------------------------------------------------------

    def add_user(
        self,
        slack_id: str,
        email: str | None,
        *,
        deleted: bool = False,
        is_bot: bool = False,
        tz: str = "Europe/London",
        team_id: str = TEAM_ID,
        guest: str = "",
        email_confirmed: bool = True,
    ) -> None:
        """A user as users.info returns it. The user object carries `team_id`,
        `is_restricted` (a multi-channel guest), `is_ultra_restricted` (a single-channel
        guest) and `is_email_confirmed` (docs.slack.dev/reference/methods/users.info,
        example response); `guest` is "", "multi" or "single"."""
        profile: dict[str, Any] = {"real_name": slack_id}
        if email is not None:
            profile["email"] = email
        self.users[slack_id] = {
            "id": slack_id,
            "team_id": team_id,
            "name": slack_id.lower(),
            "deleted": deleted,
            "is_bot": is_bot,
            "is_restricted": bool(guest),
            "is_ultra_restricted": guest == "single",
            "is_email_confirmed": email_confirmed,
            "tz": tz,
            "profile": profile,
        }

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` with 429 and Retry-After."""
        self._rate_limits[method] = [times, retry_after]

    def throttle(self, method: str, seconds: float, retry_after: int) -> None:
        """Answer every call of `method` for the next `seconds` with 429 and Retry-After,
        as Slack does while a method's per-minute limit is spent
        (docs.slack.dev/apis/web-api/rate-limits: HTTP 429 with a Retry-After header)."""
        self._throttled[method] = (time.monotonic() + seconds, retry_after)

    def slow(self, method: str, seconds: float) -> None:
        """Take `seconds` to answer each call of `method` (a slow Slack on a bad day)."""
        self._delays[method] = seconds

    def add_channel(self, channel: str, *, private: bool = False, member: bool = False) -> None:
        self.channels[channel] = {"private": private, "member": member}

    def expire_response_url(self, name: str) -> None:
        """Let the 30 minutes of response_url `name` pass."""
        with self._lock:
            entry = self._response_urls.setdefault(name, [time.monotonic(), 0])
            entry[0] -= RESPONSE_URL_SECONDS + 1

    # -- looking at what happened -------------------------------------------------------

    def of(self, method: str, name: str | None = None) -> list[Call]:
        """The calls of `method` Slack accepted."""
        with self._lock:
            return [
                c
                for c in self.calls
                if c.method == method
                and (name is None or c.name == name)
                and c.status == 200
                and not c.error
            ]

    def refused(self, method: str | None = None) -> list[Call]:
        """The calls Slack refused (an error answer, or an HTTP error status)."""
        with self._lock:
            return [
                c
                for c in self.calls
                if (method is None or c.method == method) and (c.error or c.status != 200)
            ]

    def wait_for(
        self,
        method: str,
        count: int = 1,
        *,
        name: str | None = None,
        timeout: float = 10.0,
        where: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Block until `count` successful calls of `method` arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [
                    c
                    for c in self.calls
                    if c.method == method
                    and (name is None or c.name == name)
                    and c.status == 200
                    and not c.error
                    and (where is None or where(c))
                ]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(c.method, c.name, c.status, c.error) for c in self.calls]
                    raise AssertionError(f"waited for {count} x {method} {name or ''}; saw {seen}")
                self._cond.wait(left)

    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    # -- the wire -----------------------------------------------------------------------

    def _answer(
        self, method: str, params: dict[str, Any], auth: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            limited = self._rate_limits.get(method)
            if limited and limited[0] > 0:
                limited[0] -= 1
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(limited[1])}
            until, retry_after = self._throttled.get(method, (0.0, 0))
            if time.monotonic() < until:
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
        if method == "apps.connections.open":
            if auth != f"Bearer {APP_TOKEN}" or self.socket_mode is None:
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            return 200, {"ok": True, "url": self.socket_mode.url}, {}
        if auth != f"Bearer {self.token}" and params.get("token") != self.token:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        if method == "auth.test":
            return (
                200,
                {
                    "ok": True,
                    "team_id": TEAM_ID,
                    "user_id": "UBOT",
                    "bot_id": "BBOT",
                    "team": "Loopback",
                    "url": self.url + "/",
                    "user": "crm-contacts",
                },
                {},
            )
        if method == "users.info":
            user = self.users.get(str(params.get("user")))
            if user is None:
                return 200, {"ok": False, "error": "user_not_found"}, {}
            return 200, {"ok": True, "user": user}, {}
        if method == "conversations.open":
            users = str(params.get("users") or "")
            return 200, {"ok": True, "channel": {"id": "D" + users.split(",")[0]}}, {}
        if method in ("chat.postMessage", "chat.update"):
            channel = str(params.get("channel") or "")
            refused = self._channel_refusal(channel) or self._check_message(method, params)
            if refused:
                return 200, {"ok": False, "error": refused}, {}
            return (
                200,
                {
                    "ok": True,
                    "channel": channel,
                    "ts": ts,
                    "message": {"ts": ts, "text": params.get("text", "")},
                },
                {},
            )
        if method == "chat.postEphemeral":
            refused = self._check_message(method, params)
            if refused:
                return 200, {"ok": False, "error": refused}, {}
            return 200, {"ok": True, "message_ts": ts}, {}
        if method in ("views.open", "views.publish", "views.update", "views.push"):
            view = params.get("view")
            view = json.loads(view) if isinstance(view, str) else (view or {})
            for problem in block_kit_problems(view.get("blocks") or [], LIMITS["view_blocks"]):
                self.violations.append(f"{method}: {problem}")
            if method in ("views.open", "views.push"):
                refused = self._use_trigger(str(params.get("trigger_id") or ""))
                if refused:
                    return 200, {"ok": False, "error": refused}, {}
            view_id = "V" + ts.replace(".", "")
            if method == "views.update":
                # views.update: the view_id of an open view (`not_found` otherwise), and its
                # hash when given must be the latest (`hash_conflict`) (Slack's views.update)
                view_id = str(params.get("view_id") or "")
                with self._lock:
                    known = self._views.get(view_id)
                if known is None:
                    return 200, {"ok": False, "error": "not_found"}, {}
                if params.get("hash") and params["hash"] != known.get("hash"):
                    return 200, {"ok": False, "error": "hash_conflict"}, {}
            stored = {**view, "id": view_id, "hash": f"h{ts}"}
            with self._lock:
                self._views[view_id] = stored
            return 200, {"ok": True, "view": stored}, {}
        return 200, {"ok": False, "error": "unknown_method"}, {}

    def _use_trigger(self, trigger_id: str) -> str:
        """Why views.open refuses `trigger_id` (empty when it may open a view)."""
        with self._lock:
            issued = self._triggers.get(trigger_id)
            if issued is None:
                return "invalid_trigger_id"
            at, used = issued
            if used:
                return "exchanged_trigger_id"
            if time.monotonic() - at > TRIGGER_SECONDS:
                return "expired_trigger_id"
            self._triggers[trigger_id] = (at, True)
        return ""

    def _channel_refusal(self, channel: str) -> str:
        """Why chat.postMessage may not post in `channel` (empty when it may).

        A DM the app opened (D…) is always fine. A public channel needs the bot as a
        member or the chat:write.public scope (`not_in_channel`); a private one needs the
        bot as a member (`channel_not_found`: the bot cannot see it at all)."""
        if channel.startswith("D"):
            return ""
        info = self.channels.get(channel, {"private": False, "member": False})
        if info["member"]:
            return ""
        if info["private"]:
            return "channel_not_found"
        return "" if "chat:write.public" in self.scopes else "not_in_channel"

    def _respond(self, name: str, params: dict[str, Any]) -> tuple[int, str]:
        """A POST to response_url `name`: (HTTP status, body) as Slack answers it.

        The text limit is applied here too, stricter than one report (bolt-js#2867 saw
        respond() take blocks chat.postMessage refused): the bot must not depend on
        which way a message goes out."""
        with self._lock:
            entry = self._response_urls.setdefault(name, [time.monotonic(), 0])
            if time.monotonic() - entry[0] > RESPONSE_URL_SECONDS:
                return 404, "expired_url"
            if entry[1] >= RESPONSE_URL_USES:
                return 404, "used_url"
        refused = self._check_message("response_url", params)
        if refused:
            return 400, refused
        with self._lock:
            entry[1] += 1
        return 200, "ok"

    def _check_message(self, where: str, params: dict[str, Any]) -> str:
        """Record Block Kit violations; the error Slack answers for the whole message, if any."""
        blocks = params.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        for problem in block_kit_problems(blocks, LIMITS["message_blocks"]):
            self.violations.append(f"{where}: {problem}")
        if not params.get("text") and not blocks:
            self.violations.append(f"{where}: message without text or blocks")
        size = message_text_length(blocks)
        if size > MESSAGE_TEXT_LIMIT:
            self.violations.append(f"{where}: {size} characters of text > {MESSAGE_TEXT_LIMIT}")
            return "msg_blocks_too_long"
        return ""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet tests
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                ctype = self.headers.get("Content-Type", "")
                if "json" in ctype:
                    params = json.loads(raw or "{}")
                else:
                    params = {k: v[0] for k, v in parse_qs(raw).items()}
                if self.path.startswith("/respond/"):
                    name = self.path[len("/respond/") :]
                    code, answer = stand_in._respond(name, params)
                    error = "" if code == 200 else answer
                    stand_in._record(Call("response_url", params, code, name=name, error=error))
                    self._send(code, answer.encode(), "text/plain")
                    return
                if not self.path.startswith("/api/"):
                    self._send(404, b"not found", "text/plain")
                    return
                method = self.path[len("/api/") :].split("?")[0]
                delay = stand_in._delays.get(method)
                if delay:
                    time.sleep(delay)
                status, body, headers = stand_in._answer(
                    method, params, self.headers.get("Authorization", "")
                )
                error = "" if body.get("ok", True) else str(body.get("error") or "error")
                stand_in._record(Call(method, params, status, error=error))
                self._send(status, json.dumps(body).encode(), "application/json", headers)

            def _send(
                self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler
