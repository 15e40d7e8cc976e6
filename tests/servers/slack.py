"""A loopback stand-in for Slack: the Web API the bot calls, and Slack's side of requests.

Why: the bot must be tested over the real wire (slack_sdk's HTTP client, Bolt's signature
check, response_url webhooks), not against mocks of our own code.

- `SlackStandIn` answers `POST /api/<method>` like slack.com/api (auth.test, users.info,
  conversations.open, chat.postMessage, chat.postEphemeral, chat.update, views.open,
  views.publish) and `POST /respond/<name>` like a response_url. It records every call,
  answers 429 with Retry-After on demand, and checks every message and view it receives
  against Slack's Block Kit limits, independently of the bot's own code (`violations`).
- `SlackSender` plays Slack towards the bot: signed slash commands and block_actions
  (X-Slack-Signature v0), with the checkbox state a Slack client would send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode

BOT_TOKEN = "xoxb-loopback-test-token"  # a test token; never a real one
APP_TOKEN = "xapp-loopback-test-token"  # a test app-level token (Socket Mode)
SIGNING_SECRET = "loopback-signing-secret"  # a test secret; never a real one
TEAM_ID = "T0LOOP"

# Block Kit limits, written out here independently of bot/blocks.py.
LIMITS = {
    "message_blocks": 50,
    "view_blocks": 100,
    "checkbox_options": 10,
    "section_text": 3000,
    "option_text": 75,
    "button_text": 75,
    "button_value": 2000,
    "block_id": 255,
    "action_id": 255,
    "context_elements": 10,
    "actions_elements": 25,
    "fields": 10,
    "field_text": 2000,
    "header_text": 150,
    "overflow_options": 5,
    "select_options": 100,
}


@dataclass
class Call:
    """One request the bot made: a Web API method, or a response_url POST."""

    method: str  # e.g. "chat.postMessage", or "response_url"
    params: dict[str, Any]
    status: int
    name: str = ""  # the response_url's name
    at: float = field(default_factory=time.monotonic)

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


def block_kit_problems(blocks: list[dict[str, Any]], limit: int) -> list[str]:
    """Every way `blocks` break Slack's limits (empty when Slack would accept them)."""
    problems: list[str] = []
    if len(blocks) > limit:
        problems.append(f"{len(blocks)} blocks > {limit}")

    def text_of(obj: Any) -> str:
        return str(obj.get("text", "")) if isinstance(obj, dict) else ""

    def element(el: dict[str, Any]) -> None:
        kind = el.get("type")
        if len(str(el.get("action_id", ""))) > LIMITS["action_id"]:
            problems.append("action_id too long")
        if kind == "button":
            if len(text_of(el.get("text"))) > LIMITS["button_text"]:
                problems.append(f"button text over 75: {text_of(el.get('text'))!r}")
            if len(str(el.get("value", ""))) > LIMITS["button_value"]:
                problems.append("button value over 2000")
        if kind == "checkboxes":
            options = el.get("options") or []
            if not options or len(options) > LIMITS["checkbox_options"]:
                problems.append(f"checkboxes with {len(options)} options")
            for option in options:
                for part in ("text", "description"):
                    if len(text_of(option.get(part))) > LIMITS["option_text"]:
                        problems.append(f"option {part} over 75: {text_of(option.get(part))!r}")
            initial = el.get("initial_options")
            if initial is not None and (not initial or any(o not in options for o in initial)):
                problems.append("initial_options empty or not among the options")
        if kind in ("overflow", "static_select"):
            options = el.get("options") or []
            most = LIMITS["overflow_options" if kind == "overflow" else "select_options"]
            if not options or len(options) > most:
                problems.append(f"{kind} with {len(options)} options")
            for option in options:
                if len(text_of(option.get("text"))) > LIMITS["option_text"]:
                    problems.append(f"{kind} option over 75: {text_of(option.get('text'))!r}")
            initial = el.get("initial_option")
            if initial is not None and initial not in options:
                problems.append("initial_option not among the options")

    for block in blocks:
        kind = block.get("type")
        if len(str(block.get("block_id", ""))) > LIMITS["block_id"]:
            problems.append("block_id over 255")
        if kind == "section":
            if len(text_of(block.get("text"))) > LIMITS["section_text"]:
                problems.append("section text over 3000")
            fields = block.get("fields") or []
            if len(fields) > LIMITS["fields"]:
                problems.append("more than 10 fields")
            if any(len(text_of(f)) > LIMITS["field_text"] for f in fields):
                problems.append("field over 2000")
            if not block.get("text") and not fields:
                problems.append("section without text or fields")
            if block.get("accessory"):
                element(block["accessory"])
        elif kind == "context":
            if len(block.get("elements") or []) > LIMITS["context_elements"]:
                problems.append("context with more than 10 elements")
        elif kind == "actions":
            elements = block.get("elements") or []
            if not elements or len(elements) > LIMITS["actions_elements"]:
                problems.append(f"actions block with {len(elements)} elements")
            for el in elements:
                element(el)
        elif kind == "header":
            if len(text_of(block.get("text"))) > LIMITS["header_text"]:
                problems.append("header over 150")
        elif kind == "input":
            element(block.get("element") or {})
    ids = [b["block_id"] for b in blocks if b.get("block_id")]
    if len(ids) != len(set(ids)):
        problems.append("duplicate block_id")
    return problems


