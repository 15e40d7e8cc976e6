"""Private files: the home is 0700 and every SQLite file in it 0600, whatever the umask.

Why: the databases hold salespeople's emails, Slack ids, the audit trail and the
contacts themselves; under the usual umask (022) they would be readable by every local
user. SQLite gives a database's -wal, -shm and -journal files the mode of the database
file itself (sqlite.org/src os_unix.c, findCreateFileMode), so creating the database
file 0600 first is enough for its companions.

And a home we did not make safe is refused, in one line (issue 22.5): one owned by
another user, or writable by every user, may hold files someone planted (a `.env`
that points the sync at their server, a database of their choosing); a symbolic link
where a database, its companions or a lock file go would make us write wherever it
points. Nothing is followed or fixed silently there.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from sync_engine.config import ConfigError


class UnsafeHome(ConfigError):
    """The home, or a file in it, is not safely ours; the message says what to do."""


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600

# For our own SQLite files in WAL mode: fsync at checkpoints, not at every commit. A power
# cut may lose the last commits, never consistency (SQLite's "WAL mode ... synchronous=NORMAL"
# guarantee); a sync that loses its last state commit is re-done safely, since every
# created contact carries its CRM id and is found again before anything is created (rule 9).
# Per-commit fsyncs made about a third of a 1,000-mailbox cycle's time.
SYNCHRONOUS_NORMAL = "PRAGMA synchronous=NORMAL"
_COMPANIONS = ("", "-wal", "-shm", "-journal")


def check_home(path: Path) -> None:
    """UnsafeHome unless `path` (when it exists) is a directory of this user that not
    every user may write to. A group- or world-readable home of ours is fine here: the
    callers make it 0700."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UnsafeHome(f"cannot use {path} as the home: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeHome(f"{path} is not a directory; set CRM_CONTACTS_HOME to a directory")
    if info.st_uid != os.geteuid():
        raise UnsafeHome(
            f"{path} belongs to another user (uid {info.st_uid}), so its files may have been "
            "planted; use a home of your own (CRM_CONTACTS_HOME) or have it chowned to you"
        )
    if info.st_mode & stat.S_IWOTH:
        raise UnsafeHome(
            f"{path} is writable by every user, so its files may have been planted; check "
            "what is in it, then chmod 700 it (or use another CRM_CONTACTS_HOME)"
        )


def no_link(path: Path) -> None:
    """UnsafeHome when `path` is a symbolic link: we never write through one."""
    if path.is_symlink():
        raise UnsafeHome(
            f"{path} is a symbolic link (to {os.readlink(path)}); crm-contacts does not "
            "follow links among its files: remove it, or point the setting at the real file"
        )


def open_lock_file(path: Path) -> int:
    """Open (create 0600) a lock file without following a link planted in its place."""
    private_dir(path.parent)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, PRIVATE_FILE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            no_link(path)
        raise


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) 0700; an existing directory of ours is made 0700.
    UnsafeHome for one that is another user's, writable by all, or a link to elsewhere."""
    check_home(path)
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
    for suffix in _COMPANIONS:  # a planted link would make SQLite write where it points
        no_link(Path(f"{path}{suffix}"))
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, PRIVATE_FILE))
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link planted between the look and the open
            no_link(path)
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
