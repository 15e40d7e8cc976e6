"""Where each mailbox is served, and which target its links belong to (issue 20).

Two facts per mailbox address, in the state database (`mailbox_targets`):

- the *placement* (MAILBOX_BACKEND=hybrid only): "graph" or "ews", why, and when it was
  decided, so Graph is asked once a day, not at every sync;
- the *synced target*: the target (kind and endpoint) whose item ids the links hold and
  whose saved state (Graph's delta link) describes the folder. A sync on any other target
  trusts neither and finds the contacts again by their CRM id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from sync_engine import tables as t
from sync_engine.state.rows import upsert
from sync_engine.store import as_utc, utcnow

# The synced target after `crm-contacts mailbox reset`: no target's item ids are trusted.
FORGOTTEN = "(reset)"


@dataclass(frozen=True)
class Placement:
    kind: str  # "graph" or "ews"
    why: str
    at: datetime | None  # None: to be asked again at the next sync (after a failure)


class TargetState:
    """The `mailbox_targets` rows, by lower-case mailbox address."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- hybrid placement ---------------------------------------------------------------

    def placement(self, address: str) -> Placement | None:
        row = self._row(address)
        if row is None or not row.placed:
            return None
        return Placement(row.placed, row.placed_why or "", as_utc(row.placed_at))

    def place(self, address: str, kind: str, why: str, at: datetime | None = None) -> None:
        self._put(address, placed=kind, placed_why=why, placed_at=at or utcnow())

    def recheck(self, address: str) -> None:
        """Decide the placement again at the next sync (after a failure, or a reset)."""
        self._put(address, placed_at=None)

    # -- the target the links belong to ------------------------------------------------

    def synced_target(self, address: str) -> str | None:
        """The target of the last good sync; None when unknown (state from before issue
        20: item ids are then trusted as they were, and checked by CRM id)."""
        row = self._row(address)
        return row.synced_target if row is not None else None

    def synced_on(self, address: str, target: str) -> None:
        self._put(address, synced_target=target, synced_at=utcnow())

    def forget(self, address: str) -> None:
        """Trust no target's item ids or saved state for this mailbox (`mailbox reset`)."""
        self._put(address, synced_target=FORGOTTEN, synced_at=utcnow(), placed_at=None)

    # -- rows ---------------------------------------------------------------------------

    def _row(self, address: str):  # type: ignore[no-untyped-def]
        m = t.mailbox_targets
        # a lone read: autocommit spares the BEGIN and ROLLBACK round trips (Store.reading)
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return conn.execute(select(m).where(m.c.address == _key(address))).first()

    def _put(self, address: str, **values: object) -> None:
        with self.engine.begin() as conn:
            upsert(conn, t.mailbox_targets, {"address": _key(address)}, values)


def _key(address: str) -> str:
    return address.strip().lower()
