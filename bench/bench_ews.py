"""Round trips and wall time of the EWS target: batched vs one request per contact.

Run: `.venv/bin/python bench/bench_ews.py [--people 1000] [--latency-ms 0]`

Both ways run in the same process against the same loopback EWS server (tests/servers),
each into its own empty mailbox: an initial create of N contacts, then a full listing.
The baseline is what a naive client does: one CreateItem per contact, and a listing that
finds the ids and then fetches each contact with its own GetItem. `--latency-ms` adds
a delay to every answer, to show what the round trips cost over a real network.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from exchangelib.items import ID_ONLY  # noqa: E402
from servers.ews import EwsServer, ews_server  # noqa: E402

from sync_engine.config import Settings  # noqa: E402
from sync_engine.mailbox.ews import EwsMailbox  # noqa: E402
from sync_engine.mailbox.ews.mapping import listing_fields  # noqa: E402
from sync_engine.mailbox.ews.services import CountedGetItem  # noqa: E402
from sync_engine.model import ContactFields, NewContact  # noqa: E402


def people(n: int) -> list[NewContact]:
    return [
        NewContact(
            fields=ContactFields.of(
                first_name=f"First{i}",
                last_name=f"Last{i}",
                company=f"Company {i % 50}",
                email=f"person{i}@example.com",
                business_phone=f"+44 20 7946 {i:04d}",
                city="London",
                job_title="Buyer",
            ).with_derived(),
            categories=("CRM Contact",),
            crm_id=i,
        )
        for i in range(1, n + 1)
    ]


def batched(server: EwsServer, settings: Settings, items: list[NewContact]) -> dict[str, float]:
    mailbox = EwsMailbox(settings, "batched@example.com")
    server.reset_counts()
    start = time.perf_counter()
    assert all(r.ok for r in mailbox.create(items))
    create_s, create_n = time.perf_counter() - start, server.request_count
    server.reset_counts()
    start = time.perf_counter()
    listed = sum(len(page) for page in mailbox.list_contacts())
    assert listed == len(items)
    return {
        "create_requests": create_n,
        "create_s": create_s,
        "list_requests": server.request_count,
        "list_s": time.perf_counter() - start,
        "batch": mailbox.batch_size,
        "page": mailbox.page_size,
    }


def one_by_one(server: EwsServer, settings: Settings, items: list[NewContact]) -> dict[str, float]:
    mailbox = EwsMailbox(settings, "baseline@example.com", batch_size=1)
    server.reset_counts()
    start = time.perf_counter()
    for item in items:
        assert mailbox.create([item])[0].ok
    create_s, create_n = time.perf_counter() - start, server.request_count
    server.reset_counts()
    start = time.perf_counter()
    ids: list[str] = []
    offset: int | None = 0
    while offset is not None:  # the ids only, in pages
        page, offset, _ = mailbox._find_page(mailbox._folder(), set(), offset, None)
        ids += [c.id for c in page]
    fields = set(listing_fields())
    for item_id in ids:  # the naive way: one GetItem per contact
        service = mailbox._service(CountedGetItem, chunk_size=1)
        [contact] = service.call(items=[(item_id, None)], additional_fields=fields, shape=ID_ONLY)
        assert not isinstance(contact, Exception)
    return {
        "create_requests": create_n,
        "create_s": create_s,
        "list_requests": server.request_count,
        "list_s": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    items = people(args.people)
    with ews_server() as server:
        server.latency = args.latency_ms / 1000
        settings = Settings(_env_file=None, **{k.lower(): v for k, v in server.env().items()})  # type: ignore[call-arg]
        fast = batched(server, settings, items)
        slow = one_by_one(server, settings, items)
    n = args.people
    print(
        f"EWS target, {n} contacts, loopback server, added latency {args.latency_ms:g} ms/request"
    )
    print(f"batched: batch size {fast['batch']:.0f}, page size {fast['page']:.0f}")
    print(f"{'':28}{'requests':>10}{'wall s':>10}")
    rows = [
        ("initial create, batched", fast["create_requests"], fast["create_s"]),
        ("initial create, 1 per contact", slow["create_requests"], slow["create_s"]),
        ("listing, paged FindItem", fast["list_requests"], fast["list_s"]),
        ("listing, 1 GetItem per contact", slow["list_requests"], slow["list_s"]),
    ]
    for label, requests, seconds in rows:
        print(f"{label:28}{requests:>10.0f}{seconds:>10.2f}")
    total_fast = fast["create_requests"] + fast["list_requests"]
    total_slow = slow["create_requests"] + slow["list_requests"]
    print(
        f"{'total':28}{total_fast:>10.0f}{fast['create_s'] + fast['list_s']:>10.2f}"
        f"   vs {total_slow:.0f} requests, {slow['create_s'] + slow['list_s']:.2f} s"
        f"   ({total_slow / total_fast:.0f}x fewer round trips)"
    )


if __name__ == "__main__":
    main()
