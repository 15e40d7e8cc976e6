"""Entra ID users as Graph's `/users` sees them: object id, UPN, mail, proxy addresses.

user-get (v1.0): `GET /users/{id | userPrincipalName}` — an object id or a UPN, nothing
else; a path naming a user by another e-mail address of theirs answers 404 (Exchange's
ErrorInvalidUser on mailbox resources). user-list (v1.0): `$filter` on `mail` and
`userPrincipalName` (eq) and on `proxyAddresses` through `any(...)` with eq work without
the advanced query parameters (ConsistencyLevel: eventual + $count=true are needed only
for ne, not, endsWith and the like: aad-advanced-queries); string comparison is
case-insensitive. Listing users needs User.Read.All (or Directory.Read.All) as an
application permission; without it Graph answers 403 Authorization_RequestDenied.

A mailbox a test never registered with `add_user` is a user whose UPN, mail and only
proxy address are the address the test used, so older tests keep working unchanged.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from .schema import GraphError, Reply, select_of_user

DIRECTORY_ROLES = frozenset({"User.Read.All", "User.ReadWrite.All", "Directory.Read.All"})
_ANY_PROXY = re.compile(
    r"^proxyAddresses/any\(\s*(\w+)\s*:\s*\1\s+eq\s+'((?:[^']|'')*)'\s*\)$", re.I
)
_EQ = re.compile(r"^(mail|userPrincipalName)\s+eq\s+'((?:[^']|'')*)'$", re.I)


@dataclass
class User:
    object_id: str
    upn: str
    mail: str
    proxy_addresses: list[str] = field(default_factory=list)
    user_type: str = "Member"  # "Guest" for B2B guests (user resource type, v1.0)
    account_enabled: bool = True

    def as_json(self, select: list[str] | None) -> dict[str, Any]:
        full = {
            "id": self.object_id,
            "userPrincipalName": self.upn,
            "mail": self.mail,
            "proxyAddresses": list(self.proxy_addresses),
            "displayName": self.upn.split("@")[0],
            "userType": self.user_type,
            "accountEnabled": self.account_enabled,
        }
        return {k: v for k, v in full.items() if select is None or k in select or k == "id"}


def _implicit(address: str) -> User:
    address = address.lower()
    return User(str(uuid.uuid5(uuid.NAMESPACE_URL, address)), address, address, [f"SMTP:{address}"])


class Users:
    """The directory (mixed into GraphServer)."""

    def add_user(
        self,
        upn: str,
        *,
        mail: str | None = None,
        aliases: tuple[str, ...] = (),
        object_id: str | None = None,
        user_type: str = "Member",
        enabled: bool = True,
    ) -> str:
        """A user whose mailbox is reached by object id or UPN only; returns the object id."""
        upn = upn.lower()
        mail = (mail or upn).lower()
        proxies = [f"SMTP:{mail}", *(f"smtp:{a.lower()}" for a in aliases if a.lower() != mail)]
        user = User(object_id or str(uuid.uuid4()), upn, mail, proxies, user_type, enabled)
        with self._lock:
            self._users[upn] = user
        return user.object_id

    def _user_key(self, segment: str) -> str:
        """The mailbox a path segment names: by object id or UPN (or an unregistered address)."""
        s = segment.lower()
        for user in self._users.values():
            if s == user.object_id:
                return user.upn
        if s not in self._users:
            for upn in self._mailboxes:
                if _implicit(upn).object_id == s:
                    return upn
        return s

    def _refuse_non_upn(self, segment: str) -> None:
        """A registered user named by an e-mail address that is not their UPN: 404."""
        s = segment.lower()
        if s in self._users or any(s == u.object_id for u in self._users.values()):
            return
        for user in self._users.values():
            if any(p.split(":", 1)[1].lower() == s for p in user.proxy_addresses):
                raise GraphError(
                    404, "ErrorInvalidUser", f"The requested user '{segment}' is invalid."
                )

    def _directory(self) -> list[User]:
        known = dict(self._users)
        aliases = {p.split(":", 1)[1].lower() for u in known.values() for p in u.proxy_addresses}
        for key, box in self._mailboxes.items():
            if key not in known and key not in aliases and box.exists and "@" in key:
                known[key] = _implicit(key)
        return list(known.values())

    def _get_user(self, segment: str, query: dict[str, list[str]], roles: frozenset[str]) -> Reply:
        """user-get (v1.0): `GET /users/{id | userPrincipalName}`. Reading another user's
        profile app-only needs User.Read.All (or Directory.Read.All): 403 without it."""
        if not roles & DIRECTORY_ROLES:
            raise GraphError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        wanted = segment.lower()
        for user in self._directory():
            if wanted in (user.object_id, user.upn):
                return Reply(200, user.as_json(select_of_user(query)))
        raise GraphError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{segment}' does not exist or one of its queried reference-property objects are not present.",
        )

    def _list_users(
        self, query: dict[str, list[str]], headers: dict[str, str], roles: frozenset[str]
    ) -> Reply:
        if not roles & DIRECTORY_ROLES:
            raise GraphError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        users = self._directory()
        if "$filter" in query:
            text = query["$filter"][0].strip()
            proxy, eq = _ANY_PROXY.match(text), _EQ.match(text)
            if proxy:
                wanted = proxy.group(2).replace("''", "'").lower()
                users = [u for u in users if wanted in (p.lower() for p in u.proxy_addresses)]
            elif eq:
                prop, wanted = eq.group(1).lower(), eq.group(2).replace("''", "'").lower()
                users = [u for u in users if (u.mail if prop == "mail" else u.upn) == wanted]
            else:
                raise GraphError(
                    400,
                    "Request_UnsupportedQuery",
                    "Unsupported or invalid query filter clause specified for property of resource 'User'.",
                )
        select = select_of_user(query)
        return Reply(
            200,
            {
                "@odata.context": f"{self.graph_url}/$metadata#users",
                "value": [u.as_json(select) for u in users],
            },
        )
