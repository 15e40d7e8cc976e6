"""Private files: the home is 0700 and every SQLite file in it 0600, whatever the umask.

Why: the databases hold salespeople's emails, Slack ids, the audit trail and the
contacts themselves; under the usual umask (022) they would be readable by every local
user. SQLite gives a database's -wal, -shm and -journal files the mode of the database
file itself (sqlite.org/src os_unix.c, findCreateFileMode), so creating the database
file 0600 first is enough for its companions.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600

# For our own SQLite files in WAL mode: fsync at checkpoints, not at every commit. A power
# cut may lose the last commits, never consistency (SQLite's "WAL mode ... synchronous=NORMAL"
# guarantee); a sync that loses its last state commit is re-done safely, since every
# created contact carries its CRM id and is found again before anything is created (rule 9).
# Per-commit fsyncs made about a third of a 1,000-mailbox cycle's time.
SYNCHRONOUS_NORMAL = "PRAGMA synchronous=NORMAL"
_COMPANIONS = ("", "-wal", "-shm", "-journal")


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) 0700; an existing directory of ours is made 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    _chmod(path, PRIVATE_DIR)
    return path


def private_sqlite(url: str) -> None:
    """Before SQLAlchemy opens a SQLite file URL: create the file 0600 (its directory
    0700 when we create it), and make an existing file and its companions 0600.
    Other URLs (PostgreSQL, SQL Server, in-memory SQLite) are left alone."""
    try:
        parsed = make_url(url)
    except Exception:  # not ours to judge here; opening it says what is wrong
        return
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return
    if database.startswith("file:"):
        return  # a URI filename: its options are the caller's business
    path = Path(database).expanduser()
    if not path.parent.exists():
        private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
    except OSError:
        return  # unreadable or a directory: opening it gives the clear error
    for suffix in _COMPANIONS:
        _chmod(Path(f"{path}{suffix}"), PRIVATE_FILE)


def _chmod(path: Path, mode: int) -> None:
    try:
        if (
            path.exists()
            and path.stat().st_uid == os.getuid()
            and (path.stat().st_mode & 0o777) != mode
        ):
            path.chmod(mode)
    except OSError:
        pass
