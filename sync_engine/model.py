"""Plain values shared by every part of the engine: no I/O here.

A CRM person becomes a set of `ContactFields` (DESIGN section 4); a mailbox holds
`MailboxContact`s; the state store remembers `Link`s between the two.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime

# Mapped contact fields, in the order of DESIGN section 4. `display_name` and `file_as`
# are built from the names and company, so they follow the CRM like the others.
FIELD_NAMES: tuple[str, ...] = (
    "title",
    "first_name",
    "middle_name",
    "last_name",
    "suffix",
    "company",
    "job_title",
    "department",
    "web_page",
    "email",
    "email2",
    "business_phone",
    "business_fax",
    "home_phone",
    "mobile_phone",
    "street",
    "city",
    "state",
    "postal_code",
    "country",
    "display_name",
    "file_as",
)


def clean(value: object) -> str:
    """Missing, None and '' are the same blank; surrounding whitespace is not part of a value."""
    if value is None:
        return ""
    return str(value).strip()


def _nfc(value: object) -> str:
    return unicodedata.normalize("NFC", clean(value))


@dataclass(frozen=True, slots=True)
class ContactFields:
    """The mapped fields of one contact. Every value is a stripped string; '' is blank."""

    title: str = ""
    first_name: str = ""
    middle_name: str = ""
    last_name: str = ""
    suffix: str = ""
    company: str = ""
    job_title: str = ""
    department: str = ""
    web_page: str = ""
    email: str = ""  # the Business email (EmailLink)
    email2: str = ""  # the Private email
    business_phone: str = ""  # PhoneLink types Business, Fax, Home, Mobile
    business_fax: str = ""
    home_phone: str = ""
    mobile_phone: str = ""
    street: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    display_name: str = ""
    file_as: str = ""

    @classmethod
    def of(cls, **values: object) -> ContactFields:
        """Build from loose values (None, padded strings), cleaning each one."""
        return cls(**{name: clean(value) for name, value in values.items()})

    def with_derived(self) -> ContactFields:
        """Fill display name and file-as from the names and company, as Outlook would."""
        return replace(self, display_name=self.full_name(), file_as=self.file_as_name())

    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.middle_name, self.last_name) if p)

    def file_as_name(self) -> str:
        given = " ".join(p for p in (self.first_name, self.middle_name) if p)
        name = ", ".join(p for p in (self.last_name, given) if p)
        return name or self.company

    def phone_lines(self) -> list[str]:
        """The phones that are set, each labelled as Outlook labels it."""
        labelled = (
            ("business", self.business_phone),
            ("mobile", self.mobile_phone),
            ("home", self.home_phone),
            ("fax", self.business_fax),
        )
        return [f"{label} {number}" for label, number in labelled if number]

    def dedupe_key(self) -> tuple[str, str, str, str]:
        """DESIGN rule 2: company, first, middle, last; exact, blank only equals blank.
        Exact as text, not as code points: canonically equal forms compare equal (NFC:
        "Zoë" typed as "e" + U+0308 is "Zoë"); case and accents still differ."""
        return (
            _nfc(self.company),
            _nfc(self.first_name),
            _nfc(self.middle_name),
            _nfc(self.last_name),
        )

    def as_dict(self) -> dict[str, str]:
        # every value is a str: no deep copy (dataclasses.asdict) needed, and a sync
        # fingerprints every person of every mailbox
        return {name: getattr(self, name) for name in FIELD_NAMES}

    def fingerprint(self) -> str:
        """A short hash of the values, to see whether the CRM changed since we last wrote."""
        payload = json.dumps(self.as_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]


assert tuple(f.name for f in fields(ContactFields)) == FIELD_NAMES

# The fields a salesperson's Outlook edit writes back to the CRM (issue 14): every mapped
# field but the company (CRM -> Exchange only in Sage's integration too), the mailing
# address (our choice: Sage syncs its fields both ways, but a person's default address is
# often their company's, shared with colleagues) and the two derived from the names.
WRITE_BACK_FIELDS: tuple[str, ...] = tuple(
    name
    for name in FIELD_NAMES
    if name
    not in {
        "company",
        "street",
        "city",
        "state",
        "postal_code",
        "country",
        "display_name",
        "file_as",
    }
)
EMAIL_FIELDS = frozenset({"email", "email2"})
PHONE_FIELDS = frozenset({"business_phone", "business_fax", "home_phone", "mobile_phone"})


def normalised(name: str, value: str) -> str:
    """A value as compared for change detection: formatting noise is no edit. Outlook
    re-spaces phone numbers, people type trailing spaces, and an email's case means nothing."""
    text = " ".join(clean(value).split())
    if name in EMAIL_FIELDS:
        return text.casefold()
    if name in PHONE_FIELDS:
        return "".join(c for c in text if c.isdigit() or c == "+")
    return text


