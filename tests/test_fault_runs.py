"""Fault runs end to end: every kind of fault a real Exchange throws, injected during a
sync; the failures are reported with what to do, and a later clean sync leaves exactly
the right contacts, with no duplicate."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from servers.ews import EwsServer, ews_server
from servers.graph import GraphServer, graph_server

from sync_engine.config import load_settings
from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.mailbox import open_mailbox
from sync_engine.service import Engine

ALICE = "alice@example.com"
PEOPLE = 230  # three create batches of 100 on EWS, twelve $batch requests on Graph


def seeded(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[Engine, list[int]]:
    """An engine pointed at a server, and Alice with PEOPLE people in her list."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    engine = Engine(load_settings())
    crm = EmbeddedCrm(engine.crm)
    crm.add_user(ALICE, "Alice", "Walker")
    ids = [
        crm.add_person(first=f"P{i}", last=f"Person{i}", company="Bulk Ltd") for i in range(PEOPLE)
    ]
    engine.add(engine.user(ALICE), ids)
    return engine, ids


def listed_crm_ids(engine: Engine) -> list[int | None]:
    """The CRM ids in the mailbox, as the target lists them."""
    box = open_mailbox(engine.settings, ALICE)
    try:
        return [c.crm_id for page in box.list_contacts() for c in page]
    finally:
        box.close()


def exact(crm_ids: list[int | None], expected: set[int]) -> None:
    counts = Counter(i for i in crm_ids if i is not None)
    assert [i for i, n in counts.items() if n > 1] == [], "a person has two contacts"
    assert set(counts) == expected


@pytest.fixture
def server() -> Iterator[EwsServer]:
    with ews_server() as s:
        yield s


def test_ews_fault_run_then_clean_run(home, monkeypatch, server: EwsServer):  # type: ignore[no-untyped-def]
    engine, ids = seeded(server.env(), monkeypatch)
    alice = engine.user(ALICE)
    server.inject("server_busy", operation="FindItem", back_off_ms=50)
    server.inject("http_status", operation="CreateItem", status=503)
    server.inject("slow", operation="CreateItem", after_processing=True)  # written, answer late
    server.inject("drop", operation="CreateItem", after_processing=True)  # written, answer lost
    # the fourth item of every create request is refused, whatever else goes wrong
    server.inject("item_error", operation="CreateItem", item_index=3, times=100)
    faulty = engine.sync(alice)
    assert faulty.error is None, faulty.error
    failed = {o.person_id for o in faulty.failed}
    assert failed and all("check the person's fields in the CRM" in o.detail for o in faulty.failed)
    assert faulty.count("created") == PEOPLE - len(failed)
    exact([c["crm_id"] for c in server.contacts(ALICE)], set(ids) - failed)
    server.clear_faults()

    # updates and deletes under faults too
    crm = EmbeddedCrm(engine.crm)
    for pid in ids[:5]:
        crm.update_person(pid, title="Buyer")
    victim = next(i for i in ids[5:] if i not in failed)
    crm.delete_person(victim)
    server.inject("drop", operation="UpdateItem", after_processing=True)
    server.inject(
        "item_error", operation="DeleteItem", item_index=0, code="ErrorCannotDeleteObject"
    )
    second = engine.sync(alice)
    assert second.error is None and second.count("updated") == 5
    assert second.count("created") == len(failed)  # the refused ones, tried again
    assert [o.person_id for o in second.failed] == [victim]

    # a server that stays down fails this mailbox's run cleanly, in plain words
    server.inject("http_status", operation="FindItem", status=500, times=1000)
    down = engine.sync(alice)
    assert down.error and "500" in down.error and not down.outcomes
    server.clear_faults()

    clean = engine.sync(alice)
    assert clean.error is None and not clean.failed
    assert (clean.count("created"), clean.count("deleted")) == (0, 1)
    contacts = server.contacts(ALICE)
    exact([c["crm_id"] for c in contacts], set(ids) - {victim})
    assert all(c["job_title"] == "Buyer" for c in contacts if c["crm_id"] in ids[:5])
    assert engine.sync(alice).write_requests == 0
    engine.close()


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    with graph_server() as s:
        yield s


def test_graph_fault_run_then_clean_run(home, monkeypatch, graph: GraphServer):  # type: ignore[no-untyped-def]
    engine, ids = seeded(graph.env(), monkeypatch)
    alice = engine.user(ALICE)
    graph.inject("throttle", on="delta", retry_after=1)
    graph.inject("unavailable", on="batch", retry_after=1)
    graph.inject("lost_response", on="batch")  # processed, answer lost
    graph.inject("batch_item", index=4, status=400, times=100)  # refused in every batch
    graph.inject("expire_token")
    faulty = engine.sync(alice)
    assert faulty.error is None, faulty.error
    failed = {o.person_id for o in faulty.failed}
    assert failed and faulty.count("created") == PEOPLE - len(failed)
    exact(listed_crm_ids(engine), set(ids) - failed)
    graph.clear_faults()

    graph.inject("delta_gone")
    clean = engine.sync(alice)
    assert clean.error is None and clean.count("created") == len(failed) and not clean.failed
    exact(listed_crm_ids(engine), set(ids))
    assert engine.sync(alice).write_requests == 0
    engine.close()
