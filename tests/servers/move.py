"""A mailbox move from Exchange Server to Exchange Online, across the two stand-ins.

A move (New-MoveRequest / a migration batch) copies every item into the cloud mailbox: the
items keep their properties, named properties included, but get new item ids (an EWS or
Graph item id encodes the mailbox and store it lives in). After the move the on-premises
mailbox is gone and Exchange Online holds it. `move_to_exchange_online` does that with the
loopback servers: each contact of the EWS stand-in is created in the Graph stand-in with
its mapped fields, categories, notes and extended properties (the CRM id under whichever
property set it carried, Sage's fax as PidTagBusinessFaxNumber), then the EWS mailbox is
removed.

The field tables below are the stand-ins' own, not the engine's mapping modules: a move is
Exchange's doing, so a wrong mapping in the engine must not be able to hide itself here.
"""

from __future__ import annotations

from typing import Any

from sync_engine.mailbox.crm_id import LEGACY_PROPERTY_SETS, PROPERTY_SET

from .ews import EwsServer
from .graph import GraphServer

SCALARS = {
    "title": "title",
    "first_name": "givenName",
    "middle_name": "middleName",
    "last_name": "surname",
    "suffix": "generation",
    "company": "companyName",
    "job_title": "jobTitle",
    "department": "department",
    "web_page": "businessHomePage",
    "mobile_phone": "mobilePhone",
    "display_name": "displayName",
    "file_as": "fileAs",
    "notes": "personalNotes",
}
ADDRESS = {
    "street": "street",
    "city": "city",
    "state": "state",
    "postal_code": "postalCode",
    "country": "countryOrRegion",
}


def graph_body(item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """One EWS stand-in contact (`EwsServer.contacts`) as Graph holds it after a move:
    (contact JSON, extended properties)."""
    body: dict[str, Any] = {prop: item[name] for name, prop in SCALARS.items() if item.get(name)}
    emails = [item[n] for n in ("email", "email2") if item.get(n)]
    if emails:  # Email1..3 as one collection without empty slots
        body["emailAddresses"] = [{"address": e, "name": e} for e in emails]
    if item.get("business_phone"):
        body["businessPhones"] = [item["business_phone"]]
    if item.get("home_phone"):
        body["homePhones"] = [item["home_phone"]]
    address = {prop: item[name] for name, prop in ADDRESS.items() if item.get(name)}
    if address:
        body["businessAddress"] = address
    body["categories"] = list(item.get("categories") or [])
    extended: dict[str, str] = {}
    if item.get("crm_id") is not None:
        extended[f"Integer {{{PROPERTY_SET}}} Name CrmPersonId"] = str(item["crm_id"])
    if item.get("legacy_crm_id") is not None:
        legacy = LEGACY_PROPERTY_SETS[0]
        extended[f"Integer {{{legacy}}} Name CrmPersonId"] = str(item["legacy_crm_id"])
    if item.get("business_fax"):
        extended["String 0x3A24"] = item["business_fax"]
    return body, extended


def move_to_exchange_online(ews: EwsServer, graph: GraphServer, address: str) -> dict[str, str]:
    """Move the mailbox; returns {old EWS item id: new Graph item id}."""
    moved = {}
    for item in ews.contacts(address):
        body, extended = graph_body(item)
        moved[item["item_id"]] = graph.add_contact(address, body, extended=extended)
    ews.remove_mailbox(address)
    graph.host_on_premises(address, False)
    return moved
