"""The one protocol every mailbox target implements (like vdirsyncer's `Storage`).

A target is opened for one mailbox address. It lists the default Contacts folder in
pages and writes in batches; it never decides anything, the planner does. Each call
that reaches the server counts one in `requests`, so round trips can be measured.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from sync_engine.model import ContactChange, ContactFields, MailboxContact, NewContact, WriteResult


class MailboxError(Exception):
    """The whole mailbox cannot be served now (down, throttled past retries, no access).

    The message is plain words saying what to do; the run fails for this mailbox only.
    """


class MailboxAccessError(MailboxError):
    """Access is denied or the mailbox does not exist: an admin has to act."""


class MailboxCredentialsError(MailboxAccessError):
    """The service refused our own sign-in (a wrong or expired secret or password, an
    unknown app or tenant): every mailbox of that target fails until an admin fixes it."""


class MailboxNotFound(MailboxAccessError):
    """The service has no mailbox for this address (hybrid mode then asks the other one)."""


class MailboxIdentities(Protocol):
    """Where a target keeps what it learned about a mailbox address, so it asks only once.

    Graph keeps the user's object id (`/users/{id}` takes an object id or a UPN, not any
    e-mail address); EWS keeps the primary SMTP address (an alias gets
    ErrorNonPrimarySmtpAddress). `target` names the service (kind and endpoint), so a
    value learned from one tenant or server is never used against another. The state
    store implements this; `MemoryIdentities` is the in-process stand-in.
    """

    def mailbox_identity(self, target: str, address: str) -> str | None: ...

    def remember_mailbox_identity(self, target: str, address: str, value: str) -> None: ...


class Placement(Protocol):
    kind: str  # "graph" or "ews"
    why: str
    at: datetime | None  # None: ask again at the next sync


class Placements(Protocol):
    """Where MAILBOX_BACKEND=hybrid found each mailbox (the state store: state/targets.py)."""

    def placement(self, address: str) -> Placement | None: ...

    def place(self, address: str, kind: str, why: str, at: datetime | None = None) -> None: ...


class MemoryIdentities:
    """Identities kept for the life of the process (when no state store is at hand)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def mailbox_identity(self, target: str, address: str) -> str | None:
        with self._lock:
            return self._values.get((target, address.strip().lower()))

    def remember_mailbox_identity(self, target: str, address: str, value: str) -> None:
        with self._lock:
            self._values[(target, address.strip().lower())] = value


PROCESS_IDENTITIES = MemoryIdentities()


@runtime_checkable
class Mailbox(Protocol):
    """One mailbox's default Contacts folder."""

    address: str
    batch_size: int
    requests: int  # round trips made so far (listing pages + write batches + ...)
    kind: str  # "local", "ews" or "graph": which target serves it (metrics, status)
    # The service the item ids and saved state belong to (kind and endpoint, e.g. "ews
    # https://mail.contoso.com/EWS/Exchange.asmx"): after a change, they are not trusted.
    target_id: str

    def list_contacts(self) -> Iterator[list[MailboxContact]]:
        """Yield the whole folder, a page at a time, with only the fields the planner needs."""
        ...

    def create(self, items: Sequence[NewContact]) -> list[WriteResult]:
        """Create up to `batch_size` contacts; one result per item, in order."""
        ...

    def update(self, changes: Sequence[ContactChange]) -> list[WriteResult]:
        """Apply up to `batch_size` partial changes; one result per item, in order.

        A stale change key is not an error for the caller: the target re-reads the item
        and applies the change to the named fields only (CRM wins on mapped fields).
        """
        ...

    def delete(self, item_ids: Sequence[str]) -> list[WriteResult]:
        """Delete up to `batch_size` contacts; an item already gone counts as deleted."""
        ...

    def find(self, crm_ids: Sequence[int]) -> dict[int, list[MailboxContact]]:
        """The contacts carrying these CRM ids in their extended property, oldest first."""
        ...

    def as_held(self, fields: ContactFields) -> ContactFields:
        """CRM fields as this target can hold them (Graph has no empty e-mail slots), so
        a value it cannot keep apart is never taken for an edit."""
        ...

    def forget_state(self) -> None:
        """Drop what this target keeps about the folder between runs (Graph's delta link
        and picture): the next listing reads the whole folder again."""
        ...

    def check(self) -> list[str]:
        """Connect and look at the Contacts folder; return plain-words findings.

        Raises `MailboxError` with what the admin must do when the mailbox cannot be used.
        """
        ...

    def close(self) -> None: ...
