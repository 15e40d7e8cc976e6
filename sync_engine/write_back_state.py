"""What write-back remembers between runs (issue 19): the pause after Sage CRM refused
our REST login, and Email/Phone rows we created but could not link or delete.

The pause: every further try with a wrong password counts towards Sage's "Account
Lockout Threshold" (Sage CRM help, User Configuration fields), after which the account
is locked for every integration using it. So a 401 stops all write-back, across
processes, until SAGE_REST_URL, SAGE_REST_USER or SAGE_REST_PASSWORD change (compared as
a salted PBKDF2 hash, never stored in clear) or an admin's `crm check` logs in again.
`write_back_paused(store)` is the one query for it (status, check-mailbox, the digest,
admin alerts).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import delete, insert, select

from sync_engine import tables as t
from sync_engine.config import Settings
from sync_engine.store import Store, utcnow

_ITERATIONS = 100_000

PAUSED_FOR_SALESPERSON = (
    "Your Outlook edits are not being written to the CRM for now (write-back is paused); "
    "they stay in Outlook and go once your admin has fixed it. Your admin has the details."
)


def _credentials(settings: Settings) -> bytes:
    password = settings.sage_rest_password.get_secret_value() if settings.sage_rest_password else ""
    return "\n".join(
        (settings.sage_rest_url or "", settings.sage_rest_user or "", password)
    ).encode()


def credentials_hash(settings: Settings, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", _credentials(settings), salt, _ITERATIONS)
    return f"pbkdf2-sha256${_ITERATIONS}${salt.hex()}${digest.hex()}"


def _same_credentials(settings: Settings, stored: str) -> bool:
    try:
        _, iterations, salt, digest = stored.split("$")
        again = hashlib.pbkdf2_hmac(
            "sha256", _credentials(settings), bytes.fromhex(salt), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(again.hex(), digest)


def pause_write_back(store: Store, settings: Settings, reason: str) -> None:
    """Stop write-back: Sage refused the login (`reason` is the admin's, in Sage's words)."""
    row = {"id": 1, "since": utcnow(), "reason": reason, "credentials": credentials_hash(settings)}
    with store.engine.begin() as conn:
        conn.execute(delete(t.write_back_pause))
        conn.execute(insert(t.write_back_pause).values(row))


def paused_since(store: Store) -> tuple[datetime, str] | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(t.write_back_pause.c.since, t.write_back_pause.c.reason)).first()
    return (row[0], row[1]) if row else None


def write_back_paused(store: Store) -> str | None:
    """Why write-back is paused, for an admin (when, Sage's words, what to do), or None."""
    found = paused_since(store)
    if found is None:
        return None
    since, reason = found
    return (
        f"write-back paused since {since:%Y-%m-%d %H:%M} UTC: {reason}. Nothing is sent to "
        "Sage CRM until SAGE_REST_USER or SAGE_REST_PASSWORD changes or an admin runs "
        "`crm-contacts crm check`: every failed login counts towards Sage's Account Lockout "
        "Threshold, and a locked account stops every integration that uses it"
    )


def resume_write_back(store: Store) -> bool:
    """Lift the pause (credentials changed, or `crm check` logged in); True if it was on."""
    with store.engine.begin() as conn:
        return bool(conn.execute(delete(t.write_back_pause)).rowcount)


def resume_if_credentials_changed(store: Store, settings: Settings) -> bool:
    """At start: a pause recorded under other SAGE_REST_* settings no longer holds."""
    with store.engine.connect() as conn:
        stored = conn.execute(select(t.write_back_pause.c.credentials)).scalar()
    if stored is None or _same_credentials(settings, stored):
        return False
    return resume_write_back(store)


# -- Email/Phone rows created but not linked ----------------------------------------------


class OrphanRows:
    """Rows we created in Sage whose link failed and whose delete failed too: the next
    write-back of the same person and type reuses the row instead of making another."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def find(self, kind: str, person_id: int, link_type: str) -> int | None:
        o = t.crm_orphan_rows
        with self.store.engine.connect() as conn:
            return conn.execute(
                select(o.c.row_id)
                .where(o.c.kind == kind, o.c.person_id == person_id, o.c.link_type == link_type)
                .order_by(o.c.row_id)
                .limit(1)
            ).scalar()

    def remember(self, kind: str, row_id: int, person_id: int, link_type: str) -> None:
        values = {
            "kind": kind,
            "row_id": row_id,
            "person_id": person_id,
            "link_type": link_type,
            "created_at": utcnow(),
        }
        with self.store.engine.begin() as conn:
            o = t.crm_orphan_rows
            conn.execute(delete(o).where(o.c.kind == kind, o.c.row_id == row_id))
            conn.execute(insert(o).values(values))

    def forget(self, kind: str, row_id: int) -> None:
        o = t.crm_orphan_rows
        with self.store.engine.begin() as conn:
            conn.execute(delete(o).where(o.c.kind == kind, o.c.row_id == row_id))
