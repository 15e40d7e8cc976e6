"""Which target serves a mailbox: the one place that decides it (issue 20).

MAILBOX_BACKEND names one target for every mailbox (`local`, `ews`, `graph`), or `hybrid`:
an organisation part-way through its move to Exchange Online, where each mailbox is served
where it lives. Microsoft turned EWS off in Exchange Online (MC1227454), and Exchange Server
has no Graph, so:

- Graph serves a mailbox Exchange Online holds: one request to its default Contacts folder
  answers (and learns the folder's id, which the listing needs anyway);
- EWS serves one Graph answers with 404 MailboxNotEnabledForRESTAPI (KB 4462988: on
  Exchange Server), or one Graph has no user for while Exchange Server has its mailbox.

The decision is stored per mailbox (`Placements`: the state database), used for a day,
then checked again; the engine asks for a fresh one after a failed sync, so a mailbox
moved to the cloud switches by itself at its next sync (and keeps its links: sync.py
finds the contacts again by CRM id on the new target).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from sync_engine.config import ConfigError, Settings
from sync_engine.files import private_dir
from sync_engine.mailbox.base import (
    Mailbox,
    MailboxAccessError,
    MailboxError,
    MailboxIdentities,
    MailboxNotFound,
    Placements,
)
from sync_engine.model import ContactFields

log = logging.getLogger(__name__)

RECHECK_AFTER = timedelta(days=1)
KINDS = ("local", "ews", "graph", "hybrid")
LABELS = {
    "local": "the local target",
    "ews": "Exchange Server (EWS)",
    "graph": "Exchange Online (Microsoft Graph)",
}
GRAPH_SETTINGS = ("graph_tenant_id", "graph_client_id", "graph_client_secret")


def missing_settings(settings: Settings, kind: str) -> list[str]:
    """The variables a target needs that are not set (their names, upper case)."""
    if kind == "graph":
        return [n.upper() for n in GRAPH_SETTINGS if not getattr(settings, n)]
    if kind == "ews":
        names = ["ews_url"]
        if settings.ews_auth == "oauth":
            names += ["graph_tenant_id", "graph_client_id", "graph_client_secret"]
        else:
            names += ["ews_username", "ews_password"]
        return [n.upper() for n in names if not getattr(settings, n)]
    if kind == "hybrid":
        return list(
            dict.fromkeys(missing_settings(settings, "graph") + missing_settings(settings, "ews"))
        )
    return []


def check_settings(settings: Settings) -> None:
    """One line naming what MAILBOX_BACKEND needs and lacks (ConfigError)."""
    kind = settings.mailbox_backend
    if kind not in KINDS:
        raise ConfigError(f"MAILBOX_BACKEND must be local, ews, graph or hybrid, not {kind!r}")
    missing = missing_settings(settings, kind)
    if not missing:
        return
    if kind == "hybrid":
        raise ConfigError(
            f"MAILBOX_BACKEND=hybrid needs the settings of both targets; missing: "
            f"{', '.join(missing)} (Graph for Exchange Online, EWS for Exchange Server; "
            "see docs/exchange-online.md)"
        )
    if kind == "ews" and missing[0] == "EWS_URL":
        raise ConfigError(
            "EWS_URL is not set: give the EWS endpoint, e.g. https://mail.example.com/EWS/Exchange.asmx"
        )
    if kind == "graph":
        raise ConfigError(
            f"{missing[0]} is not set: MAILBOX_BACKEND=graph needs the app registration's ids and secret"
        )


def open_mailbox(
    settings: Settings,
    address: str,
    *,
    identities: MailboxIdentities | None = None,
    placements: Placements | None = None,
    now: Callable[[], datetime] | None = None,
) -> Mailbox:
    """The target serving this mailbox; adapters are imported only when chosen.

    `identities` (the state store) keeps what EWS and Graph learn about the address;
    `placements` (the state store) keeps where hybrid mode found the mailbox."""
    check_settings(settings)
    kind = settings.mailbox_backend
    if kind == "hybrid":
        return _hybrid(settings, address, identities, placements, (now or _utcnow)())
    return _open(kind, settings, address, identities)


def describe(
    settings: Settings, address: str, placements: Placements | None = None
) -> tuple[str, str]:
    """(the target serving the mailbox, why), for `status` and `check-mailbox`."""
    kind = settings.mailbox_backend
    if kind != "hybrid":
        return kind, f"MAILBOX_BACKEND={kind}"
    placed = placements.placement(address) if placements is not None else None
    if placed is None:
        return "", "MAILBOX_BACKEND=hybrid: decided at the next sync"
    if placed.at is None:
        return placed.kind, f"hybrid: {placed.why} (asked again at the next sync)"
    return placed.kind, f"hybrid: {placed.why} (checked {placed.at:%Y-%m-%d %H:%M} UTC)"


def _open(
    kind: str, settings: Settings, address: str, identities: MailboxIdentities | None
) -> Mailbox:
    if kind == "local":
        from sync_engine.mailbox.local import LocalMailbox

        private_dir(settings.crm_contacts_home)
        return LocalMailbox(settings.local_mailbox_url, address)
    if kind == "ews":
        from sync_engine.mailbox.ews import EwsMailbox

        return EwsMailbox(settings, address, identities=identities)
    from sync_engine.mailbox.graph import GraphMailbox

    return GraphMailbox(settings, address, identities=identities)


def _hybrid(
    settings: Settings,
    address: str,
    identities: MailboxIdentities | None,
    placements: Placements | None,
    now: datetime,
) -> Mailbox:
    placed = placements.placement(address) if placements is not None else None
    if placed is not None and placed.at is not None and now - placed.at < RECHECK_AFTER:
        return _open(placed.kind, settings, address, identities)
    try:
        mailbox, why = _locate(settings, address, identities)
    except MailboxError as exc:
        if placed is None or isinstance(exc, MailboxAccessError):
            # an admin must act (sign-in, permissions, or no mailbox anywhere), or Graph
            # and Exchange cannot tell now and nothing was decided before
            return Unplaced(address, exc)
        log.warning("%s: could not check where it lives (%s); still %s", address, exc, placed.kind)
        return _open(placed.kind, settings, address, identities)
    if placements is not None:
        placements.place(address, mailbox.kind, why, now)
    if placed is None or placed.kind != mailbox.kind:
        log.info("%s is served by %s: %s", address, mailbox.kind, why)
    return mailbox


class Unplaced:
    """A mailbox hybrid mode could place on neither target: every call that would reach a
    server raises why. So the sync fails as that mailbox's own recorded run (retried,
    shown in `status`, counted by the alerts) and never stops the syncs of the others
    (DESIGN rule 10), and `mailbox reset` still forgets what it should."""

    kind = ""  # served by nothing (metrics count it under MAILBOX_BACKEND)
    target_id = ""
    batch_size = 1
    requests = 0

    def __init__(self, address: str, error: MailboxError) -> None:
        self.address = address
        self.error = error

    def _fail(self, *_: object) -> NoReturn:
        raise self.error

    list_contacts = create = update = delete = find = check = _fail

    def as_held(self, fields: ContactFields) -> ContactFields:
        return fields

    def forget_state(self) -> None:
        pass  # no target holds any state of it

    def close(self) -> None:
        pass


def _locate(
    settings: Settings, address: str, identities: MailboxIdentities | None
) -> tuple[Mailbox, str]:
    """Ask Graph whether Exchange Online holds the mailbox; else EWS, checked once."""
    from sync_engine.mailbox.graph import GraphMailbox

    graph = GraphMailbox(settings, address, identities=identities)
    try:
        code = graph.located()
    except MailboxNotFound as exc:  # not in this tenant: maybe on Exchange Server
        graph.close()
        cloud = f"Exchange Online has no mailbox for it ({_first(exc)})"
    except BaseException:
        graph.close()
        raise
    else:
        if code is None:
            return graph, "Exchange Online holds it: Graph serves its Contacts folder"
        graph.close()
        cloud = f"Graph answered {code}: it is not in Exchange Online"
    ews = _open("ews", settings, address, identities)
    try:
        ews.check()
    except MailboxAccessError as exc:
        ews.close()
        raise MailboxAccessError(
            f"Neither target serves {address}: {cloud}, and Exchange Server: {_first(exc)}"
        ) from None
    except BaseException:
        ews.close()
        raise
    return ews, f"{cloud}; Exchange Server serves it over EWS"


def _first(exc: BaseException) -> str:
    """The first sentence of an error, for a one-line message."""
    text = " ".join(str(exc).split())
    return text.split(". ")[0].rstrip(".")


def _utcnow() -> datetime:
    return datetime.now(UTC)
