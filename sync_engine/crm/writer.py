"""Writing Outlook edits back to the CRM (issue 14): the `CrmWriter` protocol and the
embedded demo CRM's writer. A real Sage CRM is written through its REST API only
(sage_rest.py), never through its database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.crm.rows import column_widths
from sync_engine.crm.source import CrmError, SageCrm
from sync_engine.write_back_checks import label


class CrmUnavailable(Exception):
    """The whole CRM cannot take writes now (unreachable, throttled past our patience, bad
    credentials, a redirect to another address): stop writing back this run; the edits
    are seen again next run. `pause`: the login was refused, so no further run may try
    until the credentials change (write_back_state.py)."""

    def __init__(self, message: str, requests: int = 0, *, pause: bool = False) -> None:
        super().__init__(message)
        self.requests = requests
        self.pause = pause


@dataclass(frozen=True)
class CrmWriteResult:
    """One person's write: whether the CRM took it, and what it should hold now."""

    error: str | None = None  # None on success; else why not, in the CRM's own words (admin's)
    requests: int = 0  # round trips it took (retries included)
    # field -> the value the CRM should show once it took the write (a phone as the
    # three parts it was split into read back joined); missing fields: the Outlook value
    expected: Mapping[str, str] = field(default_factory=dict)
    # why not, when it is the salesperson's to fix (a value too long for its column)
    refused: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.refused is None


def too_long(name: str, value: str, width: int | None, part: str | None = None) -> str | None:
    """Why `value` does not fit a column `width` characters wide (for the salesperson:
    it is theirs to shorten), or None."""
    if width is None or len(value) <= width:
        return None
    what = label(name) + (f" ({part})" if part else "")
    return (
        f"the {what} is {len(value):,} characters long; the CRM takes at most {width} "
        "(shorten it in Outlook)"
    )


class OrphanMemory(Protocol):
    """Where the REST writer remembers a created Email/Phone row it could neither link nor
    delete, to reuse it next time (write_back_state.OrphanRows)."""

    def find(self, kind: str, person_id: int, link_type: str) -> int | None: ...

    def remember(self, kind: str, row_id: int, person_id: int, link_type: str) -> None: ...

    def forget(self, kind: str, row_id: int) -> None: ...


class CrmWriter(Protocol):
    """Writes changed contact fields (model field names) to one CRM person. Shared by
    the syncs of every mailbox, possibly on several threads at once."""

    def describe(self) -> str: ...

    def write(self, person_id: int, changes: Mapping[str, str]) -> CrmWriteResult: ...

    def close(self) -> None: ...


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

# model field -> EmbeddedCrm.update_person option
EMBEDDED_OPTIONS = {
    "title": "salutation",
    "first_name": "first",
    "middle_name": "middle",
    "last_name": "last",
    "suffix": "suffix",
    "job_title": "title",
    "department": "department",
    "web_page": "website",
    "email": "email",
    "email2": "email2",
    "business_phone": "phone",
    "business_fax": "fax",
    "home_phone": "home_phone",
    "mobile_phone": "mobile",
}


class EmbeddedWriter:
    """The embedded demo CRM, written directly as `crm update-person` does: each row
    written gets a new UpdatedDate, so other mailboxes' syncs see the change."""

    def __init__(self, crm: SageCrm) -> None:
        self.crm = EmbeddedCrm(crm)
        self._widths: dict[str, int] | None = None

    def describe(self) -> str:
        return "on (the embedded demo CRM is written directly)"

    def write(self, person_id: int, changes: Mapping[str, str]) -> CrmWriteResult:
        unknown = sorted(set(changes) - set(EMBEDDED_OPTIONS))
        if unknown:
            return CrmWriteResult(f"not a write-back field: {', '.join(unknown)}")
        refused = self._too_long(changes)
        if refused:
            return CrmWriteResult(refused, refused=refused)
        try:
            self.crm.update_person(
                person_id, **{EMBEDDED_OPTIONS[k]: v for k, v in changes.items()}
            )
        except CrmError as exc:
            return CrmWriteResult(str(exc), requests=1)
        except SQLAlchemyError as exc:  # busy or unreachable: the next sync tries again
            raise CrmUnavailable(f"the CRM database is busy ({type(exc).__name__})", 1) from None
        return CrmWriteResult(requests=1)

    def _too_long(self, changes: Mapping[str, str]) -> str | None:
        """The same widths as a real install's (schema.py), read from the file as for one:
        the demo refuses what Sage would."""
        if self._widths is None:
            self._widths = column_widths(self.crm.crm.engine, ("Person", "Email", "Phone"))
        for name, value in changes.items():
            if name in PERSON_COLUMNS:
                column = f"Person.{PERSON_COLUMNS[name]}"
            else:  # the embedded CRM keeps a whole number in Phon_Number
                column = (
                    "Email.Emai_EmailAddress" if LINKED[name][0] == "email" else "Phone.Phon_Number"
                )
            why = too_long(name, value, self._widths.get(column))
            if why:
                return why
        return None

    def close(self) -> None:
        pass


def write_back_status(embedded: bool, sage_rest_url: str | None) -> str:
    """One line for `crm check` and `check-mailbox`: is write-back on, and how."""
    if embedded:
        return "write-back: on (the embedded demo CRM is written directly)"
    if sage_rest_url:
        return "write-back: on, through Sage CRM's REST API (SAGE_REST_URL)"
    return (
        "write-back: off (a real Sage CRM is written only through its REST API; "
        "set SAGE_REST_URL, SAGE_REST_USER and SAGE_REST_PASSWORD to turn it on)"
    )
