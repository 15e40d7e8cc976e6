"""JSON batching (`$batch`): up to 20 requests, run four at a time, answered in any order."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .schema import (
    MAILBOX_CONCURRENCY,
    MAX_BATCH,
    Fault,
    GraphError,
    Reply,
    address_of,
    batch_reply,
    code_for,
    throttled,
)


class Batch:
    """The $batch endpoint (mixed into GraphServer)."""

    def _batch(self, body: Any, roles: frozenset[str], delay: float) -> Reply:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(requests) > MAX_BATCH:
            raise GraphError(
                400,
                "BadRequest",
                f"A batch can hold at most {MAX_BATCH} requests; this one has {len(requests)}.",
            )
        with self._lock:
            self.batch_sizes.append(len(requests))
        ids = [str(r.get("id")) for r in requests]
        if len(set(ids)) != len(ids):
            raise GraphError(400, "BadRequest", "Batch request ids must be unique.")
        with self._lock:
            item_fault = None
            for fault in self._faults:
                if fault.kind == "batch_item" and fault.times > 0:
                    fault.times -= 1
                    item_fault = fault
                    break
            self._faults = [f for f in self._faults if f.times > 0]
        replies: dict[str, dict[str, Any]] = {}
        # Graph hands Outlook at most four requests of a batch at a time.
        for start in range(0, len(requests), MAILBOX_CONCURRENCY):
            wave = list(enumerate(requests))[start : start + MAILBOX_CONCURRENCY]
            held: list[tuple[int, dict[str, Any], str | None]] = []
            for position, req in wave:
                url = str(req.get("url", ""))
                address = address_of(urlsplit(url).path)
                if address is not None and not self._acquire(address):
                    busy = throttled()
                    replies[str(req.get("id"))] = batch_reply(
                        Reply(429, busy.body(), busy.headers), req
                    )
                    continue
                held.append((position, req, address))
            try:
                if delay or self.op_latency:
                    time.sleep(delay + self.op_latency)
                    delay = 0.0
                for position, req, _address in held:
                    replies[str(req.get("id"))] = batch_reply(
                        self._inner(req, position, item_fault, roles, replies), req
                    )
            finally:
                for _position, _req, address in held:
                    if address is not None:
                        self._release(address)
        ordered = [replies[i] for i in reversed(ids)]
        # Throttling guidance, "Throttling and batching": a throttled request in a batch
        # "fails with a status of 429 … The batch itself fails with a status code of 424
        # (Failed Dependency)", the answers still in its body. (The JSON batching page
        # once said the batch succeeds with 200: `throttled_batch_status` can say so.)
        throttled_items = any(r["status"] == 429 for r in ordered)
        return Reply(
            self.throttled_batch_status if throttled_items else 200, {"responses": ordered}
        )

    def _inner(
        self,
        req: dict[str, Any],
        position: int,
        fault: Fault | None,
        roles: frozenset[str],
        done: dict[str, dict[str, Any]],
    ) -> Reply:
        method = str(req.get("method", "GET")).upper()
        url = str(req.get("url", ""))
        if not url.startswith("/"):
            return Reply(
                400,
                GraphError(
                    400, "BadRequest", "Batch request urls are relative to the version root."
                ).body(),
            )
        for dep in req.get("dependsOn") or []:
            if str(dep) not in done or done[str(dep)]["status"] >= 400:
                return Reply(
                    424,
                    GraphError(
                        424, "FailedDependency", "A request this one depends on failed."
                    ).body(),
                )
        split = urlsplit(url)
        route = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        kind = self._kind(method, route, query)
        with self._lock:
            self.batch_items_by_kind[kind] += 1
        if fault is not None and position == fault.index:
            headers = (
                {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            )
            if fault.status == 429:
                headers.setdefault("Retry-After", "1")
            return Reply(
                fault.status,
                GraphError(
                    fault.status, fault.code or code_for(fault.status), "Injected failure."
                ).body(),
                headers,
            )
        headers = {str(k).lower(): str(v) for k, v in (req.get("headers") or {}).items()}
        try:
            return self._dispatch(method, route, query, headers, req.get("body"), roles)
        except GraphError as exc:
            return Reply(exc.status, exc.body(), exc.headers)
