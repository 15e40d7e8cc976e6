"""Round trips and wall time of the Graph target against one request per contact, in one run.

Run: `.venv/bin/python bench/bench_graph.py [--contacts 1000]`. Both sides talk to the same
loopback Graph (tests/servers/graph.py) over HTTPS; requests are the server's own counts, so
the adapter's figures and the baseline's are measured the same way. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import msal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sync_engine.config import Settings
from sync_engine.mailbox.graph import GraphMailbox
from sync_engine.model import ContactFields, NewContact
from tests.servers.graph import GraphServer, graph_server


def people(count: int) -> list[NewContact]:
    return [
        NewContact(
            ContactFields.of(
                first_name=f"Pat{n}",
                last_name="Jones",
                company="Acme Ltd",
                email=f"pat{n}@acme.example",
                business_phone="+44 20 7946 0000",
                street="1 High Street",
                city="Leeds",
            ).with_derived(),
            ("CRM Contact",),
            n,
        )
        for n in range(1, count + 1)
    ]


def adapter_run(
    server: GraphServer, home: Path, items: list[NewContact]
) -> dict[str, tuple[int, float]]:
    """What the engine does: list, create in batches; a later run lists again."""
    settings = Settings(crm_contacts_home=home)
    out: dict[str, tuple[int, float]] = {}
    server.reset_counts()
    start = time.perf_counter()
    box = GraphMailbox(settings, "ann@contoso.com")
    for _page in box.list_contacts():
        pass
    for at in range(0, len(items), box.batch_size):
        results = box.create(items[at : at + box.batch_size])
        assert all(r.ok for r in results), results
    out["initial"] = (server.request_count, time.perf_counter() - start)
    assert box.requests == server.request_count
    server.reset_counts()
    start = time.perf_counter()
    seen = sum(len(page) for page in box.list_contacts())  # the next run meets its own creates
    out["catch-up"] = (server.request_count, time.perf_counter() - start)
    box.close()
    assert seen == len(items)
    server.reset_counts()
    start = time.perf_counter()
    later = GraphMailbox(settings, "ann@contoso.com")  # a fresh process: picture from disk
    seen = sum(len(page) for page in later.list_contacts())
    out["steady"] = (server.request_count, time.perf_counter() - start)
    later.close()
    assert seen == len(items)
    return out


def app_token(server: GraphServer) -> str:
    """An app-only token from the loopback Entra ID, for a naive client's own requests."""
    app = msal.ConfidentialClientApplication(
        server.client_id,
        client_credential=server.client_secret,
        authority=f"{server.authority}/{server.tenant_id}",
        instance_discovery=False,
    )
    return str(app.acquire_token_for_client([f"{server.base_url}/.default"])["access_token"])


def baseline_run(server: GraphServer, items: list[NewContact]) -> dict[str, tuple[int, float]]:
    """One request per contact: a POST each to create, a GET each to look at them again."""
    token = app_token(server)
    users = f"{server.graph_url}/users/{quote('bob@contoso.com')}/contacts"
    out: dict[str, tuple[int, float]] = {}
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
        server.reset_counts()
        start = time.perf_counter()
        ids = []
        for item in items:
            f = item.fields
            body = {
                "givenName": f.first_name,
                "surname": f.last_name,
                "companyName": f.company,
                "emailAddresses": [{"address": f.email}],
                "businessPhones": [f.business_phone],
                "businessAddress": {"street": f.street, "city": f.city},
                "categories": list(item.categories),
            }
            ids.append(client.post(users, json=body).raise_for_status().json()["id"])
        out["initial"] = (server.request_count, time.perf_counter() - start)
        server.reset_counts()
        start = time.perf_counter()
        for item_id in ids:
            client.get(f"{users}/{quote(item_id, safe='')}").raise_for_status()
        out["steady"] = (server.request_count, time.perf_counter() - start)
        server.reset_counts()
        start = time.perf_counter()
        url: str | None = users
        while url:  # a full listing at Graph's default page size, no delta
            url = client.get(url).raise_for_status().json().get("@odata.nextLink")
        out["paged"] = (server.request_count, time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument(
        "--op-ms",
        type=float,
        default=0.0,
        help="time one Outlook operation takes on the server (a batch runs four at a time)",
    )
    args = parser.parse_args()
    count = args.contacts
    items = people(count)
    with graph_server() as server, tempfile.TemporaryDirectory() as home:
        os.environ.update(server.env())
        server.op_latency = args.op_ms / 1000
        ours = adapter_run(server, Path(home), items)
        base = baseline_run(server, items)

    def row(label: str, figures: tuple[int, float], note: str) -> None:
        print(f"{label:<44}{figures[0]:>9}{figures[1]:>10.2f} s   {note}")

    print(
        f"Graph target, {count} contacts, loopback Graph over HTTPS, "
        f"{args.op_ms:g} ms per Outlook operation\n"
    )
    print(f"{'':<44}{'requests':>9}{'wall':>12}")
    bound = ours["initial"][0] - math.ceil(count / 20)
    row(
        "initial create, GraphMailbox",
        ours["initial"],
        f"{bound} listing request(s) (an empty folder: its id looked up) + "
        f"{math.ceil(count / 20)} $batch",
    )
    row("initial create, one POST per contact", base["initial"], "")
    row("next run, GraphMailbox (reads its creates)", ours["catch-up"], "delta pages of 200")
    row("steady state, GraphMailbox", ours["steady"], "one delta request, no write")
    row("steady state, one GET per contact", base["steady"], "")
    row("steady state, full listing at default page", base["paged"], "10 per page, no delta")
    factor = base["initial"][0] / max(1, ours["initial"][0])
    print(
        f"\ncreate: {factor:.0f}x fewer requests; "
        f"steady state: {base['steady'][0]} -> {ours['steady'][0]}"
    )


if __name__ == "__main__":
    main()
