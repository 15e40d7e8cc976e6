"""The one identity of our CRM id property, the same on every Exchange target (issue 20).

A mailbox moved from Exchange Server to Exchange Online keeps its named properties but
not its item ids (a move copies the items), so the CRM id is what finds our contacts
again after a move. That only works when both targets read and write the same property:
a MAPI named property is identified by its property set GUID and its name (MS-OXPROPS
2.1: "a named property is identified by a property set and a name or a numeric ID").

Until issue 20 the EWS target used the set below and the Graph target one of its own
(`LEGACY_PROPERTY_SETS`). Contacts carrying the legacy one are still recognised on both
targets, and rewritten to this one at their next write.
"""

from __future__ import annotations

PROPERTY_SET = "6f3f0c53-2e2b-4a57-9d3b-1c2f8e4a7b10"
PROPERTY_NAME = "CrmPersonId"
PROPERTY_TYPE = "Integer"  # PT_LONG, 32 bit
# The Graph target's own set before issue 20: read on both targets, never written.
LEGACY_PROPERTY_SETS = ("6d1c8f3a-2b7e-4c59-a0d4-8e3f5b7c9a12",)


def crm_id_value(value: object) -> int | None:
    """A stored property value as a CRM id: 0, blank or not a number is no CRM id (Graph
    cannot delete an extended property, so clearing writes 0)."""
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number or None
