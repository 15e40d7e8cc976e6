"""Address-book (EX) e-mail addresses of contacts, shown as their SMTP address.

An e-mail entry a user picked from the Global Address List is kept with routing type EX:
its value is the recipient's legacy Exchange DN (`/o=ExchangeLabs/ou=Exchange
Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=…`), and FindItem returns that
value as the entry's text (types.xsd EmailAddressDictionaryEntryType: the address, with
the RoutingType attribute saying EX). It is not an e-mail address: compared with the CRM
it would look like an Outlook edit and be written back to Sage.

So each distinct one of our contacts (CRM id or our category: the only ones compared with
the CRM) is resolved once per run with ResolveNames (messages.xsd
ResolveNamesType: one UnresolvedEntry per request; the ResolveNames operation resolves
"ambiguous e-mail addresses and display names", and Active Directory's ambiguous name
resolution covers legacyExchangeDN). The contact is then seen with the SMTP address Exchange
names. When Exchange cannot resolve it, the value is left as it is, and write-back never
sends a value that is not an e-mail address (write_back_checks.py refuses it for that
person, with the reason).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from exchangelib import Contact
from exchangelib.properties import Mailbox as EwsMailboxElement

from sync_engine.mailbox.ews.services import CountedResolveNames
from sync_engine.model import MailboxContact

log = logging.getLogger(__name__)

# An X.500 / legacy Exchange DN, as an EX-type entry holds it.
LEGACY_DN = re.compile(r"^\s*/o=", re.IGNORECASE)


def is_legacy_dn(value: object) -> bool:
    return isinstance(value, str) and bool(LEGACY_DN.match(value))


def with_smtp_addresses(contact: MailboxContact, resolved: dict[str, str | None]) -> MailboxContact:
    """The contact with each resolvable EX address replaced by its SMTP address."""
    changes = {}
    for name in ("email", "email2"):
        value = getattr(contact.fields, name)
        if is_legacy_dn(value) and resolved.get(value.strip().lower()):
            changes[name] = resolved[value.strip().lower()]
    if not changes:
        return contact
    return replace(contact, fields=replace(contact.fields, **changes))


class Addresses:
    """ResolveNames for EX addresses (mixed into EwsMailbox)."""

    def _resolve_ex_addresses(self, items: Sequence[Contact]) -> dict[str, str | None]:
        """Resolve every EX address of these items not resolved yet in this run."""
        wanted = {
            e.email.strip().lower()
            for c in items
            for e in c.email_addresses or []
            if is_legacy_dn(e.email)
        } - set(self._resolved_addresses)
        for dn in sorted(wanted):
            self._resolved_addresses[dn] = self._call(lambda d=dn: self._resolve_name(d))
        return self._resolved_addresses

    def _resolve_name(self, legacy_dn: str) -> str | None:
        """One ResolveNames request: the SMTP address Exchange names, or None."""
        service = CountedResolveNames(
            protocol=self._account.protocol, chunk_size=1, timeout=self.timeout
        )
        service.counter = self
        answers: list[Any] = list(
            service.call(unresolved_entries=[legacy_dn], return_full_contact_data=False)
        )
        for answer in answers:
            if (
                isinstance(answer, EwsMailboxElement)
                and "@" in (answer.email_address or "")
                and (answer.routing_type or "SMTP").upper() == "SMTP"
            ):
                return str(answer.email_address).strip()
        log.info("an address-book (EX) address of %s could not be resolved", self.address)
        return None
