"""Links found again by CRM id (issue 20): pure, like plan.py.

A link remembers the item id of its contact. A mailbox moved from Exchange Server to
Exchange Online keeps its contacts and their named properties, but every item gets a new
id; the same holds when the target changes for any reason (a new MAILBOX_BACKEND, or
`crm-contacts mailbox reset`). So before anything is planned:

- `missing_links` names the linked people whose contact the listing did not show under
  its item id or CRM id: the sync looks those up by CRM id (`Mailbox.find`) before anyone
  is taken for deleted in Outlook;
- `relinked` points each link at the contact that carries its CRM id when the item id is
  gone or not to be trusted (another target's), so both planners compare the contact with
  what the link remembers instead of taking the move for an edit. The values the link
  remembers are read again as the new target holds them (`as_held`), so a field the
  targets lay out differently (Graph has no empty e-mail slot) is no edit either.

A link whose contact is found nowhere is left as it is: the planner applies rule 7.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from sync_engine.model import ContactFields, Link, MailboxContact, write_back_values

Held = Callable[[ContactFields], ContactFields]


def missing_links(
    links: Mapping[int, Link], contacts: Iterable[MailboxContact], *, trusted: bool
) -> list[int]:
    """Linked people whose contact the listing shows neither by item id nor by CRM id."""
    items = {c.item_id for c in contacts}
    tagged = {c.crm_id for c in contacts if c.crm_id is not None}
    return sorted(
        pid
        for pid, link in links.items()
        if pid not in tagged and not (trusted and link.item_id in items)
    )


def relinked(
    links: Mapping[int, Link],
    contacts: Iterable[MailboxContact],
    *,
    trusted: bool,
    as_held: Held | None = None,
) -> dict[int, Link]:
    """The links, each pointing at the contact that is its own now (see the module doc).

    `trusted`: the item ids come from this target; when not, every link is matched by CRM
    id and its remembered values are read again through `as_held`."""
    contacts = list(contacts)
    items = {c.item_id for c in contacts}
    by_crm_id: dict[int, list[MailboxContact]] = defaultdict(list)
    for c in sorted(contacts, key=lambda c: (c.created_at, c.item_id)):
        if c.crm_id is not None:
            by_crm_id[c.crm_id].append(c)
    out: dict[int, Link] = {}
    for pid, link in links.items():
        if trusted and link.item_id in items:
            out[pid] = link
            continue
        found = by_crm_id.get(pid)
        if not found:
            out[pid] = link  # not in the mailbox: rule 7 decides
            continue
        # the change key of another item: the link is written again with the new id
        moved = replace(link, item_id=found[0].item_id, change_key="")
        if not trusted and as_held is not None:
            moved = replace(
                moved,
                crm_values=_held(link.crm_values, as_held),
                mailbox_values=_held(link.mailbox_values, as_held),
            )
        out[pid] = moved
    return out


def _held(values: Mapping[str, str] | None, as_held: Held) -> dict[str, str] | None:
    """Remembered write-back values as the target holds them."""
    if values is None:
        return None
    return write_back_values(as_held(ContactFields.of(**values)))
