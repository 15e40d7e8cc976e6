"""Field mapping between our ContactFields and exchangelib's Contact (DESIGN section 4).

Everything that knows which EWS property holds which CRM value lives here: the
extended properties, the listing's field paths, a new contact, a partial update's
SetItemField/DeleteItemField list, and a listed item read back.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from exchangelib import (
    Account,
    Contact,
    ExtendedProperty,
    Version,
)
from exchangelib.fields import FieldPath
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress

from sync_engine.mailbox.crm_id import (
    LEGACY_PROPERTY_SETS,
    PROPERTY_NAME,
    PROPERTY_SET,
    PROPERTY_TYPE,
    crm_id_value,
)
from sync_engine.model import ContactChange, ContactFields, MailboxContact, NewContact

log = logging.getLogger(__name__)

# The CRM person id lives in this named property (our own property set; never shown in
# Outlook), the same on every target (crm_id.py).
CRM_ID_PROPERTY_SET = PROPERTY_SET
CRM_ID_PROPERTY_NAME = PROPERTY_NAME
LEGACY_CRM_ID_PROPERTY_SET = LEGACY_PROPERTY_SETS[0]
# Outlook's "Title" (salutation) is PidTagDisplayNamePrefix.
SALUTATION_PROPERTY_TAG = "0x3a45"


class CrmPersonId(ExtendedProperty):
    """The CRM person id on a contact (DESIGN rule 9: found again before anything is created)."""

    property_set_id = CRM_ID_PROPERTY_SET
    property_name = CRM_ID_PROPERTY_NAME
    property_type = PROPERTY_TYPE


class LegacyCrmPersonId(ExtendedProperty):
    """The CRM id under the Graph target's former property set: read, never written."""

    property_set_id = LEGACY_CRM_ID_PROPERTY_SET
    property_name = CRM_ID_PROPERTY_NAME
    property_type = PROPERTY_TYPE


class Salutation(ExtendedProperty):
    """Outlook's Title field (Mr., Dr., ...): PidTagDisplayNamePrefix."""

    property_tag = 0x3A45
    property_type = "String"


_registered = threading.Lock()


def register_properties() -> None:
    """Register the extended properties on Contact once per process (exchangelib is global)."""
    with _registered:
        names = {f.name for f in Contact.FIELDS}
        if "crm_person_id" not in names:
            Contact.register("crm_person_id", CrmPersonId)
        if "crm_person_id_legacy" not in names:
            Contact.register("crm_person_id_legacy", LegacyCrmPersonId)
        if "crm_salutation" not in names:
            Contact.register("crm_salutation", Salutation)


# -- field mapping (DESIGN section 4) --------------------------------------------------

SIMPLE_FIELDS: dict[str, str] = {  # ContactFields name -> exchangelib Contact field
    "title": "crm_salutation",
    "first_name": "given_name",
    "middle_name": "middle_name",
    "last_name": "surname",
    "suffix": "generation",
    "company": "company_name",
    "job_title": "job_title",
    "department": "department",
    "web_page": "business_homepage",
    "display_name": "display_name",
    "file_as": "file_as",
}
# Dictionary keys of types.xsd (EmailAddressKeyType, PhoneNumberKeyType), as Sage's own
# Exchange integration fills them: email 1 / 2, business, business fax, home, mobile.
EMAIL_LABELS = {"email": "EmailAddress1", "email2": "EmailAddress2"}
PHONE_LABELS = {
    "business_phone": "BusinessPhone",
    "business_fax": "BusinessFax",
    "home_phone": "HomePhone",
    "mobile_phone": "MobilePhone",
}
ADDRESS_PARTS = {  # ContactFields name -> PhysicalAddress sub-field (label Business)
    "street": "street",
    "city": "city",
    "state": "state",
    "postal_code": "zipcode",
    "country": "country",
}

