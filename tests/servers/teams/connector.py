"""The Bot Connector service and the channel's side of Teams, for tests of `teams/`.

What it models, and where each rule comes from:

- The channel signs every activity it POSTs to the bot with a JWT (RS256) whose keys are
  published at the OpenID metadata's `jwks_uri`: issuer `https://api.botframework.com`,
  audience the bot's app id, a `serviceurl` claim equal to the activity's serviceUrl
  (Microsoft Learn, "Authenticate requests with the Bot Connector API": "Connector to
  bot"). `send` signs that way; `forged`, `expired` and `audience` make the tokens Teams
  never sends, which the bot must refuse.
- The bot's own token for the Connector comes from Entra ID by client credentials, scope
  `https://api.botframework.com/.default` (same page, "Bot to Connector"); the Connector
  refuses a call without one, with another audience, or expired: 401.
- Activities the bot sends: `POST /v3/conversations/{id}/activities` and updates
  `PUT .../activities/{activityId}` (REST API reference, "Conversations"). Refused: a type
  other than message/typing, an unknown conversation, an attachment whose content type
  Teams does not render, an Adaptive Card of a version above 1.5 (Microsoft Learn, "Cards
  reference": Teams renders 1.5 and earlier — an assumption for every client), a
  message over 28,000 bytes (413 MessageSizeTooBig; stricter than "Format your bot
  messages", which gives ~100 KB of UTF-16 and advises 80 KB: 28 KB is the strictest
  figure Microsoft publishes, its Power Automate connector's), and an
  update of an activity that is not the bot's.
- Rate limits per bot per conversation (Microsoft Learn, "Rate limiting for bots": 7
  messages a second, 8 per 2 seconds, 60 per 30 seconds): over them, 429 with Retry-After.
  `throttle(n)` answers the next n sends 429 whatever the rate.
- Passing failures a bot must retry (same page: "In addition to retrying error code 429,
  error codes 412, 502, and 504 must also be retried"): `fail(status, n)` answers the
  next n sends with that status.
"""

from __future__ import annotations

import json
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import trustme
from cryptography.hazmat.primitives.asymmetric import rsa

CHANNEL_ISSUER = "https://api.botframework.com"
CONNECTOR_SCOPE = "https://api.botframework.com/.default"
CARD = "application/vnd.microsoft.card.adaptive"
RENDERED = {CARD, "application/vnd.microsoft.card.hero", "application/vnd.microsoft.card.thumbnail"}
MAX_CARD_VERSION = (1, 5)
MAX_MESSAGE_BYTES = 28_000
WINDOWS = ((1.0, 7), (2.0, 8), (30.0, 60))


@dataclass
class Posted:
    """A message the bot sent (or its latest update)."""

    id: str
    conversation: str
    activity: dict[str, Any]
    updates: int = 0

    @property
    def card(self) -> dict[str, Any]:
        for attachment in self.activity.get("attachments") or []:
            if attachment.get("contentType") == CARD:
                return dict(attachment["content"])
        return {}

    @property
    def text(self) -> str:
        return all_text(self.card) + " " + str(self.activity.get("text") or "")


def all_text(value: Any) -> str:
    """Every string a person reads on a card (texts, titles, runs)."""
    if isinstance(value, dict):
        own = [str(value[k]) for k in ("text", "title") if isinstance(value.get(k), str)]
        return " ".join(own + [all_text(v) for k, v in value.items() if isinstance(v, dict | list)])
    if isinstance(value, list):
        return " ".join(all_text(v) for v in value)
    return ""


@dataclass
class _Conversation:
    id: str
    kind: str
    sent: deque[float] = field(default_factory=deque)


