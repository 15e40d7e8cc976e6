"""Mailbox targets behind one small protocol: local (embedded), ews (exchangelib), graph."""

from __future__ import annotations

from sync_engine.config import ConfigError, Settings
from sync_engine.files import private_dir
from sync_engine.mailbox.base import (
    Mailbox,
    MailboxAccessError,
    MailboxError,
    MailboxIdentities,
)

__all__ = ["Mailbox", "MailboxAccessError", "MailboxError", "MailboxIdentities", "open_mailbox"]


def open_mailbox(
    settings: Settings, address: str, *, identities: MailboxIdentities | None = None
) -> Mailbox:
    """The configured target for one mailbox; adapters are imported only when chosen.

    `identities` (the state store) keeps what EWS and Graph learn about the address
    (primary SMTP address, user object id) between runs."""
    if settings.mailbox_backend == "local":
        from sync_engine.mailbox.local import LocalMailbox

        private_dir(settings.crm_contacts_home)
        return LocalMailbox(settings.local_mailbox_url, address)
    if settings.mailbox_backend == "ews":
        if not settings.ews_url:
            raise ConfigError(
                "EWS_URL is not set: give the EWS endpoint, e.g. https://mail.example.com/EWS/Exchange.asmx"
            )
        from sync_engine.mailbox.ews import EwsMailbox

        return EwsMailbox(settings, address, identities=identities)
    if settings.mailbox_backend == "graph":
        missing = [
            n
            for n in ("graph_tenant_id", "graph_client_id", "graph_client_secret")
            if not getattr(settings, n)
        ]
        if missing:
            raise ConfigError(
                f"{missing[0].upper()} is not set: MAILBOX_BACKEND=graph needs the app registration's ids and secret"
            )
        from sync_engine.mailbox.graph import GraphMailbox

        return GraphMailbox(settings, address, identities=identities)
    raise ConfigError(
        f"MAILBOX_BACKEND must be local, ews or graph, not {settings.mailbox_backend!r}"
    )