class SlackStandIn:
    """slack.com/api and response_url on 127.0.0.1, recording everything."""

    def __init__(self, token: str = BOT_TOKEN) -> None:
        self.token = token
        self.users: dict[str, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self._rate_limits: dict[str, list[int]] = {}
        self._throttled: dict[str, tuple[float, int]] = {}
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
        return f"{self.url}/respond/{name}"

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

    # -- looking at what happened -------------------------------------------------------

    def of(self, method: str, name: str | None = None) -> list[Call]:
        with self._lock:
            return [
                c
                for c in self.calls
                if c.method == method and (name is None or c.name == name) and c.status == 200
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
                    and (where is None or where(c))
                ]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(c.method, c.name, c.status) for c in self.calls]
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
            self._check_message(method, params)
            channel = params.get("channel")
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
            self._check_message(method, params)
            return 200, {"ok": True, "message_ts": ts}, {}
        if method in ("views.open", "views.publish", "views.update", "views.push"):
            view = params.get("view")
            view = json.loads(view) if isinstance(view, str) else (view or {})
            for problem in block_kit_problems(view.get("blocks") or [], LIMITS["view_blocks"]):
                self.violations.append(f"{method}: {problem}")
            return 200, {"ok": True, "view": {"id": "V" + ts.replace(".", ""), **view}}, {}
        return 200, {"ok": False, "error": "unknown_method"}, {}

    def _check_message(self, where: str, params: dict[str, Any]) -> None:
        blocks = params.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        for problem in block_kit_problems(blocks, LIMITS["message_blocks"]):
            self.violations.append(f"{where}: {problem}")
        if not params.get("text") and not blocks:
            self.violations.append(f"{where}: message without text or blocks")

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
                    stand_in._check_message("response_url", params)
                    stand_in._record(Call("response_url", params, 200, name=name))
                    self._send(200, b"ok", "text/plain")
                    return
                if not self.path.startswith("/api/"):
                    self._send(404, b"not found", "text/plain")
                    return
                method = self.path[len("/api/") :].split("?")[0]
                status, body, headers = stand_in._answer(
                    method, params, self.headers.get("Authorization", "")
                )
                stand_in._record(Call(method, params, status))
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


