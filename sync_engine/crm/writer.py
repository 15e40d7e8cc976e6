"""Writing Outlook edits back to the CRM (issue 14): the `CrmWriter` protocol and the
embedded demo CRM's writer. A real Sage CRM is written through its REST API only
(sage_rest.py), never through its database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.crm.source import CrmError, SageCrm


class CrmUnavailable(Exception):
    """The whole CRM cannot take writes now (down, throttled past our patience, bad
    credentials): stop writing back this run; the edits are seen again next run."""

    def __init__(self, message: str, requests: int = 0) -> None:
        super().__init__(message)
        self.requests = requests


@dataclass(frozen=True)
class CrmWriteResult:
    error: str | None = None  # None on success; else why this one person was refused
    requests: int = 0  # round trips it took (retries included)

    @property
    def ok(self) -> bool:
        return self.error is None


class CrmWriter(Protocol):
    """Writes changed contact fields (model field names) to one CRM person. Shared by
    the syncs of every mailbox, possibly on several threads at once."""

    def describe(self) -> str: ...

    def write(self, person_id: int, changes: Mapping[str, str]) -> CrmWriteResult: ...

    def close(self) -> None: ...


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

    def describe(self) -> str:
        return "on (the embedded demo CRM is written directly)"

    def write(self, person_id: int, changes: Mapping[str, str]) -> CrmWriteResult:
        unknown = sorted(set(changes) - set(EMBEDDED_OPTIONS))
        if unknown:
            return CrmWriteResult(f"not a write-back field: {', '.join(unknown)}")
        try:
            self.crm.update_person(
                person_id, **{EMBEDDED_OPTIONS[k]: v for k, v in changes.items()}
            )
        except CrmError as exc:
            return CrmWriteResult(str(exc), requests=1)
        except SQLAlchemyError as exc:  # busy or unreachable: the next sync tries again
            raise CrmUnavailable(f"the CRM database is busy ({type(exc).__name__})", 1) from None
        return CrmWriteResult(requests=1)

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
