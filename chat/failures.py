"""What a salesperson is told when a sync fails: what happened, and that the admin has
the details. Never the reason itself: it can name the EWS server, the service account
or a database, which are the admin's business (`crm-contacts status`, the service log).
"""

from __future__ import annotations

SYNC_FAILED = (
    "The last sync of your mailbox didn't go through, so Outlook may be behind your list. "
    "Your admin has the details (`crm-contacts status` and the service log); "
    "the next sync tries again."
)
TEAM_FAILED = "a sync failed (details: `crm-contacts status`)"


def for_salesperson(error: str | None) -> str:
    """The sentence shown in Slack for a sync that ended in `error` ("" when none)."""
    return SYNC_FAILED if error else ""