# -- Socket Mode: Slack's WebSocket end ------------------------------------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class SocketModeLink:
    """The WebSocket end of Socket Mode on 127.0.0.1 (RFC 6455, text frames, ping/pong).

    Like Slack: says `hello` on connect, pushes envelopes, collects the app's acks.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._conn: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self.received: list[dict[str, Any]] = []
        self.connections = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._listener.getsockname()[1]}/link/?ticket=loopback"

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        if self._conn is not None:
            self._conn.close()

    def wait_connected(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._conn is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the app never opened its Socket Mode connection")
                self._cond.wait(left)

    def push(self, kind: str, payload: dict[str, Any]) -> str:
        """Send one envelope (e.g. `slash_commands`); returns its envelope_id."""
        envelope_id = f"env-{time.monotonic_ns()}"
        self._send(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind == "slash_commands",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.received:
                    if message.get("envelope_id") == envelope_id:
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no ack for {envelope_id}; got {self.received}")
                self._cond.wait(left)

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode()
        key = next(
            line.split(":", 1)[1].strip()
            for line in head.split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        conn.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        with self._cond:
            self._conn = conn
            self.connections += 1
            self._cond.notify_all()
        self._send({"type": "hello", "num_connections": 1, "debug_info": {"host": "loopback"}})
        try:
            while not self._closed:
                opcode, payload = self._read_frame(conn)
                if opcode == 0x1:
                    with self._cond:
                        self.received.append(json.loads(payload.decode()))
                        self._cond.notify_all()
                elif opcode == 0x9:
                    self._frame(0xA, payload)
                elif opcode == 0x8:
                    return
        except (OSError, ConnectionError, ValueError):
            return

    @staticmethod
    def _read_frame(conn: socket.socket) -> tuple[int, bytes]:
        def exactly(n: int) -> bytes:
            out = b""
            while len(out) < n:
                chunk = conn.recv(n - len(out))
                if not chunk:
                    raise ConnectionError("closed")
                out += chunk
            return out

        first, second = exactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(exactly(2), "big")
        elif length == 127:
            length = int.from_bytes(exactly(8), "big")
        mask = exactly(4) if second & 0x80 else b"\0\0\0\0"
        body = exactly(length)
        return first & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(body))

    def _send(self, message: dict[str, Any]) -> None:
        self._frame(0x1, json.dumps(message).encode())

    def _frame(self, opcode: int, payload: bytes) -> None:
        if self._conn is None:
            raise AssertionError("no Socket Mode connection")
        length = len(payload)
        if length < 126:
            header = bytes([0x80 | opcode, length])
        elif length < 65536:
            header = bytes([0x80 | opcode, 126]) + length.to_bytes(2, "big")
        else:
            header = bytes([0x80 | opcode, 127]) + length.to_bytes(8, "big")
        with self._send_lock:
            self._conn.sendall(header + payload)


# -- Slack's side: signed requests to the bot ----------------------------------------


def sign(secret: str, timestamp: int, body: str) -> str:
    """X-Slack-Signature v0, as Slack computes it."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class Reply:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class SlackSender:
    """Sends what Slack would send to the bot's request URL, correctly signed."""

    def __init__(self, bot_url: str, stand_in: SlackStandIn, secret: str = SIGNING_SECRET) -> None:
        self.bot_url = bot_url
        self.stand_in = stand_in
        self.secret = secret
        self._n = itertools.count(1)

    def post(
        self,
        body: str,
        *,
        content_type: str = "application/x-www-form-urlencoded",
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> Reply:
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature or sign(self.secret, ts, body),
        }
        request = urllib.request.Request(
            self.bot_url, data=body.encode(), headers=headers, method="POST"
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                reply = Reply(response.status, response.read().decode())
        except urllib.error.HTTPError as exc:
            reply = Reply(exc.code, exc.read().decode())
        self.last_elapsed = time.monotonic() - started
        return reply

    def command(self, text: str, user: str = "U_ALICE", **kwargs: Any) -> tuple[Reply, str]:
        """A `/crm-contacts` slash command; returns the HTTP reply and its response_url name."""
        name = f"cmd{next(self._n)}"
        form = {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "loopback",
            "channel_id": "C_SALES",
            "channel_name": "sales",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/crm-contacts",
            "text": text,
            "api_app_id": "A_CRM",
            "response_url": self.stand_in.response_url(name),
            "trigger_id": f"trigger-{name}",
        }
        return self.post(urlencode(form), **kwargs), name

    def click(
        self,
        blocks: list[dict[str, Any]],
        action_id: str,
        *,
        user: str = "U_ALICE",
        ticked: Iterable[int] | None = None,
        tick_event: bool = False,
        view: dict[str, Any] | None = None,
        option: str | None = None,
        message: Call | None = None,
    ) -> tuple[Reply, str]:
        """Click `action_id` in an ephemeral message showing `blocks`, as a Slack client would.

        The checkboxes state is the message's initial options unless `ticked` says which
        person ids are ticked now. `tick_event` sends the checkbox change itself.
        Like Slack for an ephemeral message, the payload carries no copy of the message.
        `option` is the value picked in an overflow menu or a select. `message` is the
        chat.postMessage call of a message the bot posted (a DM): then, as Slack does,
        the container is not ephemeral and the payload carries a copy of the message.
        """
        name = f"act{next(self._n)}"
        element, block_id = find_element(blocks, action_id)
        values: dict[str, Any] = {}
        selected: list[dict[str, Any]] | None = None
        for block in blocks:
            for el in block.get("elements") or []:
                if el.get("type") == "checkboxes":
                    if ticked is None:
                        chosen = list(el.get("initial_options") or [])
                    else:
                        wanted = {str(i) for i in ticked}
                        chosen = [o for o in el["options"] if o["value"] in wanted]
                    values[block["block_id"]] = {
                        el["action_id"]: {"type": "checkboxes", "selected_options": chosen}
                    }
                    selected = chosen
        action: dict[str, Any] = {
            "type": element["type"],
            "action_id": element["action_id"],
            "block_id": block_id,
            "action_ts": f"{time.time():.6f}",
        }
        if element["type"] == "button":
            action["text"] = element["text"]
            if "value" in element:
                action["value"] = element["value"]
        if element["type"] == "checkboxes" or tick_event:
            action["selected_options"] = selected or []
        if element["type"] in ("overflow", "static_select"):
            picked = [o for o in element["options"] if o["value"] == option]
            assert picked, f"no option {option!r} in {element['action_id']}"
            action["selected_option"] = picked[0]
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
            "api_app_id": "A_CRM",
            "token": "legacy-verification-token",
            "trigger_id": f"trigger-{name}",
            "team": {"id": TEAM_ID, "domain": "loopback"},
            "actions": [action],
            "state": {"values": values},
        }
        if message is not None:
            channel = str(message.params["channel"])
            payload["container"] = {
                "type": "message",
                "message_ts": "1700000000.000200",
                "channel_id": channel,
                "is_ephemeral": False,
            }
            payload["channel"] = {"id": channel, "name": "directmessage"}
            payload["message"] = {
                "type": "message",
                "ts": "1700000000.000200",
                "bot_id": "BBOT",
                "text": message.params.get("text", ""),
                "blocks": blocks,
            }
            payload["response_url"] = self.stand_in.response_url(name)
        elif view is None:
            payload["container"] = {
                "type": "message",
                "message_ts": "1700000000.000100",
                "channel_id": "C_SALES",
                "is_ephemeral": True,
            }
            payload["channel"] = {"id": "C_SALES", "name": "sales"}
            payload["response_url"] = self.stand_in.response_url(name)
        else:
            payload["container"] = {"type": "view", "view_id": view.get("id", "V1")}
            payload["view"] = view
        return self.post(urlencode({"payload": json.dumps(payload)})), name

    def submit_view(
        self, view: dict[str, Any], values: dict[str, Any], user: str = "U_ALICE"
    ) -> Reply:
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": "loopback"},
            "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
            "api_app_id": "A_CRM",
            "trigger_id": "trigger-view",
            "view": {**view, "id": "V_MODAL", "state": {"values": values}},
        }
        return self.post(urlencode({"payload": json.dumps(payload)}))

    def event(self, event: dict[str, Any]) -> Reply:
        payload = {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": "A_CRM",
            "type": "event_callback",
            "event_id": f"Ev{next(self._n)}",
            "event_time": int(time.time()),
            "event": event,
        }
        return self.post(json.dumps(payload), content_type="application/json")


def find_element(blocks: list[dict[str, Any]], action_id: str) -> tuple[dict[str, Any], str]:
    """The interactive element with `action_id` in `blocks`, and its block_id."""
    for block in blocks:
        candidates = list(block.get("elements") or [])
        if block.get("accessory"):
            candidates.append(block["accessory"])
        for el in candidates:
            if el.get("action_id") == action_id:
                return el, str(block.get("block_id") or "")
    raise AssertionError(f"no element {action_id} in {json.dumps(blocks)[:500]}")


def has_element(blocks: list[dict[str, Any]], action_id: str) -> bool:
    try:
        find_element(blocks, action_id)
    except AssertionError:
        return False
    return True


def all_text(blocks: list[dict[str, Any]]) -> str:
    """Every text in the blocks, joined (for asserting what a reader sees)."""
    out: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            if obj.get("type") in ("mrkdwn", "plain_text") and "text" in obj:
                out.append(str(obj["text"]))
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    walk(blocks)
    return "\n".join(out)


def checkbox_options(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All checkbox options in a message (one element per page in our picker)."""
    return [
        option
        for block in blocks
        for el in block.get("elements") or []
        if el.get("type") == "checkboxes"
        for option in el["options"]
    ]
