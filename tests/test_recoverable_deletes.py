"""DESIGN rule 6 on every target: a person deleted in the CRM leaves the Contacts folder for
Deleted Items, where the user can still restore it (with their own notes); never a hard
delete. Local: the target's Deleted Items table; EWS: DeleteType MoveToDeletedItems; Graph:
DELETE (contact-delete moves to Deleted Items), never permanentDelete."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from servers.ews import ews_server
from servers.graph import graph_server

from sync_engine.config import load_settings
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.mailbox.local import LocalMailbox
from sync_engine.service import Engine

ALICE = "alice@example.com"


def _local_deleted(engine: Engine, _server: Any) -> list[tuple[str, int | None]]:
    box = LocalMailbox(engine.settings.local_mailbox_url, ALICE)
    try:
        return [(c.fields.last_name, c.crm_id) for c in box.deleted()]
    finally:
        box.close()


def _ews_deleted(_engine: Engine, server: Any) -> list[tuple[str, int | None]]:
    assert set(server.delete_types) == {"MoveToDeletedItems"}
    return [(c["last_name"], c["crm_id"]) for c in server.deleted_items(ALICE)]


def _graph_deleted(_engine: Engine, server: Any) -> list[tuple[str, int | None]]:
    deleted = []
    for c in server.contacts(ALICE, folder="deleteditems"):
        crm = next((int(p["value"]) for p in c["singleValueExtendedProperties"]), None)
        deleted.append((c["surname"], crm))
    return deleted


TARGETS: dict[
    str, tuple[Callable[[], Any], Callable[[Engine, Any], list[tuple[str, int | None]]]]
] = {
    "local": (contextlib.nullcontext, _local_deleted),
    "ews": (ews_server, _ews_deleted),
    "graph": (graph_server, _graph_deleted),
}


@pytest.fixture(params=list(TARGETS))
def target(request, home, monkeypatch) -> Iterator[tuple[Engine, Any, Callable[..., Any]]]:  # type: ignore[no-untyped-def]
    start, deleted = TARGETS[request.param]
    with start() as server:
        for name, value in (server.env() if server else {}).items():
            monkeypatch.setenv(name, value)
        engine = Engine(load_settings())
        seed_demo(engine.crm)
        yield engine, server, deleted
        engine.close()


def test_a_person_deleted_in_the_crm_goes_to_deleted_items(target) -> None:  # type: ignore[no-untyped-def]
    engine, server, deleted = target
    alice = engine.user(ALICE)
    crm = EmbeddedCrm(engine.crm)
    pid = crm.add_person(first="Gone", last="Soon", company="Brief Ltd")
    stays = crm.add_person(first="Still", last="Here", company="Brief Ltd")
    engine.add(alice, [pid, stays])
    assert engine.sync(alice).count("created") == 2

    crm.delete_person(pid)
    result = engine.sync(alice)

    assert result.count("deleted") == 1 and result.error is None
    assert deleted(engine, server) == [("Soon", pid)]
    assert engine.sync(alice).write_requests == 0
