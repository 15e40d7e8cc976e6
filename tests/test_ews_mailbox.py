"""EwsMailbox against the loopback EWS server: real HTTP, real SOAP, exchangelib's parsing.

Retry budgets are small here (timeouts of a fraction of a second, millisecond back-offs)
so every fault kind is exercised and the file stays fast.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from servers.ews import PASSWORD, EwsServer, ews_server

from sync_engine.config import ConfigError, Settings
from sync_engine.mailbox.base import Mailbox, MailboxAccessError, MailboxError
from sync_engine.mailbox.ews import EwsMailbox, parse_version
from sync_engine.model import ContactChange, ContactFields, MailboxContact, NewContact

ALICE = "alice@example.com"
BOB = "bob@example.com"
CATEGORY = "CRM Contact"


@pytest.fixture
def server() -> Iterator[EwsServer]:
    with ews_server() as srv:
        yield srv


def settings_for(server: EwsServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {k.lower(): v for k, v in server.env().items()}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def open_mailbox(server: EwsServer, address: str = ALICE, **kwargs: Any) -> EwsMailbox:
    overrides = kwargs.pop("settings", {})
    budget: dict[str, Any] = {"timeout": 0.5, "max_wait": 2.0, "base_delay": 0.01}
    budget.update(kwargs)
    return EwsMailbox(settings_for(server, **overrides), address, **budget)


def person(n: int, **values: str) -> NewContact:
    fields = ContactFields.of(
        first_name=f"First{n}",
        last_name=f"Last{n}",
        company="Acme Ltd",
        email=f"p{n}@acme.example",
        **values,
    ).with_derived()
    return NewContact(fields=fields, categories=(CATEGORY,), crm_id=n)


def listed(mailbox: EwsMailbox) -> list[MailboxContact]:
    return [c for page in mailbox.list_contacts() for c in page]


# -- the protocol and the basic round trip -------------------------------------------------


def test_implements_the_mailbox_protocol(server: EwsServer) -> None:
    assert isinstance(open_mailbox(server), Mailbox)


def test_every_mapped_field_round_trips(server: EwsServer) -> None:
    mailbox = open_mailbox(server)
    fields = ContactFields.of(
        title="Dr.",
        first_name="Ann",
        middle_name="B.",
        last_name="Lee",
        suffix="Jr.",
        company="Acme Ltd",
        job_title="Buyer",
        department="Purchasing",
        web_page="https://acme.example",
        email="ann@acme.example",
        business_phone="+44 20 7946 0000",
        mobile_phone="+44 7700 900000",
        street="1 High Street",
        city="London",
        state="Greater London",
        postal_code="EC1A 1BB",
        country="United Kingdom",
    ).with_derived()
    [result] = mailbox.create([NewContact(fields=fields, categories=(CATEGORY,), crm_id=7)])
    assert result.ok and result.item_id and result.change_key

    [contact] = listed(mailbox)
    assert contact.fields == fields
    assert contact.crm_id == 7
    assert contact.categories == (CATEGORY,)
    assert contact.item_id == result.item_id and contact.change_key == result.change_key
    assert contact.created_at

    # What a user sees in Outlook: Title is the salutation, not a visible CRM id.
    [stored] = server.contacts(ALICE)
    assert stored["title"] == "Dr." and stored["crm_id"] == 7
    assert stored["display_name"] == "Ann B. Lee" and stored["file_as"] == "Lee, Ann B."


def test_listing_pages_and_counts_one_request_per_page(server: EwsServer) -> None:
    for n in range(23):
        server.add_contact(ALICE, first_name=f"U{n}", last_name="User", categories=["Mine"])
    mailbox = open_mailbox(server, page_size=10)
    server.reset_counts()
    pages = list(mailbox.list_contacts())
    assert [len(p) for p in pages] == [10, 10, 3]
    assert server.requests_by_operation == {"FindItem": 3}
    assert mailbox.requests == 3
    assert len({c.item_id for p in pages for c in p}) == 23
    assert all(c.crm_id is None and c.categories == ("Mine",) for p in pages for c in p)


def test_contacts_deleted_in_outlook_during_the_listing_make_no_other_one_vanish(
    server: EwsServer,
) -> None:
    ids = [server.add_contact(ALICE, first_name=f"U{n:02d}") for n in range(30)]
    mailbox = open_mailbox(server, page_size=10)
    seen: list[str] = []
    for number, page in enumerate(mailbox.list_contacts()):
        seen += [c.item_id for c in page]
        if number == 0:  # the user deletes three contacts already read, between two pages
            for item_id in ids[:3]:
                server.delete_contact(ALICE, item_id)
            server.add_contact(ALICE, first_name="New")  # and adds one
    assert set(ids[3:]) <= set(seen)  # nobody still there was skipped
    assert len(seen) == len(set(seen))  # and nobody is listed twice
    # 3 pages when nothing changes; here one step back and one page more
    assert server.requests_by_operation["FindItem"] == mailbox.requests == 5


def test_pages_overlap_by_one_item_without_costing_a_request(server: EwsServer) -> None:
    for n in range(30):
        server.add_contact(ALICE, first_name=f"U{n:02d}")
    mailbox = open_mailbox(server, page_size=10)
    assert [len(p) for p in mailbox.list_contacts()] == [10, 10, 10]
    assert mailbox.requests == 3


def test_listing_follows_a_server_that_returns_short_pages(server: EwsServer) -> None:
    server.page_limit = 4  # like EWSFindCountLimit: fewer than asked for
    for n in range(10):
        server.add_contact(ALICE, first_name=f"U{n}")
    mailbox = open_mailbox(server, page_size=100)
    assert len(listed(mailbox)) == 10
    assert mailbox.requests == 3


def test_empty_folder_costs_one_request(server: EwsServer) -> None:
    mailbox = open_mailbox(server)
    assert list(mailbox.list_contacts()) == []
    assert mailbox.requests == 1


def test_mailboxes_are_kept_apart_by_impersonation(server: EwsServer) -> None:
    open_mailbox(server, ALICE).create([person(1)])
    open_mailbox(server, BOB).create([person(2), person(3)])
    assert [c.crm_id for c in listed(open_mailbox(server, ALICE))] == [1]
    assert sorted(c.crm_id for c in listed(open_mailbox(server, BOB))) == [2, 3]
    assert [c["crm_id"] for c in server.contacts(ALICE)] == [1]


def test_create_update_delete_round_trip(server: EwsServer) -> None:
    mailbox = open_mailbox(server)
    [created] = mailbox.create([person(1)])
    change = ContactChange(
        item_id=created.item_id or "",
        change_key=created.change_key or "",
        set_fields=(("job_title", "CEO"), ("city", "Paris")),
    )
    [updated] = mailbox.update([change])
    assert updated.ok and updated.item_id == created.item_id
    assert updated.change_key != created.change_key
    [contact] = listed(mailbox)
    assert contact.fields.job_title == "CEO" and contact.fields.city == "Paris"
    assert contact.change_key == updated.change_key

    [deleted] = mailbox.delete([created.item_id or ""])
    assert deleted.ok
    assert server.contacts(ALICE) == []


def test_title_and_names_can_be_updated(server: EwsServer) -> None:
    mailbox = open_mailbox(server)
    [created] = mailbox.create([person(1, title="Mr.")])
    change = ContactChange(
        item_id=created.item_id or "",
        change_key=created.change_key or "",
        set_fields=(
            ("title", "Dr."),
            ("first_name", "Ann"),
            ("display_name", "Ann Last1"),
            ("file_as", "Last1, Ann"),
        ),
    )
    assert mailbox.update([change])[0].ok
    [contact] = listed(mailbox)
    assert contact.fields.title == "Dr." and contact.fields.first_name == "Ann"
    assert contact.fields.display_name == "Ann Last1" and contact.fields.file_as == "Last1, Ann"


def test_delete_of_an_item_already_gone_is_success(server: EwsServer) -> None:
    mailbox = open_mailbox(server)
    [created] = mailbox.create([person(1)])
    server.delete_contact(ALICE, created.item_id or "")
    [result] = mailbox.delete([created.item_id or ""])
    assert result.ok and result.item_id == created.item_id


# -- the CRM id, categories, partial updates --------------------------------------------------


def test_crm_id_extended_property_can_be_set_and_cleared(server: EwsServer) -> None:
    item_id = server.add_contact(ALICE, first_name="Ann", last_name="Lee", categories=["Mine"])
    mailbox = open_mailbox(server)
    [contact] = listed(mailbox)
    assert contact.crm_id is None

    link = ContactChange(
        item_id=item_id,
        change_key=contact.change_key,
        set_crm_id=99,
        categories=("Mine", CATEGORY),
    )
    [result] = mailbox.update([link])
    assert result.ok
    [contact] = listed(mailbox)
    assert contact.crm_id == 99 and contact.categories == ("Mine", CATEGORY)

    unlink = ContactChange(
        item_id=item_id, change_key=contact.change_key, clear_crm_id=True, categories=("Mine",)
    )
    assert mailbox.update([unlink])[0].ok
    [contact] = listed(mailbox)
    assert contact.crm_id is None and contact.categories == ("Mine",)
    assert server.contacts(ALICE)[0]["extended"] == {}


def test_removing_the_last_category_deletes_the_field(server: EwsServer) -> None:
    mailbox = open_mailbox(server)
    [created] = mailbox.create([person(1)])
    change = ContactChange(
        item_id=created.item_id or "", change_key=created.change_key or "", categories=()
    )
    assert mailbox.update([change])[0].ok
    assert server.contacts(ALICE)[0]["categories"] == []


def test_partial_update_leaves_everything_else_alone(server: EwsServer) -> None:
    item_id = server.add_contact(
        ALICE,
        first_name="Ann",
        last_name="Lee",
        email="ann@acme.example",
        email2="ann@home.example",
        business_phone="+1 555 0100",
        home_phone="+1 555 0199",
        street="1 Main St",
        city="Springfield",
        home_city="Shelbyville",
        nickname="Annie",
        notes="met at the fair",
        categories=["Mine", CATEGORY],
        crm_id=5,
    )
    mailbox = open_mailbox(server)
    [contact] = listed(mailbox)
    change = ContactChange(
        item_id=item_id,
        change_key=contact.change_key,
        set_fields=(
            ("email", "ann@new.example"),
            ("business_phone", "+1 555 0101"),
            ("city", "Capital City"),
            ("mobile_phone", "+1 555 0102"),
        ),
    )
    assert mailbox.update([change])[0].ok
    [stored] = server.contacts(ALICE)
    assert stored["email"] == "ann@new.example"
    assert stored["business_phone"] == "+1 555 0101"
    assert stored["mobile_phone"] == "+1 555 0102"
    assert stored["city"] == "Capital City"
    # Untouched: the other entries of the same indexed fields, unmapped fields, the id.
    assert stored["email2"] == "ann@home.example"
    assert stored["home_phone"] == "+1 555 0199"
    assert stored["street"] == "1 Main St"
    assert stored["home_city"] == "Shelbyville"
    assert stored["nickname"] == "Annie" and stored["notes"] == "met at the fair"
    assert stored["categories"] == ["Mine", CATEGORY] and stored["crm_id"] == 5
    assert stored["first_name"] == "Ann" and stored["last_name"] == "Lee"


def test_a_blank_in_the_change_never_erases(server: EwsServer) -> None:
    item_id = server.add_contact(ALICE, first_name="Ann", job_title="Buyer")
    mailbox = open_mailbox(server)
    [contact] = listed(mailbox)
    change = ContactChange(
        item_id=item_id, change_key=contact.change_key, set_fields=(("job_title", "  "),)
    )
    assert mailbox.update([change])[0].ok
    assert server.contacts(ALICE)[0]["job_title"] == "Buyer"


def test_an_empty_change_costs_no_request(server: EwsServer) -> None:
    mailbox = open_mailbox(server)
    [result] = mailbox.update([ContactChange(item_id="x", change_key="ck")])
    assert result.ok and mailbox.requests == 0


def test_stale_change_key_rereads_and_crm_wins_on_mapped_fields_only(server: EwsServer) -> None:
    mailbox = open_mailbox(server)
    [created] = mailbox.create([person(1, job_title="Buyer", city="Leeds")])
    # The user edits the contact in Outlook after our listing: a new change key.
    server.edit_contact(
        ALICE,
        created.item_id or "",
        job_title="Head Buyer",
        nickname="Firsty",
        categories=[CATEGORY, "Golf"],
    )
    server.reset_counts()
    change = ContactChange(
        item_id=created.item_id or "",
        change_key=created.change_key or "",  # stale now
        set_fields=(("job_title", "Director"),),
        categories=(CATEGORY,),  # computed from the old listing
    )
    [result] = mailbox.update([change])
    assert result.ok and result.change_key != created.change_key
    [stored] = server.contacts(ALICE)
    assert stored["job_title"] == "Director"  # CRM wins on a mapped field
    assert stored["nickname"] == "Firsty" and stored["city"] == "Leeds"  # the rest is kept
    assert stored["categories"] == ["Golf", CATEGORY]  # the user's new category is kept
    assert server.requests_by_operation == {"UpdateItem": 2, "GetItem": 1}


def test_stale_change_key_of_a_deleted_item_is_not_found(server: EwsServer) -> None:
    mailbox = open_mailbox(server)
    [created] = mailbox.create([person(1)])
    server.delete_contact(ALICE, created.item_id or "")
    change = ContactChange(
        item_id=created.item_id or "",
        change_key=created.change_key or "",
        set_fields=(("city", "Paris"),),
    )
    [result] = mailbox.update([change])
    assert not result.ok and result.error_kind == "not_found"
    assert "no longer exists" in (result.error or "")


# -- batches -------------------------------------------------------------------------------


def test_thousand_creates_cost_ceil_n_over_batch_and_listing_costs_pages(
    server: EwsServer,
) -> None:
    mailbox = open_mailbox(server)  # batch 100, page 500: the defaults
    people = [person(n) for n in range(1, 1001)]
    results = mailbox.create(people)
    assert all(r.ok for r in results) and len({r.item_id for r in results}) == 1000
    assert server.requests_by_operation["CreateItem"] == math.ceil(1000 / mailbox.batch_size)

    server.reset_counts()
    contacts = listed(mailbox)
    assert len(contacts) == 1000
    assert sorted(c.crm_id for c in contacts) == list(range(1, 1001))
    assert server.request_count == math.ceil(1000 / mailbox.page_size) == 2
    assert mailbox.requests == 10 + 2

    server.reset_counts()
    changes = [
        ContactChange(item_id=c.item_id, change_key=c.change_key, set_fields=(("city", "X"),))
        for c in contacts
    ]
    assert all(r.ok for r in mailbox.update(changes))
    assert server.requests_by_operation == {"UpdateItem": 10}
    server.reset_counts()
    assert all(r.ok for r in mailbox.delete([c.item_id for c in contacts]))
    assert server.requests_by_operation == {"DeleteItem": 10}


def test_one_failing_item_in_a_create_batch_fails_only_that_item(server: EwsServer) -> None:
    server.inject(
        "item_error", operation="CreateItem", item_index=2, code="ErrorInvalidValueForProperty"
    )
    mailbox = open_mailbox(server)
    results = mailbox.create([person(n) for n in range(1, 6)])
    assert [r.ok for r in results] == [True, True, False, True, True]
    assert results[2].error_kind == "invalid" and "refused a value" in (results[2].error or "")
    assert sorted(c["crm_id"] for c in server.contacts(ALICE)) == [1, 2, 4, 5]
    assert server.requests_by_operation["CreateItem"] == 1


def test_one_failing_item_in_update_and_delete_batches(server: EwsServer) -> None:
    mailbox = open_mailbox(server)
    created = mailbox.create([person(n) for n in range(1, 4)])
    gone = created[0].item_id or ""
    server.delete_contact(ALICE, gone)
    server.inject("item_error", operation="UpdateItem", item_index=2, code="ErrorQuotaExceeded")
    changes = [
        ContactChange(
            item_id=r.item_id or "", change_key=r.change_key or "", set_fields=(("city", "Oslo"),)
        )
        for r in created
    ]
    results = mailbox.update(changes)
    assert [r.error_kind for r in results] == ["not_found", None, "other"]
    assert [r.item_id for r in results] == [r.item_id for r in created]

    server.inject(
        "item_error", operation="DeleteItem", item_index=1, code="ErrorCannotDeleteObject"
    )
    results = mailbox.delete([r.item_id or "" for r in created])
    assert [r.ok for r in results] == [True, False, True]
    assert "ErrorCannotDeleteObject" in (results[1].error or "")


def test_an_error_code_exchangelib_does_not_know_fails_only_that_item(server: EwsServer) -> None:
    server.inject("item_error", operation="CreateItem", item_index=0, code="ErrorBrandNewInSE")
    results = open_mailbox(server).create([person(1), person(2)])
    assert results[0].error_kind == "other" and "ErrorBrandNewInSE" in (results[0].error or "")
    assert results[1].ok


def test_throttled_items_inside_a_batch_are_sent_again(server: EwsServer) -> None:
    server.inject("item_error", operation="CreateItem", item_index=1, code="ErrorServerBusy")
    mailbox = open_mailbox(server)
    results = mailbox.create([person(n) for n in range(1, 4)])
    assert all(r.ok for r in results)
    assert sorted(c["crm_id"] for c in server.contacts(ALICE)) == [1, 2, 3]
    assert server.requests_by_operation["CreateItem"] == 2


def test_invalid_value_is_refused_before_sending(server: EwsServer) -> None:
    mailbox = open_mailbox(server)
    bad = NewContact(fields=ContactFields.of(first_name="X" * 300), categories=(), crm_id=1)
    results = mailbox.create([bad, person(2)])
    assert results[0].error_kind == "invalid" and results[1].ok


# -- faults -------------------------------------------------------------------------------


def test_server_busy_honours_back_off_milliseconds(server: EwsServer) -> None:
    server.inject("server_busy", operation="FindItem", back_off_ms=300)
    mailbox = open_mailbox(server)
    started = time.monotonic()
    assert listed(mailbox) == []
    assert time.monotonic() - started >= 0.3
    assert server.requests_by_operation["FindItem"] == 2 and mailbox.requests == 2


def test_server_busy_longer_than_the_budget_fails_the_mailbox_at_once(server: EwsServer) -> None:
    server.inject("server_busy", back_off_ms=60_000)
    mailbox = open_mailbox(server, max_wait=1.0)
    started = time.monotonic()
    with pytest.raises(MailboxError, match="throttling") as err:
        listed(mailbox)
    assert time.monotonic() - started < 1.0
    assert "asked to wait 60s" in str(err.value) and "next sync" in str(err.value)
    assert not isinstance(err.value, MailboxAccessError)


@pytest.mark.parametrize("status", [500, 503])
def test_http_5xx_is_retried(server: EwsServer, status: int) -> None:
    server.inject("http_status", operation="CreateItem", status=status, times=2)
    mailbox = open_mailbox(server)
    [result] = mailbox.create([person(1)])
    assert result.ok
    assert len(server.contacts(ALICE)) == 1  # no duplicate
    assert server.requests_by_operation["CreateItem"] == 3
    assert mailbox.requests == server.request_count  # every attempt is a round trip


def test_http_5xx_that_persists_fails_cleanly(server: EwsServer) -> None:
    server.inject("http_status", status=503, times=100)
    mailbox = open_mailbox(server, max_attempts=3)
    with pytest.raises(MailboxError, match="HTTP 503") as err:
        listed(mailbox)
    assert "3 attempts" in str(err.value)
    assert server.request_count == 3


def test_slow_answer_past_the_timeout_is_retried(server: EwsServer) -> None:
    server.inject("slow", operation="FindItem", delay=1.0)
    mailbox = open_mailbox(server, timeout=0.3)
    started = time.monotonic()
    assert listed(mailbox) == []
    assert time.monotonic() - started < 1.0
    assert server.requests_by_operation["FindItem"] == 2 and mailbox.requests == 2


def test_slow_create_that_was_written_is_not_written_twice(server: EwsServer) -> None:
    server.inject("slow", operation="CreateItem", delay=1.0, after_processing=True)
    mailbox = open_mailbox(server, timeout=0.3)
    results = mailbox.create([person(1), person(2)])
    assert all(r.ok for r in results)
    stored = server.contacts(ALICE)
    assert sorted(c["crm_id"] for c in stored) == [1, 2]  # found again, not created again
    assert {r.item_id for r in results} == {c["item_id"] for c in stored}
    assert server.requests_by_operation["CreateItem"] == 1
    assert server.requests_by_operation["FindItem"] == 1


def test_dropped_connection_is_retried(server: EwsServer) -> None:
    server.inject("drop", operation="CreateItem")
    mailbox = open_mailbox(server)
    [result] = mailbox.create([person(1)])
    assert result.ok and len(server.contacts(ALICE)) == 1
    # dropped before anything was written: looked up, then sent again
    assert server.requests_by_operation["CreateItem"] == 2
    assert server.requests_by_operation["FindItem"] == 1


def test_dropped_connection_after_a_partial_write_creates_only_the_rest(server: EwsServer) -> None:
    mailbox = open_mailbox(server)
    server.inject("drop", operation="CreateItem", after_processing=True)
    results = mailbox.create([person(1), person(2), person(3)])
    assert all(r.ok for r in results)
    assert sorted(c["crm_id"] for c in server.contacts(ALICE)) == [1, 2, 3]


def test_dropped_update_and_delete_are_retried_safely(server: EwsServer) -> None:
    mailbox = open_mailbox(server)
    [created] = mailbox.create([person(1)])
    server.inject("drop", operation="UpdateItem", after_processing=True)
    change = ContactChange(
        item_id=created.item_id or "",
        change_key=created.change_key or "",
        set_fields=(("city", "Rome"),),
    )
    [result] = mailbox.update([change])  # applied, answer lost; retry sees a stale key
    assert result.ok and server.contacts(ALICE)[0]["city"] == "Rome"
    assert result.change_key == server.contacts(ALICE)[0]["change_key"]

    server.inject("drop", operation="DeleteItem", after_processing=True)
    assert mailbox.delete([created.item_id or ""])[0].ok
    assert server.contacts(ALICE) == []


def test_unreachable_server_fails_in_plain_words(server: EwsServer) -> None:
    settings = settings_for(server, ews_url="http://127.0.0.1:9/EWS/Exchange.asmx")
    mailbox = EwsMailbox(settings, ALICE, timeout=0.3, max_attempts=2, base_delay=0.01)
    with pytest.raises(MailboxError, match="Could not reach Exchange") as err:
        listed(mailbox)
    assert "EWS_URL" in str(err.value)


def test_retry_max_wait_zero_means_no_waiting(server: EwsServer) -> None:
    """EWS_RETRY_MAX_WAIT=0 is an admin saying "never sleep between attempts", not "unset"."""
    settings = settings_for(
        server, ews_url="http://127.0.0.1:9/EWS/Exchange.asmx", ews_retry_max_wait=0
    )
    mailbox = EwsMailbox(settings, ALICE, timeout=0.3)
    assert mailbox.max_wait == 0
    began = time.monotonic()
    with pytest.raises(MailboxError, match="Could not reach Exchange"):
        listed(mailbox)
    assert time.monotonic() - began < 3  # 120 s of back-off, 15 s of it slept, before the fix


# -- access --------------------------------------------------------------------------------


def test_impersonation_not_granted_names_the_role_to_grant(server: EwsServer) -> None:
    server.revoke_impersonation()
    mailbox = open_mailbox(server)
    with pytest.raises(MailboxAccessError) as err:
        listed(mailbox)
    text = str(err.value)
    assert "ApplicationImpersonation" in text and "New-ManagementRoleAssignment" in text
    assert "svc-crm@example.com" in text and ALICE in text
    assert server.request_count == 1  # not retried


def test_impersonation_scoped_to_some_users(server: EwsServer) -> None:
    server.allow_impersonation(ALICE)
    assert listed(open_mailbox(server, ALICE)) == []
    with pytest.raises(MailboxAccessError, match=r"may not impersonate bob@example\.com"):
        open_mailbox(server, BOB).create([person(1)])
    with pytest.raises(MailboxAccessError):
        open_mailbox(server, BOB).check()


def test_missing_mailbox(server: EwsServer) -> None:
    server.remove_mailbox(BOB)
    with pytest.raises(MailboxAccessError, match=r"no mailbox for bob@example\.com"):
        listed(open_mailbox(server, BOB))


def test_delegate_access_denied_names_the_permission(server: EwsServer) -> None:
    server.deny_access(BOB)
    mailbox = open_mailbox(server, BOB, settings={"ews_impersonation": False})
    with pytest.raises(MailboxAccessError, match="Add-MailboxPermission"):
        listed(mailbox)
    with pytest.raises(MailboxAccessError, match="Add-MailboxPermission"):
        mailbox.create([person(1)])
    with pytest.raises(MailboxAccessError, match="Add-MailboxPermission"):
        mailbox.check()


def test_delegate_access_works_without_impersonation(server: EwsServer) -> None:
    mailbox = open_mailbox(server, BOB, settings={"ews_impersonation": False})
    assert mailbox.create([person(1)])[0].ok
    assert [c["crm_id"] for c in server.contacts(BOB)] == [1]


def test_wrong_password_is_an_access_error(server: EwsServer) -> None:
    mailbox = open_mailbox(server, settings={"ews_password": "wrong"})
    with pytest.raises(MailboxAccessError, match="rejected the login") as err:
        listed(mailbox)
    assert "wrong" not in str(err.value) and PASSWORD not in str(err.value)


def test_password_never_reaches_the_log(
    server: EwsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mailbox = open_mailbox(server)
    mailbox.create([person(1)])
    listed(mailbox)
    assert caplog.records  # exchangelib did log its requests
    assert PASSWORD not in caplog.text
    import base64

    assert base64.b64encode(f"svc-crm@example.com:{PASSWORD}".encode()).decode() not in caplog.text


# -- check ---------------------------------------------------------------------------------


def test_check_says_all_is_well(server: EwsServer) -> None:
    server.add_contact(ALICE, first_name="Ann")
    findings = open_mailbox(server).check()
    text = "\n".join(findings)
    assert "impersonating alice@example.com as svc-crm@example.com" in text
    assert "1 items" in text and "All is well" in text
    assert server.requests_by_operation == {"GetFolder": 1}


def test_check_reports_an_unset_version(server: EwsServer) -> None:
    findings = open_mailbox(server, settings={"ews_version": None}).check()
    assert any("EWS_VERSION is not set" in f for f in findings)


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "api"),
    [
        ("Exchange2016", "Exchange2016"),
        ("Exchange2013_SP1", "Exchange2013_SP1"),
        ("Exchange2019", "Exchange2016"),
        ("15.1", "Exchange2016"),
        ("15.0.847.32", "Exchange2013_SP1"),
        (None, "Exchange2013_SP1"),
    ],
)
def test_parse_version(text: str | None, api: str) -> None:
    assert parse_version(text).api_version == api


def test_bad_configuration_says_what_to_set(server: EwsServer) -> None:
    with pytest.raises(ConfigError, match="EWS_VERSION"):
        open_mailbox(server, settings={"ews_version": "Exchange1999"})
    with pytest.raises(ConfigError, match="EWS_USERNAME and EWS_PASSWORD"):
        open_mailbox(server, settings={"ews_password": None})


def test_oauth_client_credentials(
    server: EwsServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the loopback speaks plain HTTP
    authority = server.url.split("/EWS/")[0]
    mailbox = open_mailbox(
        server,
        settings={
            "ews_auth": "oauth",
            "ews_username": None,
            "ews_password": None,
            "graph_tenant_id": "contoso",
            "graph_client_id": "app-id",
            "graph_client_secret": "app-secret",
            "graph_authority": authority,
        },
    )
    assert mailbox.create([person(1)])[0].ok
    assert [c.crm_id for c in listed(mailbox)] == [1]
    assert server.tokens_issued == 1
    assert "app-secret" not in caplog.text
    assert not any(token in caplog.text for token in server._tokens)
