"""The loopback Graph server: the contract tests use, faults, concurrency, HTTPS."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import socket
import ssl
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import trustme

from .batch import Batch
from .identity import Identity
from .routes import Routes
from .schema import (
    AUTH_KINDS,
    DEFAULT_FOLDER,
    MAILBOX_CONCURRENCY,
    DeltaState,
    Fault,
    GraphError,
    Reply,
    StoredMailbox,
    address_of,
    code_for,
    throttled,
)
from .store import Store
from .users import User, Users


class GraphServer(Identity, Users, Routes, Batch, Store):
    """The loopback Graph. Thread-safe; one instance serves any number of mailboxes."""

    def __init__(self) -> None:
        self.tenant_id = "8a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
        self.client_id = "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b"
        self.client_secret = "loopback-" + secrets.token_urlsafe(24)
        self.secret_expired = False  # expire_secret(): the token endpoint answers AADSTS7000222
        self.roles: list[str] = ["Contacts.ReadWrite"]
        self.token_lifetime = 3599
        self.delta_supported = True
        self.throttled_batch_status = 424  # the envelope of a batch with throttled items
        # Seconds one Outlook operation takes (0 in tests): a direct request costs one, a batch
        # one per wave of four, since Graph runs four of its requests at a time.
        self.op_latency = 0.0
        self.requests_by_kind: Counter[str] = Counter()
        self.batch_items_by_kind: Counter[str] = Counter()
        self.peak_concurrency: Counter[str] = Counter()
        self.throttled = 0  # 429s answered for MailboxConcurrency (top level and in batches)
        self.authorizations: list[str] = []  # token tails seen, to show renewal happened
        self.seen: list[tuple[str, str, str]] = []  # (method, target, Prefer) of Graph requests
        self.batch_sizes: list[int] = []
        self._lock = threading.RLock()
        self._slots = threading.Lock()
        self._mailboxes: dict[str, StoredMailbox] = {}
        self._users: dict[str, User] = {}  # registered with add_user, by UPN
        self._tokens: dict[str, float] = {}
        self._deltas: dict[str, DeltaState] = {}
        self._faults: list[Fault] = []
        self._last_ts = datetime.now(UTC) - timedelta(days=1)
        self.clock_ahead = timedelta(0)  # `tick`: the server's clock ahead of the real one
        self._tmp = tempfile.TemporaryDirectory(prefix="graph-loopback-")
        self._ca = trustme.CA()
        cert = self._ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        self.ca_bundle = Path(self._tmp.name) / "ca-bundle.pem"
        self.ca_bundle.write_bytes(self._system_cas() + b"\n" + self._ca.cert_pem.bytes())
        self._httpd = _HTTPServer(self, ctx)
        self.port = self._httpd.server_address[1]
        self.base_url = f"https://127.0.0.1:{self.port}"
        self.authority = self.base_url
        self.graph_url = f"{self.base_url}/v1.0"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # ---- life cycle and the contract other tests use -------------------------------------

    def start(self) -> GraphServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._tmp.cleanup()

    def env(self) -> dict[str, str]:
        """Every variable that points the engine at this server (set them with monkeypatch)."""
        return {
            "MAILBOX_BACKEND": "graph",
            "GRAPH_TENANT_ID": self.tenant_id,
            "GRAPH_CLIENT_ID": self.client_id,
            "GRAPH_CLIENT_SECRET": self.client_secret,
            "GRAPH_AUTHORITY": self.authority,
            "GRAPH_URL": self.graph_url,
            "SSL_CERT_FILE": str(self.ca_bundle),
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
        }

    @property
    def request_count(self) -> int:
        """Graph round trips (a `$batch` is one); token and discovery requests not included."""
        return sum(n for kind, n in self.requests_by_kind.items() if kind not in AUTH_KINDS)

    @property
    def token_requests(self) -> int:
        return self.requests_by_kind["token"]

    def clear_faults(self) -> None:
        """Forget every fault injected and not yet fired."""
        with self._lock:
            self._faults.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests_by_kind.clear()
            self.batch_items_by_kind.clear()
            self.peak_concurrency.clear()
            self.throttled = 0
            self.authorizations.clear()
            self.seen.clear()
            self.batch_sizes.clear()

    def contacts(self, address: str, folder: str = DEFAULT_FOLDER) -> list[dict[str, Any]]:
        """Full Graph representations of a folder, oldest first, with their extended properties."""
        with self._lock:
            box = self._box(address)
            out = []
            for item_id, item in box.items.items():
                if box.folder[item_id] != folder:
                    continue
                rep = copy.deepcopy(item)
                rep["singleValueExtendedProperties"] = [
                    {"id": pid, "value": value} for pid, value in box.ext[item_id].values()
                ]
                out.append(rep)
            return sorted(out, key=lambda c: c["createdDateTime"])

    def add_contact(
        self,
        address: str,
        fields: dict[str, Any],
        *,
        extended: dict[str, str] | None = None,
        folder: str = DEFAULT_FOLDER,
    ) -> str:
        """Create a contact as the user would in Outlook (or in another folder); returns its id."""
        with self._lock:
            body = dict(fields)
            if extended:
                body["singleValueExtendedProperties"] = [
                    {"id": k, "value": v} for k, v in extended.items()
                ]
            return self._create(address, body, folder)["id"]

    def user_update(self, address: str, item_id: str, fields: dict[str, Any]) -> str:
        """Edit a contact as the user would in Outlook; returns the new change key."""
        with self._lock:
            return self._update(address, item_id, fields, if_match=None)["changeKey"]

    def user_delete(self, address: str, item_id: str) -> None:
        with self._lock:
            self._delete(address, item_id, if_match=None)

    def user_move(self, address: str, item_id: str, folder: str) -> None:
        """Move a contact to another folder: it leaves the default folder (delta says removed)."""
        with self._lock:
            box = self._box(address)
            box.folder[item_id] = folder
            self._touch(box, item_id)

    def remove_mailbox(self, address: str) -> None:
        """The address has no Exchange Online mailbox: 404 ErrorInvalidUser."""
        with self._lock:
            self._box(address).exists = False

    def host_on_premises(self, address: str, on_premises: bool = True) -> None:
        """Exchange Server holds this mailbox (hybrid): 404 MailboxNotEnabledForRESTAPI."""
        with self._lock:
            self._box(address).on_premises = on_premises

    def block_mailbox(self, address: str) -> None:
        """An application access policy excludes this mailbox: 403 ErrorAccessDenied."""
        with self._lock:
            self._box(address).blocked = True

    def unblock_mailbox(self, address: str) -> None:
        """The admin adds the mailbox to the application access policy's group."""
        with self._lock:
            self._box(address).blocked = False

    def expire_secret(self) -> None:
        """The app's client secret passes its end date: every token issued so far expires
        and the token endpoint refuses the secret (401 invalid_client, AADSTS7000222)."""
        with self._lock:
            self.secret_expired = True
        self.expire_tokens()

    def renew_secret(self) -> None:
        """An admin added a new client secret (same value here): tokens are issued again."""
        with self._lock:
            self.secret_expired = False

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (Graph answers 401 InvalidAuthenticationToken)."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    def inject(
        self,
        kind: str,
        *,
        times: int = 1,
        on: str = "graph",
        status: int | None = None,
        code: str = "",
        retry_after: int | None = None,
        delay: float = 0.0,
        index: int = 0,
    ) -> None:
        """Make the next `times` requests of kind `on` fail.

        kinds: "throttle" (429 + Retry-After), "unavailable" (503 + Retry-After), "status" (any
        status), "slow" (answer after `delay` s, holding the mailbox's concurrency slots),
        "lost_response" (process, then drop the connection), "batch_item" (request number
        `index` inside the next batch answers `status`), "delta_gone" (410 on a delta token),
        "expire_token" (immediately: all issued tokens expire).
        `on`: "graph" (any Graph request), "token", "batch", "delta", "list", "find", "get",
        "create", "update", "delete".
        """
        if kind == "expire_token":
            self.expire_tokens()
            return
        defaults = {"throttle": 429, "unavailable": 503, "batch_item": 500, "delta_gone": 410}
        if kind not in {*defaults, "status", "slow", "lost_response"}:
            raise ValueError(f"unknown fault kind {kind!r}")
        if kind in {"throttle", "unavailable"} and retry_after is None:
            retry_after = 1
        if kind == "delta_gone":
            on = "delta"
        with self._lock:
            self._faults.append(
                Fault(
                    kind=kind,
                    on=on,
                    times=times,
                    status=status or defaults.get(kind, 500),
                    code=code,
                    retry_after=retry_after,
                    delay=delay,
                    index=index,
                )
            )

    # ---- HTTP entry point ------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Reply:
        split = urlsplit(target)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            if method == "GET" and path.endswith("/v2.0/.well-known/openid-configuration"):
                self._count("discovery")
                return self._discovery(path)
            if method == "POST" and path.endswith("/oauth2/v2.0/token"):
                self._count("token")
                fault = self._take_fault("token")
                if fault is not None:
                    return self._fault_reply(fault)
                return self._token(path, raw)
            if not path.startswith("/v1.0/"):
                raise GraphError(404, "BadRequest", f"Resource not found for the segment {path!r}.")
            route = path[len("/v1.0") :]
            kind = self._kind(method, route, query)
            self._count(kind)
            with self._lock:
                self.seen.append((method, target, headers.get("prefer", "")))
            fault = self._take_fault(kind, delta_token="$deltatoken" in query)
            delay = 0.0
            drop = False
            if fault is not None:
                if fault.kind == "slow":
                    delay = fault.delay
                elif fault.kind == "lost_response":
                    drop = True
                else:
                    return self._fault_reply(fault)
            roles = self._authorize(headers)
            body = self._json(raw)
            if route == "/$batch" and method == "POST":
                reply = self._batch(body, roles, delay)
            else:
                address = address_of(route)
                with self._slot(address):
                    if delay or self.op_latency:
                        time.sleep(delay + self.op_latency)
                    reply = self._dispatch(method, route, query, headers, body, roles)
            reply.drop = drop
            return reply
        except GraphError as exc:
            return Reply(exc.status, exc.body(), exc.headers)

    # ---- concurrency, faults, counting ----------------------------------------------------------

    @contextlib.contextmanager
    def _slot(self, address: str | None) -> Iterator[None]:
        if address is None:
            yield
            return
        if not self._acquire(address):
            raise throttled()
        try:
            yield
        finally:
            self._release(address)

    def _acquire(self, address: str) -> bool:
        with self._slots:
            box = self._box(unquote(address))
            if box.active >= MAILBOX_CONCURRENCY:
                self.throttled += 1
                return False
            box.active += 1
            key = address.lower()
            self.peak_concurrency[key] = max(self.peak_concurrency[key], box.active)
            return True

    def _release(self, address: str) -> None:
        with self._slots:
            self._box(unquote(address)).active -= 1

    def _take_fault(self, kind: str, *, delta_token: bool = False) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind == "batch_item" or fault.times <= 0:
                    continue
                if fault.kind == "delta_gone" and not delta_token:
                    continue
                if fault.on == kind or (fault.on == "graph" and kind not in AUTH_KINDS):
                    fault.times -= 1
                    self._faults = [f for f in self._faults if f.times > 0]
                    return fault
        return None

    def _fault_reply(self, fault: Fault) -> Reply:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.on == "token":
            return Reply(
                fault.status,
                {
                    "error": "temporarily_unavailable",
                    "error_description": "AADSTS50196: Injected failure.",
                },
                headers,
            )
        code = fault.code or code_for(fault.status)
        return Reply(
            fault.status, GraphError(fault.status, code, "Injected failure.").body(), headers
        )

    def _count(self, kind: str) -> None:
        with self._lock:
            self.requests_by_kind[kind] += 1

    @staticmethod
    def _json(raw: bytes) -> Any:
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None

    @staticmethod
    def _system_cas() -> bytes:
        for candidate in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
            if candidate and Path(candidate).is_file():
                return Path(candidate).read_bytes()
        return b""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _HTTPServer

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read counters, not access logs."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.graph.handle(self.command, self.path, headers, raw)
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.request.shutdown(2)
            return
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, graph: GraphServer, ctx: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.graph = graph
        self.ctx = ctx

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        # Headers and body go out in two writes: without this, Nagle and delayed ACKs add
        # ~40 ms to every answer and make per-request costs look far worse than they are.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The handshake runs in the request thread, so a slow client never blocks accept().
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-request are normal here (lost-response faults, shutdown)."""


@contextlib.contextmanager
def graph_server() -> Iterator[GraphServer]:
    """Start a loopback Graph on a random port; stop it afterwards."""
    server = GraphServer().start()
    try:
        yield server
    finally:
        server.stop()
