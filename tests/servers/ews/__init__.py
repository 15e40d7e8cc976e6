"""A loopback Exchange Web Services server: the SOAP subset exchangelib really sends.

Why: the EWS target must be tested over the real wire (HTTP + SOAP + exchangelib's own
parsing), not against a mock of our code. The operations and elements handled here were
captured from exchangelib 5.x requests (see docs/exchange-server.md for the list):
GetFolder, FindItem (IndexedPageItemView paging, Restriction, SortOrder), GetItem,
CreateItem, UpdateItem (SetItemField / DeleteItemField, ChangeKey, ConflictResolution)
and DeleteItem. Anything else gets the SOAP fault a real server gives to an unknown
request, so drift in what the client sends shows up as a failing test.

Behaviour kept from Exchange: contacts per mailbox; item ids stable, change keys new on
every write; ExchangeImpersonation checked per request (ErrorImpersonateUserDenied,
ErrorNonExistentMailbox as SOAP faults); ErrorServerBusy as a SOAP fault carrying
BackOffMilliseconds; per-item errors inside a batch as ResponseClass="Error" messages.

What Exchange refuses, refused here too (each rule beside its source in the code):
<t:Contact> children out of types.xsd order (ErrorSchemaValidation); DeleteItem without a
DisposalType DeleteType (messages.xsd); an alias in the impersonation header (SOAP fault)
or in a folder's Mailbox (per item) with ErrorNonPrimarySmtpAddress naming the primary in
MessageXml (`add_alias`); ErrorServerBusy for single items inside a batch with
BackOffMilliseconds in MessageXml (`inject("item_busy")`). FindItem cuts text values at
255 characters (GetItem does not); MoveToDeletedItems keeps the contact in the mailbox's
Deleted Items (`deleted_items`, `delete_types`).
Simplification: ConflictResolution AutoResolve behaves like NeverOverwrite (any stale
change key is ErrorIrresolvableConflict); only basic auth (and OAuth bearer tokens from
the built-in token endpoint) is spoken, not NTLM.

Modules: `server` (mailboxes, access, faults, HTTP), `schema` (what messages.xsd/types.xsd
and the response codes allow), `rendering` (answers as Exchange writes them), `operations`
(one method per EWS operation).
"""

from __future__ import annotations

from .schema import PASSWORD, USERNAME, Fault
from .server import EwsServer, ews_server

__all__ = ["PASSWORD", "USERNAME", "EwsServer", "Fault", "ews_server"]
