"""A loopback Exchange Web Services server: the SOAP subset exchangelib really sends.

Why: the EWS target must be tested over the real wire (HTTP + SOAP + exchangelib's own
parsing), not against a mock of our code. The operations and elements handled here were
captured from exchangelib 5.x requests (see docs/exchange-server.md for the list):
GetFolder, FindItem (IndexedPageItemView paging, Restriction, SortOrder), GetItem,
CreateItem, UpdateItem (SetItemField / DeleteItemField, ChangeKey, ConflictResolution)
and DeleteItem. Anything else gets the SOAP fault a real server gives to an unknown
request, so drift in what the client sends shows up as a failing test.

Behaviour kept from Exchange: contacts per mailbox; item ids stable, change keys new on
every write; ExchangeImpersonation checked per request (ErrorImpersonateUserDenied,
ErrorNonExistentMailbox as SOAP faults); ErrorServerBusy as a SOAP fault carrying
BackOffMilliseconds; per-item errors inside a batch as ResponseClass="Error" messages.
Simplification: ConflictResolution AutoResolve behaves like NeverOverwrite (any stale
change key is ErrorIrresolvableConflict); only basic auth (and OAuth bearer tokens from
the built-in token endpoint) is spoken, not NTLM.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from lxml import etree

from sync_engine.mailbox.ews import (
    CRM_ID_PROPERTY_NAME,
    CRM_ID_PROPERTY_SET,
    SALUTATION_PROPERTY_TAG,
)

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
NSMAP = {"s": SOAP, "m": M, "t": T}

XML = "text/xml; charset=utf-8"
UNAVAILABLE = b"<html><body><h1>Service Unavailable</h1></body></html>"
USERNAME = "svc-crm@example.com"
PASSWORD = "loopback-secret"  # a test secret; never a real one
API_VERSIONS = {
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2015",
    "Exchange2016",
}

# Contact element name -> FieldURI, in the order of the types schema (ItemType, ContactItemType).
ITEM_FIELDS = (
    "ItemClass",
    "Subject",
    "Sensitivity",
    "Body",
    "Categories",
    "Importance",
    "DateTimeCreated",
    "ReminderDueBy",
    "ReminderIsSet",
    "ReminderMinutesBeforeStart",
    "LastModifiedTime",
)
CONTACT_FIELDS = (
    "FileAs",
    "FileAsMapping",
    "DisplayName",
    "GivenName",
    "Initials",
    "MiddleName",
    "Nickname",
    "CompleteName",
    "CompanyName",
    "EmailAddresses",
    "PhysicalAddresses",
    "PhoneNumbers",
    "AssistantName",
    "BusinessHomePage",
    "Department",
    "Generation",
    "JobTitle",
    "Manager",
    "OfficeLocation",
    "PostalAddressIndex",
    "Profession",
    "SpouseName",
    "Surname",
)
READ_ONLY = {"item:DateTimeCreated", "item:LastModifiedTime", "contacts:CompleteName"}
INDEXED = {  # container element -> (FieldURI, entry is a group of sub-elements)
    "EmailAddresses": ("contacts:EmailAddress", False),
    "PhoneNumbers": ("contacts:PhoneNumber", False),
    "PhysicalAddresses": ("contacts:PhysicalAddress", True),
}
ADDRESS_PARTS = ("Street", "City", "State", "CountryOrRegion", "PostalCode")
ERROR_TEXT = {
    "ErrorItemNotFound": "The specified object was not found in the store.",
    "ErrorIrresolvableConflict": "The send or update operation could not be performed because the "
    "change key passed in the request does not match the current change key for the item.",
    "ErrorInvalidValueForProperty": "The value is invalid for property.",
    "ErrorAccessDenied": "Access is denied. Check credentials and try again.",
    "ErrorServerBusy": "The server cannot service this request right now. Try again later.",
    "ErrorImpersonateUserDenied": "The account does not have permission to impersonate the "
    "requested user.",
    "ErrorNonExistentMailbox": "The SMTP address has no mailbox associated with it.",
    "ErrorInvalidServerVersion": "The specified server version is invalid.",
    "ErrorSchemaValidation": "The request failed schema validation.",
    "ErrorInvalidRequest": "The request is invalid.",
    "ErrorInvalidOperation": "The operation is not valid.",
}

Key = tuple[str, ...]


class _SoapFault(Exception):
    """A request-level error, answered as a SOAP fault with HTTP 500 (as Exchange does)."""

    def __init__(self, code: str, text: str | None = None, back_off_ms: int | None = None):
        super().__init__(code)
        self.code = code
        self.text = text or ERROR_TEXT.get(code, code)
        self.back_off_ms = back_off_ms


class _ItemError(Exception):
    """A per-item error: one ResponseClass="Error" message in an otherwise fine batch."""

    def __init__(self, code: str, text: str | None = None):
        super().__init__(code)
        self.code = code
        self.text = text or ERROR_TEXT.get(code, code)


@dataclass
class Fault:
    """One injected fault, fired on the next `remaining` matching requests."""

    kind: str  # server_busy | http_status | slow | drop | item_error
    operation: str | None = None
    remaining: int = 1
    back_off_ms: int = 50
    status: int = 503
    delay: float = 1.5  # past EWS_TIMEOUT of env()
    after_processing: bool = False
    item_index: int = 0
    code: str = "ErrorInvalidValueForProperty"
    fired: int = 0


@dataclass
class _Item:
    item_id: str
    change_key: str
    props: dict[Key, Any]
    created: datetime
    modified: datetime
    history: list[str] = field(default_factory=list)  # every change key it has had


def _local(elem: Any) -> str:
    return etree.QName(elem).localname


def _ext_key(uri: Any) -> Key:
    """An ExtendedFieldURI element as a stable key (tags as ints, set ids lower case)."""
    tag = uri.get("PropertyTag")
    if tag:
        tag = hex(int(tag, 16) if tag.lower().startswith("0x") else int(tag))
    set_id = (uri.get("PropertySetId") or "").lower()
    return (
        "x",
        uri.get("DistinguishedPropertySetId") or "",
        set_id,
        tag or "",
        uri.get("PropertyName") or "",
        uri.get("PropertyId") or "",
        uri.get("PropertyType") or "",
    )


def _path_key(path: Any) -> Key:
    name = _local(path)
    if name == "FieldURI":
        return ("f", path.get("FieldURI"))
    if name == "IndexedFieldURI":
        return ("i", path.get("FieldURI"), path.get("FieldIndex"))
    if name == "ExtendedFieldURI":
        return _ext_key(path)
    raise _SoapFault("ErrorSchemaValidation", f"unknown property path {name}")


def _field_uri(name: str) -> str:
    return ("item:" if name in ITEM_FIELDS else "contacts:") + name


def _parse_contact(elem: Any) -> dict[Key, Any]:
    """The properties a <t:Contact> element sets, keyed like the property paths."""
    props: dict[Key, Any] = {}
    for child in elem:
        name = _local(child)
        if name == "ExtendedProperty":
            uri = child.find(f"{{{T}}}ExtendedFieldURI")
            values = child.find(f"{{{T}}}Values")
            if values is not None:
                props[_ext_key(uri)] = [v.text or "" for v in values]
            else:
                props[_ext_key(uri)] = child.findtext(f"{{{T}}}Value") or ""
        elif name == "Categories":
            props[("f", "item:Categories")] = [s.text or "" for s in child]
        elif name in INDEXED:
            uri, grouped = INDEXED[name]
            for entry in child:
                label = entry.get("Key")
                if grouped:
                    for part in entry:
                        props[("i", f"{uri}:{_local(part)}", label)] = part.text or ""
                else:
                    props[("i", uri, label)] = entry.text or ""
        elif name in ITEM_FIELDS or name in CONTACT_FIELDS:
            uri = _field_uri(name)
            if uri in READ_ONLY:
                raise _ItemError("ErrorInvalidPropertySet", f"{uri} is read-only")
            props[("f", uri)] = child.text or ""
        else:
            raise _SoapFault("ErrorSchemaValidation", f"unexpected element {name} in Contact")
    return props


class EwsServer:
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
        self._mailboxes: dict[str, dict[str, _Item]] = {}
        self._missing: set[str] = set()
        self._impersonable: set[str] | None = None  # None: every address may be impersonated
        self._impersonation_denied: set[str] = set()
        self._denied_delegate: set[str] = set()
        self._ids = itertools.count(1)
        self._keys = itertools.count(1)
        self._tokens: set[str] = set()
        self.tokens_issued = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
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

    def remove_mailbox(self, address: str) -> None:
        """The address no longer has a mailbox (ErrorNonExistentMailbox)."""
        with self.lock:
            self._missing.add(address.lower())
            self._mailboxes.pop(address.lower(), None)

    def _may_impersonate(self, address: str) -> bool:
        if address in self._impersonation_denied:
            return False
        return self._impersonable is None or address in self._impersonable

    def _box(self, address: str) -> dict[str, _Item]:
        address = address.lower()
        if address in self._missing:
            raise _SoapFault("ErrorNonExistentMailbox")
        return self._mailboxes.setdefault(address, {})

    # -- faults -------------------------------------------------------------------------

    def inject(
        self, kind: str, *, operation: str | None = None, times: int = 1, **kw: Any
    ) -> Fault:
        """Make the next `times` requests (of `operation`, or any) fail in the given way.

        kind: server_busy (back_off_ms), http_status (status: 500/503), slow (delay seconds,
        after_processing), drop (after_processing), item_error (item_index, code).
        """
        if kind not in {"server_busy", "http_status", "slow", "drop", "item_error"}:
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

    def _new_item(self, address: str, props: dict[Key, Any]) -> _Item:
        box = self._box(address)
        n = next(self._ids)
        raw = f"{address.lower()}\0contact\0{n:08d}".encode()
        item_id = "AAMkA" + base64.b64encode(raw).decode()
        now = datetime.now(UTC).replace(microsecond=0)
        props.setdefault(("f", "item:ItemClass"), "IPM.Contact")
        item = _Item(item_id=item_id, change_key="", props=props, created=now, modified=now)
        self._touch(item)
        box[item_id] = item
        return item

    def _touch(self, item: _Item) -> None:
        item.change_key = (
            "EQAAABYA" + base64.b64encode(f"ck{next(self._keys):08d}".encode()).decode()
        )
        item.history.append(item.change_key)
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
    }

    def _props_from_plain(self, values: dict[str, Any]) -> dict[Key, Any]:
        props: dict[Key, Any] = {}
        for name, value in values.items():
            key = self._PLAIN[name]
            if name == "categories":
                props[key] = list(value or [])
            elif name == "crm_id":
                props[key] = "" if value is None else str(value)
            else:
                props[key] = "" if value is None else str(value)
        return props

    def _plain(self, item: _Item) -> dict[str, Any]:
        out: dict[str, Any] = {
            "item_id": item.item_id,
            "change_key": item.change_key,
            "created_at": item.created.isoformat(),
        }
        for name, key in self._PLAIN.items():
            value = item.props.get(key)
            if name == "categories":
                out[name] = list(value or [])
            elif name == "crm_id":
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
        operation = _local(request) if request is not None else "?"
        if count:
            self._count(operation, body)
        if not self._authorised(auth):
            return 401, b"401 - Unauthorized", "text/html"
        try:
            header = root.find(f"{{{SOAP}}}Header")
            version = header.find(f"{{{T}}}RequestServerVersion") if header is not None else None
            if version is None or version.get("Version") not in API_VERSIONS:
                raise _SoapFault("ErrorInvalidServerVersion")
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
                if not self._may_impersonate(impersonated):
                    raise _SoapFault("ErrorImpersonateUserDenied")
                self._box(impersonated)  # ErrorNonExistentMailbox when gone
            handler = getattr(self, f"_op_{operation}", None)
            if handler is None:
                raise _SoapFault("ErrorInvalidRequest", f"operation {operation} is not served here")
            with self.lock:
                messages = handler(request, impersonated)
            return 200, self._envelope(operation, messages), "text/xml; charset=utf-8"
        except _SoapFault as fault:
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

    def _envelope(self, operation: str, messages: list[Any]) -> bytes:
        env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
        header = etree.SubElement(env, f"{{{SOAP}}}Header")
        etree.SubElement(
            header,
            f"{{{T}}}ServerVersionInfo",
            nsmap={"h": T},
            MajorVersion="15",
            MinorVersion="1",
            MajorBuildNumber="2507",
            MinorBuildNumber="6",
            Version="V2017_07_11",
        )
        body = etree.SubElement(env, f"{{{SOAP}}}Body")
        response = etree.SubElement(body, f"{{{M}}}{operation}Response", nsmap={"m": M, "t": T})
        container = etree.SubElement(response, f"{{{M}}}ResponseMessages")
        for message in messages:
            container.append(message)
        return etree.tostring(env, xml_declaration=True, encoding="utf-8")

    def _fault(self, fault: _SoapFault) -> bytes:
        env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
        body = etree.SubElement(env, f"{{{SOAP}}}Body")
        f = etree.SubElement(body, f"{{{SOAP}}}Fault")
        code = etree.SubElement(f, "faultcode", nsmap={"a": T})
        code.text = f"a:{fault.code}"
        etree.SubElement(f, "faultstring").text = fault.text
        detail = etree.SubElement(f, "detail")
        etree.SubElement(detail, f"{{{E}}}ResponseCode", nsmap={"e": E}).text = fault.code
        etree.SubElement(detail, f"{{{E}}}Message", nsmap={"e": E}).text = fault.text
        if fault.back_off_ms is not None:
            xml = etree.SubElement(detail, f"{{{T}}}MessageXml", nsmap={"t": T})
            value = etree.SubElement(xml, f"{{{T}}}Value", Name="BackOffMilliseconds")
            value.text = str(fault.back_off_ms)
        return etree.tostring(env, xml_declaration=True, encoding="utf-8")

    @staticmethod
    def _message(operation: str, error: _ItemError | None = None) -> Any:
        msg = etree.Element(f"{{{M}}}{operation}ResponseMessage")
        if error is None:
            msg.set("ResponseClass", "Success")
            etree.SubElement(msg, f"{{{M}}}ResponseCode").text = "NoError"
        else:
            msg.set("ResponseClass", "Error")
            etree.SubElement(msg, f"{{{M}}}MessageText").text = error.text
            etree.SubElement(msg, f"{{{M}}}ResponseCode").text = error.code
            etree.SubElement(msg, f"{{{M}}}DescriptiveLinkKey").text = "0"
        return msg

    # -- target mailbox -----------------------------------------------------------------

    def _target(self, impersonated: str | None, mailbox_elem: Any = None) -> str:
        """Whose mailbox a request acts on: the impersonated user, or a delegate's target."""
        if impersonated:
            return impersonated
        owner = USERNAME
        if mailbox_elem is not None:
            owner = (mailbox_elem.findtext(f"{{{T}}}EmailAddress") or USERNAME).lower()
        if owner != USERNAME and owner in self._denied_delegate:
            raise _ItemError("ErrorAccessDenied")
        return owner

    def _item_owner(self, item_id: str) -> str | None:
        with contextlib.suppress(ValueError, IndexError):
            raw = base64.b64decode(item_id[5:]).decode()
            return raw.split("\0")[0]
        return None

    def _find_item(self, impersonated: str | None, id_elem: Any) -> _Item:
        item_id = id_elem.get("Id") or ""
        owner = self._item_owner(item_id)
        if owner is None:
            raise _ItemError("ErrorInvalidIdMalformed", "Id is malformed.")
        if impersonated and owner != impersonated:
            raise _ItemError("ErrorItemNotFound")
        if not impersonated and owner != USERNAME and owner in self._denied_delegate:
            raise _ItemError("ErrorAccessDenied")
        item = self._box(owner).get(item_id)
        if item is None:
            raise _ItemError("ErrorItemNotFound")
        return item

    def _folder_mailbox(self, impersonated: str | None, folder_ids: Any) -> str:
        for fid in folder_ids:
            if _local(fid) == "DistinguishedFolderId":
                if fid.get("Id") not in ("contacts", "root", "msgfolderroot"):
                    raise _ItemError(
                        "ErrorFolderNotFound", "The specified folder could not be found."
                    )
                return self._target(impersonated, fid.find(f"{{{T}}}Mailbox"))
            if _local(fid) == "FolderId":
                owner = self._folder_owner(fid.get("Id") or "")
                return self._target(impersonated, _mailbox_stub(owner))
        raise _SoapFault("ErrorSchemaValidation", "no folder id")

    @staticmethod
    def _folder_id(address: str, name: str) -> str:
        return "AQMkA" + base64.b64encode(f"{address}\0folder\0{name}".encode()).decode()

    def _folder_owner(self, folder_id: str) -> str:
        with contextlib.suppress(ValueError, IndexError):
            address, _, name = base64.b64decode(folder_id[5:]).decode().split("\0")
            if name == "contacts":
                return address
        raise _ItemError("ErrorFolderNotFound", "The specified folder could not be found.")

    # -- rendering ----------------------------------------------------------------------

    def _render(self, item: _Item, shape: Any) -> Any:
        """A <t:Contact> with the id and the properties the ItemShape asked for."""
        contact = etree.Element(f"{{{T}}}Contact")
        etree.SubElement(contact, f"{{{T}}}ItemId", Id=item.item_id, ChangeKey=item.change_key)
        wanted: list[Key] = []
        base = shape.findtext(f"{{{T}}}BaseShape") if shape is not None else "IdOnly"
        props = dict(item.props)
        props[("f", "item:DateTimeCreated")] = item.created.strftime("%Y-%m-%dT%H:%M:%SZ")
        props[("f", "item:LastModifiedTime")] = item.modified.strftime("%Y-%m-%dT%H:%M:%SZ")
        if base in ("AllProperties", "Default"):
            wanted.extend(k for k in props if k[0] != "x")
            wanted.append(("f", "contacts:CompleteName"))
        extra = shape.find(f"{{{T}}}AdditionalProperties") if shape is not None else None
        if extra is not None:
            for path in extra:
                key = _path_key(path)
                if key[0] == "f" and key[1] in ("contacts:EmailAddresses", "contacts:PhoneNumbers"):
                    wanted.extend(k for k in props if k[0] == "i" and k[1] == key[1][:-2])
                elif key[0] == "f" and key[1] == "contacts:PhysicalAddresses":
                    wanted.extend(
                        k
                        for k in props
                        if k[0] == "i" and k[1].startswith("contacts:PhysicalAddress:")
                    )
                else:
                    wanted.append(key)
        simple: dict[str, Any] = {}
        indexed: dict[str, dict[str, Any]] = {}
        extended: list[tuple[Key, Any]] = []
        for key in dict.fromkeys(wanted):
            if key == ("f", "contacts:CompleteName"):
                simple["CompleteName"] = self._complete_name(props)
                continue
            if key not in props:
                continue
            if key[0] == "f":
                simple[key[1].split(":", 1)[1]] = props[key]
            elif key[0] == "i":
                uri, label = key[1], key[2]
                if uri.startswith("contacts:PhysicalAddress:"):
                    entry = indexed.setdefault("PhysicalAddresses", {}).setdefault(label, {})
                    entry[uri.rsplit(":", 1)[1]] = props[key]
                else:
                    container = "EmailAddresses" if uri.endswith("EmailAddress") else "PhoneNumbers"
                    indexed.setdefault(container, {})[label] = props[key]
            else:
                extended.append((key, props[key]))
        for name in ITEM_FIELDS:
            if name in simple:
                _add_simple(contact, name, simple[name])
        for key, value in extended:
            prop = etree.SubElement(contact, f"{{{T}}}ExtendedProperty")
            attrs = dict(
                zip(
                    (
                        "DistinguishedPropertySetId",
                        "PropertySetId",
                        "PropertyTag",
                        "PropertyName",
                        "PropertyId",
                        "PropertyType",
                    ),
                    key[1:],
                    strict=True,
                )
            )
            etree.SubElement(
                prop, f"{{{T}}}ExtendedFieldURI", {k: v for k, v in attrs.items() if v}
            )
            if isinstance(value, list):
                values = etree.SubElement(prop, f"{{{T}}}Values")
                for v in value:
                    etree.SubElement(values, f"{{{T}}}Value").text = v
            else:
                etree.SubElement(prop, f"{{{T}}}Value").text = value
        for name in CONTACT_FIELDS:
            if name in indexed:
                container = etree.SubElement(contact, f"{{{T}}}{name}")
                for label, value in indexed[name].items():
                    entry = etree.SubElement(container, f"{{{T}}}Entry", Key=label)
                    if isinstance(value, dict):
                        for part in ADDRESS_PARTS:
                            if part in value:
                                etree.SubElement(entry, f"{{{T}}}{part}").text = value[part]
                    else:
                        entry.text = value
            elif name in simple:
                _add_simple(contact, name, simple[name])
        return contact

    @staticmethod
    def _complete_name(props: dict[Key, Any]) -> Any:
        elem = etree.Element(f"{{{T}}}CompleteName")
        parts = {
            "Title": props.get(("x", "", "", SALUTATION_PROPERTY_TAG, "", "", "String")),
            "FirstName": props.get(("f", "contacts:GivenName")),
            "MiddleName": props.get(("f", "contacts:MiddleName")),
            "LastName": props.get(("f", "contacts:Surname")),
            "Suffix": props.get(("f", "contacts:Generation")),
        }
        for name, value in parts.items():
            if value:
                etree.SubElement(elem, f"{{{T}}}{name}").text = value
        full = " ".join(
            v for v in (parts["FirstName"], parts["MiddleName"], parts["LastName"]) if v
        )
        if full:
            etree.SubElement(elem, f"{{{T}}}FullName").text = full
        return elem

    # -- operations ---------------------------------------------------------------------

    def _op_GetFolder(self, request: Any, impersonated: str | None) -> list[Any]:
        out = []
        for fid in request.find(f"{{{M}}}FolderIds"):
            msg = self._message("GetFolder")
            try:
                owner = self._folder_mailbox(impersonated, [fid])
                name = fid.get("Id") if _local(fid) == "DistinguishedFolderId" else "contacts"
                box = self._box(owner)
                tag = "ContactsFolder" if name == "contacts" else "Folder"
                folder = etree.Element(f"{{{T}}}{tag}")
                etree.SubElement(
                    folder,
                    f"{{{T}}}FolderId",
                    Id=self._folder_id(owner, name),
                    ChangeKey="AQAAAA==",
                )
                etree.SubElement(
                    folder,
                    f"{{{T}}}ParentFolderId",
                    Id=self._folder_id(owner, "root"),
                    ChangeKey="AQAAAA==",
                )
                cls = "IPF.Contact" if name == "contacts" else ""
                if cls:
                    etree.SubElement(folder, f"{{{T}}}FolderClass").text = cls
                display = {
                    "contacts": "Contacts",
                    "root": "",
                    "msgfolderroot": "Top of Information Store",
                }
                etree.SubElement(folder, f"{{{T}}}DisplayName").text = display.get(name, name)
                count = len(box) if name == "contacts" else 0
                etree.SubElement(folder, f"{{{T}}}TotalCount").text = str(count)
                etree.SubElement(folder, f"{{{T}}}ChildFolderCount").text = "0"
                rights = etree.SubElement(folder, f"{{{T}}}EffectiveRights")
                for right, value in (
                    ("CreateAssociated", "true"),
                    ("CreateContents", "true"),
                    ("CreateHierarchy", "true"),
                    ("Delete", "true"),
                    ("Modify", "true"),
                    ("Read", "true"),
                ):
                    etree.SubElement(rights, f"{{{T}}}{right}").text = value
                if name != "contacts":
                    etree.SubElement(folder, f"{{{T}}}UnreadCount").text = "0"
                folders = etree.SubElement(msg, f"{{{M}}}Folders")
                folders.append(folder)
            except _ItemError as error:
                msg = self._message("GetFolder", error)
            out.append(msg)
        return out

    def _op_FindItem(self, request: Any, impersonated: str | None) -> list[Any]:
        if request.get("Traversal") != "Shallow":
            raise _SoapFault("ErrorInvalidRequest", "only Shallow traversal is served")
        shape = request.find(f"{{{M}}}ItemShape")
        view = request.find(f"{{{M}}}IndexedPageItemView")
        restriction = request.find(f"{{{M}}}Restriction")
        sort = request.find(f"{{{M}}}SortOrder")
        parents = request.find(f"{{{M}}}ParentFolderIds")
        out = []
        for parent in parents:
            try:
                owner = self._folder_mailbox(impersonated, [parent])
                items = sorted(self._box(owner).values(), key=lambda i: (i.created, i.item_id))
            except _ItemError as error:
                msg = self._message("FindItem", error)
                out.append(msg)
                continue
            if restriction is not None:
                items = [i for i in items if _matches(i, restriction[0])]
            if sort is not None:
                for order in reversed(list(sort)):
                    key = _path_key(order[0])
                    items.sort(
                        key=lambda i, k=key: (
                            str(i.props.get(k, ""))
                            if k[1] != "item:DateTimeCreated"
                            else i.created.isoformat()
                        ),
                        reverse=order.get("Order") == "Descending",
                    )
            offset = int(view.get("Offset", "0")) if view is not None else 0
            size = int(view.get("MaxEntriesReturned", "1000")) if view is not None else 1000
            size = min(size, self.page_limit)
            page = items[offset : offset + size]
            last = offset + len(page) >= len(items)
            msg = self._message("FindItem")
            root = etree.SubElement(
                msg,
                f"{{{M}}}RootFolder",
                IndexedPagingOffset=str(offset + len(page)),
                TotalItemsInView=str(len(items)),
                IncludesLastItemInRange="true" if last else "false",
            )
            container = etree.SubElement(root, f"{{{T}}}Items")
            for item in page:
                container.append(self._render(item, shape))
            out.append(msg)
        return out

    def _op_GetItem(self, request: Any, impersonated: str | None) -> list[Any]:
        shape = request.find(f"{{{M}}}ItemShape")
        out = []
        for id_elem in request.find(f"{{{M}}}ItemIds"):
            try:
                item = self._find_item(impersonated, id_elem)
                msg = self._message("GetItem")
                etree.SubElement(msg, f"{{{M}}}Items").append(self._render(item, shape))
            except _ItemError as error:
                msg = self._message("GetItem", error)
                etree.SubElement(msg, f"{{{M}}}Items")
            out.append(msg)
        return out

    def _op_CreateItem(self, request: Any, impersonated: str | None) -> list[Any]:
        target = request.find(f"{{{M}}}SavedItemFolderId")
        items = request.find(f"{{{M}}}Items")
        fault = self._take_fault("CreateItem", {"item_error"})
        out = []
        try:
            owner = self._folder_mailbox(impersonated, list(target) if target is not None else [])
        except _ItemError as error:
            return [self._message("CreateItem", error) for _ in items]
        for index, elem in enumerate(items):
            try:
                if _local(elem) != "Contact":
                    raise _SoapFault("ErrorSchemaValidation", f"{_local(elem)} is not a contact")
                if fault is not None and fault.item_index == index:
                    raise _ItemError(fault.code)
                props = _parse_contact(elem)
                item = self._new_item(owner, props)
                msg = self._message("CreateItem")
                contact = etree.SubElement(
                    etree.SubElement(msg, f"{{{M}}}Items"), f"{{{T}}}Contact"
                )
                etree.SubElement(
                    contact, f"{{{T}}}ItemId", Id=item.item_id, ChangeKey=item.change_key
                )
            except _ItemError as error:
                msg = self._message("CreateItem", error)
                etree.SubElement(msg, f"{{{M}}}Items")
            out.append(msg)
        return out

    def _op_UpdateItem(self, request: Any, impersonated: str | None) -> list[Any]:
        resolution = request.get("ConflictResolution", "AutoResolve")
        fault = self._take_fault("UpdateItem", {"item_error"})
        out = []
        for index, change in enumerate(request.find(f"{{{M}}}ItemChanges")):
            try:
                id_elem = change.find(f"{{{T}}}ItemId")
                item = self._find_item(impersonated, id_elem)
                if fault is not None and fault.item_index == index:
                    raise _ItemError(fault.code)
                sent_key = id_elem.get("ChangeKey")
                if sent_key and sent_key != item.change_key and resolution != "AlwaysOverwrite":
                    raise _ItemError("ErrorIrresolvableConflict")
                updated = dict(item.props)
                for update in change.find(f"{{{T}}}Updates"):
                    kind = _local(update)
                    key = _path_key(update[0])
                    if key[0] == "f" and key[1] in READ_ONLY:
                        raise _ItemError("ErrorInvalidPropertySet", f"{key[1]} is read-only")
                    if kind == "DeleteItemField":
                        updated.pop(key, None)
                    elif kind in ("SetItemField", "AppendToItemField"):
                        values = _parse_contact(update.find(f"{{{T}}}Contact"))
                        if key not in values:
                            raise _SoapFault(
                                "ErrorSchemaValidation", f"SetItemField value does not match {key}"
                            )
                        updated[key] = values[key]
                    else:
                        raise _SoapFault("ErrorSchemaValidation", f"unexpected {kind}")
                item.props = updated
                self._touch(item)
                msg = self._message("UpdateItem")
                contact = etree.SubElement(
                    etree.SubElement(msg, f"{{{M}}}Items"), f"{{{T}}}Contact"
                )
                etree.SubElement(
                    contact, f"{{{T}}}ItemId", Id=item.item_id, ChangeKey=item.change_key
                )
                etree.SubElement(
                    etree.SubElement(msg, f"{{{M}}}ConflictResults"), f"{{{T}}}Count"
                ).text = "0"
            except _ItemError as error:
                msg = self._message("UpdateItem", error)
                etree.SubElement(msg, f"{{{M}}}Items")
            out.append(msg)
        return out

    def _op_DeleteItem(self, request: Any, impersonated: str | None) -> list[Any]:
        fault = self._take_fault("DeleteItem", {"item_error"})
        out = []
        for index, id_elem in enumerate(request.find(f"{{{M}}}ItemIds")):
            try:
                item = self._find_item(impersonated, id_elem)
                if fault is not None and fault.item_index == index:
                    raise _ItemError(fault.code)
                owner = self._item_owner(item.item_id) or ""
                self._box(owner).pop(item.item_id, None)
                out.append(self._message("DeleteItem"))
            except _ItemError as error:
                out.append(self._message("DeleteItem", error))
        return out


