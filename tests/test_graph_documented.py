"""Graph does only what Microsoft documents (issues 11 and 20), against a stand-in that
refuses the rest: delta with `$select` only on the folder's id, in pages of at most 200,
refused delta links, a refused delta tried again a day later, a full-listing mode, `$top`
on lists, user paths by object id or UPN, displayName with every update, a `$batch`
answered 424, look-ups read to the last page, DELETE to Deleted Items. Nothing of ours is
mocked."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from servers.graph import GraphServer, graph_server

from sync_engine.config import Settings, load_settings
from sync_engine.crm.embedded import seed_demo
from sync_engine.mailbox.base import MailboxAccessError, MemoryIdentities
from sync_engine.mailbox.graph import CRM_ID_PROPERTY, GraphMailbox
from sync_engine.model import ContactChange, ContactFields, MailboxContact, NewContact
from sync_engine.service import Engine

ANN = "ann@contoso.com"
ANN_UPN = "ann.smith@contoso.onmicrosoft.com"
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
def open_mailbox(settings: Settings) -> Iterator[Callable[..., GraphMailbox]]:
    opened: list[GraphMailbox] = []

    def make(address: str = ANN, **options: Any) -> GraphMailbox:
        options.setdefault("sleep", lambda _s: None)
        options.setdefault("identities", MemoryIdentities())
        box = GraphMailbox(options.pop("settings", settings), address, **options)
        opened.append(box)
        return box

    yield make
    for box in opened:
        box.close()


def person(n: int, **extra: str) -> NewContact:
    values = {"first_name": f"Pat{n}", "last_name": "Jones", "company": "Acme", **extra}
    return NewContact(ContactFields.of(**values).with_derived(), (TAG,), n)


def listing(box: GraphMailbox) -> list[MailboxContact]:
    return [c for page in box.list_contacts() for c in page]


# ---- 1. delta with $select only ---------------------------------------------------------------


def test_delta_sends_select_only_and_reads_unknown_crm_ids_item_by_item(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    # Two tagged contacts made in a run whose answers were lost, one of the user's own.
    ours = [
        server.add_contact(
            ANN, {"givenName": f"O{n}", "categories": [TAG]}, extended={CRM_ID_PROPERTY: str(n)}
        )
        for n in (7, 8)
    ]
    server.add_contact(ANN, {"givenName": "Own", "categories": ["Golf"]})
    box = open_mailbox()

    contacts = listing(box)

    delta_urls = [target for method, target, _ in server.seen if "/delta" in target]
    assert delta_urls and all("expand" not in url.lower() for url in delta_urls)
    assert {c.item_id: c.crm_id for c in contacts if c.item_id in ours} == dict(
        zip(ours, (7, 8), strict=True)
    )
    assert server.requests_by_kind["delta"] == 1 and server.requests_by_kind["batch"] == 1
    assert server.batch_items_by_kind["get"] == 2  # only the tagged ones, one GET each
    assert box.full_listings == 1

    # steady state: one delta request, no look-up (the CRM ids are in the saved picture)
    box.close()
    server.reset_counts()
    again = open_mailbox()
    assert {c.crm_id for c in listing(again)} == {7, 8, None}
    assert server.request_count == 1 and server.requests_by_kind["delta"] == 1


def test_contacts_we_create_need_no_crm_id_look_up(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    box = open_mailbox()
    listing(box)
    assert all(r.ok for r in box.create([person(n) for n in range(1, 31)]))
    box.close()
    server.reset_counts()
    again = open_mailbox()
    assert sorted(c.crm_id for c in listing(again)) == list(range(1, 31))
    assert server.request_count == 1  # the delta shows the 30 new ones; their ids are known


# ---- 2. an expired or refused delta link ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (410, "SyncStateNotFound"),
        (400, "SyncStateInvalid"),
        (400, "ResyncRequired"),
        (404, "ErrorSyncFolderNotFound"),
        (409, "SomethingNew"),
    ],
)
def test_a_refused_delta_link_starts_a_full_round(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox], status: int, code: str
) -> None:
    box = open_mailbox()
    box.create([person(1), person(2)])
    listing(box)
    box.close()
    server.inject("delta_gone", status=status, code=code)
    server.reset_counts()
    again = open_mailbox()

    contacts = listing(again)

    assert sorted(c.crm_id for c in contacts) == [1, 2]
    assert again.full_listings == 1
    # the saved link (refused), then a fresh delta round; never the non-delta listing
    assert server.requests_by_kind["delta"] == 2 and server.requests_by_kind["list"] == 0
    # the full round kept the CRM ids it knew: no look-ups
    assert server.batch_items_by_kind["get"] == 0


# ---- 3. mailboxes whose SMTP address is not the UPN ---------------------------------------------


def test_an_address_that_is_not_the_upn_is_resolved_once_and_kept(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    object_id = server.add_user(ANN_UPN, mail=ANN)
    server.roles.append("User.Read.All")
    kept = MemoryIdentities()
    box = open_mailbox(identities=kept)

    assert listing(box) == []
    assert box.create([person(1)])[0].ok

    assert [c["givenName"] for c in server.contacts(ANN_UPN)] == ["Pat1"]
    assert box.user_id == object_id
    assert kept.mailbox_identity(f"graph {server.graph_url} {server.tenant_id}", ANN) == object_id
    assert server.requests_by_kind["users"] == 1
    # the next run goes straight to /users/{object id}: one delta request, no look-up
    box.close()
    server.reset_counts()
    again = open_mailbox(identities=kept)
    assert [c.crm_id for c in listing(again)] == [1]
    assert server.request_count == 1 and server.requests_by_kind["users"] == 0
    assert all(object_id in target for _m, target, _p in server.seen)


def test_without_user_read_all_the_error_names_the_permission(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    server.add_user(ANN_UPN, mail=ANN)
    with pytest.raises(MailboxAccessError, match=r"User\.Read\.All"):
        listing(open_mailbox())


def test_check_names_the_user_and_the_missing_permission(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    object_id = server.add_user(ANN_UPN, mail=ANN)
    with pytest.raises(MailboxAccessError, match=r"User\.Read\.All"):
        open_mailbox().check()
    server.add_contact(ANN_UPN, {"givenName": "Ann"})
    text = "\n".join(open_mailbox(ANN_UPN).check())  # a UPN works without the permission
    assert "User.Read.All" in text and "1 contacts" in text
    server.roles.append("User.Read.All")
    server.expire_tokens()  # a token carries the roles it was issued with
    text = "\n".join(open_mailbox().check())
    assert object_id in text and ANN_UPN in text


def test_the_engine_keeps_the_object_id_in_the_state_store(home: Path, server: GraphServer) -> None:
    alice = "alice@example.com"
    object_id = server.add_user("alice.w@example.onmicrosoft.com", mail=alice)
    server.roles.append("User.Read.All")
    engine = Engine(load_settings())
    try:
        seed_demo(engine.crm)
        user = engine.user(alice)
        assert any(object_id in line for line in engine.check_mailbox(user))
        target = f"graph {server.graph_url} {server.tenant_id}"
        assert engine.store.mailbox_identity(target, alice) == object_id
        server.reset_counts()
        assert engine.sync(user).error is None
        assert server.requests_by_kind["users"] == 0  # used, not looked up again
    finally:
        engine.close()


# ---- 4. displayName on every name change ----------------------------------------------------------


def test_a_name_change_sends_display_name_so_graph_does_not_regenerate_it(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    box = open_mailbox()
    listing(box)
    [made] = box.create([person(1, title="Dr")])
    [before] = server.contacts(ANN)
    assert before["displayName"] == "Pat1 Jones"

    [done] = box.update([ContactChange(made.item_id, made.change_key, (("title", "Prof"),))])

    assert done.ok
    [after] = server.contacts(ANN)
    assert after["title"] == "Prof" and after["displayName"] == "Pat1 Jones"


# ---- issue 20: the review against Microsoft's documentation ------------------------------------


def targets(server: GraphServer, part: str) -> list[str]:
    return [target for _method, target, _prefer in server.seen if part in target]


def test_delta_names_the_contacts_folder_by_its_id(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    """contact-delta takes `contactFolders/{id}`; the well-known name is undocumented."""
    server.add_contact(ANN, {"givenName": "A"})
    listing(open_mailbox())
    [delta] = targets(server, "/delta")
    assert f"/contactFolders/{server.folder_id(ANN)}/contacts/delta" in delta
    assert "/contactFolders/contacts/" not in delta


def test_delta_asks_for_pages_of_at_most_200(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    for n in range(450):
        server.add_contact(ANN, {"givenName": f"G{n}"})
    box = open_mailbox()  # pages of 500 for the caller; Graph sends contacts 200 at most

    assert len(listing(box)) == 450
    prefers = {prefer for _m, target, prefer in server.seen if "/delta" in target}
    assert prefers == {"odata.maxpagesize=200"}
    assert server.requests_by_kind["delta"] == 3  # 200 + 200 + 50


def test_without_delta_the_folder_is_listed_in_pages_of_top(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    for n in range(25):
        server.add_contact(ANN, {"givenName": f"G{n}"})
    server.delta_supported = False
    box = open_mailbox(page_size=500)

    assert len(listing(box)) == 25
    pages = [t for t in targets(server, "/contacts?") if "changeKey" in t]
    assert len(pages) == 1 and "%24top=500" in pages[0]  # not 3 pages of Outlook's 10


def test_a_refused_delta_is_tried_again_a_day_later(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox], settings: Settings
) -> None:
    server.add_contact(ANN, {"givenName": "A"})
    server.delta_supported = False  # a 400 on the first delta request
    box = open_mailbox()
    assert len(listing(box)) == 1
    box.close()
    server.delta_supported = True
    server.reset_counts()

    soon = open_mailbox()
    assert len(listing(soon)) == 1 and server.requests_by_kind["delta"] == 0
    assert soon.listing_mode()[0] == "full"
    soon.close()
    [saved] = (settings.crm_contacts_home / "graph-delta").glob("*.json")
    data = json.loads(saved.read_text())
    data["no_delta_since"] = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
    saved.write_text(json.dumps(data))

    later = open_mailbox()
    assert len(listing(later)) == 1
    assert server.requests_by_kind["delta"] == 1 and later.listing_mode()[0] == "delta"


def test_a_full_listing_mode_where_contact_delta_is_not_offered(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox], settings: Settings
) -> None:
    server.add_contact(ANN, {"givenName": "A"})
    full = Settings(
        crm_contacts_home=settings.crm_contacts_home, graph_listing="full", _env_file=None
    )  # type: ignore[call-arg]
    box = open_mailbox(settings=full)
    assert len(listing(box)) == 1 and server.requests_by_kind["delta"] == 0
    assert any("GRAPH_LISTING=full" in line for line in box.check())

    # contact-delta's national clouds: not available in China operated by 21Vianet
    china = Settings(
        crm_contacts_home=settings.crm_contacts_home,
        graph_url="https://microsoftgraph.chinacloudapi.cn/v1.0",
        _env_file=None,
    )  # type: ignore[call-arg]
    mode, why = open_mailbox(settings=china).listing_mode()
    assert mode == "full" and "21Vianet" in why


def test_a_batch_answered_424_around_throttled_requests_is_retried(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    """Throttling guidance: a throttled request in a batch fails with 429 and the batch
    itself with 424; the throttled ones are sent again after their Retry-After."""
    waits: list[float] = []
    box = open_mailbox(sleep=waits.append)
    server.inject("batch_item", status=429, index=1, retry_after=2)
    people = [
        NewContact(ContactFields.of(first_name=f"P{n}", last_name="Q").with_derived(), (TAG,), n)
        for n in (1, 2, 3)
    ]

    results = box.create(people)

    assert all(r.ok for r in results) and len(server.contacts(ANN)) == 3
    assert waits == [2.0]
    assert server.requests_by_kind["batch"] == 2


def test_the_crm_id_look_up_reads_every_page(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    twins = [
        server.add_contact(ANN, {"givenName": f"Twin{n}"}, extended={CRM_ID_PROPERTY: "5"})
        for n in range(12)
    ]
    found = open_mailbox().find([5])
    assert sorted(c.item_id for c in found[5]) == sorted(twins)  # past Outlook's page of 10


def test_display_name_goes_with_every_update(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    """contact-update: "always include it as displayName in an update operation"."""
    box = open_mailbox()
    fields = ContactFields.of(first_name="Ada", last_name="Byron", display_name="Ada (AE)")
    [made] = box.create([NewContact(fields, (TAG,), 7)])
    listing(box)

    [done] = box.update(
        [ContactChange(made.item_id, made.change_key or "", (("job_title", "CEO"),))]
    )

    assert done.ok
    [stored] = server.contacts(ANN)
    assert (stored["jobTitle"], stored["displayName"]) == ("CEO", "Ada (AE)")


def test_the_stand_in_answers_times_in_whole_seconds(
    server: GraphServer, open_mailbox: Callable[..., GraphMailbox]
) -> None:
    """The contact resource's times are whole seconds ("2017-02-22T20:14:25Z"): the engine
    orders and compares what Graph really sends."""
    server.add_contact(ANN, {"givenName": "A"})
    [stored] = server.contacts(ANN)
    whole = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    assert whole.match(stored["createdDateTime"]) and whole.match(stored["lastModifiedDateTime"])
    [contact] = listing(open_mailbox())
    assert contact.created_at == stored["createdDateTime"]
