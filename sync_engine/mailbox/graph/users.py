"""Which Entra ID user a mailbox address belongs to.

Graph's `/users/{id | userPrincipalName}` (user-get, v1.0) takes an object id or a UPN,
not any e-mail address of the user; a salesperson whose SMTP address differs from their
UPN would read as "no mailbox". So the address is first tried as the UPN (most tenants:
no extra request), and when Graph answers that the user does not exist, it is looked up
once with `GET /users?$filter=proxyAddresses/any(a:a eq 'smtp:<address>')` (user-list:
`proxyAddresses` supports `eq` through `any` without the advanced query parameters; the
match covers the primary address and every alias, case-insensitively). The object id found
is kept in the state store (`mailbox_identities`) and used for every later request. The
look-up needs the application permission User.Read.All; without it, addresses that are
UPNs still work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from sync_engine.mailbox.base import MailboxAccessError, MailboxNotFound
from sync_engine.mailbox.graph.errors import UnknownUser

log = logging.getLogger(__name__)

T = TypeVar("T")
LOOKUP_PERMISSION = "User.Read.All"


class Users:
    """Resolving the mailbox address to a user object id (mixed into GraphMailbox)."""

    def _identity_target(self) -> str:
        """The service this identity is valid for: one Graph endpoint and one tenant."""
        return f"graph {self._graph} {self._tenant}"

    def _use_user(self, object_id: str | None) -> None:
        segment = object_id or self.address
        self._user = f"/users/{quote(segment, safe='@')}"
        self.user_id = object_id

    def _resolving(self, fn: Callable[[], T]) -> T:
        """Run `fn`; if Graph says the user path names nobody, look the address up once and
        run `fn` again with the user's object id."""
        try:
            return fn()
        except UnknownUser:
            self._resolve_user()
            return fn()

    def _resolve_user(self) -> None:
        found, denied = self._lookup_user()
        self._user_resolved = True
        if found is None:
            if denied:
                raise MailboxAccessError(
                    f"There is no Exchange Online mailbox for {self.address} as a UPN in "
                    f"tenant {self._tenant}. If it is an e-mail address that is not the user's "
                    f"UPN, app {self._client_id} needs the application permission "
                    f"{LOOKUP_PERMISSION} (with admin consent) to look it up; see "
                    "docs/exchange-online.md."
                )
            raise MailboxNotFound(
                f"There is no Exchange Online mailbox for {self.address} in tenant "
                f"{self._tenant}: no user has it as UPN or as an e-mail address. Check the "
                "address in the CRM and that the user has an Exchange Online licence."
            )
        object_id, upn = found
        log.info("mailbox %s is Entra ID user %s (%s)", self.address, object_id, upn)
        self._use_user(object_id)
        self._identities.remember_mailbox_identity(self._identity_target(), self.address, object_id)

    def _lookup_user(self) -> tuple[tuple[str, str] | None, bool]:
        """((object id, UPN) or None, whether the look-up was refused for lack of permission)."""
        literal = f"smtp:{self.address}".replace("'", "''")  # OData: a quote is doubled
        query = urlencode(
            {
                "$filter": f"proxyAddresses/any(a:a eq '{literal}')",
                "$select": "id,userPrincipalName,mail",
            },
            quote_via=quote,
        )
        response = self._send("GET", f"{self._graph}/users?{query}")
        if response.status_code == 403:
            return None, True
        data: dict[str, Any] = self._ok_json(response)
        users = [u for u in data.get("value", []) if isinstance(u, dict) and u.get("id")]
        if len(users) != 1:
            return None, False
        return (str(users[0]["id"]), str(users[0].get("userPrincipalName") or "")), False

    @property
    def _lookup_hint(self) -> str:
        return (
            ""
            if self._user_resolved
            else f" If {self.address} is not the user's UPN, grant {LOOKUP_PERMISSION}."
        )
