"""A loopback Sage CRM REST API (issues 14 and 19): the subset `SageRestWriter` and
`crm check` speak, over HTTP on 127.0.0.1, in front of a CRM database in Sage's 7.1+
layout (SQLite or PostgreSQL), so what it takes is what the next sync reads.

Each rule, and where it comes from (or that it is an assumption):

- Paths `/sdata/{install}j/sagecrm2/-/{Entity}('{id}')` and `/…/-/{Entity}`: Sage's sample
  client (github.com/Sage/sage_crm_rest_api_client, README and SageCRMImplementation.cs).
  `$prototypes` lists the exposed entities and `$prototypes/{Entity}` one entity's
  fields (the client's GetAllEntities/GetEntityFields; Models/Prototypes.cs,
  EntityFields.cs: `$resources`, `$resourceKind`, `$properties`). Anything else: 404.
- `link_resources=False`: EmailLink and PhoneLink are not exposed (404 everywhere).
  Assumption: no Sage page lists them as REST resources (issue 19), so a real install
  may well answer so.
- Basic auth with a CRM user's logon and password (sample client, HttpService.cs
  SetHeaderCredentials). No or wrong credentials answer 401; so does a disabled, deleted
  or resource user: Sage CRM help, "Users". After `lockout_threshold` failed logons the
  account is locked out and even the right password answers 401 until `unlock()`:
  Sage CRM help, "User Configuration fields" (Account Lockout Threshold; Sage keeps
  it in `User_AccountLockedOut`, which our layout does not read, so it is held here).
- GET `{Entity}('{id}')` answers the record's columns (sample client Get, SingleRecord.cs).
- PATCH with only the changed columns, named as the table's columns; 200 (Sage CRM
  community, "Ensuring best performance using the REST API"). The answer is read "from
  memory" (what was sent), unless the URL asks `returnPartial=false` (same article):
  then it is the row as stored. A column the entity does not have answers 400 (the
  sample client's README: bodies must match the entity's fields). A record that does
  not exist, or is soft-deleted, answers 404.
- `scripts`: table-level scripts that change or drop a value as it is stored (same
  article: "This may not be true where data transformation takes place because of a
  Table Level Script"). A script returning None drops the column from the write.
- A value longer than its column answers 500 with SQL Server's error 2628 ("String or
  binary data would be truncated in table …, column …"), the widths read from the
  database it fronts. Assumption (issue 19): Sage passes the SQL error on as a 500.
- Every write stamps the row's `*_UpdatedDate`, as Sage's own writes do.
- POST creates a record and answers 201 with its `$key` (sample client, SingleRecord.cs);
  `omit_key=True` answers without one. DELETE `{Entity}('{id}')` (sample client Delete)
  soft-deletes it (`*_Deleted = 1`, as Sage marks deleted rows); `refuse_delete=True`
  answers 403 instead.
- `redirect_to`: every request answers 301 with `Location` on that base (an IIS
  redirecting http to https). Assumption: IIS's HTTP Redirect / URL Rewrite, issue 19.
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
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import create_engine, func, insert, inspect, select, update

from sync_engine.crm import schema as s

INSTALL = "crm"
_PATH = re.compile(
    r"^/sdata/(?P<install>[^/]+)j/sagecrm2/-/"
    r"(?P<entity>\$prototypes(?:/\w+)?|\w+)(?:\('(?P<id>\d+)'\))?$"
)

# entity -> (table, key column, prefix): the entities the writer uses
ENTITIES = {
    "Person": (s.person, "Pers_PersonId", "Pers"),
    "Email": (s.email, "Emai_EmailId", "Emai"),
    "Phone": (s.phone, "Phon_PhoneId", "Phon"),
    "EmailLink": (s.email_link, "ELink_LinkID", "ELink"),
    "PhoneLink": (s.phone_link, "PLink_LinkID", "PLink"),
}
LINK_ENTITIES = {"EmailLink", "PhoneLink"}

Answer = tuple[int, dict, dict]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _set(flag: object) -> bool:
    return str(flag or "").strip().lower() in {"true", "y", "1"}


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


class SageRestServer:
    """The loopback Sage CRM REST API over one CRM database. Thread-safe."""

    def __init__(self, crm_url: str) -> None:
        self.engine = create_engine(crm_url)
        self.passwords: dict[str, str] = {}  # logon -> password (Sage keeps User_Password)
        self.requests: list[tuple[str, str, dict[str, Any]]] = []  # (method, path, body)
        self.link_resources = True
        self.scripts: dict[str, Callable[[Any], Any]] = {}  # column -> table-level script
        self.omit_key = False
        self.refuse_delete = False
        self.redirect_to: str | None = None
        self.lockout_threshold = 3
        self.failed_logons: dict[str, int] = {}
        self._faults: list[tuple[int, int]] = []  # (status, retry_after) for the next requests
        self._down = False
        self._lock = threading.Lock()
        self.widths = self._read_widths()
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

    def locked_out(self, logon: str) -> bool:
        return self.failed_logons.get(logon, 0) >= self.lockout_threshold > 0

    def unlock(self, logon: str) -> None:
        self.failed_logons.pop(logon, None)

    def writes(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [r for r in self.requests if r[0] in {"PATCH", "POST", "PUT", "DELETE"}]

    def start(self) -> SageRestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self.engine.dispose()

    # -- requests ------------------------------------------------------------------------

    def handle(self, method: str, path: str, auth: str, raw: bytes) -> Answer:
        body: dict[str, Any] = {}
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return _error(400, "the body is not JSON")
        with self._lock:
            self.requests.append((method, path, body))
            if self.redirect_to is not None:
                return 301, {}, {"Location": self.redirect_to.rstrip("/") + path}
            if self._down:
                return _error(503, "Service Unavailable", retry_after=1)
            if self._faults:
                status, retry_after = self._faults.pop(0)
                return _error(status, f"injected {status}", retry_after=retry_after)
            refused = self._refuse_login(auth)
        if refused:
            return _error(401, refused)
        parts = urlsplit(path)
        match = _PATH.match(parts.path)
        exposed = {e for e in ENTITIES if self.link_resources or e not in LINK_ENTITIES}
        if not match or match["install"] != INSTALL:
            return _error(404, f"no such resource: {parts.path}")
        entity = match["entity"]
        if entity.startswith("$prototypes"):
            return self._prototypes(entity, exposed)
        if entity not in exposed:
            return _error(404, f"no such resource: {entity}")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        read_back = parse_qs(parts.query).get("returnPartial", [""])[0].rstrip(";") == "false"
        with self._lock:  # one writer at a time, as the ids are max + 1
            return self._record(method, entity, match["id"], body, read_back)

    def _prototypes(self, entity: str, exposed: set[str]) -> Answer:
        if entity == "$prototypes":
            return 200, {"$resources": [{"$resourceKind": e} for e in sorted(exposed)]}, {}
        name = entity.split("/", 1)[1]
        if name not in exposed:
            return _error(404, f"no such resource: {name}")
        table = ENTITIES[name][0]
        properties = {c.name: {"$type": str(c.type)} for c in table.columns}
        return 200, {"$resourceKind": name, "$properties": properties}, {}

    def _record(
        self, method: str, entity: str, key_id: str | None, body: dict, read_back: bool
    ) -> Answer:
        table, key, prefix = ENTITIES[entity]
        unknown = sorted(k for k in body if not k.startswith("$") and k not in table.c)
        if unknown:
            return _error(400, f"{entity} has no field {', '.join(unknown)}")
        if method == "GET" and key_id:
            with self.engine.connect() as conn:
                row = conn.execute(select(table).where(table.c[key] == int(key_id))).first()
            if row is None or row._mapping[f"{prefix}_Deleted"] == 1:
                return _error(404, f"{entity}('{key_id}') not found")
            return 200, {"$key": int(key_id), **{k: _plain(v) for k, v in row._mapping.items()}}, {}
        values = self._stored_values(body)
        too_long = self._too_long(table.name, values)
        if too_long:
            return _error(500, too_long)
        now = _now()
        with self.engine.begin() as conn:
            if key_id and method in {"PATCH", "DELETE"}:
                row = conn.execute(
                    select(table.c[f"{prefix}_Deleted"]).where(table.c[key] == int(key_id))
                ).first()
                if row is None or row[0] == 1:
                    return _error(404, f"{entity}('{key_id}') not found")
                if method == "DELETE":
                    if self.refuse_delete:
                        return _error(403, f"{entity}: delete is not allowed for this user")
                    values = {f"{prefix}_Deleted": 1}
                values[f"{prefix}_UpdatedDate"] = now
                conn.execute(update(table).where(table.c[key] == int(key_id)).values(values))
                answer = self._row(conn, table, key, int(key_id)) if read_back else body
                return 200, {"$key": int(key_id), **answer}, {}
            if method == "POST" and not key_id:
                new = (conn.execute(select(func.max(table.c[key]))).scalar() or 0) + 1
                values |= {key: new, f"{prefix}_CreatedDate": now, f"{prefix}_UpdatedDate": now}
                conn.execute(insert(table).values(values))
                answer = self._row(conn, table, key, new) if read_back else body
                return 201, ({} if self.omit_key else {"$key": new}) | answer, {}
        return _error(405, f"{method} is not allowed on {entity}")

    def _stored_values(self, body: dict) -> dict[str, Any]:
        """The columns as Sage stores them: '' is NULL; table-level scripts applied."""
        values = {}
        for column, value in body.items():
            if column.startswith("$"):
                continue
            value = value if value != "" else None
            if column in self.scripts:
                value = self.scripts[column](value)
                if value is None:
                    continue
            values[column] = value
        return values

    def _row(self, conn, table, key: str, key_id: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        row = conn.execute(select(table).where(table.c[key] == key_id)).first()
        return {k: _plain(v) for k, v in row._mapping.items() if k != key} if row else {}

    def _read_widths(self) -> dict[tuple[str, str], int]:
        found = inspect(self.engine)
        out = {}
        for entity in ENTITIES.values():
            for column in found.get_columns(entity[0].name):
                length = getattr(column["type"], "length", None)
                if length:
                    out[(entity[0].name, column["name"])] = int(length)
        return out

    def _too_long(self, table: str, values: dict[str, Any]) -> str | None:
        """SQL Server's error 2628, as Sage passes it on."""
        for column, value in values.items():
            width = self.widths.get((table, column))
            if isinstance(value, str) and width is not None and len(value) > width:
                return (
                    "String or binary data would be truncated in table 'CRM.dbo."
                    f"{table}', column '{column}'. Truncated value: '{value[:width]}'. "
                    "(SQL Server at SAGESQL01\\CRM, login sa, C:\\Program Files (x86)\\Sage\\CRM)"
                )
        return None

    def _refuse_login(self, auth: str) -> str | None:
        if not auth.startswith("Basic "):
            return "authentication required"
        try:
            logon, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return "bad credentials"
        if self.locked_out(logon):
            return "this account is locked out (too many failed logons)"
        if self.passwords.get(logon) != password:
            self.failed_logons[logon] = self.failed_logons.get(logon, 0) + 1
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
        self.failed_logons.pop(logon, None)
        return None


def _error(status: int, message: str, retry_after: int = 0) -> Answer:
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
