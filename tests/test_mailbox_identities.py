"""The state store keeps what a mailbox target learned about an address (migration 0007):
Graph's user object id, or the primary SMTP address of an EWS alias; on SQLite and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync_engine.store import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
    s = Store.open(url, tmp_path / "home")
    yield s
    s.close()


def test_an_identity_is_kept_per_target_and_address(store: Store) -> None:
    graph = "graph https://graph.microsoft.com/v1.0 tenant-1"
    assert store.mailbox_identity(graph, "ann@contoso.com") is None

    store.remember_mailbox_identity(graph, "Ann@Contoso.com ", "object-1")
    assert store.mailbox_identity(graph, "ann@contoso.com") == "object-1"
    assert (
        store.mailbox_identity("graph https://graph.microsoft.us/v1.0 tenant-1", "ann@contoso.com")
        is None
    )

    store.remember_mailbox_identity(graph, "ann@contoso.com", "object-2")  # the user was recreated
    assert store.mailbox_identity(graph, "ann@contoso.com") == "object-2"
