"""Writing Outlook edits back to the CRM (issue 14): the `CrmWriter` protocol and the
embedded demo CRM's writer. A real Sage CRM is written through its REST API only
(sage_rest.py), never through its database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from sync_engine.crm.embedded import OPTION_FIELDS, EmbeddedCrm, ValueTooLong
from sync_engine.crm.source import CrmError, SageCrm


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


# model field -> EmbeddedCrm.update_person option
EMBEDDED_OPTIONS = {field: option for option, field in OPTION_FIELDS.items()}
OUTLOOK_FIX = " (shorten it in Outlook)"  # a too-long value is the salesperson's to fix


class EmbeddedWriter:
    """The embedded demo CRM, written directly as `crm update-person` does (one
    transaction per person), with the same row decisions as the REST writer
    (row_writes.py): each row written gets a new UpdatedDate, so other mailboxes' syncs
    see the change."""

    def __init__(self, crm: SageCrm) -> None:
        self.crm = EmbeddedCrm(crm)

    def describe(self) -> str:
        return "on (the embedded demo CRM is written directly)"

    def write(self, person_id: int, changes: Mapping[str, str]) -> CrmWriteResult:
        unknown = sorted(set(changes) - set(EMBEDDED_OPTIONS))
        if unknown:
            return CrmWriteResult(f"not a write-back field: {', '.join(unknown)}")
        try:
            shown = self.crm.update_person(
                person_id, **{EMBEDDED_OPTIONS[k]: v for k, v in changes.items()}
            )
        except ValueTooLong as exc:
            refused = f"{exc}{OUTLOOK_FIX}"
            return CrmWriteResult(refused, refused=refused)
        except CrmError as exc:
            return CrmWriteResult(str(exc), requests=1)
        except SQLAlchemyError as exc:  # busy or unreachable: the next sync tries again
            raise CrmUnavailable(f"the CRM database is busy ({type(exc).__name__})", 1) from None
        return CrmWriteResult(requests=1, expected=shown)

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
