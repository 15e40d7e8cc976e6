"""relink.py on plain values: links found again by CRM id after a change of target."""

from __future__ import annotations

from dataclasses import replace

from sync_engine.model import ContactFields, Link, MailboxContact
from sync_engine.relink import missing_links, relinked


def contact(
    item_id: str, crm_id: int | None, created: str = "2026-01-01T00:00:00Z"
) -> MailboxContact:
    return MailboxContact(
        item_id, "ck-" + item_id, ContactFields.of(last_name=item_id), (), crm_id, created
    )


def link(pid: int, item_id: str, **values: str) -> Link:
    return Link(pid, item_id, "old-ck", "fp", "created", dict(values) or None, dict(values) or None)


def private_first(fields: ContactFields) -> ContactFields:
    """Graph's way: a lone Private e-mail is e-mail 1."""
    return (
        replace(fields, email=fields.email2, email2="")
        if fields.email2 and not fields.email
        else fields
    )


def test_trusted_links_keep_their_items_and_a_moved_one_follows_its_crm_id() -> None:
    links = {1: link(1, "a"), 2: link(2, "gone")}
    contacts = [contact("a", 1), contact("b-new", 2)]

    out = relinked(links, contacts, trusted=True)

    assert out[1] is links[1]
    assert (out[2].item_id, out[2].change_key) == ("b-new", "")  # written again by the plan
    assert missing_links(links, contacts, trusted=True) == []


def test_untrusted_item_ids_are_never_matched_and_values_are_read_as_held() -> None:
    # another target's item id that happens to exist here belongs to someone else
    links = {1: link(1, "x", email2="pat@home.example"), 2: link(2, "y")}
    contacts = [contact("x", 2), contact("z", 1), contact("twin", 1, "2026-02-01T00:00:00Z")]

    out = relinked(links, contacts, trusted=False, as_held=private_first)

    assert (out[1].item_id, out[2].item_id) == ("z", "x")  # oldest carrying the CRM id
    assert out[1].mailbox_values["email"] == "pat@home.example"  # type: ignore[index]
    assert out[1].mailbox_values["email2"] == ""  # type: ignore[index]


def test_links_not_listed_by_item_or_crm_id_are_looked_up_and_else_left_to_rule_7() -> None:
    links = {1: link(1, "a"), 2: link(2, "b"), 3: link(3, "c")}
    contacts = [contact("a", None), contact("q", 3)]

    assert missing_links(links, contacts, trusted=True) == [2]
    assert missing_links(links, contacts, trusted=False) == [1, 2]
    assert relinked(links, contacts, trusted=True)[2] is links[2]
