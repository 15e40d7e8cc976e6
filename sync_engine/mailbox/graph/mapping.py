"""Field mapping between our ContactFields and Graph's contact JSON (DESIGN section 4).

Everything that knows which Graph property holds which CRM value lives here: the
`$select` list, the CRM id extended property, a new contact's body, a PATCH body, and a
listed contact read back.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from sync_engine.mailbox.crm_id import (
    LEGACY_PROPERTY_SETS,
    PROPERTY_NAME,
    PROPERTY_SET,
    PROPERTY_TYPE,
    crm_id_value,
)
from sync_engine.model import (
    ContactChange,
    ContactFields,
    MailboxContact,
    NewContact,
)

log = logging.getLogger(__name__)


# The CRM id: the same named property as on Exchange Server (crm_id.py); Integer = PT_LONG.
CRM_ID_PROPERTY = f"{PROPERTY_TYPE} {{{PROPERTY_SET}}} Name {PROPERTY_NAME}"
# The Graph target's own property before issue 20: read (and rewritten), never written.
LEGACY_CRM_ID_PROPERTIES = tuple(
    f"{PROPERTY_TYPE} {{{s}}} Name {PROPERTY_NAME}" for s in LEGACY_PROPERTY_SETS
)
# Sage's Fax phone as Outlook's business fax: PidTagBusinessFaxNumber, a tagged property
# (MS-OXPROPS: property tag 0x3A24, PtypString). Graph v1.0's contact has no fax property
# (msgraph-metadata, EntityType contact: businessPhones, homePhones, mobilePhone), so it is
# written and read as a single-value extended property ("String 0x3A24").
FAX_PROPERTY = "String 0x3A24"
EXTENDED = (CRM_ID_PROPERTY, *LEGACY_CRM_ID_PROPERTIES, FAX_PROPERTY)

CRM_ID_EXTENSION = "singleValueExtendedProperties"  # where Graph puts an expanded property
# Ours, on disk only: the changeKey at which the extended properties were last read. An
# item whose changeKey moved on since (an Outlook edit) is read again (the fax may be new).
EXT_READ_AT = "extendedReadAt"
MAX_EMAILS = 3  # Outlook's Email1..Email3

SCALARS = {
    "title": "title",
    "first_name": "givenName",
    "middle_name": "middleName",
    "last_name": "surname",
    "suffix": "generation",
    "company": "companyName",
    "job_title": "jobTitle",
    "department": "department",
    "web_page": "businessHomePage",
    "mobile_phone": "mobilePhone",
    "display_name": "displayName",
    "file_as": "fileAs",
}
ADDRESS = {
    "street": "street",
    "city": "city",
    "state": "state",
    "postal_code": "postalCode",
    "country": "countryOrRegion",
}
# Email 1 and 2 are the first two entries of `emailAddresses` (Outlook's Email1..Email3, in
# order); business and home phone the first entry of `businessPhones` / `homePhones`.
EMAILS = ("email", "email2")
PHONE_LISTS = {"business_phone": "businessPhones", "home_phone": "homePhones"}
FAX = "business_fax"  # written through FAX_PROPERTY, not a contact property
SELECT = (
    "id",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",  # which mailbox's edit is the latest (write-back, issue 14)
    "categories",
    *SCALARS.values(),
    "emailAddresses",
    *PHONE_LISTS.values(),
    "businessAddress",
)
STATEFUL = frozenset({*EMAILS, *PHONE_LISTS, *ADDRESS})  # PATCH needs the current value
# contact-update (v1.0) on displayName: "later updates to other properties may cause an
# automatically generated value to overwrite the displayName value you have specified. To
# preserve a pre-existing value, always include it as displayName in an update operation."
# So every PATCH carries displayName, whatever else it changes.


def needs_current(change: ContactChange) -> bool:
    """Whether building this PATCH needs the item as it is now: collections go whole, and
    displayName goes with every update (the current one when the change names none)."""
    named = {name for name, _ in change.set_fields}
    return bool(STATEFUL & named) or "display_name" not in named


def extended_expand() -> str:
    """Every extended property we read, in one `$expand` of a single item.

    singleValueLegacyExtendedProperty-get documents `$filter=id eq '…'` on the id; the
    ids are joined with `or`, as Microsoft's Q&A answers do for several properties
    (an assumption the loopback Graph accepts and states)."""
    ids = " or ".join(f"id eq '{p}'" for p in EXTENDED)
    return f"singleValueExtendedProperties($filter={ids})"


def prop_key(prop_id: object) -> str:
    """An extended property id as compared: Graph may answer the type, GUID or tag in
    another case than we asked ("String 0x3a24")."""
    return " ".join(str(prop_id).split()).lower()


def ext_values(raw: dict[str, Any]) -> dict[str, str]:
    """The extended properties known for an item: {prop_key(id): value}."""
    return {
        prop_key(p.get("id")): str(p.get("value"))
        for p in raw.get(CRM_ID_EXTENSION) or []
        if isinstance(p, dict) and p.get("id") is not None
    }


def set_ext(raw: dict[str, Any], values: dict[str, str], *, whole: bool = False) -> None:
    """Fold property values into an item's picture (`whole`: these are all it has)."""
    merged = {} if whole else ext_values(raw)
    ids = {prop_key(p.get("id")): p.get("id") for p in raw.get(CRM_ID_EXTENSION) or []}
    for prop_id, value in values.items():
        merged[prop_key(prop_id)] = str(value)
        ids[prop_key(prop_id)] = prop_id
    raw[CRM_ID_EXTENSION] = [{"id": ids[k], "value": v} for k, v in sorted(merged.items())]


