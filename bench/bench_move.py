"""The first sync after a mailbox of N linked contacts moves from Exchange Server to
Exchange Online (issue 20): round trips to Graph, against a naive re-link measured in the
same run (one `$filter` look-up by CRM id per linked contact).

Run: `.venv/bin/python bench/bench_move.py [--people 1000]`. Both loopback servers run at
once (tests/servers/ews, tests/servers/graph): the mailbox is synced over EWS, moved
(tests/servers/move.py: every contact copied with a new item id and the same named
properties), then synced with MAILBOX_BACKEND=hybrid. Requests are the servers' own
counts. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import httpx  # noqa: E402
from bench_graph import app_token  # noqa: E402
from servers.ews import ews_server  # noqa: E402
from servers.graph import GraphServer, graph_server  # noqa: E402
from servers.move import move_to_exchange_online  # noqa: E402

from sync_engine.config import load_settings  # noqa: E402
from sync_engine.crm.embedded import EmbeddedCrm, seed_large  # noqa: E402
from sync_engine.mailbox.graph.mapping import CRM_ID_PROPERTY  # noqa: E402
from sync_engine.service import Engine  # noqa: E402

ME = "rep@example.com"


def engine_on(backend: str) -> Engine:
    os.environ["MAILBOX_BACKEND"] = backend
    return Engine(load_settings())


def naive_relink(server: GraphServer, crm_ids: list[int]) -> tuple[int, float]:
    """One `$filter` request per linked contact: where did each go?"""
    token = app_token(server)
    contacts = f"{server.graph_url}/users/{quote(ME)}/contacts"
    server.reset_counts()
    started = time.perf_counter()
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
        for crm_id in crm_ids:
            flt = (
                f"singleValueExtendedProperties/any(ep: ep/id eq '{CRM_ID_PROPERTY}' "
                f"and cast(ep/value, Edm.Int32) eq {crm_id})"
            )
            query = urlencode({"$filter": flt, "$select": "id"}, quote_via=quote)
            found = client.get(f"{contacts}?{query}").raise_for_status().json()["value"]
            assert len(found) == 1, (crm_id, found)
    return server.request_count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root, ews_server() as ews, graph_server() as graph:
        os.environ.update({**graph.env(), **ews.env(), "CRM_CONTACTS_HOME": root})
        engine = engine_on("ews")
        EmbeddedCrm(engine.crm).add_user(ME, "Rep", "One")
        seed_large(engine.crm, args.people)
        ids = [p.id for p in engine.crm.iter_people()][: args.people]
        engine.add(engine.user(ME), ids)
        before = engine.sync(engine.user(ME))
        assert before.count("created") == args.people and not before.error, before.as_json()
        engine.close()

        move_to_exchange_online(ews, graph, ME)
        graph.reset_counts()
        ews.reset_counts()
        engine = engine_on("hybrid")
        started = time.perf_counter()
        moved = engine.sync(engine.user(ME))
        seconds = time.perf_counter() - started
        assert not moved.error, moved.error
        assert moved.count("created") == moved.count("forgotten") == 0, moved.as_json()
        assert moved.write_requests == 0 and not moved.warnings
        kinds = dict(graph.requests_by_kind)
        ours = graph.request_count
        graph.reset_counts()
        steady = engine.sync(engine.user(ME))
        steady_requests = graph.request_count
        engine.close()

        naive, naive_s = naive_relink(graph, ids)

    print(f"first sync after moving a mailbox of {args.people} linked contacts to Exchange Online")
    print(
        f"  ours:  {ours} Graph requests ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()) if k not in ('token', 'discovery'))}), "
        f"{ews.request_count} EWS, {seconds:.2f} s; created 0, forgotten 0, writes 0"
    )
    print(f"  naive: {naive} requests (a $filter look-up per linked contact), {naive_s:.2f} s")
    print(f"  ratio: {naive / ours:.0f}x fewer round trips")
    print(f"  the sync after: {steady_requests} request(s), {steady.write_requests} writes")


if __name__ == "__main__":
    main()
