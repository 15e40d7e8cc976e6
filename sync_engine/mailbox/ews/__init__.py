"""The Exchange Server target: one mailbox's default Contacts folder over EWS (exchangelib).

Why it is built the way it is:

- One service account with ApplicationImpersonation serves every salesperson's mailbox
  (Sage CRM's model), or per-user/delegate access when `EWS_IMPERSONATION=false`.
- The EWS URL and the Exchange version come from the configuration, so no request is
  spent on autodiscover or version guessing (autodiscover only when `EWS_URL` is unset).
- Round trips are ours to count and to bound. exchangelib's services are used for the
  XML (payloads and parsing), but each call is made exactly once (exchangelib's own
  retry loop is switched off, FailFast) and retried here with a bounded back-off that
  honours `ErrorServerBusy`'s BackOffMilliseconds. Every HTTP POST adds one to
  `requests`.
- Partial updates are built field by field. exchangelib's `bulk_update` rewrites an
  indexed field as a whole (setting EmailAddress1 deletes EmailAddress2/3, setting the
  business phone deletes the home phone, ...), which would erase what the user typed in
  Outlook; here only the named entries are touched.
- Every per-item answer inside a batch is kept: an error on one item fails that item only
  (exchangelib would raise on the first unexpected item error and lose the rest).
- The salutation (DESIGN's "title") has no writable first-class EWS property
  (`CompleteName.Title` is read-only); Outlook keeps it in PidTagDisplayNamePrefix
  (0x3A45), written here as an extended property.

Modules: `mailbox` (EwsMailbox), `connection` (account, credentials, retry loop),
`mapping` (our fields <-> EWS properties), `listing` (FindItem/GetItem), `writes`
(CreateItem/UpdateItem/DeleteItem), `errors` (response codes, words for the admin),
`services` (exchangelib's services, and every private member of exchangelib we use).
"""

from __future__ import annotations

from sync_engine.mailbox.ews.connection import parse_version
from sync_engine.mailbox.ews.mailbox import EwsMailbox
from sync_engine.mailbox.ews.mapping import (
    CRM_ID_PROPERTY_NAME,
    CRM_ID_PROPERTY_SET,
    SALUTATION_PROPERTY_TAG,
)

__all__ = [
    "CRM_ID_PROPERTY_NAME",
    "CRM_ID_PROPERTY_SET",
    "SALUTATION_PROPERTY_TAG",
    "EwsMailbox",
    "parse_version",
]
