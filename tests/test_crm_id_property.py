"""Issue 20, item 1: one identity for our CRM id property on both targets.

EWS and Graph write the same named property (property set and name, crm_id.py), so a
contact made on one target is ours on the other. A contact carrying the property set the
Graph target used before (6d1c8f3a-…) is recognised on both and rewritten to the one set
at its next write. Against the loopback servers, on the wire.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.ews import ews_server
from servers.graph import graph_server

from sync_engine.config import Settings, load_settings
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.mailbox.base import MemoryIdentities
from sync_engine.mailbox.crm_id import LEGACY_PROPERTY_SETS, PROPERTY_NAME, PROPERTY_SET
from sync_engine.mailbox.ews import EwsMailbox
from sync_engine.mailbox.graph import GraphMailbox
from sync_engine.model import ContactFields, NewContact
from sync_engine.service import Engine

ALICE = "alice@example.com"
TAG = "CRM Contact"
ONE = f"Integer {{{PROPERTY_SET}}} Name {PROPERTY_NAME}"
LEGACY = f"Integer {{{LEGACY_PROPERTY_SETS[0]}}} Name {PROPERTY_NAME}"
MARIA = 1  # demo person: Maria Lopez, Design Right Inc.


@pytest.fixture(params=["ews", "graph"])
def target(request, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:  # type: ignore[no-untyped-def]
    servers = {"ews": ews_server, "graph": graph_server}
    with servers[request.param]() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield request.param, server


def extended_of(kind: str, server: object) -> dict[str, str]:
    """The CRM id properties Alice's only contact carries, as {property id: value}."""
    if kind == "ews":
        [item] = server.contacts(ALICE)  # type: ignore[attr-defined]
        return {
            f"Integer {{{key[1]}}} Name {key[3]}": str(value)
            for key, value in item["extended"].items()
            if key[3] == PROPERTY_NAME
        }
    [item] = server.contacts(ALICE)  # type: ignore[attr-defined]
    return {
        p["id"]: p["value"]
        for p in item["singleValueExtendedProperties"]
        if p["id"].endswith(PROPERTY_NAME)
    }


def test_both_targets_write_the_same_named_property(target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    kind, server = target
    settings = Settings(crm_contacts_home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    opened = {"ews": EwsMailbox, "graph": GraphMailbox}[kind]
    box = opened(settings, ALICE, identities=MemoryIdentities())
    fields = ContactFields.of(first_name="Pat", last_name="Jones").with_derived()
    try:
        assert box.create([NewContact(fields, (TAG,), 42)])[0].ok
    finally:
        box.close()

    assert extended_of(kind, server) == {ONE: "42"}


def test_a_legacy_property_is_recognised_and_rewritten_at_the_next_write(target) -> None:  # type: ignore[no-untyped-def]
    kind, server = target
    engine = Engine(load_settings())
    try:
        seed_demo(engine.crm)
        maria = engine.crm.people_by_ids([MARIA])[MARIA].fields
        names = {"first_name": maria.first_name, "last_name": maria.last_name}
        if kind == "ews":  # e.g. moved back from Exchange Online, made by the Graph target
            server.add_contact(
                ALICE, **names, company=maria.company, categories=[TAG], legacy_crm_id=MARIA
            )
        else:  # made by the Graph target before issue 20
            body = {"givenName": names["first_name"], "surname": names["last_name"]}
            server.add_contact(ALICE, {**body, "categories": [TAG]}, extended={LEGACY: str(MARIA)})
        alice = engine.user(ALICE)
        engine.add(alice, [MARIA])

        first = engine.sync(alice)

        assert first.count("created") == 0 and first.count("linked") == 1  # no twin
        assert [e.reason for e in engine.why(alice, MARIA) if e.action == "linked"] == [
            "found again by its CRM id"
        ]
        EmbeddedCrm(engine.crm).update_person(MARIA, title="Chief Executive")
        later = engine.sync(alice)
        assert later.count("updated") == 1 and later.write_requests == 1
        rewritten = extended_of(kind, server)
        assert rewritten[ONE] == str(MARIA)
        # EWS deletes the legacy property; Graph cannot delete one, so it holds 0 (none)
        assert rewritten.get(LEGACY) in (None, "0")
        assert engine.sync(alice).write_requests == 0  # and it stays ours, with no write
    finally:
        engine.close()