EMAIL_LABEL = EMAIL_LABELS["email"]
ADDRESS_LABEL = "Business"
FIND_ITEM_TEXT_LIMIT = 255  # FindItem returns the first 255 characters of a text value


def contact_field(name: str) -> Any:
    return Contact.get_field_by_fieldname(name)


def address_subfield(name: str) -> Any:
    return PhysicalAddress.get_field_by_fieldname(name)


def single_path(field: str, value_cls: Any, label: str) -> FieldPath:
    """The path of one entry of a one-value indexed field (EmailAddress1, BusinessPhone)."""
    return FieldPath(
        field=contact_field(field), label=label, subfield=value_cls.value_field(version=None)
    )


def listing_fields() -> list[FieldPath]:
    """Only what the planners need: the mapped fields, categories, CRM id, creation time,
    and the last-modified time (item:LastModifiedTime: which mailbox's edit is the latest)."""
    paths = [FieldPath(field=contact_field(n)) for n in SIMPLE_FIELDS.values()]
    paths += [
        FieldPath(field=contact_field(n))
        for n in (
            "categories",
            "datetime_created",
            "last_modified_time",
            "crm_person_id",
            "crm_person_id_legacy",
        )
    ]
    paths += [
        FieldPath(field=contact_field("email_addresses"), label=lbl)
        for lbl in EMAIL_LABELS.values()
    ]
    paths += [
        FieldPath(field=contact_field("phone_numbers"), label=lbl) for lbl in PHONE_LABELS.values()
    ]
    paths += [
        FieldPath(
            field=contact_field("physical_addresses"),
            label=ADDRESS_LABEL,
            subfield=address_subfield(p),
        )
        for p in ADDRESS_PARTS.values()
    ]
    return paths


def new_contact(account: Account, new: NewContact) -> Contact:
    """A Contact for CreateItem: the non-blank mapped fields, our category, the CRM id."""
    f = new.fields
    values: dict[str, Any] = {
        field: getattr(f, name) or None for name, field in SIMPLE_FIELDS.items()
    }
    values["display_name"] = f.display_name or f.full_name() or f.company or f.email or "(no name)"
    emails = [
        EmailAddress(label=lbl, email=getattr(f, n))
        for n, lbl in EMAIL_LABELS.items()
        if getattr(f, n)
    ]
    if emails:
        values["email_addresses"] = emails
    phones = [
        PhoneNumber(label=lbl, phone_number=getattr(f, n))
        for n, lbl in PHONE_LABELS.items()
        if getattr(f, n)
    ]
    if phones:
        values["phone_numbers"] = phones
    parts = {sub: getattr(f, name) for name, sub in ADDRESS_PARTS.items() if getattr(f, name)}
    if parts:
        values["physical_addresses"] = [PhysicalAddress(label=ADDRESS_LABEL, **parts)]
        values["postal_address_index"] = ADDRESS_LABEL
    if new.categories:
        values["categories"] = list(new.categories)
    if new.crm_id is not None:  # None only for a contact made by hand
        values["crm_person_id"] = int(new.crm_id)
    contact = Contact(account=account, **values)
    contact.clean(version=account.version)
    return contact


