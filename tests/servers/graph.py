"""A loopback Microsoft Graph: the REST subset `GraphMailbox` speaks, over HTTPS on 127.0.0.1.

Why a real server and not a mock: the adapter is tested on the wire (DESIGN section 3), so
msal's OIDC discovery and client-credentials token request, TLS trust through
SSL_CERT_FILE / REQUESTS_CA_BUNDLE, and Graph's paging, `$batch`, delta and error shapes are
all exercised the way they are against Exchange Online.

What it models, from Microsoft's documentation:

- Entra ID: `GET /{tenant}/v2.0/.well-known/openid-configuration` (msal asks for it even with
  instance discovery off) and `POST /{tenant}/oauth2/v2.0/token` (client credentials), issuing
  JWT-shaped tokens whose `roles` claim lists the application permissions.
- Contacts: `/users/{upn}/contacts` (the default Contacts folder) with `$select`, `$top`,
  `$count`, `$filter` on a single-value extended property, `$expand` of one, `Prefer:
  odata.maxpagesize` and `@odata.nextLink`; POST, GET, PATCH (`If-Match` on the change key →
  412 ErrorIrresolvableConflict) and DELETE on items.
- Delta: `/users/{upn}/contactFolders/contacts/contacts/delta` with `@odata.nextLink`
  (skip token), `@odata.deltaLink` (delta token) and `@removed`; 410 when a token is expired.
- `$batch`: at most 20 requests, answered in any order (here: reversed, so clients must match
  on `id`); Graph hands Outlook at most 4 requests of a batch at a time, and Outlook allows 4
  concurrent requests per app and mailbox: requests over that answer 429 ApplicationThrottled
  "MailboxConcurrency" with Retry-After, at the top level or inside a batch.
- Faults on demand (`inject`): 429/503 with Retry-After, any status, a slow answer, one failing
  request inside a batch, a lost response (processed, then the connection drops), 410 on delta,
  delta not supported, expired tokens.

The contract other tests use: `graph_server()` yields a `GraphServer` with `.env()`,
`.request_count`, `.requests_by_kind`, `.reset_counts()`, `.contacts(address)`, `.inject(...)`.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import trustme

MAX_BATCH = 20
MAILBOX_CONCURRENCY = 4
MAX_PAGE = 1000
DEFAULT_PAGE = 10
DEFAULT_FOLDER = "contacts"

_STRING_PROPS = frozenset(
    {
        "title",
        "givenName",
        "middleName",
        "surname",
        "generation",
        "nickName",
        "initials",
        "companyName",
        "jobTitle",
        "department",
        "officeLocation",
        "profession",
        "businessHomePage",
        "mobilePhone",
        "displayName",
        "fileAs",
        "personalNotes",
        "assistantName",
        "manager",
        "spouseName",
        "birthday",
        "yomiGivenName",
        "yomiSurname",
        "yomiCompanyName",
    }
)
_LIST_PROPS = frozenset(
    {"categories", "businessPhones", "homePhones", "emailAddresses", "imAddresses", "children"}
)
_ADDRESS_PROPS = frozenset({"businessAddress", "homeAddress", "otherAddress"})
_ADDRESS_KEYS = frozenset({"street", "city", "state", "postalCode", "countryOrRegion"})
_READ_ONLY = frozenset(
    {"id", "changeKey", "createdDateTime", "lastModifiedDateTime", "parentFolderId"}
)
_ALL_PROPS = _STRING_PROPS | _LIST_PROPS | _ADDRESS_PROPS | _READ_ONLY
_WRITE_ROLES = frozenset({"Contacts.ReadWrite"})
_READ_ROLES = frozenset({"Contacts.Read", "Contacts.ReadWrite"})

_EXPAND_RE = re.compile(r"^singleValueExtendedProperties\(\$filter=id eq '([^']+)'\)$", re.I)
_FILTER_RE = re.compile(
    r"^singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id eq '([^']+)'\s+and\s+"
    r"(?:cast\(\s*\1/value\s*,\s*Edm\.Int32\s*\)\s+eq\s+(-?\d+)|\1/value eq '([^']*)')\s*\)$",
    re.I,
)
_MAXPAGE_RE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.I)


class GraphError(Exception):
    """An error answer in Graph's shape: {"error": {"code", "message", "innerError"}}."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": secrets.token_hex(8),
                },
            }
        }


