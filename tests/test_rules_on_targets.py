"""The rules of DESIGN section 2, end to end through the engine, on every mailbox target:
the local one, Exchange Server over EWS and Exchange Online over Graph (the last two as
loopback servers speaking the real wire protocol)."""

from __future__ import annotations

import pytest

from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.mailbox import open_mailbox
from sync_engine.model import ContactChange, ContactFields, MailboxContact, NewContact
from sync_engine.service import Engine

ALICE = "alice@example.com"
CAT = "CRM Contact"


@pytest.fixture
def engine(engine_on_each_target: Engine) -> Engine:
    return engine_on_each_target


def contacts(engine: Engine) -> list[MailboxContact]:
    box = open_mailbox(engine.settings, ALICE)
    try:
        return [c for page in box.list_contacts() for c in page]
    finally:
        box.close()


def outlook(engine: Engine):  # type: ignore[no-untyped-def]
    """The user's own hands on the mailbox (Outlook), through the same target."""
    return open_mailbox(engine.settings, ALICE)


def by_last(engine: Engine, last: str) -> list[MailboxContact]:
    return [c for c in contacts(engine) if c.fields.last_name == last]


def test_rules_end_to_end(engine: Engine):
    alice = engine.user(ALICE)
    crm = EmbeddedCrm(engine.crm)
    box = outlook(engine)
    wei = ContactFields.of(first_name="Wei", last_name="Chen", company="Acme Corp").with_derived()
    mine = ContactFields.of(
        first_name="Own", last_name="Friend", company="Golf Club"
    ).with_derived()
    [wei_item, own_item] = box.create(
        [NewContact(wei, ("Golf",), None), NewContact(mine, (), None)]
    )

    design_right = engine.search(alice, 'company:"Design Right Inc."', limit=50).people
    engine.add(alice, [p.id for p in design_right])
    engine.add_group(alice)
    first = engine.sync(alice)
    assert first.error is None, first.error
    # rule 1 + 2: eight created, Wei Chen linked to the contact Alice had
    assert (first.count("created"), first.count("linked")) == (8, 1)
    [chen] = by_last(engine, "Chen")
    assert chen.item_id == wei_item.item_id
    assert CAT in chen.categories and "Golf" in chen.categories  # rule 3
    assert len(contacts(engine)) == 10
    assert {c.crm_id for c in contacts(engine) if c.crm_id} == {p.id for p in engine.my_list(alice)}

    # rule 9: nothing changed, nothing written
    steady = engine.sync(alice)
    assert steady.write_requests == 0 and not steady.outcomes

    # rule 4: a CRM change is written; a CRM blank keeps what the user typed
    zoe = next(p for p in design_right if p.first_name == "Zoë")
    [zoe_contact] = by_last(engine, "Brontë")
    box.update(
        [
            ContactChange(
                zoe_contact.item_id, zoe_contact.change_key, (("department", "Front desk"),)
            )
        ]
    )
    crm.update_person(zoe.id, email="zoe.b@designright.example", department="")
    assert engine.sync(alice).count("updated") == 1
    [zoe_after] = by_last(engine, "Brontë")
    assert (zoe_after.fields.email, zoe_after.fields.department) == (
        "zoe.b@designright.example",
        "Front desk",
    )

    # rule 5: removed from the list = unlinked, the contact stays without the category
    priya = next(p for p in design_right if p.last_name == "Natarajan")
    engine.remove(alice, [priya.id])
    assert engine.sync(alice).count("unlinked") == 1
    [kept] = by_last(engine, "Natarajan")
    assert CAT not in kept.categories and kept.crm_id is None

    # rule 6: deleted in the CRM = deleted from the mailbox
    maria = next(p for p in design_right if p.last_name == "Lopez")
    crm.delete_person(maria.id)
    assert engine.sync(alice).count("deleted") == 1
    assert by_last(engine, "Lopez") == []

    # rule 7: deleted in Outlook = not brought back, and off the list
    [tom] = by_last(engine, "Baker")
    box.delete([tom.item_id])
    gone = engine.sync(alice)
    assert gone.count("forgotten") == 1 and gone.count("created") == 0
    assert by_last(engine, "Baker") == [] and tom.crm_id not in {
        p.id for p in engine.my_list(alice)
    }

    # the user's own contact was never touched
    [own] = by_last(engine, "Friend")
    assert own.item_id == own_item.item_id and own.categories == () and own.crm_id is None
    assert engine.sync(alice).write_requests == 0
    box.close()


def test_initial_sync_costs_listing_pages_plus_write_batches(engine: Engine):
    alice = engine.user(ALICE)
    crm = EmbeddedCrm(engine.crm)
    ids = [crm.add_person(first=f"P{i}", last=f"Person{i}", company="Bulk Ltd") for i in range(250)]
    engine.add(alice, ids)
    box = outlook(engine)
    batch = box.batch_size
    box.close()
    result = engine.sync(alice)
    assert result.count("created") == 250 and result.error is None
    assert result.write_requests <= -(-250 // batch)  # ceil(250 / batch size)
    assert result.requests - result.write_requests <= 2  # listing an empty folder
    again = engine.sync(alice)
    assert again.write_requests == 0
    assert len({c.crm_id for c in contacts(engine)}) == 250