def ext_fresh(raw: dict[str, Any]) -> bool:
    """Whether the item's extended properties were read at its current changeKey."""
    return (
        CRM_ID_EXTENSION in raw
        and bool(raw.get("changeKey"))
        and raw.get(EXT_READ_AT) == raw.get("changeKey")
    )


def trim(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep only what the planner needs: the picture on disk holds no notes or photos."""
    keep = {name: raw[name] for name in SELECT if name in raw}
    if CRM_ID_EXTENSION in raw:  # [] = looked at: none of ours
        keep[CRM_ID_EXTENSION] = raw[CRM_ID_EXTENSION] or []
    if EXT_READ_AT in raw:
        keep[EXT_READ_AT] = raw[EXT_READ_AT]
    if "changeKey" not in keep and isinstance(raw.get("@odata.etag"), str):
        keep["changeKey"] = raw["@odata.etag"].removeprefix("W/").strip('"')
    return keep


def crm_id_of(raw: dict[str, Any]) -> int | None:
    """The CRM id under the one property, else under a legacy one; 0 is none."""
    values = ext_values(raw)
    if prop_key(CRM_ID_PROPERTY) in values:
        return crm_id_value(values[prop_key(CRM_ID_PROPERTY)])
    return legacy_crm_id_of(raw)


def legacy_crm_id_of(raw: dict[str, Any]) -> int | None:
    """The CRM id an item carries only under a legacy property (rewritten at its next write)."""
    values = ext_values(raw)
    if prop_key(CRM_ID_PROPERTY) in values:
        return None
    for prop in LEGACY_CRM_ID_PROPERTIES:
        found = crm_id_value(values.get(prop_key(prop), ""))
        if found is not None:
            return found
    return None


def written_ext(body: dict[str, Any]) -> dict[str, str]:
    """The extended property values a POST or PATCH body sets."""
    return {str(p["id"]): str(p["value"]) for p in body.get(CRM_ID_EXTENSION) or [] if "id" in p}


def to_contact(raw: dict[str, Any]) -> MailboxContact:
    emails = raw.get("emailAddresses") or []
    address = raw.get("businessAddress") or {}
    values: dict[str, object] = {name: raw.get(prop) for name, prop in SCALARS.items()}
    for n, name in enumerate(EMAILS):
        entry = emails[n] if len(emails) > n else None
        values[name] = entry.get("address") if isinstance(entry, dict) else ""
    for name, prop in PHONE_LISTS.items():
        phones = raw.get(prop) or []
        values[name] = phones[0] if phones else ""
    values.update({name: address.get(prop) for name, prop in ADDRESS.items()})
    values[FAX] = ext_values(raw).get(prop_key(FAX_PROPERTY), "")
    return MailboxContact(
        item_id=str(raw["id"]),
        change_key=str(raw.get("changeKey") or ""),
        fields=ContactFields.of(**values),
        categories=tuple(str(c) for c in raw.get("categories") or ()),
        crm_id=crm_id_of(raw),
        created_at=str(raw.get("createdDateTime") or ""),
        modified_at=str(raw.get("lastModifiedDateTime") or ""),
    )


def as_held(fields: ContactFields) -> ContactFields:
    """The fields as Graph can hold them. `emailAddresses` is a collection with no empty
    slots (msgraph-metadata, EntityType contact: Collection(graph.emailAddress)), so a
    Private email with no Business one is its first entry and reads back as email 1. The
    sync compares the CRM person in this form, so that address is written once, stays
    one address after later CRM edits, and is never taken for an Outlook edit."""
    if fields.email2 and not fields.email:
        return replace(fields, email=fields.email2, email2="")
    return fields


def email_entry(email: str, display: str) -> dict[str, str]:
    return {"address": email, "name": f"{display} ({email})" if display else email}


def new_body(item: NewContact) -> dict[str, Any]:
    """A new contact: only non-blank mapped fields, our category, the CRM id property."""
    values = item.fields.as_dict()
    body: dict[str, Any] = {prop: values[name] for name, prop in SCALARS.items() if values[name]}
    emails = [email_entry(values[n], values["display_name"]) for n in EMAILS if values[n]]
    if emails:  # a Private email alone becomes the first entry: Graph has no empty slots
        body["emailAddresses"] = emails
    for name, prop in PHONE_LISTS.items():
        if values[name]:
            body[prop] = [values[name]]
    address = {prop: values[name] for name, prop in ADDRESS.items() if values[name]}
    if address:
        body["businessAddress"] = address
    body["categories"] = list(item.categories)
    ext = []
    if item.crm_id is not None:  # None only for a contact made by hand
        ext.append({"id": CRM_ID_PROPERTY, "value": str(item.crm_id)})
    if values[FAX]:
        ext.append({"id": FAX_PROPERTY, "value": values[FAX]})
    if ext:
        body[CRM_ID_EXTENSION] = ext
    return body


def patch_body(
    change: ContactChange, current: dict[str, Any] | None, crm_category: str, *, fresh: bool
) -> dict[str, Any]:
    """Only what the change names. Collections and the address go whole, built on `current`."""
    current = current or {}
    named = dict(change.set_fields)
    body: dict[str, Any] = {SCALARS[n]: v for n, v in named.items() if n in SCALARS}
    display = named.get("display_name") or str(current.get("displayName") or "")
    if any(named.get(n) for n in EMAILS):
        # the collection goes whole: our entries in their slots, the user's third kept
        slots = [e for e in current.get("emailAddresses") or [] if isinstance(e, dict)]
        for n, name in enumerate(EMAILS):
            if named.get(name):
                entry = email_entry(named[name], display)
                if len(slots) > n:
                    slots[n] = entry
                else:
                    slots.append(entry)
        body["emailAddresses"] = slots[:MAX_EMAILS]
    for name, prop in PHONE_LISTS.items():
        if named.get(name):
            phone = named[name]
            others = [p for p in (current.get(prop) or [])[1:] if p != phone]
            body[prop] = [phone, *others]
    if ADDRESS.keys() & named.keys():
        address = {k: v for k, v in (current.get("businessAddress") or {}).items() if v}
        address.update({ADDRESS[n]: v for n, v in named.items() if n in ADDRESS})
        body["businessAddress"] = address
    if change.categories is not None:
        categories = list(change.categories)
        if fresh:
            # Re-read after a conflict: keep what the user has now, only our tag follows the plan.
            ours = crm_category.casefold()
            categories = [c for c in current.get("categories") or [] if c.casefold() != ours]
            if any(c.casefold() == ours for c in change.categories):
                categories.append(crm_category)
        body["categories"] = categories
    ext: dict[str, str] = {}
    if named.get(FAX):
        ext[FAX_PROPERTY] = named[FAX]
    legacy = legacy_crm_id_of(current)
    if change.set_crm_id is not None:
        ext[CRM_ID_PROPERTY] = str(change.set_crm_id)
    elif change.clear_crm_id:
        ext[CRM_ID_PROPERTY] = "0"  # Graph cannot delete an extended property
    elif legacy is not None and (body or ext):
        ext[CRM_ID_PROPERTY] = str(legacy)  # rewritten to the one property at this write
    if legacy is not None and CRM_ID_PROPERTY in ext:
        ext.update(dict.fromkeys(LEGACY_CRM_ID_PROPERTIES, "0"))
    if ext:
        body[CRM_ID_EXTENSION] = [{"id": k, "value": v} for k, v in ext.items()]
    if body and display:
        body["displayName"] = display  # with every update, never left for Graph to regenerate
    return body
