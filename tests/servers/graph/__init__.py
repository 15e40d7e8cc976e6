"""A loopback Microsoft Graph: the REST subset `GraphMailbox` speaks, over HTTPS on 127.0.0.1.

Why a real server and not a mock: the adapter is tested on the wire (DESIGN section 3), so
msal's OIDC discovery and client-credentials token request, TLS trust through
SSL_CERT_FILE / REQUESTS_CA_BUNDLE, and Graph's paging, `$batch`, delta and error shapes are
all exercised the way they are against Exchange Online.

What it models, from Microsoft's documentation:

- Entra ID: `GET /{tenant}/v2.0/.well-known/openid-configuration` (msal asks for it even with
  instance discovery off) and `POST /{tenant}/oauth2/v2.0/token` (client credentials), issuing
  JWT-shaped tokens whose `roles` claim lists the application permissions.
- Users: `/users/{id | userPrincipalName}` only (user-get): a registered user (`add_user`)
  named by another e-mail address answers 404 ErrorInvalidUser; `GET /users?$filter=` on
  mail, userPrincipalName or `proxyAddresses/any(...)` with User.Read.All (user-list).
- Contacts: `/users/{user}/contacts` (the default Contacts folder) with `$select`, `$top`
  (default page 10; `Prefer: odata.maxpagesize` is for delta), `$count`, `$filter` on a
  single-value extended property, `$expand` of extended properties, and `@odata.nextLink`;
  POST, GET, PATCH (`If-Match` on the change key → 412 ErrorIrresolvableConflict; an update
  without displayName regenerates it, as contact-update warns) and DELETE on items (to
  Deleted Items, as contact-delete does). Times are whole seconds, as Graph answers them.
- Folders: `/users/{user}/contactFolders` (the default folder's child folders), each item's
  `parentFolderId` the id of its folder (`folder_id(address)`).
- Delta: `/users/{user}/contactFolders/{id}/contacts/delta` with `$select` only
  (contact-delta; any other query option answers 400), pages of at most 200 (Prefer),
  `@odata.nextLink` (skip token), `@odata.deltaLink` (delta token) and `@removed`; 410 when a
  token is expired.
- Hybrid: a mailbox Exchange Server holds (`host_on_premises`) answers 404
  MailboxNotEnabledForRESTAPI (KB 4462988).
- `$batch`: at most 20 requests, answered in any order (here: reversed, so clients must match
  on `id`); Graph hands Outlook at most 4 requests of a batch at a time, and Outlook allows 4
  concurrent requests per app and mailbox: requests over that answer 429 ApplicationThrottled
  "MailboxConcurrency" with Retry-After, at the top level or inside a batch; a batch with a
  throttled request answers 424 around the per-request answers (throttling guidance).
- Faults on demand (`inject`): 429/503 with Retry-After, any status, a slow answer, one failing
  request inside a batch, a lost response (processed, then the connection drops), a refused
  delta link (any status and code), delta not supported, expired tokens.

The contract other tests use: `graph_server()` yields a `GraphServer` with `.env()`,
`.request_count`, `.requests_by_kind`, `.reset_counts()`, `.contacts(address)`, `.inject(...)`.

Modules: `server` (the contract, faults, concurrency, HTTPS), `schema` (what the v1.0
reference and metadata allow), `identity` (Entra ID), `routes` (contacts, delta), `batch`
(`$batch`), `store` (mailbox contents).
"""

from __future__ import annotations

from .server import GraphServer, graph_server

__all__ = ["GraphServer", "graph_server"]
