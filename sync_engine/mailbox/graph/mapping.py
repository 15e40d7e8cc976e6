"""Field mapping between our ContactFields and Graph's contact JSON (DESIGN section 4).

Everything that knows which Graph property holds which CRM value lives here: the
`$select` list, the CRM id extended property, a new contact's body, a PATCH body, and a
listed contact read back.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from sync_engine.model import (
    ContactChange,
    ContactFields,
    MailboxContact,
    NewContact,
)

log = logging.getLogger(__name__)


# Never change: every contact we created carries this property. Integer = PT_LONG (32 bit).
CRM_ID_PROPERTY = "Integer {6d1c8f3a-2b7e-4c59-a0d4-8e3f5b7c9a12} Name CrmPersonId"

CRM_ID_EXTENSION = "singleValueExtendedProperties"  # where Graph puts an expanded property
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
# Graph v1.0's contact resource has no fax property (msgraph-metadata, EntityType contact:
# businessPhones, homePhones, mobilePhone and nothing else), so Sage's Fax phone is not
# written on Exchange Online (it is on Exchange Server, as BusinessFax). Changes that name
# only unmapped fields cost no request.
UNMAPPED = frozenset({"business_fax"})
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
# So a PATCH that changes one of these always carries displayName.
NAME_FIELDS = frozenset({"title", "first_name", "middle_name", "last_name", "suffix"})


def needs_current(change: ContactChange) -> bool:
    """Whether building this PATCH needs the item as it is now (collections, displayName)."""
    named = {name for name, _ in change.set_fields}
    return bool(STATEFUL & named) or bool(NAME_FIELDS & named and "display_name" not in named)


def crm_id_expand() -> str:
    return f"singleValueExtendedProperties($filter=id eq '{CRM_ID_PROPERTY}')"


def trim(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep only what the planner needs: the picture on disk holds no notes or photos."""
    keep = {name: raw[name] for name in SELECT if name in raw}
    if "singleValueExtendedProperties" in raw:  # [] = looked at: no CRM id
        keep["singleValueExtendedProperties"] = raw["singleValueExtendedProperties"] or []
    if "changeKey" not in keep and isinstance(raw.get("@odata.etag"), str):
        keep["changeKey"] = raw["@odata.etag"].removeprefix("W/").strip('"')
    return keep


def crm_id_of(raw: dict[str, Any]) -> int | None:
    for prop in raw.get("singleValueExtendedProperties") or []:
        if str(prop.get("id", "")).lower() == CRM_ID_PROPERTY.lower():
            try:
                value = int(str(prop.get("value")))
            except ValueError:
                return None
            return value or None  # 0 = cleared (Graph cannot delete an extended property)
    return None


def crm_id_after(change: ContactChange, cache: dict[str, dict[str, Any]]) -> int | None:
    if change.set_crm_id is not None:
        return change.set_crm_id
    if change.clear_crm_id:
        return 0
    return crm_id_of(cache.get(change.item_id, {}))


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
    if item.crm_id is not None:  # None only for a contact made by hand
        body["singleValueExtendedProperties"] = [{"id": CRM_ID_PROPERTY, "value": str(item.crm_id)}]
    return body


def without_unmapped(change: ContactChange) -> ContactChange:
    """The change less the fields Graph cannot hold (see UNMAPPED)."""
    kept = tuple((n, v) for n, v in change.set_fields if n not in UNMAPPED)
    return change if kept == change.set_fields else replace(change, set_fields=kept)


def patch_body(
    change: ContactChange, current: dict[str, Any] | None, crm_category: str, *, fresh: bool
) -> dict[str, Any]:
    """Only what the change names. Collections and the address go whole, built on `current`."""
    current = current or {}
    named = dict(change.set_fields)
    body: dict[str, Any] = {SCALARS[n]: v for n, v in named.items() if n in SCALARS}
    display = named.get("display_name") or str(current.get("displayName") or "")
    if NAME_FIELDS & named.keys() and display:
        body["displayName"] = display  # never left for Graph to regenerate
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
    if change.set_crm_id is not None:
        body["singleValueExtendedProperties"] = [
            {"id": CRM_ID_PROPERTY, "value": str(change.set_crm_id)}
        ]
    elif change.clear_crm_id:
        body["singleValueExtendedProperties"] = [{"id": CRM_ID_PROPERTY, "value": "0"}]
    return body