def _mailbox_stub(address: str) -> Any:
    elem = etree.Element(f"{{{T}}}Mailbox")
    etree.SubElement(elem, f"{{{T}}}EmailAddress").text = address
    return elem


def _add_simple(parent: Any, name: str, value: Any) -> None:
    if isinstance(value, list):
        container = etree.SubElement(parent, f"{{{T}}}{name}")
        for v in value:
            etree.SubElement(container, f"{{{T}}}String").text = v
    elif isinstance(value, etree._Element):
        parent.append(value)
    else:
        etree.SubElement(parent, f"{{{T}}}{name}").text = value


def _matches(item: _Item, restriction: Any) -> bool:
    """Evaluate the Restriction subset exchangelib sends for simple filters."""
    name = _local(restriction)
    if name == "And":
        return all(_matches(item, r) for r in restriction)
    if name == "Or":
        return any(_matches(item, r) for r in restriction)
    if name == "Not":
        return not _matches(item, restriction[0])
    key = _path_key(restriction[0])
    value = item.props.get(key)
    if name == "Exists":
        return value not in (None, "", [])
    if name in ("IsEqualTo", "IsNotEqualTo"):
        constant = restriction.find(f"{{{T}}}FieldURIOrConstant/{{{T}}}Constant")
        wanted = constant.get("Value") if constant is not None else None
        if isinstance(value, list):
            equal = wanted in value
        elif key[0] == "x" and key[-1] in ("Integer", "Long", "Short") and value not in (None, ""):
            equal = wanted is not None and int(value) == int(wanted)
        else:
            equal = value == wanted
        return equal if name == "IsEqualTo" else not equal
    raise _SoapFault("ErrorUnsupportedQueryFilter", f"restriction {name} is not served here")


def _make_handler(server: EwsServer) -> type[BaseHTTPRequestHandler]:
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
            operation = _peek_operation(body)
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
                        busy = _SoapFault("ErrorServerBusy", back_off_ms=fault.back_off_ms)
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


def _peek_operation(body: bytes) -> str:
    with contextlib.suppress(etree.XMLSyntaxError, IndexError, TypeError):
        soap_body = etree.fromstring(body).find(f"{{{SOAP}}}Body")
        return _local(soap_body[0])
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
