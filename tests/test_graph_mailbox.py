"""GraphMailbox over the wire, against the loopback Graph in tests/servers/graph.py.

Nothing of ours is mocked: msal signs in through the server's OIDC document and token endpoint
over HTTPS (its CA reaches msal and httpx only through REQUESTS_CA_BUNDLE / SSL_CERT_FILE), and
every assertion about round trips reads the server's own counters.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync_engine.config import ConfigError, Settings
from sync_engine.mailbox.base import Mailbox, MailboxAccessError, MailboxError
from sync_engine.mailbox.graph import CRM_ID_PROPERTY, GraphMailbox
from sync_engine.model import ContactChange, ContactFields, MailboxContact, NewContact

try:  # tests/ is a rootdir, not a package, unless someone makes it one
    from servers.graph import GraphServer, graph_server
except ImportError:  # pragma: no cover
    from tests.servers.graph import GraphServer, graph_server

ANN = "ann@contoso.com"
TAG = "CRM Contact"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphServer]:
    with graph_server() as srv:
        for name, value in srv.env().items():
            monkeypatch.setenv(name, value)
        yield srv


@pytest.fixture
def settings(server: GraphServer, tmp_path: Path) -> Settings:
    return Settings(crm_contacts_home=tmp_path, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def open_mailbox(settings: Settings, waits: list[float]) -> Iterator[Callable[..., GraphMailbox]]:
    opened: list[GraphMailbox] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)

    def make(address: str = ANN, **options: Any) -> GraphMailbox:
        options.setdefault("sleep", sleep)
        options.setdefault("max_retry_after", 30.0)
        box = GraphMailbox(options.pop("settings", settings), address, **options)
        opened.append(box)
        return box

    yield make
    for box in opened:
        box.close()


def person(n: int, **extra: str) -> NewContact:
    values = {
        "first_name": f"Pat{n}",
        "last_name": "Jones",
        "company": "Acme Ltd",
        "email": f"pat{n}@acme.example",
        **extra,
    }
    return NewContact(ContactFields.of(**values).with_derived(), (TAG,), n)


def listing(box: GraphMailbox) -> list[MailboxContact]:
    return [c for page in box.list_contacts() for c in page]


def ext_value(contact: dict[str, Any]) -> str | None:
    for prop in contact["singleValueExtendedProperties"]:
        if prop["id"] == CRM_ID_PROPERTY:
            return str(prop["value"])
    return None


FULL = {
    "title": "Dr",
    "givenName": "Ada",
    "middleName": "M",
    "surname": "Byron",
    "generation": "Jr",
    "companyName": "Analytical Engines",
    "jobTitle": "Engineer",
    "department": "R&D",
    "businessHomePage": "https://ae.example",
    "emailAddresses": [
        {"name": "Ada", "address": "ada@ae.example"},
        {"name": "home", "address": "ada@home.example"},
    ],
    "businessPhones": ["+44 20 1234", "+44 20 9999"],
    "mobilePhone": "+44 7700 1",
    "businessAddress": {
        "street": "1 Babbage Way",
        "city": "London",
        "state": "LDN",
        "postalCode": "N1 1AA",
        "countryOrRegion": "UK",
    },
    "displayName": "Ada M Byron",
    "fileAs": "Byron, Ada M",
    "categories": [TAG, "Golf"],
    "personalNotes": "met at the fair",
}


# ---- listing -------------------------------------------------------------------------------


def test_is_a_mailbox_target(open_mailbox: Callable[..., GraphMailbox]) -> None:
    box = open_mailbox()
    assert isinstance(box, Mailbox)
    assert box.batch_size == 20


def test_listing_pages_maps_fields_and_reads_only_the_default_folder(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    ada = server.add_contact(ANN, FULL, extended={CRM_ID_PROPERTY: "42"})
    for n in range(24):
        server.add_contact(ANN, {"givenName": f"G{n}", "surname": "S"})
    server.add_contact(ANN, {"givenName": "Hidden"}, folder="Private")  # a sub-folder
    box = open_mailbox(page_size=10)

    pages = list(box.list_contacts())

    assert [len(p) for p in pages] == [10, 10, 5]
    contacts = [c for p in pages for c in p]
    assert "Hidden" not in {c.fields.first_name for c in contacts}
    # one request for the Contacts folder's id (a contact's parentFolderId), three delta
    # pages of 10, then one $batch reading the CRM id of the one tagged contact the picture
    # did not know (delta takes $select only)
    assert box.requests == server.request_count == 5
    assert server.requests_by_kind["list"] == 1
    assert server.requests_by_kind["delta"] == 3 and server.batch_items_by_kind["get"] == 1
    first = next(seen for seen in server.seen if "/delta" in seen[1])
    assert f"/contactFolders/{server.folder_id(ANN)}/contacts/delta" in first[1]
    assert "%24select=" in first[1] and "personalNotes" not in first[1]
    assert first[2] == "odata.maxpagesize=10"
    got = next(c for c in contacts if c.item_id == ada)
    assert got.crm_id == 42
    assert got.categories == (TAG, "Golf")
    assert got.change_key and got.created_at
    assert got.fields == ContactFields(
        title="Dr",
        first_name="Ada",
        middle_name="M",
        last_name="Byron",
        suffix="Jr",
        company="Analytical Engines",
        job_title="Engineer",
        department="R&D",
        web_page="https://ae.example",
        email="ada@ae.example",
        email2="ada@home.example",  # the second entry is Outlook's Email2
        business_phone="+44 20 1234",
        mobile_phone="+44 7700 1",
        street="1 Babbage Way",
        city="London",
        state="LDN",
        postal_code="N1 1AA",
        country="UK",
        display_name="Ada M Byron",
        file_as="Byron, Ada M",
    )
    assert [c.created_at for c in contacts] == sorted(c.created_at for c in contacts)


def test_steady_state_listing_reads_only_changes(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox], settings: Settings
) -> None:
    keep = server.add_contact(ANN, {"givenName": "Keep"})
    edit = server.add_contact(ANN, {"givenName": "Edit"})
    gone = server.add_contact(ANN, {"givenName": "Gone"})
    moved = server.add_contact(ANN, {"givenName": "Moved"})
    box = open_mailbox()
    listing(box)
    box.close()

    server.reset_counts()
    again = open_mailbox()  # a later run: the saved picture and delta link are reused
    assert {c.item_id for c in listing(again)} == {keep, edit, gone, moved}
    assert server.request_count == 1 and server.requests_by_kind["delta"] == 1

    server.user_update(ANN, edit, {"givenName": "Edited"})
    server.user_delete(ANN, gone)
    server.user_move(ANN, moved, "Archive")
    new = server.add_contact(ANN, {"givenName": "New"})
    server.reset_counts()
    contacts = {c.item_id: c for c in listing(again)}
    assert set(contacts) == {keep, edit, new}
    assert contacts[edit].fields.first_name == "Edited"
    assert server.request_count == 1
    assert again.full_listings == 0


def test_expired_delta_token_falls_back_to_a_full_listing(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    first = server.add_contact(ANN, {"givenName": "One"})
    box = open_mailbox()
    listing(box)
    second = server.add_contact(ANN, {"givenName": "Two"})
    server.inject("delta_gone")
    server.reset_counts()

    assert {c.item_id for c in listing(box)} == {first, second}
    assert server.requests_by_kind["delta"] == 2  # the 410, then a fresh round
    assert box.full_listings == 2
    server.reset_counts()
    listing(box)
    assert server.request_count == 1  # and delta works again afterwards


def test_delta_refused_falls_back_to_paged_listing(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    for n in range(7):
        server.add_contact(
            ANN,
            {"givenName": f"N{n}", "categories": [TAG]},
            extended={CRM_ID_PROPERTY: str(n + 1)},
        )
    server.delta_supported = False
    box = open_mailbox(page_size=5)

    contacts = listing(box)

    assert sorted(c.crm_id or 0 for c in contacts) == [1, 2, 3, 4, 5, 6, 7]
    # the folder's id, the refused delta, then two pages of `$top=5`
    assert server.requests_by_kind["delta"] == 1 and server.requests_by_kind["list"] == 3
    pages = [target for method, target, _ in server.seen if "/contacts?" in target]
    assert all("%24top=5" in target for target in pages[1:])
    # the CRM ids of our (tagged) contacts: one $batch of single-item GETs per page
    assert server.requests_by_kind["batch"] == 2 and server.batch_items_by_kind["get"] == 7


# ---- writes --------------------------------------------------------------------------------


def test_create_writes_mapped_fields_category_and_crm_id(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    box = open_mailbox()
    new = NewContact(
        ContactFields.of(
            title="Ms",
            first_name="Zoe",
            last_name="Quinn",
            suffix="III",
            company="Q Corp",
            job_title="CFO",
            department="Finance",
            web_page="https://q.example",
            email="zoe@q.example",
            business_phone="+1 555 0100",
            mobile_phone="+1 555 0199",
            street="9 Main St",
            city="Springfield",
            state="IL",
            postal_code="62701",
            country="USA",
        ).with_derived(),
        (TAG,),
        7,
    )

    [result] = box.create([new])

    assert result.ok and result.item_id and result.change_key
    [stored] = server.contacts(ANN)
    assert stored["id"] == result.item_id
    assert ext_value(stored) == "7"
    assert stored["categories"] == [TAG]
    assert stored["emailAddresses"] == [
        {"name": "Zoe Quinn (zoe@q.example)", "address": "zoe@q.example"}
    ]
    assert stored["businessPhones"] == ["+1 555 0100"]
    assert stored["businessAddress"] == {
        "street": "9 Main St",
        "city": "Springfield",
        "state": "IL",
        "postalCode": "62701",
        "countryOrRegion": "USA",
    }
    assert (stored["title"], stored["generation"], stored["fileAs"]) == ("Ms", "III", "Quinn, Zoe")
    assert stored["middleName"] is None  # a blank is not written
    assert [c.crm_id for c in listing(box)] == [7]


def test_writes_go_in_batches_of_at_most_twenty(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    box = open_mailbox()
    results = box.create([person(n) for n in range(1, 46)])
    assert all(r.ok for r in results)
    assert server.batch_sizes == [20, 20, 5]
    assert box.requests == 3
    assert len({r.item_id for r in results}) == 45


def test_partial_update_touches_only_the_named_fields(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    item = server.add_contact(ANN, FULL, extended={CRM_ID_PROPERTY: "42"})
    box = open_mailbox()
    [contact] = listing(box)
    server.reset_counts()

    [result] = box.update(
        [
            ContactChange(
                item,
                contact.change_key,
                set_fields=(("email", "ada@new.example"), ("city", "Oxford"), ("job_title", "CTO")),
            )
        ]
    )

    assert result.ok and result.change_key != contact.change_key
    [stored] = server.contacts(ANN)
    # email 1 replaced, email 2 (the user's) kept; the collection is sent whole
    assert [e["address"] for e in stored["emailAddresses"]] == [
        "ada@new.example",
        "ada@home.example",
    ]
    assert stored["businessAddress"]["city"] == "Oxford"
    assert stored["businessAddress"]["street"] == "1 Babbage Way"  # other parts kept
    assert stored["jobTitle"] == "CTO"
    for untouched in ("businessPhones", "mobilePhone", "personalNotes", "categories", "surname"):
        assert stored[untouched] == FULL[untouched]
    assert ext_value(stored) == "42"
    assert server.request_count == 1  # the picture from the listing was enough: one $batch


def test_update_adds_the_tag_and_keeps_the_users_categories(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    item = server.add_contact(ANN, {"givenName": "Lin", "categories": ["Golf"]})
    box = open_mailbox()
    [contact] = listing(box)

    [result] = box.update(
        [ContactChange(item, contact.change_key, categories=("Golf", TAG), set_crm_id=5)]
    )

    assert result.ok
    [stored] = server.contacts(ANN)
    assert stored["categories"] == ["Golf", TAG]
    assert ext_value(stored) == "5"


def test_clearing_the_crm_id_reads_back_as_none(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    box = open_mailbox()
    [created] = box.create([person(3)])
    [contact] = listing(box)

    [result] = box.update(
        [ContactChange(created.item_id or "", contact.change_key, categories=(), clear_crm_id=True)]
    )

    assert result.ok
    [stored] = server.contacts(ANN)
    assert stored["categories"] == [] and ext_value(stored) == "0"
    [after] = listing(box)
    assert after.crm_id is None and after.categories == ()
    assert box.find([3]) == {}


def test_stale_change_key_rereads_and_applies_the_mapped_fields(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    item = server.add_contact(
        ANN,
        {
            "givenName": "Kim",
            "jobTitle": "Analyst",
            "emailAddresses": [{"address": "kim@old.example"}],
            "categories": [],
        },
    )
    box = open_mailbox()
    [contact] = listing(box)
    # Meanwhile, in Outlook: a second email, a category of the user's own, a new job title.
    server.user_update(
        ANN,
        item,
        {
            "jobTitle": "Manager",
            "emailAddresses": [{"address": "kim@old.example"}, {"address": "kim@home.example"}],
            "categories": ["VIP"],
        },
    )
    server.reset_counts()

    [result] = box.update(
        [
            ContactChange(
                item,
                contact.change_key,
                set_fields=(("job_title", "Director"), ("email", "kim@new.example")),
                categories=(TAG,),
            )
        ]
    )

    assert result.ok
    [stored] = server.contacts(ANN)
    assert stored["jobTitle"] == "Director"  # the CRM wins on mapped fields
    assert [e["address"] for e in stored["emailAddresses"]] == [
        "kim@new.example",
        "kim@home.example",
    ]
    assert stored["categories"] == ["VIP", TAG]  # the user's category survives the conflict
    assert server.batch_sizes == [1, 1, 1]  # PATCH (412), re-read, PATCH
    assert result.change_key == stored["changeKey"]


def test_update_of_a_contact_deleted_in_outlook_is_not_found(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    item = server.add_contact(ANN, {"givenName": "Gone"})
    box = open_mailbox()
    [contact] = listing(box)
    server.user_delete(ANN, item)

    [result] = box.update(
        [ContactChange(item, contact.change_key, set_fields=(("job_title", "x"),))]
    )

    assert result.error_kind == "not_found"


def test_delete_counts_an_item_already_gone_as_deleted(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    box = open_mailbox()
    created = box.create([person(1), person(2)])
    server.user_delete(ANN, created[1].item_id or "")

    results = box.delete([r.item_id or "" for r in created])

    assert all(r.ok for r in results)
    assert server.contacts(ANN) == []
    assert listing(box) == []


def test_find_uses_the_extended_property_filter(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    box = open_mailbox()
    created = box.create([person(1), person(2)])
    server.tick()  # a second later: Graph's times are whole seconds
    server.add_contact(ANN, {"givenName": "Copy"}, extended={CRM_ID_PROPERTY: "2"})
    server.reset_counts()

    found = box.find([2, 99])

    assert set(found) == {2}
    assert found[2][0].item_id == created[1].item_id  # the oldest first
    assert len(found[2]) == 2
    # one $filter per id and property (the one, and the Graph target's former one)
    assert server.requests_by_kind["batch"] == 1 and server.batch_items_by_kind["find"] == 4


# ---- round trips ------------------------------------------------------------------------------


def test_a_thousand_creates_cost_listing_pages_plus_fifty_batches(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    box = open_mailbox()
    assert listing(box) == []
    pages_before = box.requests
    results = []
    people = [person(n) for n in range(1, 1001)]
    for start in range(0, len(people), box.batch_size):
        results += box.create(people[start : start + box.batch_size])

    assert all(r.ok for r in results) and len(server.contacts(ANN)) == 1000
    assert box.requests == server.request_count == pages_before + math.ceil(1000 / 20)
    assert server.requests_by_kind["create"] == 0  # never one request per contact

    listing(box)  # the next run sees its own creates once (pages of 500)
    box.close()
    server.reset_counts()
    steady = open_mailbox()
    assert len(listing(steady)) == 1000
    assert server.request_count == 1 and server.requests_by_kind["delta"] == 1
    assert server.token_requests <= 1


# ---- throttling and other faults ---------------------------------------------------------------


def test_throttled_batch_waits_for_retry_after(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox], waits: list[float]
) -> None:
    box = open_mailbox()
    server.inject("throttle", on="batch", retry_after=7)
    results = box.create([person(1), person(2)])
    assert all(r.ok for r in results)
    assert waits == [7.0]
    assert server.requests_by_kind["batch"] == 2
    assert len(server.contacts(ANN)) == 2


def test_unavailable_listing_waits_for_retry_after(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox], waits: list[float]
) -> None:
    server.add_contact(ANN, {"givenName": "A"})
    box = open_mailbox()
    server.inject("unavailable", on="delta", retry_after=3, times=2)
    assert len(listing(box)) == 1
    assert waits == [3.0, 3.0]
    assert box.requests == 4  # the folder's id, then the delta request three times


def test_retry_after_beyond_the_cap_gives_up_in_plain_words(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox], waits: list[float]
) -> None:
    server.add_contact(ANN, {"givenName": "A"})
    box = open_mailbox(max_retry_after=5.0)
    server.inject("throttle", on="delta", retry_after=600)
    with pytest.raises(MailboxError, match="asks to wait 600 s") as caught:
        listing(box)
    assert not isinstance(caught.value, MailboxAccessError)
    assert waits == []  # never retried before Graph said it may


def test_a_slow_answer_is_waited_for_and_a_timeout_retried(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    server.add_contact(ANN, {"givenName": "A"})
    box = open_mailbox(timeout=5.0)
    server.inject("slow", on="delta", delay=0.3)
    assert len(listing(box)) == 1
    assert box.requests == 2  # the folder's id, the (slow) delta request

    server.add_contact("bob@contoso.com", {"givenName": "B"})
    other = open_mailbox("bob@contoso.com", timeout=0.3)
    server.inject("slow", on="delta", delay=1.0)
    assert len(listing(other)) == 1  # the read timed out once, then was asked again
    assert other.requests == 3


def test_one_failing_request_in_a_batch_fails_that_item_only(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    box = open_mailbox()
    server.inject("batch_item", status=400, index=3, code="ErrorInvalidProperty")
    results = box.create([person(n) for n in range(1, 7)])
    assert [r.ok for r in results] == [True, True, True, False, True, True]
    assert results[3].error_kind == "invalid" and "ErrorInvalidProperty" in (results[3].error or "")
    assert len(server.contacts(ANN)) == 5


def test_a_throttled_item_in_a_batch_is_retried_alone(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox], waits: list[float]
) -> None:
    box = open_mailbox()
    server.inject("batch_item", status=429, retry_after=2, index=5)
    results = box.create([person(n) for n in range(1, 21)])
    assert all(r.ok for r in results)
    assert server.batch_sizes == [20, 1]
    assert waits == [2.0]
    assert sorted(int(ext_value(c) or 0) for c in server.contacts(ANN)) == list(range(1, 21))


def test_a_failed_update_item_is_retried_after_503(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    box = open_mailbox()
    created = box.create([person(1), person(2)])
    listing(box)
    server.inject("batch_item", status=503, retry_after=1, index=1)
    changes = [
        ContactChange(r.item_id or "", r.change_key or "", set_fields=(("job_title", "Boss"),))
        for r in created
    ]
    results = box.update(changes)
    assert all(r.ok for r in results)
    assert [c["jobTitle"] for c in server.contacts(ANN)] == ["Boss", "Boss"]


def test_a_lost_create_answer_is_looked_up_not_repeated(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    box = open_mailbox()
    server.inject("lost_response", on="batch")  # Graph creates them, the answer never arrives
    results = box.create([person(n) for n in range(1, 6)])
    assert all(r.ok for r in results)
    stored = server.contacts(ANN)
    assert len(stored) == 5  # no duplicates
    assert {r.item_id for r in results} == {c["id"] for c in stored}
    assert server.requests_by_kind["batch"] == 2  # the lost one, then one $filter lookup


def test_a_failed_create_item_is_looked_up_then_created(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    box = open_mailbox()
    server.inject("batch_item", status=500, index=0)
    results = box.create([person(1), person(2)])
    assert all(r.ok for r in results)
    assert len(server.contacts(ANN)) == 2
    # the failed one is looked up (the one property and the former one), then created
    assert server.batch_items_by_kind == {"create": 3, "find": 2}


def test_check_before_create_links_what_a_crashed_run_left(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    left = server.add_contact(ANN, {"givenName": "Pat1"}, extended={CRM_ID_PROPERTY: "1"})
    box = open_mailbox(check_before_create=True)
    results = box.create([person(1), person(2)])
    assert results[0].item_id == left
    assert len(server.contacts(ANN)) == 2
    assert server.requests_by_kind["batch"] == 2  # one lookup batch, one create batch


def test_expired_token_is_renewed_once(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    box = open_mailbox()
    listing(box)
    assert box.token_requests == 1
    server.inject("expire_token")
    server.reset_counts()
    assert box.create([person(1)])[0].ok
    assert box.token_requests == 2 and server.token_requests == 1
    assert len(set(server.authorizations)) == 2  # the old token once, then the new one
    assert server.requests_by_kind["batch"] == 2


# ---- concurrency -------------------------------------------------------------------------------


def test_server_throttles_more_than_four_concurrent_requests_per_mailbox(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    box = open_mailbox()
    box.create([person(1)])
    token = box._access_token()
    server.inject("slow", on="batch", delay=0.6, times=2)
    gets = {
        "requests": [
            {"id": str(n), "method": "GET", "url": f"/users/{ANN}/contacts?$top=1"}
            for n in range(8)
        ]
    }
    answers: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client() as client:
            answers.append(
                client.post(
                    f"{server.graph_url}/$batch",
                    json=gets,
                    headers={"Authorization": f"Bearer {token}"},
                )
            )

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = [r["status"] for a in answers for r in a.json()["responses"]]
    assert statuses.count(429) >= 4  # the second batch found the mailbox busy
    busy = next(r for a in answers for r in a.json()["responses"] if r["status"] == 429)
    assert busy["headers"]["Retry-After"] == "1"
    assert "MailboxConcurrency" in busy["body"]["error"]["message"]

    too_many = httpx.post(
        f"{server.graph_url}/$batch",
        json={
            "requests": [
                {"id": str(n), "method": "GET", "url": f"/users/{ANN}/contacts"} for n in range(21)
            ]
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert too_many.status_code == 400


def test_two_writers_on_one_mailbox_never_throttle_themselves(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    first, second = open_mailbox(), open_mailbox()
    first._access_token(), second._access_token()
    server.reset_counts()
    server.inject("slow", on="batch", delay=0.2, times=4)
    results: dict[str, list[Any]] = {}

    def write(name: str, box: GraphMailbox, base: int) -> None:
        results[name] = box.create([person(base + n) for n in range(20)])

    threads = [
        threading.Thread(target=write, args=("a", first, 0)),
        threading.Thread(target=write, args=("b", second, 100)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.ok for rs in results.values() for r in rs)
    assert server.throttled == 0
    assert server.peak_concurrency[ANN] == 4
    assert len(server.contacts(ANN)) == 40


# ---- access, configuration, secrets ----------------------------------------------------------


def test_missing_write_permission_names_it(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    server.roles = ["Contacts.Read"]
    box = open_mailbox()
    assert listing(box) == []  # reading works with Contacts.Read
    with pytest.raises(MailboxAccessError) as caught:
        box.create([person(1)])
    text = str(caught.value)
    assert "Contacts.ReadWrite" in text and "admin consent" in text
    assert "carries: Contacts.Read" in text
    # check() warns but does not refuse: Exchange RBAC for Applications grants outside the token
    assert any(f.startswith("Warning") and "Contacts.ReadWrite" in f for f in box.check())
    server.roles = []  # no permission at all: even reading is refused
    server.expire_tokens()  # (the next token is fetched anew and carries no roles)
    with pytest.raises(MailboxAccessError, match=r"Contacts\.ReadWrite"):
        box.check()


def test_application_access_policy_is_named(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    server.block_mailbox(ANN)
    with pytest.raises(MailboxAccessError, match="application access policy") as caught:
        listing(open_mailbox())
    assert "Test-ApplicationAccessPolicy" in str(caught.value)


def test_a_mailbox_that_does_not_exist_says_so(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    server.remove_mailbox("nobody@contoso.com")
    with pytest.raises(
        MailboxAccessError, match=r"no Exchange Online mailbox for nobody@contoso\.com"
    ):
        listing(open_mailbox("nobody@contoso.com"))


def test_wrong_secret_is_explained_and_never_shown(
    server: GraphServer,
    open_mailbox: Callable[..., GraphMailbox],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = Settings(crm_contacts_home=tmp_path, graph_client_secret="not-the-secret", _env_file=None)  # type: ignore[call-arg]
    box = open_mailbox(settings=bad)
    with pytest.raises(MailboxAccessError, match="GRAPH_CLIENT_SECRET") as caught:
        box.check()
    assert "not-the-secret" not in str(caught.value) + caplog.text


def test_wrong_tenant_is_explained(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox], tmp_path: Path
) -> None:
    bad = Settings(
        crm_contacts_home=tmp_path,
        graph_tenant_id="00000000-0000-0000-0000-000000000000",
        _env_file=None,
    )  # type: ignore[call-arg]
    with pytest.raises(MailboxAccessError, match="GRAPH_TENANT_ID"):
        open_mailbox(settings=bad).check()


def test_a_broken_ca_bundle_is_a_configuration_error(
    server: GraphServer, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    with pytest.raises(ConfigError, match="SSL_CERT_FILE"):
        GraphMailbox(settings, ANN)


def test_missing_configuration_names_the_variables(tmp_path: Path) -> None:
    empty = Settings(
        crm_contacts_home=tmp_path,
        graph_tenant_id=None,
        graph_client_id=None,
        graph_client_secret=None,
        _env_file=None,
    )  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="GRAPH_TENANT_ID, GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET"):
        GraphMailbox(empty, ANN)


def test_untrusted_certificate_gets_a_hint(
    server: GraphServer,
    open_mailbox: Callable[..., GraphMailbox],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    system_only = tmp_path / "system.pem"  # a bundle without the loopback CA
    system_only.write_bytes(
        server.ca_bundle.read_bytes().split(b"-----END CERTIFICATE-----")[0]
        + b"-----END CERTIFICATE-----\n"
    )
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(system_only))
    monkeypatch.setenv("SSL_CERT_FILE", str(system_only))
    other = Settings(
        crm_contacts_home=tmp_path,
        graph_client_id="11111111-2222-3333-4444-555555555555",
        _env_file=None,
    )  # type: ignore[call-arg]
    with pytest.raises(MailboxError, match="REQUESTS_CA_BUNDLE"):
        open_mailbox(settings=other).check()


def test_check_reports_in_plain_words(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.add_contact(ANN, {"givenName": "A"})
    box = open_mailbox()
    findings = box.check()
    assert any("Contacts.ReadWrite" in f for f in findings)
    assert any("reachable (1 contacts)" in f for f in findings)
    assert any("reads the whole folder once" in f for f in findings)
    listing(box)
    assert any("only what changed" in f for f in open_mailbox().check())
    token = box._access_token()
    assert token not in caplog.text and server.client_secret not in caplog.text


def test_saved_picture_is_private_and_holds_no_notes(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox], settings: Settings
) -> None:
    server.add_contact(ANN, FULL)
    box = open_mailbox()
    listing(box)
    [saved] = list((settings.crm_contacts_home / "graph-delta").glob("*.json"))
    assert saved.stat().st_mode & 0o077 == 0
    assert "met at the fair" not in saved.read_text()
