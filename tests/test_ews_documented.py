"""EWS does only what Exchange accepts (issue 11), against a stand-in that refuses the rest:
DeleteType, aliases (ErrorNonPrimarySmtpAddress), per-item ErrorServerBusy with its
back-off, schema order of <t:Contact>, and FindItem's 255-character cut."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from servers.ews import PASSWORD, USERNAME, EwsServer, ews_server

from sync_engine.config import Settings, load_settings
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.mailbox.base import MailboxError, MemoryIdentities
from sync_engine.mailbox.ews import EwsMailbox
from sync_engine.model import ContactFields, MailboxContact, NewContact
from sync_engine.service import Engine

ALICE = "alice@example.com"
ALIAS = "a.smith@example.com"
CATEGORY = "CRM Contact"
AUTH = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()


@pytest.fixture
def server() -> Iterator[EwsServer]:
    with ews_server() as srv:
        yield srv


def open_mailbox(server: EwsServer, address: str = ALICE, **kwargs: Any) -> EwsMailbox:
    values: dict[str, Any] = {k.lower(): v for k, v in server.env().items()}
    values.update(kwargs.pop("settings", {}))
    budget: dict[str, Any] = {"timeout": 0.5, "max_wait": 2.0, "base_delay": 0.01}
    budget.update(kwargs)
    budget.setdefault("identities", MemoryIdentities())
    return EwsMailbox(Settings(_env_file=None, **values), address, **budget)  # type: ignore[call-arg]


def person(n: int, **values: str) -> NewContact:
    fields = ContactFields.of(first_name=f"F{n}", last_name=f"L{n}", company="Acme", **values)
    return NewContact(fields=fields.with_derived(), categories=(CATEGORY,), crm_id=n)


def listed(mailbox: EwsMailbox) -> list[MailboxContact]:
    return [c for page in mailbox.list_contacts() for c in page]


def soap(operation: str, body: str) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
    xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header>
  <s:Body><m:{operation}{body}</m:{operation}></s:Body>
</s:Envelope>""".encode()


def response_code(answer: bytes) -> str:
    root = etree.fromstring(answer)
    codes = root.xpath("//*[local-name()='ResponseCode']")
    return codes[0].text if codes else ""


# ---- 6. recoverable deletes -------------------------------------------------------------------


def test_delete_moves_the_contact_to_deleted_items(server: EwsServer) -> None:
    box = open_mailbox(server)
    [made] = box.create([person(1)])
    server.edit_contact(ALICE, made.item_id, notes="met at the fair")  # the user's own notes

    assert box.delete([made.item_id])[0].ok

    assert server.contacts(ALICE) == []
    assert server.delete_types == {"MoveToDeletedItems": 1}
    [kept] = server.deleted_items(ALICE)
    assert kept["crm_id"] == 1 and kept["notes"] == "met at the fair"


def test_the_stand_in_wants_a_delete_type_from_the_schema(server: EwsServer) -> None:
    item_id = server.add_contact(ALICE, first_name="X")
    ids = f'<m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds>'
    for attrs in ("", ' DeleteType="Purge"'):
        status, answer, _ = server.handle(soap("DeleteItem", f"{attrs}>{ids}"), AUTH)
        assert (status, response_code(answer)) == (500, "ErrorSchemaValidation")
    assert len(server.contacts(ALICE)) == 1


# ---- 7. aliases ------------------------------------------------------------------------------


def test_an_alias_is_switched_to_the_primary_address_once_and_kept(server: EwsServer) -> None:
    server.add_alias(ALIAS, ALICE)
    kept = MemoryIdentities()
    box = open_mailbox(server, ALIAS, identities=kept)

    assert box.create([person(1)])[0].ok
    assert [c.crm_id for c in listed(box)] == [1]

    assert [c["crm_id"] for c in server.contacts(ALICE)] == [1]
    assert box.smtp_address == ALICE and box.address == ALIAS
    assert kept.mailbox_identity(f"ews {server.url}", ALIAS) == ALICE
    assert server.request_count == 3  # the refused CreateItem, the CreateItem, one FindItem
    # the next run starts with the primary address: no refused request
    server.reset_counts()
    again = open_mailbox(server, ALIAS, identities=kept)
    assert [c.crm_id for c in listed(again)] == [1] and server.request_count == 1
    assert any(ALICE in line and "alias" in line for line in again.check())


def test_an_alias_in_a_delegates_folder_mailbox_is_switched_too(server: EwsServer) -> None:
    server.add_alias(ALIAS, ALICE)
    box = open_mailbox(server, ALIAS, settings={"ews_impersonation": False})

    assert box.create([person(2)])[0].ok and [c.crm_id for c in listed(box)] == [2]
    assert [c["crm_id"] for c in server.contacts(ALICE)] == [2]


