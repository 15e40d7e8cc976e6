"""Issue 20, item 4: the Graph target as Microsoft documents it, one test per review point.

Against the loopback Graph (tests/servers/graph), whose rules each name their source: the
default Contacts folder by its id, `$top` on list endpoints, delta pages of at most 200, a
refused delta tried again a day later, a full-listing mode where contact delta is not
offered, a `$batch` answered 424 around throttled requests, the CRM-id look-up read to its
last page, and displayName with every update. Nothing of ours is mocked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from servers.graph import GraphServer, graph_server

from sync_engine.config import Settings
from sync_engine.mailbox.base import MemoryIdentities
from sync_engine.mailbox.graph import CRM_ID_PROPERTY, GraphMailbox
from sync_engine.model import ContactChange, ContactFields, MailboxContact, NewContact

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
def open_mailbox(settings: Settings) -> Iterator[Callable[..., GraphMailbox]]:
    opened: list[GraphMailbox] = []
    waits: list[float] = []

    def make(address: str = ANN, **options: Any) -> GraphMailbox:
        options.setdefault("sleep", waits.append)
        options.setdefault("identities", MemoryIdentities())
        box = GraphMailbox(options.pop("settings", settings), address, **options)
        box.waits = waits  # type: ignore[attr-defined]
        opened.append(box)
        return box

    yield make
    for box in opened:
        box.close()


def listing(box: GraphMailbox) -> list[MailboxContact]:
    return [c for page in box.list_contacts() for c in page]


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
    box = open_mailbox()
    server.inject("batch_item", status=429, index=1, retry_after=2)
    people = [
        NewContact(ContactFields.of(first_name=f"P{n}", last_name="Q").with_derived(), (TAG,), n)
        for n in (1, 2, 3)
    ]

    results = box.create(people)

    assert all(r.ok for r in results) and len(server.contacts(ANN)) == 3
    assert box.waits == [2.0]  # type: ignore[attr-defined]
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
