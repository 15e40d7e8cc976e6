"""What the command line and the demo both print: a sync result as plain-text lines, a
Contacts folder as a table (cells printed as text by sync_engine.terminal.PlainConsole)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table

from sync_engine.model import MailboxContact, SyncResult

ACTIONS = ("created", "linked", "updated", "unlinked", "deleted", "forgotten", "failed")
# write-back (issue 14): Outlook edits sent to the CRM, and those that lost to a CRM edit
WRITE_BACK_LABELS = (("written_back", "written back to the CRM"), ("conflict", "lost to the CRM"))


def counts_line(r: SyncResult) -> str:
    """'8 created, 1 linked' or 'nothing to do'."""
    parts = [f"{r.count(a)} {a}" for a in ACTIONS if r.count(a)]
    parts += [f"{r.count(a)} {label}" for a, label in WRITE_BACK_LABELS if r.count(a)]
    return ", ".join(parts) or "nothing to do"


def detail_lines(r: SyncResult) -> list[str]:
    """One line per person (created ones only by name) and per duplicate hint or warning."""
    lines = []
    for o in r.outcomes:
        detail = f" ({o.detail})" if o.detail and o.action != "created" else ""
        action = o.action.replace("_", " ")
        lines.append(f"  {action:<9} {o.name}{detail}")
    lines += [f"  possible duplicate: {d}" for d in r.possible_duplicates]
    lines += [f"  warning: {w}" for w in r.warnings]
    return lines


def contacts_table(title: str, contacts: Iterable[MailboxContact], *, item_ids: bool) -> Table:
    """One row per contact: name, company, emails, phones, categories (and the item id,
    which `mailbox list` shows so a contact can be edited by it)."""
    table = Table(title=title, title_justify="left")
    for column in ("name", "company", "emails", "phones", "categories"):
        table.add_column(column)
    if item_ids:
        table.add_column("item id")
    for c in contacts:
        row = [
            c.fields.full_name(),
            c.fields.company,
            "\n".join(e for e in (c.fields.email, c.fields.email2) if e),
            "\n".join(c.fields.phone_lines()),
            ", ".join(c.categories),
        ]
        table.add_row(*row, *([c.item_id[:12]] if item_ids else []))
    return table