def test_the_engine_keeps_the_primary_address_in_the_state_store(
    home: Path, server: EwsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    primary = "alice.wong@example.com"
    server.add_alias(ALICE, primary)
    engine = Engine(load_settings())
    try:
        seed_demo(engine.crm)
        user = engine.user(ALICE)
        assert any(primary in line for line in engine.check_mailbox(user))
        assert engine.store.mailbox_identity(f"ews {server.url}", ALICE) == primary
        server.reset_counts()
        assert engine.check_mailbox(user) and server.request_count == 1
    finally:
        engine.close()


# ---- 8. per-item ErrorServerBusy ----------------------------------------------------------------


def test_an_item_busy_inside_a_batch_waits_its_back_off(server: EwsServer) -> None:
    box = open_mailbox(server)
    server.inject("item_busy", operation="CreateItem", item_index=1, back_off_ms=600)
    started = time.monotonic()

    results = box.create([person(n) for n in (1, 2, 3)])

    assert time.monotonic() - started >= 0.6  # not the 0.01 s base delay
    assert all(r.ok for r in results)
    assert sorted(c["crm_id"] for c in server.contacts(ALICE)) == [1, 2, 3]
    assert server.requests_by_operation["CreateItem"] == 2


def test_an_item_back_off_longer_than_the_run_may_wait_gives_up_for_this_run(
    server: EwsServer,
) -> None:
    box = open_mailbox(server, max_wait=1.0)
    server.inject("item_busy", operation="DeleteItem", item_index=0, back_off_ms=5000)
    item_id = server.add_contact(ALICE, first_name="X")
    with pytest.raises(MailboxError, match="asked to wait 5s"):
        box.delete([item_id])
    assert server.requests_by_operation["DeleteItem"] == 1


# ---- the schema's element order -------------------------------------------------------------------


def test_the_stand_in_refuses_contact_elements_out_of_schema_order(server: EwsServer) -> None:
    folder = '<m:SavedItemFolderId><t:DistinguishedFolderId Id="contacts"/></m:SavedItemFolderId>'
    wrong = "<t:Contact><t:Surname>Lee</t:Surname><t:GivenName>Ann</t:GivenName></t:Contact>"
    right = "<t:Contact><t:GivenName>Ann</t:GivenName><t:Surname>Lee</t:Surname></t:Contact>"
    attrs = ' MessageDisposition="SaveOnly">'
    status, answer, _ = server.handle(
        soap("CreateItem", f"{attrs}{folder}<m:Items>{wrong}</m:Items>"), AUTH
    )
    assert (status, response_code(answer)) == (500, "ErrorSchemaValidation")
    status, answer, _ = server.handle(
        soap("CreateItem", f"{attrs}{folder}<m:Items>{right}</m:Items>"), AUTH
    )
    assert (status, response_code(answer)) == (200, "NoError")


def test_everything_we_send_is_in_schema_order(server: EwsServer) -> None:
    box = open_mailbox(server)
    full = person(
        1,
        title="Dr",
        middle_name="B",
        suffix="Jr",
        job_title="Buyer",
        department="Sales",
        web_page="https://acme.example",
        email="f1@acme.example",
        business_phone="+1 555 0100",
        mobile_phone="+1 555 0101",
        street="1 Main St",
        city="Springfield",
        state="IL",
        postal_code="62701",
        country="USA",
    )
    assert box.create([full])[0].ok  # the stand-in would answer ErrorSchemaValidation


# ---- 9. FindItem cuts text at 255 characters ------------------------------------------------------


def test_a_value_longer_than_255_characters_is_listed_whole(server: EwsServer) -> None:
    long_street = "Building " + "x" * 291  # 300 characters
    box = open_mailbox(server)
    box.create([person(1, street=long_street), person(2)])
    server.reset_counts()

    contacts = {c.crm_id: c for c in listed(box)}

    assert contacts[1].fields.street == long_street
    assert server.requests_by_operation == {"FindItem": 1, "GetItem": 1}


def test_a_long_crm_value_is_not_rewritten_run_after_run(
    home: Path, server: EwsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    engine = Engine(load_settings())
    try:
        seed_demo(engine.crm)
        alice = engine.user(ALICE)
        crm = EmbeddedCrm(engine.crm)
        long_street = "Unit 4, " + "Industrial Estate Road " * 13  # 307 characters
        pid = crm.add_person(first="Long", last="Address", company="Far Ltd", street=long_street)
        engine.add(alice, [pid])
        assert engine.sync(alice).count("created") == 1
        [made] = server.contacts(ALICE)
        assert made["street"] == long_street.strip()

        assert engine.sync(alice).write_requests == 0  # rule 9

        crm.update_person(pid, title="Buyer")  # another field changes in the CRM
        server.record = True
        assert engine.sync(alice).count("updated") == 1
        [update] = [body for op, body in server.log if op == "UpdateItem"]
        assert b"JobTitle" in update and b"PhysicalAddress" not in update
        assert engine.sync(alice).write_requests == 0
    finally:
        engine.close()
