"""A loopback Sage CRM REST API (issue 14): the subset `SageRestWriter` speaks, over HTTP on
127.0.0.1, in front of a CRM database in Sage's 7.1+ layout (the embedded CRM's SQLite file),
so what it takes is what the next sync reads.

What it models, and where each rule comes from:

- Paths `/sdata/{install}j/sagecrm2/-/{Entity}('{id}')` and `/…/-/{Entity}`: Sage's sample
  client (github.com/Sage/sage_crm_rest_api_client, README and SageCRMImplementation.cs).
  Anything else answers 404.
- Basic auth with a CRM user's logon and password (sample client, HttpService.cs
  SetHeaderCredentials). No or wrong credentials answer 401; so does a disabled, deleted
  or resource user: Sage CRM help, "Users" (a disabled user cannot log on; resources are
  not users who log on), and issue 14's brief ("disabled and resource users are refused").
- PATCH with only the changed columns, named as the table's columns; 200 with the record
  (Sage CRM community, "Ensuring best performance using the REST API": "If the update is
  successful then Sage CRM will respond with a '200' message"; the response is read from
  memory). A column the entity does not have answers 400 (the sample client's README
  "Important note": bodies must match the entity's fields; `$prototypes/{entity}` lists
  them). A record that does not exist, or is soft-deleted, answers 404.
- Every write stamps the row's `*_UpdatedDate`, as Sage's own writes do (the change
  detection of the engine relies on it, docs/sage-crm.md).
- POST creates a record and answers 201 with its `$key` (sample client, SingleRecord.cs:
  `$key`, `$title`, `$url`).
- Errors carry SData diagnoses: `{"$diagnoses": [{"$severity": "error", "$message": …}]}`.
- Faults on demand (`inject`): 429 or 503 with Retry-After, any status, for the next n
  requests; `down()` answers 503 to everything until `up()`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import create_engine, insert, select, update

from sync_engine.crm import schema as s

INSTALL = "crm"
_PATH = re.compile(r"^/sdata/(?P<install>[^/]+)j/sagecrm2/-/(?P<entity>\w+)(?:\('(?P<id>\d+)'\))?$")

# entity -> (table, key column, prefix): the entities the writer uses
ENTITIES = {
    "Person": (s.person, "Pers_PersonId", "Pers"),
    "Email": (s.email, "Emai_EmailId", "Emai"),
    "Phone": (s.phone, "Phon_PhoneId", "Phon"),
    "EmailLink": (s.email_link, "ELink_LinkID", "ELink"),
    "PhoneLink": (s.phone_link, "PLink_LinkID", "PLink"),
}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _set(flag: object) -> bool:
    return str(flag or "").strip().lower() in {"true", "y", "1"}


class SageRestServer:
    """The loopback Sage CRM REST API over one CRM database file. Thread-safe."""

    def __init__(self, crm_url: str) -> None:
        self.engine = create_engine(crm_url)
        self.passwords: dict[str, str] = {}  # logon -> password (Sage keeps User_Password)
        self.requests: list[tuple[str, str, dict[str, Any]]] = []  # (method, path, body)
        self._faults: list[tuple[int, int]] = []  # (status, retry_after) for the next requests
        self._down = False
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.sage = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # -- the contract tests use ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/sdata/{INSTALL}j/sagecrm2/-/"

    def env(self, logon: str = "crmsync", password: str = "s3cret") -> dict[str, str]:
        self.passwords.setdefault(logon, password)
        return {
            "SAGE_REST_URL": self.base_url,
            "SAGE_REST_USER": logon,
            "SAGE_REST_PASSWORD": password,
            "SAGE_REST_RETRY_MAX_WAIT": "2",
        }

    def inject(self, status: int, times: int = 1, retry_after: int = 0) -> None:
        with self._lock:
            self._faults.extend([(status, retry_after)] * times)

    def down(self) -> None:
        self._down = True

    def up(self) -> None:
        self._down = False

    def writes(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [r for r in self.requests if r[0] in {"PATCH", "POST"}]

    def start(self) -> SageRestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self.engine.dispose()

    # -- requests ------------------------------------------------------------------------

    def handle(self, method: str, path: str, auth: str, raw: bytes) -> tuple[int, dict, dict]:
        body: dict[str, Any] = {}
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return _error(400, "the body is not JSON")
        with self._lock:
            self.requests.append((method, path, body))
            if self._down:
                return _error(503, "Service Unavailable", retry_after=1)
            if self._faults:
                status, retry_after = self._faults.pop(0)
                return _error(status, f"injected {status}", retry_after=retry_after)
        refused = self._refuse_login(auth)
        if refused:
            return _error(401, refused)
        match = _PATH.match(path.split("?")[0])
        if not match or match["install"] != INSTALL or match["entity"] not in ENTITIES:
            return _error(404, f"no such resource: {path}")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        table, key, prefix = ENTITIES[match["entity"]]
        unknown = sorted(k for k in body if k.startswith("$") is False and k not in table.c)
        if unknown:
            return _error(400, f"{match['entity']} has no field {', '.join(unknown)}")
        values = {k: (v if v != "" else None) for k, v in body.items() if not k.startswith("$")}
        now = _now()
        values[f"{prefix}_UpdatedDate"] = now
        with self.engine.begin() as conn:
            if method == "PATCH" and match["id"]:
                row = conn.execute(
                    select(table.c[f"{prefix}_Deleted"]).where(table.c[key] == int(match["id"]))
                ).first()
                if row is None or row[0] == 1:
                    return _error(404, f"{match['entity']}('{match['id']}') not found")
                conn.execute(update(table).where(table.c[key] == int(match["id"])).values(values))
                return 200, {"$key": int(match["id"]), **body}, {}
            if method == "POST" and not match["id"]:
                values[f"{prefix}_CreatedDate"] = now
                new = conn.execute(insert(table).values(values)).inserted_primary_key[0]
                return 201, {"$key": int(new), **body}, {}
        return _error(405, f"{method} is not allowed on {path}")

    def _refuse_login(self, auth: str) -> str | None:
        if not auth.startswith("Basic "):
            return "authentication required"
        try:
            logon, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return "bad credentials"
        if self.passwords.get(logon) != password:
            return "bad user name or password"
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    s.users.c.User_Deleted, s.users.c.User_Disabled, s.users.c.User_Resource
                ).where(s.users.c.User_Logon == logon)
            ).first()
        if row is None:
            return "bad user name or password"
        if row[0] == 1 or _set(row[1]) or _set(row[2]):
            return "this user cannot log on (disabled, deleted or a resource)"
        return None


def _error(status: int, message: str, retry_after: int = 0) -> tuple[int, dict, dict]:
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    body = {"$diagnoses": [{"$severity": "error", "$sdataCode": str(status), "$message": message}]}
    return status, body, headers


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        sage: SageRestServer = self.server.sage  # type: ignore[attr-defined]
        status, body, headers = sage.handle(
            self.command, self.path, self.headers.get("Authorization", ""), raw
        )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = _serve


@contextlib.contextmanager
def sage_rest_server(crm_url: str) -> Iterator[SageRestServer]:
    server = SageRestServer(crm_url).start()
    try:
        yield server
    finally:
        server.stop()
