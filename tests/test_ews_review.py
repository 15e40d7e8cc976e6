"""Issue 20, item 4: the EWS target as Microsoft documents it.

- Without impersonation the service account is a delegate, and the DeleteItem operation
  reference says a delegate's DeleteItem with MoveToDeletedItems in the principal's mailbox
  fails with ErrorCannotDeleteObject: "a delegate must use the MoveItem operation".
- An e-mail entry picked from the address book is an EX address: its value is a legacy
  Exchange DN. It is resolved to SMTP with ResolveNames, or left alone in Outlook and never
  written back (refused as "not an email address", as issue 19 refuses any such value).

Through the engine, against the loopback EWS server (tests/servers/ews).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.ews import EwsServer, ews_server

from sync_engine.config import load_settings
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.service import Engine

ALICE = "alice@example.com"
MARIA = 1  # demo person: Maria Lopez, maria.lopez@designright.example
DN = (
    "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)"
    "/cn=Recipients/cn=5f1c2e3d4b6a4f0e9d8c7b6a5f4e3d2c-maria.l"
)


@pytest.fixture
def ews(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EwsServer]:
    with ews_server() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server


def engine_with(people: list[int]) -> tuple[Engine, object]:
    engine = Engine(load_settings())
    seed_demo(engine.crm)
    alice = engine.user(ALICE)
    engine.add(alice, people)
    assert engine.sync(alice).count("created") == len(people)
    return engine, alice


def test_a_delegate_moves_deleted_contacts_to_deleted_items(
    ews: EwsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EWS_IMPERSONATION", "false")  # FullAccess delegate, no impersonation
    engine, alice = engine_with([MARIA, 2])
    try:
        EmbeddedCrm(engine.crm).delete_person(MARIA)

        result = engine.sync(alice)

        assert result.count("deleted") == 1 and not result.failed and not result.error
        assert [c["crm_id"] for c in ews.contacts(ALICE)] == [2]
        assert [c["crm_id"] for c in ews.deleted_items(ALICE)] == [MARIA]  # restorable
        assert ews.moved_to_deleted_items == 1 and not ews.delete_types  # MoveItem only
    finally:
        engine.close()


def test_an_address_book_address_is_resolved_to_smtp_for_write_back(ews: EwsServer) -> None:
    engine, alice = engine_with([MARIA])
    try:
        ews.add_directory_entry(DN, "Maria Lopez (Sales)", "maria@designright.example")
        [mine] = ews.contacts(ALICE)
        ews.edit_contact(ALICE, mine["item_id"], email=DN)  # picked from the address book

        result = engine.sync(alice)

        assert result.count("written_back") == 1
        crm_email = engine.crm.people_by_ids([MARIA])[MARIA].fields.email
        assert crm_email == "maria@designright.example"  # the SMTP address, never the DN
        assert ews.requests_by_operation["ResolveNames"] == 1
        assert engine.sync(alice).write_requests == 0  # settled: seen as that address now
    finally:
        engine.close()


def test_an_unresolvable_address_book_address_is_left_alone(ews: EwsServer) -> None:
    engine, alice = engine_with([MARIA])
    try:
        before = engine.crm.people_by_ids([MARIA])[MARIA].fields.email
        [mine] = ews.contacts(ALICE)
        ews.edit_contact(ALICE, mine["item_id"], email=DN)  # nobody in the directory has it

        result = engine.sync(alice)

        assert result.count("written_back") == 0 and result.crm_requests == 0  # never sent
        [refused] = result.failed  # said, as any value that is no e-mail address (issue 19)
        assert refused.person_id == MARIA and "not an email address" in refused.detail
        assert engine.crm.people_by_ids([MARIA])[MARIA].fields.email == before
        assert ews.contacts(ALICE)[0]["email"] == DN  # and the contact keeps it
    finally:
        engine.close()


def test_only_our_contacts_address_book_addresses_are_resolved(ews: EwsServer) -> None:
    """ResolveNames is one round trip per address and sync: a user's own contacts (not
    linked, not tagged) are never compared with the CRM, so their EX addresses are not
    resolved."""
    engine, alice = engine_with([MARIA])
    try:
        ews.add_directory_entry(DN, "Maria Lopez (Sales)", "maria@designright.example")
        ews.add_contact(ALICE, first_name="Pat", last_name="Own", email=DN)  # the user's own
        ews.reset_counts()

        for _ in range(2):
            assert not engine.sync(alice).error

        assert ews.requests_by_operation["ResolveNames"] == 0
    finally:
        engine.close()
