"""What the EWS schema files (messages.xsd, types.xsd) and the response codes say: element
order, property paths, parsing a <t:Contact>, evaluating a Restriction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lxml import etree

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
# The dictionary keys types.xsd allows (EmailAddressKeyType, PhoneNumberKeyType,
# PhysicalAddressKeyType): any other Key is a schema validation error on Exchange.
ENTRY_KEYS = {
    "contacts:EmailAddress": {"EmailAddress1", "EmailAddress2", "EmailAddress3"},
    "contacts:PhoneNumber": {
        *("AssistantPhone", "BusinessFax", "BusinessPhone", "BusinessPhone2", "Callback"),
        *("CarPhone", "CompanyMainPhone", "HomeFax", "HomePhone", "HomePhone2", "Isdn"),
        *("MobilePhone", "OtherFax", "OtherTelephone", "Pager", "PrimaryPhone", "RadioPhone"),
        *("Telex", "TtyTddPhone"),
    },
    "contacts:PhysicalAddress": {"Home", "Business", "Other"},
}


def check_entry_key(uri: str, key: str | None) -> None:
    allowed = ENTRY_KEYS[uri.split(":", 2)[0] + ":" + uri.split(":", 2)[1]]
    if key not in allowed:
        raise SoapFault("ErrorSchemaValidation", f"{key!r} is not a valid key of {uri}")


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
    "ErrorNonPrimarySmtpAddress": "The primary SMTP address must be specified when "
    "referencing a mailbox.",
    "ErrorCannotDeleteObject": "The object cannot be deleted.",
    "ErrorMoveCopyFailed": "The move or copy operation failed.",
    "ErrorNameResolutionNoResults": "No results were found.",
}

# types.xsd ItemType then ContactItemType: a <t:Contact> lists its elements in this order
# (ExtendedProperty, repeatable, sits after HasAttachments and before LastModifiedTime).
# Exchange validates requests against the schema: an element out of order fails the whole
# request with ErrorSchemaValidation.
CONTACT_ORDER = (*ITEM_FIELDS[:-1], "ExtendedProperty", ITEM_FIELDS[-1], *CONTACT_FIELDS)
ORDER_INDEX = {name: i for i, name in enumerate(CONTACT_ORDER)}
# FindItem returns "only the first 512 bytes of any streamable property. For Unicode, it
# returns the first 255 characters" (EWS FindItem operation reference); GetItem returns all.
FIND_ITEM_TEXT_LIMIT = 255
# messages.xsd DeleteItemType: DeleteType="t:DisposalType" use="required".
DISPOSAL_TYPES = ("HardDelete", "SoftDelete", "MoveToDeletedItems")

Key = tuple[str, ...]


class SoapFault(Exception):
    """A request-level error, answered as a SOAP fault with HTTP 500 (as Exchange does).

    `values` go into the fault's MessageXml as <t:Value Name="...">: BackOffMilliseconds
    for ErrorServerBusy, Primary (the primary SMTP address) for ErrorNonPrimarySmtpAddress."""

    def __init__(
        self,
        code: str,
        text: str | None = None,
        back_off_ms: int | None = None,
        values: dict[str, str] | None = None,
    ):
        super().__init__(code)
        self.code = code
        self.text = text or ERROR_TEXT.get(code, code)
        self.values = dict(values or {})
        if back_off_ms is not None:
            self.values["BackOffMilliseconds"] = str(back_off_ms)


class ItemError(Exception):
    """A per-item error: one ResponseClass="Error" message in an otherwise fine batch,
    with MessageXml values as for a SOAP fault (messages.xsd ResponseMessageType)."""

    def __init__(self, code: str, text: str | None = None, values: dict[str, str] | None = None):
        super().__init__(code)
        self.code = code
        self.text = text or ERROR_TEXT.get(code, code)
        self.values = dict(values or {})


def local_name(elem: Any) -> str:
    return etree.QName(elem).localname


def ext_key(uri: Any) -> Key:
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


def path_key(path: Any) -> Key:
    name = local_name(path)
    if name == "FieldURI":
        return ("f", path.get("FieldURI"))
    if name == "IndexedFieldURI":
        check_entry_key(path.get("FieldURI"), path.get("FieldIndex"))
        return ("i", path.get("FieldURI"), path.get("FieldIndex"))
    if name == "ExtendedFieldURI":
        return ext_key(path)
    raise SoapFault("ErrorSchemaValidation", f"unknown property path {name}")


def field_uri(name: str) -> str:
    return ("item:" if name in ITEM_FIELDS else "contacts:") + name


def parse_contact(elem: Any) -> dict[Key, Any]:
    """The properties a <t:Contact> element sets, keyed like the property paths."""
    props: dict[Key, Any] = {}
    last = -1
    for child in elem:
        name = local_name(child)
        position = ORDER_INDEX.get(name)
        if position is not None:
            if position < last or (position == last and name != "ExtendedProperty"):
                raise SoapFault(
                    "ErrorSchemaValidation",
                    f"The request failed schema validation: The element 'Contact' has invalid "
                    f"child element '{name}' (types.xsd ContactItemType order).",
                )
            last = position
        if name == "ExtendedProperty":
            uri = child.find(f"{{{T}}}ExtendedFieldURI")
            values = child.find(f"{{{T}}}Values")
            if values is not None:
                props[ext_key(uri)] = [v.text or "" for v in values]
            else:
                props[ext_key(uri)] = child.findtext(f"{{{T}}}Value") or ""
        elif name == "Categories":
            props[("f", "item:Categories")] = [s.text or "" for s in child]
        elif name in INDEXED:
            uri, grouped = INDEXED[name]
            for entry in child:
                label = entry.get("Key")
                check_entry_key(uri, label)
                if grouped:
                    for part in entry:
                        props[("i", f"{uri}:{local_name(part)}", label)] = part.text or ""
                else:
                    props[("i", uri, label)] = entry.text or ""
        elif name in ITEM_FIELDS or name in CONTACT_FIELDS:
            uri = field_uri(name)
            if uri in READ_ONLY:
                raise ItemError("ErrorInvalidPropertySet", f"{uri} is read-only")
            props[("f", uri)] = child.text or ""
        else:
            raise SoapFault("ErrorSchemaValidation", f"unexpected element {name} in Contact")
    return props


def mailbox_stub(address: str) -> Any:
    elem = etree.Element(f"{{{T}}}Mailbox")
    etree.SubElement(elem, f"{{{T}}}EmailAddress").text = address
    return elem


def add_simple(parent: Any, name: str, value: Any) -> None:
    if isinstance(value, list):
        container = etree.SubElement(parent, f"{{{T}}}{name}")
        for v in value:
            etree.SubElement(container, f"{{{T}}}String").text = v
    elif isinstance(value, etree._Element):
        parent.append(value)
    else:
        etree.SubElement(parent, f"{{{T}}}{name}").text = value


def matches(item: StoredItem, restriction: Any) -> bool:
    """Evaluate the Restriction subset exchangelib sends for simple filters."""
    name = local_name(restriction)
    if name == "And":
        return all(matches(item, r) for r in restriction)
    if name == "Or":
        return any(matches(item, r) for r in restriction)
    if name == "Not":
        return not matches(item, restriction[0])
    key = path_key(restriction[0])
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
    raise SoapFault("ErrorUnsupportedQueryFilter", f"restriction {name} is not served here")


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

    def item_error(self) -> ItemError:
        """item_busy: ErrorServerBusy for one item, its back-off in MessageXml (Exchange
        throttles items inside a batch this way, not only whole requests)."""
        if self.kind == "item_busy":
            return ItemError(
                "ErrorServerBusy", values={"BackOffMilliseconds": str(self.back_off_ms)}
            )
        return ItemError(self.code)


@dataclass
class StoredItem:
    item_id: str
    change_key: str
    props: dict[Key, Any]
    created: datetime
    modified: datetime
    history: list[str] = field(default_factory=list)  # every change key it has had
