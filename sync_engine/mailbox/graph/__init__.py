"""Exchange Online over Microsoft Graph: `GraphMailbox`, one mailbox's default Contacts folder.

Why it is built this way (issue 6; DESIGN sections 2-5):

- **Auth**: app-only client credentials through msal, one app registration for every mailbox
  (`/users/{address}/contacts`, application permission Contacts.ReadWrite). A non-default
  `GRAPH_AUTHORITY` is used as given (`instance_discovery=False`); msal still fetches the
  tenant's OIDC document (`{authority}/{tenant}/v2.0/.well-known/openid-configuration`) and
  insists on https. msal talks through requests (trusts REQUESTS_CA_BUNDLE), Graph calls go
  through httpx (trusts SSL_CERT_FILE): no TLS code of our own. The Graph SDK is not used: it
  would hide the `$batch` and delta details this target exists to get right.
- **Few round trips**: listing is a delta query on the default Contacts folder with `$select`
  and `Prefer: odata.maxpagesize`; the folder's picture and the delta link are kept between runs
  in `CRM_CONTACTS_HOME/graph-delta/`, so a sync with no change costs one request. An expired
  delta token (410) falls back to a full round. Writes go in JSON `$batch` requests of at most
  20. Graph hands Outlook at most 4 requests of one batch at a time, which is exactly Outlook's
  per-app, per-mailbox concurrency limit, so one batch in flight per mailbox is the most that
  never throttles itself; an in-process gate holds every caller to that.
- **CRM id**: an Integer named extended property, listed with
  `$expand=singleValueExtendedProperties($filter=id eq ...)`, found with `$filter` (`find`)
  before a create is repeated after an answer that may have been lost. Graph has no way to
  delete an extended property, so "clear" writes 0, which reads back as no CRM id.
- **Change keys**: PATCH carries `If-Match: W/"<changeKey>"` (Outlook items' ETag); a 412
  ErrorIrresolvableConflict re-reads the item and applies the same mapped fields to what is
  there now (CRM wins on mapped fields; the user's other emails, phones and categories stay).
  `emailAddresses`/`businessPhones` are collections and `businessAddress` a complex value, so a
  PATCH sends them whole: entry 0 (or the named address parts) changed, the rest as they are.
- **Faults**: 429/503/504 wait for Retry-After (a wait longer than `max_retry_after` gives up for
  this run instead of hammering); in a batch only the failed items are retried; an expired token
  is renewed once; 401/403/404 become `MailboxAccessError`s that say what the admin must do.

Modules: `mailbox` (GraphMailbox), `transport` (tokens, requests, retries, `$batch`),
`mapping` (our fields <-> Graph contact JSON), `listing` (delta), `state` (the saved
picture), `writes` (create/update/delete), `errors` (words for the admin).
"""

from __future__ import annotations

from sync_engine.mailbox.graph.mailbox import GraphMailbox
from sync_engine.mailbox.graph.mapping import CRM_ID_PROPERTY

__all__ = ["CRM_ID_PROPERTY", "GraphMailbox"]
