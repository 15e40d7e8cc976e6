"""The home and every file in it are private (0700 / 0600) whatever the umask (issue 15.6).

The databases hold salespeople's emails, Slack ids, the audit trail and the contacts."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync_engine.config import load_settings
from sync_engine.crm.embedded import seed_demo
from sync_engine.service import Engine


def modes(home: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(home.stat().st_mode)}
    for path in home.rglob("*"):
        found[str(path.relative_to(home))] = stat.S_IMODE(path.stat().st_mode)
    return found


def assert_private(home: Path) -> dict[str, int]:
    found = modes(home)
    loose = {name: oct(mode) for name, mode in found.items() if mode & 0o077}
    assert loose == {}, f"readable by others: {loose}"
    return found


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_real_process_under_umask_022_leaves_only_private_files(home: Path) -> None:
    env = {**os.environ, "CRM_CONTACTS_HOME": str(home)}
    exe = str(Path(sys.executable).parent / "crm-contacts")
    script = f"umask 022 && {exe} demo >/dev/null && {exe} scheduler --once >/dev/null"
    subprocess.run(["sh", "-c", script], env=env, check=True, timeout=120)
    found = assert_private(home)
    assert found["."] == 0o700
    for name in ("state.sqlite", "crm.sqlite", "mailboxes.sqlite"):
        assert found[name] == 0o600, name
    assert any(name.startswith("locks/") and name.endswith(".lock") for name in found)


def test_files_open_in_this_process_and_their_wal_files_are_private(
    home: Path, umask_022: None
) -> None:
    engine = Engine(load_settings())
    try:
        seed_demo(engine.crm)
        alice = engine.user("alice@example.com")
        engine.add(alice, [p.id for p in engine.search(alice, "Design Right").people])
        engine.sync(alice)
        # while the databases are open their -wal / -shm / -journal files exist too
        found = assert_private(home)
        assert found["."] == 0o700
    finally:
        engine.close()
    assert_private(home)


def test_an_existing_loose_home_is_made_private(home: Path, umask_022: None) -> None:
    home.mkdir(mode=0o755)
    (home / "state.sqlite").touch(mode=0o644)
    Engine(load_settings()).close()
    assert_private(home)