def write_back_values(values: ContactFields) -> dict[str, str]:
    """The write-back fields of a contact, as remembered on its link."""
    return {name: getattr(values, name) for name in WRITE_BACK_FIELDS}


@dataclass(frozen=True, slots=True)
class CrmPerson:
    """One CRM person as the engine sees it (read from Sage's Person/Company/... tables)."""

    id: int
    fields: ContactFields
    manager_id: int | None = None
    manager_name: str = ""
    deleted: bool = False
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return self.fields.full_name() or f"person {self.id}"


@dataclass(frozen=True, slots=True)
class CrmUser:
    """A CRM user (a salesperson): Sage's `Users` row."""

    id: int
    logon: str
    email: str
    first_name: str = ""
    last_name: str = ""
    deleted: bool = False
    disabled: bool = False
    resource: bool = False  # a room or a projector, not a person
    template: bool = False  # a user template, not a person

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or self.logon

    @property
    def inactive(self) -> str:
        """Why this user is not a salesperson ('' when they are): Sage keeps deleted and
        disabled users, and resources and templates share the Users table."""
        for flag, why in (
            (self.deleted, "deactivated (deleted)"),
            (self.disabled, "deactivated (disabled)"),
            (self.resource, "a resource, not a person"),
            (self.template, "a user template, not a person"),
        ):
            if flag:
                return why
        return ""


@dataclass(frozen=True, slots=True)
class MailboxContact:
    """One item of a mailbox's Contacts folder, as listed by a target."""

    item_id: str
    change_key: str
    fields: ContactFields
    categories: tuple[str, ...] = ()
    crm_id: int | None = None  # the extended property carrying the CRM person id
    created_at: str = ""  # ISO 8601; orders exact duplicates so the oldest is linked
    # ISO 8601, when the item last changed (EWS LastModifiedTime, Graph lastModifiedDateTime,
    # the local target's modified_at): which of two mailboxes' edits is the latest ("" unknown)
    modified_at: str = ""

    @property
    def name(self) -> str:
        return self.fields.full_name() or self.fields.company or self.item_id

    @property
    def modified(self) -> datetime | None:
        return instant(self.modified_at)


def instant(value: str | datetime | None) -> datetime | None:
    """An aware UTC datetime from an ISO 8601 string or a datetime (naive = UTC, as the
    CRM's UpdatedDate columns and our state store keep them); None when unknown or bad."""
    if not value:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Link:
    """Ties one CRM person to one contact item in one mailbox."""

    person_id: int
    item_id: str
    change_key: str
    fingerprint: str
    origin: str  # "created" or "linked"
    # What both sides held after our last sync of this contact (write-back fields only),
    # so a later difference says which side edited which field. None on links made before
    # write-back existed: their first sync just records them.
    crm_values: Mapping[str, str] | None = None
    mailbox_values: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class NewContact:
    """A contact to create: mapped fields, categories and the CRM id extended property."""

    fields: ContactFields
    categories: tuple[str, ...]
    crm_id: int | None  # None only for contacts a person makes by hand


@dataclass(frozen=True, slots=True)
class ContactChange:
    """A partial write to one contact: only what is named here is touched.

    `set_fields` never holds a blank (a CRM blank never erases an Outlook value),
    `categories` is the whole new list when it changes, and the CRM id extended
    property is set (`set_crm_id`) or removed (`clear_crm_id`).
    """

    item_id: str
    change_key: str
    set_fields: tuple[tuple[str, str], ...] = ()
    categories: tuple[str, ...] | None = None
    set_crm_id: int | None = None
    clear_crm_id: bool = False

    def is_empty(self) -> bool:
        return (
            not self.set_fields
            and self.categories is None
            and self.set_crm_id is None
            and not self.clear_crm_id
        )

    def applied_to(self, contact: MailboxContact) -> MailboxContact:
        """What the contact looks like after this change (used by the local target)."""
        new_fields = replace(contact.fields, **dict(self.set_fields))
        crm_id = contact.crm_id
        if self.clear_crm_id:
            crm_id = None
        if self.set_crm_id is not None:
            crm_id = self.set_crm_id
        categories = contact.categories if self.categories is None else self.categories
        return replace(contact, fields=new_fields, categories=categories, crm_id=crm_id)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of one item of a batched write. `error` is None on success."""

    item_id: str | None = None
    change_key: str | None = None
    error: str | None = None
    error_kind: str | None = None  # "not_found", "conflict", "invalid", "throttled", "other"

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class PersonView:
    """What every card shows (SLACK_UX rule 3), plus whether it is in the asker's list."""

    id: int
    first_name: str
    middle_name: str
    last_name: str
    company: str
    email: str
    job_title: str
    business_phone: str = ""
    mobile_phone: str = ""
    manager: str = ""
    in_list: bool = False
    status: str = ""
    # why the person is in My CRM Contacts (the list only): `picked`, `rule:<kind>`, and
    # the same in words
    sources: tuple[str, ...] | None = None
    why: str = ""

    @classmethod
    def of(cls, person: CrmPerson, *, in_list: bool = False, status: str = "") -> PersonView:
        f = person.fields
        return cls(
            id=person.id,
            first_name=f.first_name,
            middle_name=f.middle_name,
            last_name=f.last_name,
            company=f.company,
            email=f.email,
            job_title=f.job_title,
            business_phone=f.business_phone,
            mobile_phone=f.mobile_phone,
            manager=person.manager_name,
            in_list=in_list,
            status=status,
        )

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.middle_name, self.last_name) if p)

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "first_name": self.first_name,
            "middle_name": self.middle_name,
            "last_name": self.last_name,
            "company": self.company,
            "email": self.email,
            "job_title": self.job_title,
        }
        if self.status:
            out["status"] = self.status
        if self.sources is not None:
            out["sources"] = list(self.sources)
        return out


@dataclass(slots=True)
class Outcome:
    """What happened to one person in one sync (SLACK_UX rule 8)."""

    person_id: int
    name: str
    # created, linked, updated, unlinked, deleted, forgotten, failed, held, written_back
    # (an Outlook edit sent to the CRM), conflict (an Outlook edit that lost to the CRM)
    action: str
    detail: str = ""


@dataclass(slots=True)
class SyncResult:
    """The result of syncing one mailbox; `as_json` keeps the documented stable keys."""

    mailbox: str
    dry_run: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    possible_duplicates: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    error_kind: str | None = None  # credentials, access, mailbox, crm (ops.problems)
    busy: bool = False  # another sync of this mailbox was running; nothing was done
    requests: int = 0  # round trips to the mailbox: listing pages plus write batches
    write_requests: int = 0
    crm_requests: int = 0  # write-back round trips to the CRM (REST calls; 1 per person embedded)
    # the CRM's own words on failed write-backs (install paths, SQL logins, servers): the
    # admin's (`status`, the log), never shown to the salesperson
    admin_notes: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for o in self.outcomes if o.action == action)

    def names(self, action: str) -> list[str]:
        return [o.name for o in self.outcomes if o.action == action]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action == "failed"]

    @property
    def changed_anything(self) -> bool:
        return bool(self.outcomes or self.possible_duplicates or self.warnings or self.error)

    def as_json(self) -> dict[str, object]:
        return {
            "mailbox": self.mailbox,
            "dry_run": self.dry_run,
            "created": self.count("created"),
            "linked": self.count("linked"),
            "updated": self.count("updated"),
            "unlinked": self.count("unlinked"),
            "deleted": self.count("deleted"),
            "forgotten": self.count("forgotten"),
            "written_back": self.count("written_back"),
            "conflicts": self.count("conflict"),
            "failed": len(self.failed),
            "failures": [
                {"id": o.person_id, "name": o.name, "reason": o.detail} for o in self.failed
            ],
            "possible_duplicates": list(self.possible_duplicates),
            "warnings": list(self.warnings) + ([self.error] if self.error else []),
            "error": self.error,
            "requests": self.requests,
            "write_requests": self.write_requests,
            "crm_requests": self.crm_requests,
            "admin_notes": list(self.admin_notes),
        }


# -- the digest's settings (SLACK_UX 9) ---------------------------------------------------

WEEKDAYS: tuple[str, ...] = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)
FREQUENCIES: tuple[str, ...] = ("daily", "weekly")


@dataclass(frozen=True, slots=True)
class DigestPrefs:
    """When one user's digest DM goes out. Users uninstall noisy bots, so they tune it.

    `time` is HH:MM in the user's own time zone; None means SUMMARY_TIME (the engine
    fills it in, and `chosen_time` says whether the user picked it). `snoozed_until` is
    a date in the user's zone: nothing is sent before it. `tz` is the zone the time is
    read in (the user's Slack time zone; None = UTC).
    """

    time: str | None = None
    frequency: str = "daily"
    weekday: int = 0  # Monday; used when weekly
    snoozed_until: date | None = None
    off: bool = False
    chosen_time: bool = False
    tz: str | None = None
    changed_at: datetime | None = None

    @property
    def weekly(self) -> bool:
        return self.frequency == "weekly"

    def describe(self) -> str:
        """The settings in a few plain words, the same in Slack and on the command line."""
        if self.off:
            return "off"
        at = f"at {self.time or 'SUMMARY_TIME'}"
        when = f"weekly on {WEEKDAYS[self.weekday]}s {at}" if self.weekly else f"daily {at}"
        when += f" ({self.tz or 'UTC'} time)"
        if self.snoozed_until is not None:
            when += f", snoozed until {self.snoozed_until.strftime('%a %d %b %Y')}"
        return when
