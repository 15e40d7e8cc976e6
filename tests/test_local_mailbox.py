"""The local target behaves like an Exchange Contacts folder (DESIGN 5b)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sync_engine.mailbox.base import Mailbox
from sync_engine.mailbox.local import LocalMailbox
from sync_engine.model import ContactChange, ContactFields, NewContact


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mailboxes.sqlite'}"


def new(first: str, last: str, crm_id: int | None = None) -> NewContact:
    fields = ContactFields.of(first_name=first, last_name=last, company="Acme").with_derived()
    return NewContact(fields, ("CRM Contact",), crm_id)


def test_it_implements_the_protocol(url: str):
    assert isinstance(LocalMailbox(url, "a@example.com"), Mailbox)


def test_item_ids_are_stable_and_change_keys_change_on_every_write(url: str):
    box = LocalMailbox(url, "a@example.com")
    [made] = box.create([new("Wei", "Chen", 7)])
    before = box.get(made.item_id)
    assert before is not None and before.crm_id == 7 and before.change_key == made.change_key
    [done] = box.update(
        [ContactChange(made.item_id, made.change_key, (("email", "w@acme.example"),))]
    )
    after = box.get(made.item_id)
    assert after is not None and after.item_id == before.item_id
    assert after.change_key == done.change_key != before.change_key
    edited = box.user_edit(made.item_id, notes="met at the golf day")
    assert edited is not None and edited.change_key != after.change_key


def test_the_modified_time_moves_on_every_write_like_lastmodifiedtime(url: str):
    """Our writes and `mailbox update` (an Outlook edit) both stamp the item, as Exchange
    does: the write-back tells the latest of two mailboxes' edits by it (issue 14)."""
    box = LocalMailbox(url, "a@example.com")
    [made] = box.create([new("Wei", "Chen", 7)])
    created = box.get(made.item_id)
    assert created is not None and created.modified is not None
    box.update([ContactChange(made.item_id, made.change_key, (("email", "w@acme.example"),))])
    ours = box.get(made.item_id)
    assert ours is not None and ours.modified > created.modified  # type: ignore[operator]
    edited = box.user_edit(made.item_id, fields={"job_title": "CTO"})
    assert edited is not None and edited.modified > ours.modified  # type: ignore[operator]
    assert [c.modified_at for page in box.list_contacts() for c in page] == [edited.modified_at]


def test_a_partial_change_leaves_everything_else(url: str):
    box = LocalMailbox(url, "a@example.com")
    [made] = box.create([new("Wei", "Chen", 7)], notes="private notes")
    box.user_edit(
        made.item_id, fields={"mobile_phone": "+1 555"}, categories=("Golf", "CRM Contact")
    )
    stale_key = (
        made.change_key
    )  # Outlook wrote since: the change key is stale, the write still applies
    box.update(
        [ContactChange(made.item_id, stale_key, (("job_title", "CTO"),), ("Golf",), None, True)]
    )
    c = box.get(made.item_id)
    assert c is not None
    assert (c.fields.job_title, c.fields.mobile_phone, c.categories, c.crm_id) == (
        "CTO",
        "+1 555",
        ("Golf",),
        None,
    )
    assert box.notes(made.item_id) == "private notes"


def test_listing_pages_and_mailboxes_are_apart(url: str):
    box = LocalMailbox(url, "a@example.com", page_size=3)
    other = LocalMailbox(url, "b@example.com")
    box.create([new(f"P{i}", "X") for i in range(7)])
    other.create([new("Other", "Y")])
    pages = list(box.list_contacts())
    assert [len(p) for p in pages] == [3, 3, 1]
    assert box.requests == 1 + 3  # one create, three pages
    assert [c.fields.first_name for page in other.list_contacts() for c in page] == ["Other"]


def test_missing_items_fail_alone_and_deletes_are_idempotent(url: str):
    box = LocalMailbox(url, "a@example.com")
    [a, b] = box.create([new("A", "One"), new("B", "Two")])
    results = box.update(
        [
            ContactChange("nope", "x", (("email", "e@x"),)),
            ContactChange(b.item_id, b.change_key, (("email", "b@x"),)),
        ]
    )
    assert [r.error_kind for r in results] == ["not_found", None]
    assert all(r.ok for r in box.delete([a.item_id, a.item_id, "nope"]))
    assert [c.item_id for page in box.list_contacts() for c in page] == [b.item_id]
    with pytest.raises(ValueError, match="batch size"):
        LocalMailbox(url, "a@example.com", batch_size=1).create([new("C", "3"), new("D", "4")])


def test_opening_from_many_threads_at_once(url: str):
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            LocalMailbox(url, "a@example.com").close()
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
