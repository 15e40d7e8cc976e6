"""The loopback EWS server: mailboxes, access, faults, the HTTP handler."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from lxml import etree

from sync_engine.mailbox.crm_id import LEGACY_PROPERTY_SETS
from sync_engine.mailbox.ews import (
    CRM_ID_PROPERTY_NAME,
    CRM_ID_PROPERTY_SET,
    SALUTATION_PROPERTY_TAG,
)

from .operations import Operations
from .rendering import Rendering
from .schema import (
    API_VERSIONS,
    PASSWORD,
    SOAP,
    UNAVAILABLE,
    USERNAME,
    XML,
    Fault,
    ItemError,
    Key,
    SoapFault,
    StoredItem,
    T,
    local_name,
)

LEGACY_SET = LEGACY_PROPERTY_SETS[0]


class EwsServer(Rendering, Operations):
    """The loopback server; use `ews_server()` to run one for the length of a `with` block."""

    def __init__(self, *, page_limit: int = 1000, version: str = "Exchange2016") -> None:
        self.page_limit = page_limit  # Exchange's EWSFindCountLimit-like cap on one page
        self.latency = 0.0  # seconds added to every answer, to stand for a network round trip
        self.version = version
        self.lock = threading.RLock()
        self.request_count = 0
        self.requests_by_operation: Counter[str] = Counter()
        self.log: list[tuple[str, bytes]] = []  # (operation, raw request) when `record` is on
        self.record = False
        self.faults: list[Fault] = []
        self._mailboxes: dict[str, dict[str, StoredItem]] = {}
        self._deleted: dict[str, dict[str, StoredItem]] = {}  # Deleted Items, per mailbox
        self._aliases: dict[str, str] = {}  # alias -> primary SMTP address
        self.delete_types: Counter[str] = Counter()  # DeleteType of every item deleted
        self.moved_to_deleted_items = 0  # items moved there by MoveItem (delegates)
        self._directory: dict[str, tuple[str, str]] = {}  # legacy DN -> (name, SMTP)
        self._missing: set[str] = set()
        self._impersonable: set[str] | None = None  # None: every address may be impersonated
        self._impersonation_denied: set[str] = set()
        self._denied_delegate: set[str] = set()
        self._ids = itertools.count(1)
        self._keys = itertools.count(1)
        self._tokens: set[str] = set()
        self.tokens_issued = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self))
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- life cycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/EWS/Exchange.asmx"

    def start(self) -> EwsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def env(self) -> dict[str, str]:
        """The environment that points the engine at this server."""
        return {
            "MAILBOX_BACKEND": "ews",
            "EWS_URL": self.url,
            "EWS_USERNAME": USERNAME,
            "EWS_PASSWORD": PASSWORD,
            "EWS_AUTH": "basic",
            "EWS_VERSION": self.version,
            "EWS_IMPERSONATION": "true",
            # Short, for fault tests; read only if Settings has ews_timeout/ews_retry_max_wait.
            "EWS_TIMEOUT": "1",
            "EWS_RETRY_MAX_WAIT": "3",
        }

    # -- counting -----------------------------------------------------------------------

    def reset_counts(self) -> None:
        with self.lock:
            self.request_count = 0
            self.requests_by_operation.clear()
            self.log.clear()

    # -- mailboxes and access -----------------------------------------------------------

    def allow_impersonation(self, *addresses: str) -> None:
        """Restrict impersonation to an allow-list (by default every address is allowed)."""
        with self.lock:
            if self._impersonable is None:
                self._impersonable = set()
            self._impersonable.update(a.lower() for a in addresses)
            self._impersonation_denied.difference_update(a.lower() for a in addresses)

    def deny_impersonation(self, *addresses: str) -> None:
        """The service account may not impersonate these users (outside its management scope)."""
        with self.lock:
            self._impersonation_denied.update(a.lower() for a in addresses)
            if self._impersonable is not None:
                self._impersonable.difference_update(a.lower() for a in addresses)

    def revoke_impersonation(self) -> None:
        """Take the ApplicationImpersonation role away: nobody can be impersonated."""
        with self.lock:
            self._impersonable = set()

    def deny_access(self, *addresses: str) -> None:
        """Without impersonation: the service account has no delegate access to these mailboxes."""
        with self.lock:
            self._denied_delegate.update(a.lower() for a in addresses)

    def add_alias(self, alias: str, primary: str) -> None:
        """`alias` is a proxy address of `primary`'s mailbox. The ConnectingSID's
        PrimarySmtpAddress and a folder's Mailbox must name the primary address: EWS answers
        an alias with ErrorNonPrimarySmtpAddress, MessageXml naming the primary
        (<t:Value Name="Primary">; ResponseCodeType: "The response includes the correct SMTP
        address to use")."""
        with self.lock:
            self._aliases[alias.lower()] = primary.lower()

    def _refuse_alias(self, address: str, *, per_item: bool) -> None:
        primary = self._aliases.get(address.lower())
        if primary is None:
            return
        values = {"Primary": primary}
        if per_item:
            raise ItemError("ErrorNonPrimarySmtpAddress", values=values)
        raise SoapFault("ErrorNonPrimarySmtpAddress", values=values)

    def add_directory_entry(self, legacy_dn: str, name: str, smtp: str) -> None:
        """A recipient of the address book: ResolveNames resolves its legacy DN to `smtp`."""
        with self.lock:
            self._directory[legacy_dn.strip().lower()] = (name, smtp)

    def deleted_items(self, address: str) -> list[dict[str, Any]]:
        """The contacts in the mailbox's Deleted Items folder (moved there by DeleteItem)."""
        with self.lock:
            box = self._deleted.get(address.lower(), {})
            return [self._plain(item) for item in sorted(box.values(), key=lambda i: i.created)]

    def remove_mailbox(self, address: str) -> None:
        """The address no longer has a mailbox (ErrorNonExistentMailbox)."""
        with self.lock:
            self._missing.add(address.lower())
            self._mailboxes.pop(address.lower(), None)

    def _may_impersonate(self, address: str) -> bool:
        if address in self._impersonation_denied:
            return False
        return self._impersonable is None or address in self._impersonable

    def _box(self, address: str) -> dict[str, StoredItem]:
        address = address.lower()
        if address in self._missing:
            raise SoapFault("ErrorNonExistentMailbox")
        return self._mailboxes.setdefault(address, {})

    # -- faults -------------------------------------------------------------------------

    def inject(
        self, kind: str, *, operation: str | None = None, times: int = 1, **kw: Any
    ) -> Fault:
        """Make the next `times` requests (of `operation`, or any) fail in the given way.

        kind: server_busy (back_off_ms), http_status (status: 500/503), slow (delay seconds,
        after_processing), drop (after_processing), item_error (item_index, code),
        item_busy (item_index, back_off_ms: ErrorServerBusy for that item only).
        """
        if kind not in {"server_busy", "http_status", "slow", "drop", "item_error", "item_busy"}:
            raise ValueError(f"unknown fault kind {kind!r}")
        fault = Fault(kind=kind, operation=operation, remaining=times, **kw)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def _take_fault(self, operation: str, kinds: set[str]) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.kind in kinds and fault.operation in (None, operation):
                    fault.remaining -= 1
                    fault.fired += 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # -- direct access for tests (what a user does in Outlook) ---------------------------

    def contacts(self, address: str) -> list[dict[str, Any]]:
        """The contacts of a mailbox as plain dicts, with our field names where mapped."""
        with self.lock:
            box = self._mailboxes.get(address.lower(), {})
            return [self._plain(item) for item in sorted(box.values(), key=lambda i: i.created)]

    def add_contact(self, address: str, **values: Any) -> str:
        """Create a contact as the user would in Outlook; returns its item id."""
        with self.lock:
            item = self._new_item(address, self._props_from_plain(values))
            return item.item_id

    def edit_contact(self, address: str, item_id: str, **values: Any) -> str:
        """Change a contact as the user would in Outlook (new change key); returns it."""
        with self.lock:
            item = self._box(address)[item_id]
            for key, value in self._props_from_plain(values).items():
                if value in ("", None, []):
                    item.props.pop(key, None)
                else:
                    item.props[key] = value
            self._touch(item)
            return item.change_key

    def delete_contact(self, address: str, item_id: str) -> None:
        with self.lock:
            self._box(address).pop(item_id, None)

    # -- the model ----------------------------------------------------------------------

    def _new_item(self, address: str, props: dict[Key, Any]) -> StoredItem:
        box = self._box(address)
        n = next(self._ids)
        raw = f"{address.lower()}\0contact\0{n:08d}".encode()
        item_id = "AAMkA" + base64.b64encode(raw).decode()
        now = datetime.now(UTC).replace(microsecond=0)
        props.setdefault(("f", "item:ItemClass"), "IPM.Contact")
        item = StoredItem(item_id=item_id, change_key="", props=props, created=now, modified=now)
        self._touch(item)
        box[item_id] = item
        return item

    def _touch(self, item: StoredItem) -> None:
        item.change_key = (
            "EQAAABYA" + base64.b64encode(f"ck{next(self._keys):08d}".encode()).decode()
        )
        item.history.append(item.change_key)
        # types.xsd ItemType: LastModifiedTime (xs:dateTime, read-only) is set by the server
        # on every change of the item; whole seconds, as Exchange answers it. The engine's
        # write-back uses it to tell which of two mailboxes' edits is the latest (issue 14).
        item.modified = datetime.now(UTC).replace(microsecond=0)

    _PLAIN: dict[str, Key] = {  # noqa: RUF012 - a constant table
        "first_name": ("f", "contacts:GivenName"),
        "middle_name": ("f", "contacts:MiddleName"),
        "last_name": ("f", "contacts:Surname"),
        "suffix": ("f", "contacts:Generation"),
        "company": ("f", "contacts:CompanyName"),
        "job_title": ("f", "contacts:JobTitle"),
        "department": ("f", "contacts:Department"),
        "web_page": ("f", "contacts:BusinessHomePage"),
        "email": ("i", "contacts:EmailAddress", "EmailAddress1"),
        "email2": ("i", "contacts:EmailAddress", "EmailAddress2"),
        "business_phone": ("i", "contacts:PhoneNumber", "BusinessPhone"),
        "mobile_phone": ("i", "contacts:PhoneNumber", "MobilePhone"),
        "home_phone": ("i", "contacts:PhoneNumber", "HomePhone"),
        "street": ("i", "contacts:PhysicalAddress:Street", "Business"),
        "city": ("i", "contacts:PhysicalAddress:City", "Business"),
        "state": ("i", "contacts:PhysicalAddress:State", "Business"),
        "postal_code": ("i", "contacts:PhysicalAddress:PostalCode", "Business"),
        "country": ("i", "contacts:PhysicalAddress:CountryOrRegion", "Business"),
        "home_city": ("i", "contacts:PhysicalAddress:City", "Home"),
        "display_name": ("f", "contacts:DisplayName"),
        "file_as": ("f", "contacts:FileAs"),
        "categories": ("f", "item:Categories"),
        "notes": ("f", "item:Body"),
        "nickname": ("f", "contacts:Nickname"),
        "title": ("x", "", "", SALUTATION_PROPERTY_TAG, "", "", "String"),
        "crm_id": ("x", "", CRM_ID_PROPERTY_SET, "", CRM_ID_PROPERTY_NAME, "", "Integer"),
        # the Graph target's own property set before issue 20 (crm_id.py)
        "legacy_crm_id": ("x", "", LEGACY_SET, "", CRM_ID_PROPERTY_NAME, "", "Integer"),
        "business_fax": ("i", "contacts:PhoneNumber", "BusinessFax"),
    }

    def _props_from_plain(self, values: dict[str, Any]) -> dict[Key, Any]:
        props: dict[Key, Any] = {}
        for name, value in values.items():
            key = self._PLAIN[name]
            if name == "categories":
                props[key] = list(value or [])
            elif name in ("crm_id", "legacy_crm_id"):
                props[key] = "" if value is None else str(value)
            else:
                props[key] = "" if value is None else str(value)
        return props

    def _plain(self, item: StoredItem) -> dict[str, Any]:
        out: dict[str, Any] = {
            "item_id": item.item_id,
            "change_key": item.change_key,
            "created_at": item.created.isoformat(),
        }
        for name, key in self._PLAIN.items():
            value = item.props.get(key)
            if name == "categories":
                out[name] = list(value or [])
            elif name in ("crm_id", "legacy_crm_id"):
                out[name] = int(value) if value not in (None, "") else None
            else:
                out[name] = value or ""
        out["extended"] = {k[1:]: v for k, v in item.props.items() if k[0] == "x"}
        return out

    # -- the wire -----------------------------------------------------------------------

    def handle(
        self, body: bytes, auth: str | None, *, count: bool = True
    ) -> tuple[int, bytes, str]:
        """Answer one SOAP request: (HTTP status, body, content type)."""
        try:
            root = etree.fromstring(body)
        except etree.XMLSyntaxError:
            return 400, b"Bad Request", "text/plain"
        soap_body = root.find(f"{{{SOAP}}}Body")
        request = soap_body[0] if soap_body is not None and len(soap_body) else None
        operation = local_name(request) if request is not None else "?"
        if count:
            self._count(operation, body)
        if not self._authorised(auth):
            return 401, b"401 - Unauthorized", "text/html"
        try:
            header = root.find(f"{{{SOAP}}}Header")
            version = header.find(f"{{{T}}}RequestServerVersion") if header is not None else None
            if version is None or version.get("Version") not in API_VERSIONS:
                raise SoapFault("ErrorInvalidServerVersion")
            impersonated = None
            if header is not None:
                sid = header.find(f"{{{T}}}ExchangeImpersonation/{{{T}}}ConnectingSID")
                if sid is not None:
                    impersonated = (
                        sid.findtext(f"{{{T}}}PrimarySmtpAddress")
                        or sid.findtext(f"{{{T}}}SmtpAddress")
                        or ""
                    ).lower()
            if impersonated:
                self._refuse_alias(impersonated, per_item=False)
                if not self._may_impersonate(impersonated):
                    raise SoapFault("ErrorImpersonateUserDenied")
                self._box(impersonated)  # ErrorNonExistentMailbox when gone
            handler = getattr(self, f"_op_{operation}", None)
            if handler is None:
                raise SoapFault("ErrorInvalidRequest", f"operation {operation} is not served here")
            with self.lock:
                messages = handler(request, impersonated)
            return 200, self._envelope(operation, messages), "text/xml; charset=utf-8"
        except SoapFault as fault:
            return 500, self._fault(fault), "text/xml; charset=utf-8"

    def _count(self, operation: str, body: bytes) -> None:
        with self.lock:
            self.request_count += 1
            self.requests_by_operation[operation] += 1
            if self.record:
                self.log.append((operation, body))

    def _authorised(self, auth: str | None) -> bool:
        if not auth:
            return False
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "basic":
            expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
            return value.strip() == expected
        if scheme.lower() == "bearer":
            return value.strip() in self._tokens
        return False

    def issue_token(self, form: dict[str, list[str]]) -> dict[str, Any]:
        """The OAuth client-credentials token endpoint (for EWS_AUTH=oauth tests)."""
        token = base64.b64encode(f"token{next(self._keys)}".encode()).decode()
        with self.lock:
            self._tokens.add(token)
            self.tokens_issued += 1
        return {"token_type": "Bearer", "expires_in": 3600, "access_token": token}


def make_handler(server: EwsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else headers and body wait on a delayed ACK (40 ms)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="127.0.0.1"')
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path.endswith("/oauth2/v2.0/token"):
                form = parse_qs(body.decode())
                self._send(200, json.dumps(server.issue_token(form)).encode(), "application/json")
                return
            operation = peek_operation(body)
            fault = server._take_fault(operation, {"server_busy", "http_status", "slow", "drop"})
            auth = self.headers.get("Authorization")
            if server.latency:
                time.sleep(server.latency)
            try:
                if fault is None or fault.after_processing:
                    status, payload, content_type = server.handle(body, auth)
                    if fault is not None and fault.kind == "drop":
                        self.close_connection = True  # written, but the answer is lost
                        return
                    if fault is not None and fault.kind == "slow":
                        time.sleep(fault.delay)  # written; the answer comes too late
                else:
                    server._count(operation, body)
                    if fault.kind == "server_busy":
                        busy = SoapFault("ErrorServerBusy", back_off_ms=fault.back_off_ms)
                        status, payload, content_type = 500, server._fault(busy), XML
                    elif fault.kind == "http_status":
                        status, payload, content_type = fault.status, UNAVAILABLE, "text/html"
                    elif fault.kind == "drop":
                        self.close_connection = True  # nothing written, no answer
                        return
                    else:  # slow: the server is stuck, then does the work nobody waits for
                        time.sleep(fault.delay)
                        status, payload, content_type = server.handle(body, auth, count=False)
                self._send(status, payload, content_type)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


def peek_operation(body: bytes) -> str:
    with contextlib.suppress(etree.XMLSyntaxError, IndexError, TypeError):
        soap_body = etree.fromstring(body).find(f"{{{SOAP}}}Body")
        return local_name(soap_body[0])
    return "?"


@contextlib.contextmanager
def ews_server(**kwargs: Any) -> Iterator[EwsServer]:
    """Run a loopback EWS server for the length of the block."""
    server = EwsServer(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["USERNAME", "EwsServer", "Fault", "ews_server"]
