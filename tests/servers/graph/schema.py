"""What the Graph v1.0 reference and metadata allow: contact properties, query options,
error shapes, `$batch` entries.
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

MAX_BATCH = 20
MAILBOX_CONCURRENCY = 4
MAX_PAGE = 1000  # the most `$top` an Outlook list endpoint answers
DEFAULT_PAGE = 10  # Outlook list endpoints without `$top` answer 10 items a page
# contact-delta: `Prefer: odata.maxpagesize`; Microsoft's Q&A answer on contact delta:
# at most 200 "for objects, such as users and contacts", and 200 when it is not set.
DELTA_PAGE = 200
DEFAULT_FOLDER = "contacts"
DELETED_ITEMS = "deleteditems"
# KB 4462988: a mailbox Exchange Online does not hold answers every Outlook REST call with
# 404 and this code, "REST API is not yet supported for this mailbox".
NOT_IN_CLOUD = "MailboxNotEnabledForRESTAPI"

STRING_PROPS = frozenset(
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
LIST_PROPS = frozenset(
    {"categories", "businessPhones", "homePhones", "emailAddresses", "imAddresses", "children"}
)
ADDRESS_PROPS = frozenset({"businessAddress", "homeAddress", "otherAddress"})
ADDRESS_KEYS = frozenset({"street", "city", "state", "postalCode", "countryOrRegion"})
READ_ONLY = frozenset(
    {"id", "changeKey", "createdDateTime", "lastModifiedDateTime", "parentFolderId"}
)
ALL_PROPS = STRING_PROPS | LIST_PROPS | ADDRESS_PROPS | READ_ONLY
WRITE_ROLES = frozenset({"Contacts.ReadWrite"})
READ_ROLES = frozenset({"Contacts.Read", "Contacts.ReadWrite"})

# singleValueLegacyExtendedProperty-get: `$expand=singleValueExtendedProperties($filter=id
# eq '…')` on one item. Several ids joined with `or` is an assumption (not on the reference
# page; used in Microsoft's Q&A answers); the stand-in accepts that and nothing else.
EXPAND_RE = re.compile(
    r"^singleValueExtendedProperties\(\$filter=(id eq '[^']+'(?:\s+or\s+id eq '[^']+')*)\)$",
    re.I,
)
EXPAND_ID_RE = re.compile(r"id eq '([^']+)'", re.I)
FILTER_RE = re.compile(
    r"^singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id eq '([^']+)'\s+and\s+"
    r"(?:cast\(\s*\1/value\s*,\s*Edm\.Int32\s*\)\s+eq\s+(-?\d+)|\1/value eq '([^']*)')\s*\)$",
    re.I,
)
MAXPAGE_RE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.I)


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


def throttled(retry_after: int = 1) -> GraphError:
    return GraphError(
        429,
        "ApplicationThrottled",
        "Application is over its MailboxConcurrency limit.",
        {"Retry-After": str(retry_after)},
    )


def norm_prop(prop_id: str) -> str:
    """Extended property ids: type and GUID are case-insensitive, the Name is not."""
    parts = prop_id.split(" ", 3)
    if len(parts) == 4:
        return f"{parts[0].lower()} {parts[1].lower()} {parts[2].lower()} {parts[3]}"
    return prop_id.lower()


@dataclass
class Fault:
    kind: str
    on: str
    times: int
    status: int = 0
    code: str = ""
    retry_after: int | None = None
    delay: float = 0.0
    index: int = 0


@dataclass
class StoredMailbox:
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    ext: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    folder: dict[str, str] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    exists: bool = True
    blocked: bool = False
    on_premises: bool = False  # Exchange Server holds it: Graph answers NOT_IN_CLOUD
    active: int = 0


@dataclass
class DeltaState:
    address: str
    seq: int
    select: list[str] | None
    expand: list[str] | None
    page: int
    pending: list[str] | None = None  # item ids still to send in this round (skip token)


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # processed, then the connection is closed without an answer


AUTH_KINDS = frozenset({"token", "discovery"})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_change_key() -> str:
    return "EQAAABYAAA" + secrets.token_urlsafe(12)


def not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def code_for(status: int) -> str:
    return {
        429: "TooManyRequests",
        500: "InternalServerError",
        503: "ServiceUnavailable",
        504: "GatewayTimeout",
        400: "BadRequest",
    }.get(status, "UnknownError")


def check_if_match(item: dict[str, Any], if_match: str | None) -> None:
    if if_match and if_match.strip() not in {f'W/"{item["changeKey"]}"', "*"}:
        raise GraphError(
            412,
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
        )


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    return body


def apply_props(item: dict[str, Any], body: dict[str, Any]) -> None:
    """PATCH semantics: named properties are replaced whole (collections and addresses too)."""
    for prop, value in body.items():
        if prop.startswith("@odata"):
            continue
        if prop not in ALL_PROPS:
            raise GraphError(
                400,
                "RequestBodyRead",
                f"The property '{prop}' does not exist on type 'microsoft.graph.contact'.",
            )
        if prop in READ_ONLY:
            continue
        if prop in STRING_PROPS and value is not None and not isinstance(value, str):
            raise GraphError(
                400, "RequestBodyRead", f"Cannot convert the literal for '{prop}' to Edm.String."
            )
        if prop in LIST_PROPS:
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
        if prop in ADDRESS_PROPS:
            if not isinstance(value, dict) or set(value) - ADDRESS_KEYS:
                raise GraphError(400, "RequestBodyRead", f"'{prop}' must be a physicalAddress.")
            value = {k: v for k, v in value.items() if v is not None}
        item[prop] = copy.deepcopy(value)


def apply_ext(ext: dict[str, tuple[str, str]], entries: list[Any]) -> None:
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
        ext[norm_prop(str(entry["id"]))] = (str(entry["id"]), str(entry["value"]))


def select_of(query: dict[str, list[str]]) -> list[str] | None:
    if "$select" not in query:
        return None
    props = [p.strip() for p in query["$select"][0].split(",") if p.strip()]
    for prop in props:
        if prop not in ALL_PROPS:
            raise GraphError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{prop}' on type 'microsoft.graph.contact'.",
            )
    return [p for p in props if p != "id"]


USER_PROPS = frozenset(
    {
        "id",
        "userPrincipalName",
        "mail",
        "proxyAddresses",
        "displayName",
        "userType",
        "accountEnabled",
    }
)


def select_of_user(query: dict[str, list[str]]) -> list[str] | None:
    if "$select" not in query:
        return None
    props = [p.strip() for p in query["$select"][0].split(",") if p.strip()]
    for prop in props:
        if prop not in USER_PROPS:
            raise GraphError(
                400,
                "Request_BadRequest",
                f"Could not find a property named '{prop}' on type 'microsoft.graph.user'.",
            )
    return props


# contact-delta (v1.0) documents `$select` and `Prefer: odata.maxpagesize`, no other query
# option; Exchange Online refuses `$expand` (singleValueExtendedProperties) on delta with
# 400 or 500 "Parsing OData Select and Expand failed", and `$filter`, `$top`, `$orderby`.
DELTA_OPTIONS = frozenset({"$select", "$skiptoken", "$deltatoken"})


def refuse_delta_options(query: dict[str, list[str]]) -> None:
    extra = sorted(set(query) - DELTA_OPTIONS)
    if extra:
        raise GraphError(
            400,
            "BadRequest",
            f"Parsing OData Select and Expand failed: the query option {extra[0]} is not "
            "supported by delta on contacts.",
        )


def expand_of(query: dict[str, list[str]]) -> list[str] | None:
    """The extended property ids a `$expand` asks for (None: no `$expand`)."""
    if "$expand" not in query:
        return None
    match = EXPAND_RE.match(query["$expand"][0].strip())
    if not match:
        raise GraphError(
            400,
            "BadRequest",
            "Only singleValueExtendedProperties($filter=id eq '...') can be expanded here.",
        )
    return EXPAND_ID_RE.findall(match.group(1))


def page_size(query: dict[str, list[str]], headers: dict[str, str]) -> int:
    """A list endpoint's page: `$top` (contact-list documents the OData query parameters),
    10 without it. `Prefer: odata.maxpagesize` is documented for delta, not for lists:
    here a list ignores it (an assumption, the documented contract)."""
    if "$top" in query:
        return max(1, min(MAX_PAGE, int(query["$top"][0])))
    return DEFAULT_PAGE


def delta_page_size(headers: dict[str, str]) -> int:
    """A delta page: `Prefer: odata.maxpagesize`, at most 200, and 200 without it."""
    match = MAXPAGE_RE.search(headers.get("prefer", ""))
    return max(1, min(DELTA_PAGE, int(match.group(1)))) if match else DELTA_PAGE


def applied(headers: dict[str, str], size: int) -> dict[str, str]:
    return (
        {"Preference-Applied": f"odata.maxpagesize={size}"}
        if MAXPAGE_RE.search(headers.get("prefer", ""))
        else {}
    )


def address_of(route: str) -> str | None:
    parts = [p for p in route.split("/") if p]
    if len(parts) >= 2 and parts[0].lower() == "users":
        return unquote(parts[1]).lower()
    if len(parts) >= 3 and parts[0] == "v1.0" and parts[1].lower() == "users":
        return unquote(parts[2]).lower()
    return None


def batch_reply(reply: Reply, req: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(req.get("id")),
        "status": reply.status,
        "headers": dict(reply.headers),
    }
    if reply.body is not None:
        out["headers"].setdefault("Content-Type", "application/json")
        out["body"] = reply.body
    return out
