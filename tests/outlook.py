"""A salesperson's side of the tests: their Contacts folder, a contact by last name, and
their own edit of it in Outlook, through whichever target the engine is set up with."""

from __future__ import annotations

from sync_engine.mailbox import open_mailbox
from sync_engine.model import ContactChange, MailboxContact
from sync_engine.service import Engine

ALICE = "alice@example.com"


def contacts(engine: Engine, address: str = ALICE) -> list[MailboxContact]:
    box = open_mailbox(engine.settings, address)
    try:
        return [c for page in box.list_contacts() for c in page]
    finally:
        box.close()


def by_last(
    engine: Engine, last: str, address: str = ALICE, first: str | None = None
) -> MailboxContact:
    [found] = [
        c
        for c in contacts(engine, address)
        if c.fields.last_name == last and first in (None, c.fields.first_name)
    ]
    return found


def outlook_edit(engine: Engine, item: MailboxContact, address: str = ALICE, **values: str) -> None:
    """The user's own edit in Outlook, through the same target."""
    box = open_mailbox(engine.settings, address)
    try:
        [result] = box.update([ContactChange(item.item_id, item.change_key, tuple(values.items()))])
        assert result.ok, result.error
    finally:
        box.close()
