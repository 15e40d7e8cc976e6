"""The `mailbox` commands: look at a Contacts folder; edit the local one as a user would
in Outlook."""

from __future__ import annotations

from typing import Annotated

import typer

from sync_engine.cli.core import (
    As,
    Json,
    engine,
    fail,
    friendly,
    mailbox_app,
    out,
    print_json,
)
from sync_engine.model import FIELD_NAMES, ContactFields, MailboxContact, NewContact
from sync_engine.report import contacts_table

# -- mailboxes ----------------------------------------------------------------------------


def local_mailbox(email: str):  # type: ignore[no-untyped-def]
    """The user's mailbox on the local target (the `mailbox` edit commands stand in for Outlook)."""
    from sync_engine.mailbox.local import LocalMailbox

    e = engine()
    if e.settings.mailbox_backend != "local":
        raise fail("this command edits the local target only; edit real mailboxes in Outlook")
    user = e.user(email)
    stored = e.store.ensure_user(user.id, user.email)
    e.settings.crm_contacts_home.mkdir(parents=True, exist_ok=True)
    return LocalMailbox(e.settings.local_mailbox_url, stored.mailbox)


# Every mapped field of DESIGN section 4 under its stable key (DESIGN section 5b); the
# derived display name and File As are Outlook's, not CRM values.
JSON_FIELDS = tuple(name for name in FIELD_NAMES if name not in ("display_name", "file_as"))


@mailbox_app.command("list")
@friendly
def mailbox_list(as_: As, as_json: Json = False) -> None:
    """The contacts in the user's Contacts folder."""
    e = engine()
    user = e.user(as_)
    box = e.mailbox_factory(e.settings, e.store.ensure_user(user.id, user.email).mailbox)
    try:
        contacts = [c for page in box.list_contacts() for c in page]
    finally:
        box.close()
    contacts.sort(
        key=lambda c: (c.fields.last_name.casefold(), c.fields.first_name.casefold(), c.item_id)
    )
    if as_json:
        print_json(
            [
                {
                    "id": c.item_id,
                    **{key: getattr(c.fields, key) for key in JSON_FIELDS},
                    "categories": list(c.categories),
                    "crm_id": c.crm_id,
                }
                for c in contacts
            ]
        )
        return
    print_mailbox(box.address, contacts)


def print_mailbox(address: str, contacts: list[MailboxContact]) -> None:
    out.print(contacts_table(f"Contacts of {address} ({len(contacts)})", contacts, item_ids=True))


@mailbox_app.command("add")
@friendly
def mailbox_add(
    as_: As,
    last: Annotated[str, typer.Option()],
    first: str = "",
    middle: str = "",
    company: str = "",
    email: str = "",
    category: Annotated[
        list[str] | None, typer.Option(help="A category (repeat for several).")
    ] = None,
) -> None:
    """Add a contact by hand, as the user would in Outlook; prints its item id."""
    box = local_mailbox(as_)
    fields = ContactFields.of(
        first_name=first, middle_name=middle, last_name=last, company=company, email=email
    ).with_derived()
    result = box.create([NewContact(fields=fields, categories=tuple(category or ()), crm_id=None)])
    out.print(result[0].item_id)


@mailbox_app.command("update")
@friendly
def mailbox_update(
    item_id: Annotated[
        str, typer.Argument(help="The contact's item id (see `mailbox list --json`).")
    ],
    as_: As,
    first: str | None = None,
    middle: str | None = None,
    last: str | None = None,
    company: str | None = None,
    email: str | None = None,
    email2: str | None = None,
    job_title: Annotated[str | None, typer.Option("--job-title")] = None,
    phone: Annotated[str | None, typer.Option(help="The business phone.")] = None,
    mobile: str | None = None,
    home_phone: Annotated[str | None, typer.Option("--home-phone")] = None,
    category: Annotated[
        list[str] | None, typer.Option(help="Replace the categories (repeat for several).")
    ] = None,
) -> None:
    """Edit a contact as the user would in Outlook (a linked contact's edits are written
    back to the CRM at the next sync)."""
    box = local_mailbox(as_)
    names = {
        "first_name": first,
        "middle_name": middle,
        "last_name": last,
        "company": company,
        "email": email,
        "email2": email2,
        "job_title": job_title,
        "business_phone": phone,
        "mobile_phone": mobile,
        "home_phone": home_phone,
    }
    fields = {k: v.strip() for k, v in names.items() if v is not None}
    done = box.user_edit(
        item_id, fields=fields, categories=tuple(category) if category is not None else None
    )
    if done is None:
        raise fail(
            f"no contact {item_id} in {box.address}; see `crm-contacts mailbox list --as {as_}`"
        )
    out.print(f"Updated {done.name}.", markup=False)


@mailbox_app.command("delete")
@friendly
def mailbox_delete(item_id: Annotated[str, typer.Argument()], as_: As) -> None:
    """Delete a contact, as the user would in Outlook."""
    box = local_mailbox(as_)
    if box.get(item_id) is None:
        raise fail(
            f"no contact {item_id} in {box.address}; see `crm-contacts mailbox list --as {as_}`"
        )
    box.delete([item_id])
    out.print(f"Deleted {item_id}.")


@mailbox_app.command("reset")
@friendly
def mailbox_reset(as_: As) -> None:
    """Forget the target's saved state for the mailbox (delta link, item ids); the next
    sync finds its contacts again by their CRM ids: no twin, nothing forgotten."""
    e = engine()
    address = e.reset_mailbox(e.user(as_))
    out.print(
        f"Forgot the saved sync state of {address}. The next sync finds its contacts again "
        "by their CRM ids.",
        markup=False,
    )
