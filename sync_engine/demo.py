"""`crm-contacts demo`: the seed story, walked as a salesperson would, on the embedded default.

It runs on the embedded CRM and the local mailbox only. Run again, it starts Alice's
story over (her list and mailbox emptied, the demo people restored) so it always shows
the same thing.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from rich.console import Console
from rich.rule import Rule
from rich.table import Table
from rich.text import Text
from sqlalchemy import delete, update

from sync_engine import tables as t
from sync_engine.crm import schema as s
from sync_engine.crm.embedded import DEMO_PEOPLE, DESIGN_RIGHT, seed_demo
from sync_engine.crm.search import search_people
from sync_engine.mailbox.local import LocalMailbox, contacts
from sync_engine.model import ContactFields, NewContact, SyncResult
from sync_engine.report import contacts_table, counts_line, detail_lines
from sync_engine.service import Engine, EngineError

ALICE = "alice@example.com"


def _step(console: Console, n: int, text: str) -> None:
    console.print()
    console.print(Rule(Text(f"{n}. {text}", style="bold"), align="left"))


def run_demo(engine: Engine, console: Console) -> None:
    settings = engine.settings
    if settings.crm_database_url or settings.mailbox_backend != "local":
        raise EngineError(
            "the demo runs on the embedded default: unset CRM_DATABASE_URL and MAILBOX_BACKEND"
        )
    crm = engine.crm
    _step(console, 1, "The demo CRM")
    seeded = seed_demo(crm)
    if seeded["created"]:
        console.print(f"Seeded {seeded['people']} people and {seeded['users']} salespeople.")
    else:
        _start_over(engine, console)
    user = engine.user(ALICE)
    stored = engine.store.ensure_user(user.id, user.email)
    box = LocalMailbox(settings.local_mailbox_url, stored.mailbox)
    try:
        _story(engine, console, user, box)
    finally:
        box.close()


def _story(engine: Engine, console: Console, user, box: LocalMailbox) -> None:  # type: ignore[no-untyped-def]
    query = f'company:"{DESIGN_RIGHT}"'
    _step(console, 2, f"Alice searches {query}")
    page = engine.search(user, query, limit=50)
    console.print(_people(page.people, f"{page.total} people match"))

    _step(console, 3, "She selects all and adds them to My CRM Contacts")
    added = engine.add(user, [p.id for p in page.people], source="demo")
    console.print(f"Added {len(added.added)}: {', '.join(p.name for p in added.added)}")

    _step(console, 4, "Add Group Of Contacts: everyone Alice is Account Manager for")
    group = engine.add_group(user, actor="demo")
    console.print(f"Added {len(group.added)}: {', '.join(p.name for p in group.added)}")

    _step(console, 5, "She opens Fatima Al-Sayed's summary and clicks Add To My Contacts")
    fatima = next(p for p in search_people(engine.crm, "Fatima Al-Sayed"))
    card = engine.person(user, fatima.id)
    console.print(
        f"{card.name} — {card.job_title}, {card.company} — {card.email} — account manager {card.manager}",
        markup=False,
    )
    engine.add(user, [card.id], source="demo")
    console.print("Added.")

    _step(console, 6, "Alice already had Wei Chen (Acme Corp) in Outlook, with her own category")
    wei = ContactFields.of(
        first_name="Wei", last_name="Chen", company="Acme Corp", email="wei@personal.example"
    ).with_derived()
    box.create(
        [NewContact(fields=wei, categories=("Golf",), crm_id=None)],
        notes="met at the 2025 golf day",
    )
    _mailbox(console, box)

    _step(console, 7, "Sync")
    _result(console, engine.sync(user))
    _mailbox(console, box)
    console.print("Wei Chen was linked to the contact Alice already had, not created twice.")

    _step(console, 8, "Sync again with nothing changed")
    second = engine.sync(user)
    _result(console, second)
    reads = second.requests - second.write_requests
    console.print(f"{reads} read request (the listing), {second.write_requests} writes.")

    priya = next(p for p in engine.my_list(user) if p.last_name == "Natarajan")
    _step(console, 9, f"Alice removes {priya.name} from My CRM Contacts, then syncs")
    engine.remove(user, [priya.id], actor="demo")
    _result(console, engine.sync(user))
    console.print(f"{priya.name} stays in the mailbox, without the category.")

    maria = next(p for p in engine.my_list(user) if p.last_name == "Lopez")
    _step(console, 10, f"{maria.name} is deleted in the CRM, then Alice syncs")
    from sync_engine.crm.embedded import EmbeddedCrm

    EmbeddedCrm(engine.crm).delete_person(maria.id)
    _result(console, engine.sync(user))
    _mailbox(console, box)

    john = next(p for p in engine.my_list(user) if p.last_name == "Smith")
    _step(console, 11, f"Alice fixes {john.name}'s phone number in Outlook, then syncs")
    [item] = [c for page in box.list_contacts() for c in page if c.crm_id == john.id]
    before = engine.crm.people_by_ids([john.id])[john.id].fields.business_phone
    box.user_edit(item.item_id, fields={"business_phone": "+1 512 555 0123"})
    console.print(f"In Outlook: {before} -> +1 512 555 0123", markup=False)
    _result(console, engine.sync(user))
    after = engine.crm.people_by_ids([john.id])[john.id].fields.business_phone
    console.print(f"The CRM now has {after} for {john.name}.", markup=False)

    console.print()
    console.print("Try it yourself:", style="bold")
    exe = _command_name()
    for line in (
        f"search Smith --as {ALICE}",
        f"list --as {ALICE}",
        f"why {maria.id} --as {ALICE}",
        f"mailbox list --as {ALICE}",
    ):
        console.print(f"  {exe} {line}", markup=False)


def _command_name() -> str:
    """How this shell reaches the command: plain if it is on PATH, else the path used."""
    used = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("crm-contacts")
    on_path = shutil.which("crm-contacts")
    if used.name == "crm-contacts" and (not on_path or Path(on_path).resolve() != used.resolve()):
        return os.path.relpath(used) if used.is_absolute() else str(used)
    return "crm-contacts"


def _start_over(engine: Engine, console: Console) -> None:
    """Restore the demo people and empty Alice's list and mailbox, keeping everything else."""
    crm = engine.crm
    first = crm.people_by_ids([1]).get(1)
    if first is None or (first.fields.first_name, first.fields.last_name) != ("Maria", "Lopez"):
        raise EngineError(
            "the CRM in CRM_CONTACTS_HOME is not the demo CRM; run the demo with an empty CRM_CONTACTS_HOME"
        )
    with crm.engine.begin() as conn:
        for person_id, p in enumerate(DEMO_PEOPLE, start=1):
            conn.execute(
                update(s.person)
                .where(s.person.c.Pers_PersonId == person_id)
                .values(
                    Pers_Deleted=None,
                    Pers_FirstName=p.first,
                    Pers_LastName=p.last,
                    Pers_MiddleName=p.middle or None,
                )
            )
    from sync_engine.crm.embedded import EmbeddedCrm

    for person_id, p in enumerate(DEMO_PEOPLE, start=1):  # step 11 wrote a phone back
        if p.last == "Smith" and p.phone:
            EmbeddedCrm(crm).update_person(person_id, phone=p.phone)
    user = engine.user(ALICE)
    stored = engine.store.ensure_user(user.id, user.email)
    with engine.store.engine.begin() as conn:
        conn.execute(delete(t.subscriptions).where(t.subscriptions.c.user_id == stored.id))
        conn.execute(delete(t.links).where(t.links.c.user_id == stored.id))
    box = LocalMailbox(engine.settings.local_mailbox_url, stored.mailbox)
    with box.engine.begin() as conn:
        conn.execute(delete(contacts).where(contacts.c.mailbox == stored.mailbox))
    box.close()
    console.print(
        "The demo ran here before: starting Alice's story over (her list and mailbox emptied)."
    )


def _people(people, title: str) -> Table:  # type: ignore[no-untyped-def]
    table = Table(title=title, title_justify="left")
    for column in ("id", "name", "company", "job title", "email"):
        table.add_column(column)
    for p in people:
        table.add_row(str(p.id), p.name, p.company, p.job_title, p.email)
    return table


def _mailbox(console: Console, box: LocalMailbox) -> None:
    items = sorted(
        (c for page in box.list_contacts() for c in page),
        key=lambda c: (c.fields.last_name.casefold(), c.fields.first_name.casefold()),
    )
    console.print(contacts_table(f"Alice's Contacts folder ({len(items)})", items, item_ids=False))


def _result(console: Console, r: SyncResult) -> None:
    console.print(f"Sync: {counts_line(r)}", style="green" if not r.error else "red")
    for line in detail_lines(r):
        if not line.lstrip().startswith("created"):
            console.print(line, markup=False)
    if r.error:
        raise EngineError(r.error)