class BotConnector:
    """The loopback Connector, Entra token endpoint and channel keys, in one HTTPS server."""

    def __init__(self, ca: trustme.CA | None = None) -> None:
        self.app_id = str(uuid.uuid4())
        self.app_password = "loopback-" + secrets.token_urlsafe(24)
        self.tenant_id = str(uuid.uuid4())
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = "loopback-" + secrets.token_hex(4)
        self._lock = threading.RLock()
        self.posted: list[Posted] = []
        self.refused: list[tuple[int, str]] = []  # (status, why) of every refused call
        self.throttled = 0
        self._throttle_next = 0
        self._fail_next: deque[int] = deque()
        self.token_requests = 0
        self._conversations: dict[str, _Conversation] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="connector-loopback-")
        self._ca = ca or trustme.CA()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
        self.ca_bundle = Path(self._tmp.name) / "ca.pem"
        self.ca_bundle.write_bytes(self._ca.cert_pem.bytes())
        self._httpd = _Server(self, ctx)
        self.base_url = f"https://127.0.0.1:{self._httpd.server_address[1]}"
        self.service_url = self.base_url + "/teams"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # ---- life cycle ------------------------------------------------------------------

    def start(self) -> BotConnector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._tmp.cleanup()

    def env(self) -> dict[str, str]:
        return {
            "TEAMS_APP_ID": self.app_id,
            "TEAMS_APP_PASSWORD": self.app_password,
            "TEAMS_TENANT_ID": self.tenant_id,
            "TEAMS_AUTHORITY": self.base_url,
            "TEAMS_OPENID_METADATA": self.base_url + "/v1/.well-known/openidconfiguration",
        }

    def throttle(self, times: int = 1) -> None:
        with self._lock:
            self._throttle_next += times

    def fail(self, status: int, times: int = 1) -> None:
        """The next `times` sends are answered `status` (412, 502, 504: Teams' passing
        failures)."""
        with self._lock:
            self._fail_next.extend([status] * times)

    # ---- the channel: activities to the bot --------------------------------------------

    def conversation(self, kind: str = "personal") -> str:
        cid = (
            f"a:{secrets.token_hex(8)}"
            if kind == "personal"
            else f"19:{secrets.token_hex(8)}@thread.tacv2"
        )
        with self._lock:
            self._conversations[cid] = _Conversation(cid, kind)
        return cid

    def activity(
        self,
        conversation: str,
        *,
        type: str = "message",
        text: str | None = None,
        name: str | None = None,
        value: Any = None,
        user: str = "",
        tenant: str | None = None,
        reply_to: str | None = None,
        channel_data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        tenant = tenant or self.tenant_id
        kind = (
            self._conversations[conversation].kind
            if conversation in self._conversations
            else "personal"
        )
        activity: dict[str, Any] = {
            "type": type,
            "id": secrets.token_hex(8),
            "timestamp": "2026-12-07T09:00:00.000Z",
            "localTimezone": "Europe/London",
            "serviceUrl": self.service_url,
            "channelId": "msteams",
            "from": {"id": f"29:{user[:8]}", "name": "Someone", "aadObjectId": user},
            "conversation": {"id": conversation, "conversationType": kind, "tenantId": tenant},
            "recipient": {"id": f"28:{self.app_id}", "name": "CRM Contacts"},
            "channelData": {"tenant": {"id": tenant}, **(channel_data or {})},
            "locale": "en-GB",
        }
        if text is not None:
            activity["text"] = text
        if name is not None:
            activity["name"] = name
        if value is not None:
            activity["value"] = value
        if reply_to is not None:
            activity["replyToId"] = reply_to
        return activity

    def token(
        self, *, forged: bool = False, expired: bool = False, audience: str | None = None
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": CHANNEL_ISSUER,
            "aud": audience or self.app_id,
            "serviceurl": self.service_url,
            "nbf": now - 60,
            "iat": now - 60,
            "exp": now - 600 if expired else now + 3600,
        }
        key = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048) if forged else self._key
        )
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self._kid})

    def send(
        self, bot_url: str, activity: dict[str, Any], token: str | None = ""
    ) -> httpx.Response:
        """POST an activity to the bot as the channel does (a valid token unless given)."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.token()}"
        return httpx.post(bot_url, json=activity, headers=headers, timeout=30)

    def wait_for(
        self, conversation: str, has: str, *, timeout: float = 20, after: int = 0
    ) -> Posted:
        """The first message (from the `after`-th on) in `conversation` whose text has `has`."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [
                    p
                    for p in self.posted[after:]
                    if p.conversation == conversation and has in p.text
                ]
            if found:
                return found[0]
            assert time.monotonic() < deadline, (
                f"no message with {has!r}; got: {[p.text[:200] for p in self.posted[after:]]}"
            )
            time.sleep(0.05)

    # ---- the server -----------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        path = urlsplit(target).path
        if method == "GET" and path == "/v1/.well-known/openidconfiguration":
            return (
                200,
                {
                    "issuer": CHANNEL_ISSUER,
                    "jwks_uri": self.base_url + "/v1/.well-known/keys",
                    "id_token_signing_alg_values_supported": ["RS256"],
                },
                {},
            )
        if method == "GET" and path == "/v1/.well-known/keys":
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
            jwk.update(kid=self._kid, use="sig", endorsements=["msteams"])
            return 200, {"keys": [jwk]}, {}
        if method == "GET" and path.endswith("/v2.0/.well-known/openid-configuration"):
            tenant = path.strip("/").split("/")[0]
            base = f"{self.base_url}/{tenant}"
            return (
                200,
                {
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "jwks_uri": f"{base}/discovery/v2.0/keys",
                },
                {},
            )
        if method == "POST" and path.endswith("/oauth2/v2.0/token"):
            return self._token(path, raw)
        if path.startswith("/teams/v3/conversations/"):
            why = self._authorize(headers)
            if why:
                return self._refuse(401, why)
            rest = path[len("/teams/v3/conversations/") :].split("/")
            if method == "POST" and len(rest) == 2 and rest[1] == "activities":
                return self._post(rest[0], raw, None)
            if method == "PUT" and len(rest) == 3 and rest[1] == "activities":
                return self._post(rest[0], raw, rest[2])
        return self._refuse(404, f"no route {method} {path}")

    def _refuse(
        self, status: int, why: str, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.refused.append((status, why))
        return status, {"error": {"code": "BadArgument", "message": why}}, headers or {}

    def _token(self, path: str, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        tenant = path.strip("/").split("/")[0]
        with self._lock:
            self.token_requests += 1
        if tenant != self.tenant_id:
            return (
                400,
                {"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."},
                {},
            )
        if form.get("client_id") != self.app_id or form.get("client_secret") != self.app_password:
            return (
                401,
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret.",
                },
                {},
            )
        if form.get("scope") != CONNECTOR_SCOPE:
            return (
                400,
                {"error": "invalid_scope", "error_description": "AADSTS1002012: bad scope."},
                {},
            )
        now = int(time.time())
        claims = {
            "aud": "https://api.botframework.com",
            "iss": f"https://sts.windows.net/{tenant}/",
            "appid": self.app_id,
            "tid": tenant,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})
        return 200, {"token_type": "Bearer", "expires_in": 3600, "access_token": token}, {}

    def _authorize(self, headers: dict[str, str]) -> str:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return "no bearer token"
        try:
            claims = jwt.decode(
                auth[7:],
                self._key.public_key(),
                algorithms=["RS256"],
                audience="https://api.botframework.com",
            )
        except jwt.InvalidTokenError as exc:
            return f"token refused: {exc}"
        if claims.get("appid") != self.app_id:
            return "token of another app"
        return ""

    def _post(
        self, conversation: str, raw: bytes, activity_id: str | None
    ) -> tuple[int, Any, dict[str, str]]:
        if len(raw) > MAX_MESSAGE_BYTES:
            return self._refuse(413, f"MessageSizeTooBig: {len(raw)} bytes")
        try:
            activity = json.loads(raw)
        except ValueError:
            return self._refuse(400, "not JSON")
        with self._lock:
            known = self._conversations.get(conversation)
            if known is None:
                return self._refuse(404, "ConversationNotFound")
            if self._fail_next:
                return self._refuse(self._fail_next.popleft(), "a passing failure")
            if self._throttle_next > 0 or self._over_rate(known):
                self._throttle_next = max(self._throttle_next - 1, 0)
                self.throttled += 1
                return self._refuse(429, "throttled", {"Retry-After": "1"})
        problem = _shape_problem(activity)
        if problem:
            return self._refuse(400, problem)
        with self._lock:
            if activity_id is not None:
                mine = [
                    p for p in self.posted if p.id == activity_id and p.conversation == conversation
                ]
                if not mine:
                    return self._refuse(404, "ActivityNotFound (not an activity of this bot)")
                mine[0].activity = activity
                mine[0].updates += 1
                return 200, {"id": activity_id}, {}
            posted = Posted(secrets.token_hex(8), conversation, activity)
            self.posted.append(posted)
            return 201, {"id": posted.id}, {}

    def _over_rate(self, conversation: _Conversation) -> bool:
        now = time.monotonic()
        sent = conversation.sent
        while sent and now - sent[0] > WINDOWS[-1][0]:
            sent.popleft()
        for seconds, limit in WINDOWS:
            if len([t for t in sent if now - t < seconds]) >= limit:
                return True
        sent.append(now)
        return False


def _shape_problem(activity: Any) -> str:
    if not isinstance(activity, dict) or activity.get("type") not in ("message", "typing"):
        return "activity type must be message"
    for attachment in activity.get("attachments") or []:
        kind = attachment.get("contentType")
        if kind not in RENDERED:
            return f"attachment type {kind} is not rendered in Teams"
        if kind == CARD:
            content = attachment.get("content") or {}
            if content.get("type") != "AdaptiveCard":
                return "not an Adaptive Card"
            try:
                version = tuple(int(p) for p in str(content.get("version")).split("."))
            except ValueError:
                return "Adaptive Card without a version"
            if version > MAX_CARD_VERSION:
                return f"Adaptive Card version {content.get('version')} is not rendered"
    return ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body, extra = self.server.connector.handle(self.command, self.path, headers, raw)
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, connector: BotConnector, ctx: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connector = connector
        self.ctx = ctx

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr
