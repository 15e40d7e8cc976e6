"""What writing one person's email or phone does to Sage CRM's Email/Phone rows: one
decision, carried out by both writers (sage_rest.py through Sage's REST API; the embedded
demo CRM's `update_person`, used by its write-back and by `crm update-person`, in its own
database), so both hold DESIGN section 7's rules:

- a value the person shows already is not written again;
- a row only this person links to is changed, in the columns that differ;
- a row linked to more than one record (a person's business phone that is also their
  company's switchboard) is never changed: the person gets a row of their own and only
  their own link is moved to it;
- a person with no row of the type gets a new row and a new link;
- a blank takes the person's link away, and the row too only when nobody else links to
  it (write-back never sends a blank; `crm update-person --email ''` does);
- a phone keeps Sage's country / area / number split (phones.py);
- a value longer than its column is refused before anything is written.

Pure: no I/O. What the rows hold comes from rows.py (`linked_rows`), the widths from its
`column_widths`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sync_engine.crm.phones import split_phone
from sync_engine.write_back_checks import label

# model field -> Person column (the columns source.py reads them from)
PERSON_COLUMNS = {
    "title": "Pers_Salutation",
    "first_name": "Pers_FirstName",
    "middle_name": "Pers_MiddleName",
    "last_name": "Pers_LastName",
    "suffix": "Pers_Suffix",
    "job_title": "Pers_Title",
    "department": "Pers_Department",
    "web_page": "Pers_WebSite",
}
# model field -> (kind, link type) of the Email/Phone row it lives in
LINKED = {
    "email": ("email", "Business"),
    "email2": ("email", "Private"),
    "business_phone": ("phone", "Business"),
    "business_fax": ("phone", "Fax"),
    "home_phone": ("phone", "Home"),
    "mobile_phone": ("phone", "Mobile"),
}
ROW_TABLES = {"email": "Email", "phone": "Phone"}
PHONE_PARTS = {
    "Phon_CountryCode": "country code",
    "Phon_AreaCode": "area code",
    "Phon_Number": "without its country and area codes",
}
_VALUE_COLUMN = {"email": "Emai_EmailAddress", "phone": "Phon_Number"}


@dataclass(frozen=True)
class LinkedRow:
    """The Email/Phone row one person shows for one type, and the link that shows it."""

    row_id: int
    link_id: int
    links: int = 1  # live links to the row, from any record (more than 1: shared)
    country: str = ""  # Phon_CountryCode / Phon_AreaCode as the row holds them
    area: str = ""
    value: str = ""  # Emai_EmailAddress / Phon_Number as the row holds it

    @property
    def shared(self) -> bool:
        return self.links > 1

    def shows(self) -> str:
        """The value as the person shows it (source.py joins a phone's parts)."""
        return " ".join(p.strip() for p in (self.country, self.area, self.value) if p.strip())

    def holds(self, column: str) -> str:
        if column == "Phon_CountryCode":
            return self.country
        if column == "Phon_AreaCode":
            return self.area
        return self.value


class Action(StrEnum):
    KEEP = "keep"  # the row holds it already (or a blank where there is nothing)
    CHANGE = "change"  # the person's own row: change `changed`
    OWN_ROW = "own_row"  # a shared row: a new row with `columns`, the person's link moved to it
    NEW_ROW = "new_row"  # no row: a new row with `columns` and a new link
    UNLINK = "unlink"  # a blank: the person's link goes, the row too unless shared


@dataclass(frozen=True)
class RowWrite:
    """One email or phone of one person: what to do to which row, and what to send."""

    name: str  # model field
    kind: str  # "email" | "phone"
    link_type: str
    action: Action
    row: LinkedRow | None
    columns: Mapping[str, str]  # the whole value, column by column (a new row gets it all)
    changed: Mapping[str, str] = field(default_factory=dict)  # CHANGE: what differs from `row`
    expected: str = ""  # the value the person shows once written

    @property
    def table(self) -> str:
        return ROW_TABLES[self.kind]

    @property
    def drops_row(self) -> bool:
        """UNLINK: whether the row goes too (nobody else links to it)."""
        return self.row is not None and not self.row.shared


def row_write(name: str, value: str, row: LinkedRow | None) -> RowWrite:
    """What writing `value` as the person's `name` (a LINKED model field) does, against
    the row the person shows now (None: they have none)."""
    kind, link_type = LINKED[name]
    value = value.strip()
    if not value:
        action = Action.KEEP if row is None else Action.UNLINK
        return RowWrite(name, kind, link_type, action, row, {})
    if kind == "email":
        columns = {"Emai_EmailAddress": value}
        expected = value
    else:
        country, area, number = split_phone(value, *((row.country, row.area) if row else ("", "")))
        columns = {"Phon_CountryCode": country, "Phon_AreaCode": area, "Phon_Number": number}
        expected = " ".join(part.strip() for part in (country, area, number) if part.strip())
    if row is None:
        return RowWrite(name, kind, link_type, Action.NEW_ROW, row, columns, expected=expected)
    if row.shows() == expected:  # the person shows it already: nothing to write
        return RowWrite(name, kind, link_type, Action.KEEP, row, columns, expected=expected)
    if row.shared:
        return RowWrite(name, kind, link_type, Action.OWN_ROW, row, columns, expected=expected)
    # only what differs: codes kept are not sent at all
    changed = {k: v for k, v in columns.items() if v.strip() != row.holds(k).strip()}
    action = Action.CHANGE if changed else Action.KEEP
    return RowWrite(name, kind, link_type, action, row, columns, changed, expected)


def row_writes(
    values: Mapping[str, str], rows: Mapping[tuple[str, str], LinkedRow]
) -> dict[str, RowWrite]:
    """Model field -> its RowWrite, for the emails and phones in `values`, against the
    rows the person shows now (rows.py `linked_rows`: (kind, link type) -> row)."""
    return {name: row_write(name, value, rows.get(LINKED[name])) for name, value in values.items()}


def kinds_of(names: Iterable[str]) -> set[str]:
    """The kinds of rows ("email", "phone") these LINKED fields live in."""
    return {LINKED[name][0] for name in names}


def too_long(name: str, value: str, width: int | None, part: str | None = None) -> str | None:
    """Why `value` does not fit a column `width` characters wide, or None. `name` is a
    model field (or another field's plain name)."""
    if width is None or len(value) <= width:
        return None
    what = label(name) + (f" ({part})" if part else "")
    return f"the {what} is {len(value):,} characters long; the CRM takes at most {width}"


def first_too_long(
    widths: Mapping[str, int],
    person: Mapping[str, str],
    writes: Iterable[RowWrite],
    others: Iterable[tuple[str, str, str]] = (),
) -> str | None:
    """Why one of a person's values does not fit its column, or None: `person` maps model
    fields to Person values, `writes` the emails and phones, `others` more
    (name, 'Table.Column', value) cells. `widths` maps 'Table.Column' to its width."""
    cells = [
        (name, f"Person.{PERSON_COLUMNS[name]}", value, None) for name, value in person.items()
    ]
    cells += [
        (w.name, f"{w.table}.{column}", value, PHONE_PARTS.get(column))
        for w in writes
        if w.action in (Action.CHANGE, Action.OWN_ROW, Action.NEW_ROW)
        for column, value in w.columns.items()
    ]
    cells += [(name, column, value, None) for name, column, value in others]
    for name, column, value, part in cells:
        why = too_long(name, value, widths.get(column), part)
        if why:
            return why
    return None