def update_ops(
    change: ContactChange, version: Version, legacy_crm_id: int | None = None
) -> list[tuple[str, FieldPath, Any]]:
    """The SetItemField / DeleteItemField list for exactly what the change names.

    `legacy_crm_id`: the item carries its CRM id under the legacy property set; this
    write moves it to the one set (crm_id.py) and deletes the legacy property."""
    ops: list[tuple[str, FieldPath, Any]] = []
    for name, raw in change.set_fields:
        value = raw.strip()
        if not value:
            continue  # a CRM blank never erases what the user typed
        if name in SIMPLE_FIELDS:
            field = contact_field(SIMPLE_FIELDS[name])
            ops.append(("set", FieldPath(field=field), field.clean(value, version=version)))
        elif name in EMAIL_LABELS:
            label = EMAIL_LABELS[name]
            path = single_path("email_addresses", EmailAddress, label)
            ops.append(("set", path, EmailAddress(label=label, email=value)))
        elif name in PHONE_LABELS:
            label = PHONE_LABELS[name]
            path = single_path("phone_numbers", PhoneNumber, label)
            ops.append(("set", path, PhoneNumber(label=label, phone_number=value)))
        elif name in ADDRESS_PARTS:
            sub = ADDRESS_PARTS[name]
            path = FieldPath(
                field=contact_field("physical_addresses"),
                label=ADDRESS_LABEL,
                subfield=address_subfield(sub),
            )
            ops.append(("set", path, PhysicalAddress(label=ADDRESS_LABEL, **{sub: value})))
        else:
            raise ValueError(f"{name!r} is not a mapped contact field")
    if change.categories is not None:
        path = FieldPath(field=contact_field("categories"))
        if change.categories:
            ops.append(("set", path, list(change.categories)))
        else:
            ops.append(("delete", path, None))
    crm = FieldPath(field=contact_field("crm_person_id"))
    if change.set_crm_id is not None:
        ops.append(("set", crm, int(change.set_crm_id)))
    elif change.clear_crm_id:
        ops.append(("delete", crm, None))
    elif legacy_crm_id is not None and ops:
        ops.append(("set", crm, int(legacy_crm_id)))  # rewritten to the one set
    if legacy_crm_id is not None and ops:
        ops.append(("delete", FieldPath(field=contact_field("crm_person_id_legacy")), None))
    for op, _path, value in ops:
        if op == "set" and hasattr(value, "clean"):
            value.clean(version=version)
    return ops


def longest_text(c: Contact) -> int:
    """The length of the longest mapped text value as listed (FindItem cuts at 255)."""
    texts: list[Any] = [getattr(c, field) for field in SIMPLE_FIELDS.values()]
    texts += [e.email for e in c.email_addresses or []]
    texts += [p.phone_number for p in c.phone_numbers or []]
    for address in c.physical_addresses or []:
        texts += [getattr(address, sub, None) for sub in ADDRESS_PARTS.values()]
    return max((len(t) for t in texts if isinstance(t, str)), default=0)


def mailbox_contact(c: Contact) -> MailboxContact:
    emails = {e.label: e.email for e in c.email_addresses or []}
    phones = {p.label: p.phone_number for p in c.phone_numbers or []}
    address = next((a for a in c.physical_addresses or [] if a.label == ADDRESS_LABEL), None)
    values: dict[str, Any] = {name: getattr(c, field) for name, field in SIMPLE_FIELDS.items()}
    values.update({name: emails.get(label) for name, label in EMAIL_LABELS.items()})
    values.update({name: phones.get(label) for name, label in PHONE_LABELS.items()})
    values.update({name: getattr(address, sub, None) for name, sub in ADDRESS_PARTS.items()})
    created = c.datetime_created.isoformat() if c.datetime_created else ""
    crm_id = crm_id_of(c)
    return MailboxContact(
        item_id=c.id,
        change_key=c.changekey,
        fields=ContactFields.of(**values),
        categories=tuple(c.categories or ()),
        crm_id=crm_id,
        created_at=created,
        modified_at=c.last_modified_time.isoformat() if c.last_modified_time else "",
    )


def crm_id_of(c: Contact) -> int | None:
    """The CRM id under the one property set, else under the legacy one."""
    if c.crm_person_id is not None:
        return crm_id_value(c.crm_person_id)
    return legacy_crm_id_of(c)


def legacy_crm_id_of(c: Contact) -> int | None:
    """The CRM id the contact carries only under the legacy property set (or None)."""
    if c.crm_person_id is not None:
        return None
    legacy = getattr(c, "crm_person_id_legacy", None)
    return crm_id_value(legacy) if legacy is not None else None
