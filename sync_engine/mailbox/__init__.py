"""Mailbox targets behind one small protocol: local (embedded), ews (exchangelib), graph;
which one serves a mailbox is decided in choose.py."""

from __future__ import annotations

from sync_engine.mailbox.base import (
    Mailbox,
    MailboxAccessError,
    MailboxError,
    MailboxIdentities,
    MailboxNotFound,
)
from sync_engine.mailbox.choose import open_mailbox

__all__ = [
    "Mailbox",
    "MailboxAccessError",
    "MailboxError",
    "MailboxIdentities",
    "MailboxNotFound",
    "open_mailbox",
]
