"""Locks that die with their holder: one sync per mailbox, one build of the people index.

PostgreSQL: a session advisory lock on a connection of its own, released by the server
when the holder's connection dies. SQLite: an flock on a file under the home's `locks/`,
released by the kernel when the holder dies. Either way a process killed by SIGKILL or the
OOM killer never leaves a lock behind, so nothing needs a timeout to recover.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from sync_engine.files import open_lock_file

_TRY_LOCK = text("SELECT pg_try_advisory_lock(:k)")
_UNLOCK = text("SELECT pg_advisory_unlock(:k)")


class LockBusy(Exception):
    """Another process (or another holder in this one) has the lock."""


def lock_key(name: str) -> int:
    """A signed 64-bit key for `name` (PostgreSQL advisory locks take a bigint)."""
    digest = hashlib.blake2b(f"crm-contacts:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def held(
    engine: Engine, home: Path, name: str, busy: Callable[[], Exception] | None = None
) -> Iterator[None]:
    """Hold the lock called `name` for the block, or raise `busy()` (LockBusy) at once."""
    key = lock_key(name)
    busy = busy or (lambda: LockBusy(name))
    if engine.dialect.name == "postgresql":
        # autocommit: the lock is the session's, no transaction needed (no BEGIN/COMMIT
        # round trips around the lock and the unlock)
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = conn.execute(_TRY_LOCK, {"k": key}).scalar()
            conn.commit()
            if not got:
                raise busy()
            try:
                yield
            finally:
                conn.execute(_UNLOCK, {"k": key})
                conn.commit()
        finally:
            conn.close()
        return
    fd = open_lock_file(home / "locks" / f"{key & 0xFFFFFFFFFFFFFFFF:016x}.lock")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy() from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_held(engine: Engine, home: Path, name: str) -> bool:
    """Whether someone, in any process, holds the lock called `name` right now."""
    key = lock_key(name)
    if engine.dialect.name == "postgresql":
        # advisory locks belong to one database; a bigint key shows as classid (high 32
        # bits) and objid (low 32 bits) with objsubid 1 (PostgreSQL docs, pg_locks)
        sql = text(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1 AND granted)"
        )
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        with engine.connect() as conn:
            return bool(
                conn.execute(sql, {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF}).scalar()
            )
    try:
        with held(engine, home, name):
            return False
    except LockBusy:
        return True