def _throttled(retry_after: int = 1) -> GraphError:
    return GraphError(
        429,
        "ApplicationThrottled",
        "Application is over its MailboxConcurrency limit.",
        {"Retry-After": str(retry_after)},
    )


def _norm_prop(prop_id: str) -> str:
    """Extended property ids: type and GUID are case-insensitive, the Name is not."""
    parts = prop_id.split(" ", 3)
    if len(parts) == 4:
        return f"{parts[0].lower()} {parts[1].lower()} {parts[2].lower()} {parts[3]}"
    return prop_id.lower()


@dataclass
class _Fault:
    kind: str
    on: str
    times: int
    status: int = 0
    code: str = ""
    retry_after: int | None = None
    delay: float = 0.0
    index: int = 0


@dataclass
class _Mailbox:
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    ext: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    folder: dict[str, str] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    exists: bool = True
    blocked: bool = False
    active: int = 0


@dataclass
class _DeltaState:
    address: str
    seq: int
    select: list[str] | None
    expand: str | None
    page: int
    pending: list[str] | None = None  # item ids still to send in this round (skip token)


@dataclass
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # processed, then the connection is closed without an answer


class GraphServer:
    """The loopback Graph. Thread-safe; one instance serves any number of mailboxes."""

    def __init__(self) -> None:
        self.tenant_id = "8a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
        self.client_id = "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b"
        self.client_secret = "loopback-" + secrets.token_urlsafe(24)
        self.roles: list[str] = ["Contacts.ReadWrite"]
        self.token_lifetime = 3599
        self.delta_supported = True
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
        self._mailboxes: dict[str, _Mailbox] = {}
        self._tokens: dict[str, float] = {}
        self._deltas: dict[str, _DeltaState] = {}
        self._faults: list[_Fault] = []
        self._last_ts = datetime.now(UTC) - timedelta(days=1)
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
        return sum(n for kind, n in self.requests_by_kind.items() if kind not in _AUTH_KINDS)

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

    def block_mailbox(self, address: str) -> None:
        """An application access policy excludes this mailbox: 403 ErrorAccessDenied."""
        with self._lock:
            self._box(address).blocked = True

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
                _Fault(
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

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> _Reply:
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
                address = _address_of(route)
                with self._slot(address):
                    if delay or self.op_latency:
                        time.sleep(delay + self.op_latency)
                    reply = self._dispatch(method, route, query, headers, body, roles)
            reply.drop = drop
            return reply
        except GraphError as exc:
            return _Reply(exc.status, exc.body(), exc.headers)

    # ---- identity --------------------------------------------------------------------------

    def _discovery(self, path: str) -> _Reply:
        tenant = path.strip("/").split("/")[0]
        if tenant != self.tenant_id:
            return _Reply(
                400,
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.",
                    "error_codes": [90002],
                },
            )
        base = f"{self.base_url}/{tenant}"
        return _Reply(
            200,
            {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "token"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
            },
        )

    def _token(self, path: str, raw: bytes) -> _Reply:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        tenant = path.strip("/").split("/")[0]

        def aad(status: int, error: str, code: int, text: str) -> _Reply:
            return _Reply(
                status,
                {
                    "error": error,
                    "error_description": f"AADSTS{code}: {text}",
                    "error_codes": [code],
                },
            )

        if tenant != self.tenant_id:
            return aad(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return aad(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        if form.get("client_id") != self.client_id:
            return aad(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the directory '{tenant}'.",
            )
        if form.get("client_secret") != self.client_secret:
            return aad(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            )
        if form.get("scope") != f"{self.base_url}/.default":
            return aad(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {form.get('scope')} is not valid.",
            )
        now = time.time()
        claims = {
            "aud": self.base_url,
            "iss": f"{self.base_url}/{tenant}/",
            "tid": tenant,
            "appid": self.client_id,
            "roles": list(self.roles),
            "iat": int(now),
            "exp": int(now) + self.token_lifetime,
        }
        token = ".".join(
            (
                _b64(json.dumps({"typ": "JWT", "alg": "RS256"}).encode()),
                _b64(json.dumps(claims).encode()),
                _b64(secrets.token_bytes(32)),
            )
        )
        with self._lock:
            self._tokens[token] = now + self.token_lifetime
        return _Reply(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            },
        )

    def _authorize(self, headers: dict[str, str]) -> frozenset[str]:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        token = auth[7:].strip()
        with self._lock:
            self.authorizations.append(token[-12:])
            expiry = self._tokens.get(token)
        if expiry is None or expiry < time.time():
            raise GraphError(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        return frozenset(payload.get("roles", []))

    # ---- Graph ------------------------------------------------------------------------------

    def _kind(self, method: str, route: str, query: dict[str, list[str]]) -> str:
        if route == "/$batch":
            return "batch"
        if route.endswith("/delta"):
            return "delta"
        if method == "GET" and route.rstrip("/").endswith("/contacts"):
            return "find" if "$filter" in query else "list"
        return {"GET": "get", "POST": "create", "PATCH": "update", "DELETE": "delete"}.get(
            method, "other"
        )

    def _dispatch(
        self,
        method: str,
        route: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: Any,
        roles: frozenset[str],
    ) -> _Reply:
        parts = [p for p in route.split("/") if p]
        if len(parts) < 3 or parts[0].lower() != "users":
            raise GraphError(400, "BadRequest", f"Unsupported segment in {route!r}.")
        address = parts[1]
        rest = [p.lower() for p in parts[2:]]
        write = method in {"POST", "PATCH", "DELETE"}
        if not roles & (_WRITE_ROLES if write else _READ_ROLES):
            raise GraphError(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        with self._lock:
            box = self._box(address)
            if not box.exists:
                raise GraphError(
                    404, "ErrorInvalidUser", f"The requested user '{address}' is invalid."
                )
            if box.blocked:
                raise GraphError(
                    403,
                    "ErrorAccessDenied",
                    "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
                )
            select = _select(query)
            expand = _expand(query)
            if rest == ["contacts"] and method == "GET":
                return self._list(address, query, headers, select, expand)
            if rest == ["contacts"] and method == "POST":
                item = self._create(address, _require_object(body), DEFAULT_FOLDER)
                return _Reply(201, self._render(box, item["id"], None, None))
            if len(rest) == 2 and rest[0] == "contacts":
                item_id = parts[3]
                if method == "GET":
                    if item_id not in box.items or box.folder[item_id] != DEFAULT_FOLDER:
                        raise _not_found()
                    return _Reply(200, self._render(box, item_id, select, expand))
                if method == "PATCH":
                    self._update(address, item_id, _require_object(body), headers.get("if-match"))
                    return _Reply(200, self._render(box, item_id, None, None))
                if method == "DELETE":
                    self._delete(address, item_id, headers.get("if-match"))
                    return _Reply(204)
            if (
                rest[:1] == ["contactfolders"]
                and rest[-2:] == ["contacts", "delta"]
                and method == "GET"
            ):
                if len(rest) != 4 or rest[1] != DEFAULT_FOLDER:
                    raise GraphError(
                        404,
                        "ErrorItemNotFound",
                        "The specified folder could not be found in the store.",
                    )
                return self._delta(address, query, headers, select, expand)
        raise GraphError(405, "BadRequest", f"{method} is not supported on {route!r}.")

    def _list(
        self,
        address: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        select: list[str] | None,
        expand: str | None,
    ) -> _Reply:
        box = self._box(address)
        ids = [i for i in box.items if box.folder[i] == DEFAULT_FOLDER]
        ids.sort(key=lambda i: box.items[i]["createdDateTime"])
        if "$filter" in query:
            match = _FILTER_RE.match(query["$filter"][0].strip())
            if not match:
                raise GraphError(
                    400,
                    "ErrorInvalidUrlQueryFilter",
                    "The query filter contains one or more invalid nodes.",
                )
            prop, number, text = _norm_prop(match.group(2)), match.group(3), match.group(4)
            wanted = number if number is not None else text
            ids = [
                i
                for i in ids
                if prop in box.ext[i] and box.ext[i][prop][1].lower() == (wanted or "").lower()
            ]
        skip = int(query.get("$skip", ["0"])[0])
        size = _page_size(query, headers)
        page = ids[skip : skip + size]
        out: dict[str, Any] = {
            "@odata.context": f"{self.graph_url}/$metadata#users('{quote(address)}')/contacts",
            "value": [self._render(box, i, select, expand) for i in page],
        }
        if query.get("$count", ["false"])[0].lower() == "true":
            out["@odata.count"] = len(ids)
        if skip + size < len(ids):
            params = {k: v[0] for k, v in query.items() if k not in {"$skip", "$top"}}
            params.update({"$top": str(size), "$skip": str(skip + size)})
            out["@odata.nextLink"] = (
                f"{self.graph_url}/users/{quote(address)}/contacts?{urlencode(params)}"
            )
        return _Reply(200, out, _applied(headers, size))

    def _delta(
        self,
        address: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        select: list[str] | None,
        expand: str | None,
    ) -> _Reply:
        if not self.delta_supported:
            raise GraphError(
                400, "ErrorInvalidUrlQuery", "The query parameter is not supported by delta."
            )
        box = self._box(address)
        if "$skiptoken" in query:
            state = self._deltas.pop(query["$skiptoken"][0], None)
            if state is None or state.pending is None:
                raise GraphError(
                    410, "SyncStateNotFound", "The sync state for this request was not found."
                )
            pending = state.pending
        elif "$deltatoken" in query:
            state = self._deltas.get(query["$deltatoken"][0])
            if state is None or state.pending is not None or state.address != address.lower():
                raise GraphError(
                    410, "SyncStateNotFound", "The sync state for this request was not found."
                )
            pending = sorted(
                (i for i, s in box.changed.items() if s > state.seq), key=box.changed.__getitem__
            )
            state = _DeltaState(
                address.lower(), box.seq, state.select, state.expand, _page_size(query, headers)
            )
        else:
            pending = [i for i in box.items if box.folder[i] == DEFAULT_FOLDER]
            pending.sort(key=lambda i: box.items[i]["createdDateTime"])
            state = _DeltaState(
                address.lower(), box.seq, select, expand, _page_size(query, headers)
            )
        size = (
            _page_size(query, headers)
            if _MAXPAGE_RE.search(headers.get("prefer", ""))
            else state.page
        )
        page, rest = pending[:size], pending[size:]
        values = []
        for item_id in page:
            if item_id in box.items and box.folder[item_id] == DEFAULT_FOLDER:
                values.append(self._render(box, item_id, state.select, state.expand))
            else:
                values.append(
                    {
                        "@odata.type": "#microsoft.graph.contact",
                        "id": item_id,
                        "@removed": {"reason": "deleted"},
                    }
                )
        token = secrets.token_urlsafe(18)
        folder = f"{self.graph_url}/users/{quote(address)}/contactFolders/{DEFAULT_FOLDER}"
        link = f"{folder}/contacts/delta"
        out: dict[str, Any] = {
            "@odata.context": f"{self.graph_url}/$metadata#Collection(contact)",
            "value": values,
        }
        if rest:
            self._deltas[token] = _DeltaState(
                state.address, state.seq, state.select, state.expand, state.page, rest
            )
            out["@odata.nextLink"] = f"{link}?%24skiptoken={token}"
        else:
            self._deltas[token] = _DeltaState(
                state.address, state.seq, state.select, state.expand, state.page
            )
            out["@odata.deltaLink"] = f"{link}?%24deltatoken={token}"
        return _Reply(200, out, _applied(headers, size))

    def _batch(self, body: Any, roles: frozenset[str], delay: float) -> _Reply:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(requests) > MAX_BATCH:
            raise GraphError(
                400,
                "BadRequest",
                f"A batch can hold at most {MAX_BATCH} requests; this one has {len(requests)}.",
            )
        with self._lock:
            self.batch_sizes.append(len(requests))
        ids = [str(r.get("id")) for r in requests]
        if len(set(ids)) != len(ids):
            raise GraphError(400, "BadRequest", "Batch request ids must be unique.")
        with self._lock:
            item_fault = None
            for fault in self._faults:
                if fault.kind == "batch_item" and fault.times > 0:
                    fault.times -= 1
                    item_fault = fault
                    break
            self._faults = [f for f in self._faults if f.times > 0]
        replies: dict[str, dict[str, Any]] = {}
        # Graph hands Outlook at most four requests of a batch at a time.
        for start in range(0, len(requests), MAILBOX_CONCURRENCY):
            wave = list(enumerate(requests))[start : start + MAILBOX_CONCURRENCY]
            held: list[tuple[int, dict[str, Any], str | None]] = []
            for position, req in wave:
                url = str(req.get("url", ""))
                address = _address_of(urlsplit(url).path)
                if address is not None and not self._acquire(address):
                    busy = _throttled()
                    replies[str(req.get("id"))] = _batch_reply(
                        _Reply(429, busy.body(), busy.headers), req
                    )
                    continue
                held.append((position, req, address))
            try:
                if delay or self.op_latency:
                    time.sleep(delay + self.op_latency)
                    delay = 0.0
                for position, req, _address in held:
                    replies[str(req.get("id"))] = _batch_reply(
                        self._inner(req, position, item_fault, roles, replies), req
                    )
            finally:
                for _position, _req, address in held:
                    if address is not None:
                        self._release(address)
        ordered = [replies[i] for i in reversed(ids)]
        return _Reply(200, {"responses": ordered})

    def _inner(
        self,
        req: dict[str, Any],
        position: int,
        fault: _Fault | None,
        roles: frozenset[str],
        done: dict[str, dict[str, Any]],
    ) -> _Reply:
        method = str(req.get("method", "GET")).upper()
        url = str(req.get("url", ""))
        if not url.startswith("/"):
            return _Reply(
                400,
                GraphError(
                    400, "BadRequest", "Batch request urls are relative to the version root."
                ).body(),
            )
        for dep in req.get("dependsOn") or []:
            if str(dep) not in done or done[str(dep)]["status"] >= 400:
                return _Reply(
                    424,
                    GraphError(
                        424, "FailedDependency", "A request this one depends on failed."
                    ).body(),
                )
        split = urlsplit(url)
        route = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        kind = self._kind(method, route, query)
        with self._lock:
            self.batch_items_by_kind[kind] += 1
        if fault is not None and position == fault.index:
            headers = (
                {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            )
            if fault.status == 429:
                headers.setdefault("Retry-After", "1")
            return _Reply(
                fault.status,
                GraphError(
                    fault.status, fault.code or _code_for(fault.status), "Injected failure."
                ).body(),
                headers,
            )
        headers = {str(k).lower(): str(v) for k, v in (req.get("headers") or {}).items()}
        try:
            return self._dispatch(method, route, query, headers, req.get("body"), roles)
        except GraphError as exc:
            return _Reply(exc.status, exc.body(), exc.headers)

    # ---- the store --------------------------------------------------------------------------

    def _box(self, address: str) -> _Mailbox:
        return self._mailboxes.setdefault(address.lower(), _Mailbox())

    def _stamp(self) -> str:
        now = datetime.now(UTC)
        if now <= self._last_ts:
            now = self._last_ts + timedelta(microseconds=1)
        self._last_ts = now
        return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _touch(self, box: _Mailbox, item_id: str) -> None:
        box.seq += 1
        box.changed[item_id] = box.seq

    def _create(self, address: str, body: dict[str, Any], folder: str) -> dict[str, Any]:
        box = self._box(address)
        body = dict(body)
        ext: dict[str, tuple[str, str]] = {}
        _apply_ext(ext, body.pop("singleValueExtendedProperties", None) or [])
        item: dict[str, Any] = {p: None for p in _STRING_PROPS}
        item.update({p: [] for p in _LIST_PROPS})
        item.update({p: {} for p in _ADDRESS_PROPS})
        _apply(item, body)
        item_id = "AAMkAD" + secrets.token_urlsafe(24)
        stamp = self._stamp()
        item.update(
            id=item_id,
            changeKey=_change_key(),
            createdDateTime=stamp,
            lastModifiedDateTime=stamp,
            parentFolderId=f"AQMkAD-{folder}",
        )
        box.items[item_id] = item
        box.folder[item_id] = folder
        box.ext[item_id] = ext
        if folder == DEFAULT_FOLDER:
            self._touch(box, item_id)
        return item

    def _update(
        self, address: str, item_id: str, body: dict[str, Any], if_match: str | None
    ) -> dict[str, Any]:
        box = self._box(address)
        item = box.items.get(item_id)
        if item is None or box.folder[item_id] != DEFAULT_FOLDER:
            raise _not_found()
        _check_if_match(item, if_match)
        body = dict(body)
        ext = dict(box.ext[item_id])
        _apply_ext(ext, body.pop("singleValueExtendedProperties", None) or [])
        updated = copy.deepcopy(item)
        _apply(updated, body)  # validate everything before anything changes
        updated["changeKey"] = _change_key()
        updated["lastModifiedDateTime"] = self._stamp()
        box.items[item_id] = updated
        box.ext[item_id] = ext
        self._touch(box, item_id)
        return updated

    def _delete(self, address: str, item_id: str, if_match: str | None) -> None:
        box = self._box(address)
        item = box.items.get(item_id)
        if item is None or box.folder[item_id] != DEFAULT_FOLDER:
            raise _not_found()
        _check_if_match(item, if_match)
        del box.items[item_id]
        del box.ext[item_id]
        box.folder.pop(item_id)
        self._touch(box, item_id)

    def _render(
        self, box: _Mailbox, item_id: str, select: list[str] | None, expand: str | None
    ) -> dict[str, Any]:
        item = box.items[item_id]
        out: dict[str, Any] = {"@odata.etag": f'W/"{item["changeKey"]}"', "id": item_id}
        for prop in select or sorted(_ALL_PROPS):
            out[prop] = copy.deepcopy(item[prop])
        if expand is not None:
            found = box.ext[item_id].get(_norm_prop(expand))
            if found is not None:
                out["singleValueExtendedProperties"] = [{"id": found[0], "value": found[1]}]
        return out

    # ---- concurrency, faults, counting ----------------------------------------------------------

    @contextlib.contextmanager
    def _slot(self, address: str | None) -> Iterator[None]:
        if address is None:
            yield
            return
        if not self._acquire(address):
            raise _throttled()
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

    def _take_fault(self, kind: str, *, delta_token: bool = False) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind == "batch_item" or fault.times <= 0:
                    continue
                if fault.kind == "delta_gone" and not delta_token:
                    continue
                if fault.on == kind or (fault.on == "graph" and kind not in _AUTH_KINDS):
                    fault.times -= 1
                    self._faults = [f for f in self._faults if f.times > 0]
                    return fault
        return None

    def _fault_reply(self, fault: _Fault) -> _Reply:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.on == "token":
            return _Reply(
                fault.status,
                {
                    "error": "temporarily_unavailable",
                    "error_description": "AADSTS50196: Injected failure.",
                },
                headers,
            )
        code = fault.code or _code_for(fault.status)
        return _Reply(
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


_AUTH_KINDS = frozenset({"token", "discovery"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _change_key() -> str:
    return "EQAAABYAAA" + secrets.token_urlsafe(12)


def _not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def _code_for(status: int) -> str:
    return {
        429: "TooManyRequests",
        500: "InternalServerError",
        503: "ServiceUnavailable",
        504: "GatewayTimeout",
        400: "BadRequest",
    }.get(status, "UnknownError")


def _check_if_match(item: dict[str, Any], if_match: str | None) -> None:
    if if_match and if_match.strip() not in {f'W/"{item["changeKey"]}"', "*"}:
        raise GraphError(
            412,
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
        )


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    return body


def _apply(item: dict[str, Any], body: dict[str, Any]) -> None:
    """PATCH semantics: named properties are replaced whole (collections and addresses too)."""
    for prop, value in body.items():
        if prop.startswith("@odata"):
            continue
        if prop not in _ALL_PROPS:
            raise GraphError(
                400,
                "RequestBodyRead",
                f"The property '{prop}' does not exist on type 'microsoft.graph.contact'.",
            )
        if prop in _READ_ONLY:
            continue
        if prop in _STRING_PROPS and value is not None and not isinstance(value, str):
            raise GraphError(
                400, "RequestBodyRead", f"Cannot convert the literal for '{prop}' to Edm.String."
            )
        if prop in _LIST_PROPS:
            if not isinstance(value, list):
                raise GraphError(400, "RequestBodyRead", f"'{prop}' must be a collection.")
            if prop == "emailAddresses":
                if len(value) > 3 or not all(
                    isinstance(v, dict) and v.get("address") for v in value
                ):
                    raise GraphError(
                        400,
                        "ErrorInvalidArgument",
                        "emailAddresses holds up to three entries with an address.",
                    )
                value = [
                    {"name": v.get("name") or v["address"], "address": v["address"]} for v in value
                ]
        if prop in _ADDRESS_PROPS:
            if not isinstance(value, dict) or set(value) - _ADDRESS_KEYS:
                raise GraphError(400, "RequestBodyRead", f"'{prop}' must be a physicalAddress.")
            value = {k: v for k, v in value.items() if v is not None}
        item[prop] = copy.deepcopy(value)


def _apply_ext(ext: dict[str, tuple[str, str]], entries: list[Any]) -> None:
    for entry in entries:
        if not isinstance(entry, dict) or "id" not in entry or "value" not in entry:
            raise GraphError(400, "BadRequest", "An extended property needs an id and a value.")
        if str(entry["id"]).split(" ", 1)[0].lower() == "integer":
            try:
                int(str(entry["value"]))
            except ValueError:
                raise GraphError(
                    400,
                    "BadRequest",
                    "The value of an Integer extended property must be an integer.",
                ) from None
        ext[_norm_prop(str(entry["id"]))] = (str(entry["id"]), str(entry["value"]))


def _select(query: dict[str, list[str]]) -> list[str] | None:
    if "$select" not in query:
        return None
    props = [p.strip() for p in query["$select"][0].split(",") if p.strip()]
    for prop in props:
        if prop not in _ALL_PROPS:
            raise GraphError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{prop}' on type 'microsoft.graph.contact'.",
            )
    return [p for p in props if p != "id"]


def _expand(query: dict[str, list[str]]) -> str | None:
    if "$expand" not in query:
        return None
    match = _EXPAND_RE.match(query["$expand"][0].strip())
    if not match:
        raise GraphError(
            400,
            "BadRequest",
            "Only singleValueExtendedProperties($filter=id eq '...') can be expanded here.",
        )
    return match.group(1)


def _page_size(query: dict[str, list[str]], headers: dict[str, str]) -> int:
    if "$top" in query:
        return max(1, min(MAX_PAGE, int(query["$top"][0])))
    match = _MAXPAGE_RE.search(headers.get("prefer", ""))
    return max(1, min(MAX_PAGE, int(match.group(1)))) if match else DEFAULT_PAGE


def _applied(headers: dict[str, str], size: int) -> dict[str, str]:
    return (
        {"Preference-Applied": f"odata.maxpagesize={size}"}
        if _MAXPAGE_RE.search(headers.get("prefer", ""))
        else {}
    )


def _address_of(route: str) -> str | None:
    parts = [p for p in route.split("/") if p]
    if len(parts) >= 2 and parts[0].lower() == "users":
        return unquote(parts[1]).lower()
    if len(parts) >= 3 and parts[0] == "v1.0" and parts[1].lower() == "users":
        return unquote(parts[2]).lower()
    return None


def _batch_reply(reply: _Reply, req: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(req.get("id")),
        "status": reply.status,
        "headers": dict(reply.headers),
    }
    if reply.body is not None:
        out["headers"].setdefault("Content-Type", "application/json")
        out["body"] = reply.body
    return out


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
