"""HTTP to Graph: tokens (msal), one request with retries, `$batch`, the mailbox gate."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import msal

from sync_engine.mailbox.base import MailboxAccessError, MailboxError
from sync_engine.ops.metrics import throttle_waited

log = logging.getLogger(__name__)


DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
BATCH_LIMIT = 20  # Graph's JSON batching limit
MAILBOX_CONCURRENCY = 4  # Outlook: concurrent requests per app and mailbox

RETRY_STATUSES = frozenset({429, 503, 504})
ITEM_NOT_FOUND = frozenset({"ErrorItemNotFound", "ItemNotFound"})
JSON_HEADERS = {"Content-Type": "application/json"}


class Unsure(Exception):
    """A create may or may not have happened (answer lost, 5xx): look before creating again."""


class DeltaGone(Exception):
    """The delta token expired (410): read the whole folder again."""


class DeltaUnsupported(Exception):
    """Graph refused the delta query itself: list the folder in full instead."""


@dataclass
class Op:
    method: str
    path: str  # relative to the Graph version root, as $batch wants it
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    unsure: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str:
        return error_of(self.body)[0]

    @property
    def message(self) -> str:
        return error_of(self.body)[1]

    def retry_after(self) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == "retry-after"), None)


class MailboxGate:
    """At most four Outlook requests in flight per mailbox from this process (a batch counts
    as up to four: Graph runs that many of its requests at once)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = 0

    @contextlib.contextmanager
    def hold(self, permits: int) -> Iterator[None]:
        permits = max(1, min(permits, MAILBOX_CONCURRENCY))
        with self._cond:
            self._cond.wait_for(lambda: self._busy + permits <= MAILBOX_CONCURRENCY)
            self._busy += permits
        try:
            yield
        finally:
            with self._cond:
                self._busy -= permits
                self._cond.notify_all()


_GATES: dict[tuple[str, str], MailboxGate] = {}
_APPS: dict[tuple[str, str, str], msal.ConfidentialClientApplication] = {}
_SHARED_LOCK = threading.Lock()


def gate_for(graph_url: str, address: str) -> MailboxGate:
    with _SHARED_LOCK:
        return _GATES.setdefault((graph_url.lower(), address.lower()), MailboxGate())


def batch_entry(index: int, op: Op) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": str(index), "method": op.method, "url": op.path}
    if op.headers:
        entry["headers"] = op.headers
    if op.body is not None:
        entry["body"] = op.body
    return entry


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def error_of(body: Any) -> tuple[str, str]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code", "")), str(body["error"].get("message", ""))
    return "", ""


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


class Transport:
    """Requests, batches and tokens (mixed into GraphMailbox)."""

    def _run_batch(self, ops: Sequence[Op]) -> list[Answer]:
        """Send `ops` in `$batch`es of 20, one batch at a time; retry only the items that were
        throttled (or, when repeating is safe, failed with 503/504) after their Retry-After."""
        answers: list[Answer] = [Answer(0, unsure=True) for _ in ops]
        pending = list(range(len(ops)))
        for attempt in range(1, self._max_attempts + 1):
            retry: list[int] = []
            waits: list[float | None] = []
            for start in range(0, len(pending), BATCH_LIMIT):
                chunk = pending[start : start + BATCH_LIMIT]
                payload = {"requests": [batch_entry(i, ops[i]) for i in chunk]}
                repeatable = all(ops[i].method != "POST" for i in chunk)
                try:
                    response = self._send(
                        "POST",
                        f"{self._graph}/$batch",
                        json_body=payload,
                        headers=JSON_HEADERS,
                        repeatable=repeatable,
                        permits=len(chunk),
                    )
                except Unsure:
                    continue  # answers stay "unsure"; create() looks before trying again
                data = self._batch_json(response)
                for entry in data.get("responses", []):
                    i = int(entry["id"])
                    answer = Answer(
                        int(entry.get("status", 0)),
                        entry.get("body"),
                        {str(k): str(v) for k, v in (entry.get("headers") or {}).items()},
                    )
                    answers[i] = answer
                    if answer.status == 429 or (
                        answer.status in RETRY_STATUSES and ops[i].method != "POST"
                    ):
                        retry.append(i)
                        waits.append(self._wait_for(answer.retry_after(), attempt))
            if not retry:
                break
            if attempt == self._max_attempts or any(w is None for w in waits):
                log.warning(
                    "%d request(s) to %s still throttled; giving up for this run",
                    len(retry),
                    self.address,
                )
                break
            wait = max(w for w in waits if w is not None)
            log.info(
                "%d request(s) to %s throttled; retrying in %.1f s", len(retry), self.address, wait
            )
            throttle_waited("graph", wait)
            self._sleep(wait)
            pending = sorted(retry)
        return answers

    def _batch_json(self, response: httpx.Response) -> dict[str, Any]:
        """A `$batch` answer's JSON. The throttling guidance ("Throttling and batching"):
        when requests in a batch are throttled, each fails with 429 "and the batch itself
        fails with a status code of 424 (Failed Dependency)" — the answers are still in
        the body, so a 424 holding `responses` is read like a 200 and its throttled items
        retried after their Retry-After."""
        body = json_of(response)
        if (
            response.status_code == 424
            and isinstance(body, dict)
            and isinstance(body.get("responses"), list)
        ):
            return body
        return self._ok_json(response)

    # ---- HTTP, tokens, errors -------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        repeatable: bool = True,
        permits: int = 1,
    ) -> httpx.Response:
        """One Graph request with retries: Retry-After on 429/503/504, a new token once on an
        expired one. A request that is not `repeatable` raises `Unsure` instead of repeating
        when its fate is unknown."""
        attempt = 0
        renew = renewed = False
        while True:
            attempt += 1
            token = self._access_token(renew=renew)
            renew = False
            sent = {**(headers or {}), "Authorization": f"Bearer {token}"}
            try:
                with self._gate.hold(permits):
                    self.requests += 1
                    response = self._http.request(method, url, json=json_body, headers=sent)
            except httpx.TransportError as exc:
                if not repeatable and not isinstance(exc, httpx.ConnectError):
                    raise Unsure from None
                wait = self._wait_for(None, attempt)
                if attempt >= self._max_attempts or wait is None:
                    raise MailboxError(self._unreachable(exc)) from None
                log.info("Graph did not answer (%s); retrying in %.1f s", type(exc).__name__, wait)
                self._sleep(wait)
                continue
            status = response.status_code
            if (
                status == 401
                and not renewed
                and error_of(json_of(response))[0] == ("InvalidAuthenticationToken")
            ):
                log.info("Graph token for %s expired; getting a new one", self.address)
                renew = renewed = True
                attempt -= 1
                continue
            if status in RETRY_STATUSES or status in (500, 502):
                if not repeatable and status != 429:
                    raise Unsure
                if status not in RETRY_STATUSES:
                    return response
                wait = self._wait_for(response.headers.get("Retry-After"), attempt)
                if attempt >= self._max_attempts or wait is None:
                    raise MailboxError(self._throttled_text(status, response))
                log.info("Graph answered %d for %s; retrying in %.1f s", status, self.address, wait)
                throttle_waited("graph", wait)
                self._sleep(wait)
                continue
            return response

    def _wait_for(self, retry_after: str | None, attempt: int) -> float | None:
        """Seconds to wait: Retry-After when given, else exponential; None if over the cap."""
        wait: float
        if retry_after is None:
            wait = min(0.5 * 2 ** (attempt - 1), self._max_retry_after)
        else:
            try:
                wait = float(retry_after)
            except ValueError:
                try:
                    wait = parsedate_to_datetime(retry_after).timestamp() - time.time()
                except (TypeError, ValueError):
                    wait = 1.0
        wait = max(0.0, wait)
        return None if wait > self._max_retry_after else wait

    def _access_token(self, *, renew: bool = False) -> str:
        app = self._app()
        if renew:
            app.remove_tokens_for_client()
        try:
            result = app.acquire_token_for_client(scopes=[self._scope])
        except (OSError, ValueError, RuntimeError) as exc:
            raise MailboxError(self._signin_unreachable(exc)) from None
        if "access_token" not in result:
            raise self._token_error(result)
        if result.get("token_source") != "cache":
            self.token_requests += 1
        return str(result["access_token"])

    def _app(self) -> msal.ConfidentialClientApplication:
        """One msal app per (authority, tenant, client), shared by every mailbox of a process,
        so tokens are cached across mailboxes."""
        secret = self._settings.graph_client_secret
        assert secret is not None
        value = secret.get_secret_value()
        key = (
            f"{self._authority}/{self._tenant}",
            self._client_id,
            hashlib.sha256(value.encode()).hexdigest(),
        )
        with _SHARED_LOCK:
            app = _APPS.get(key)
            if app is not None:
                return app
            try:
                app = msal.ConfidentialClientApplication(
                    self._client_id,
                    client_credential=value,
                    authority=key[0],
                    instance_discovery=None if self._authority == DEFAULT_AUTHORITY else False,
                )
            except ValueError as exc:
                raise MailboxAccessError(
                    f"Microsoft Entra ID does not know the tenant {self._tenant} at "
                    f"{self._authority}: check GRAPH_TENANT_ID (and GRAPH_AUTHORITY for national "
                    f"clouds). ({first_line(str(exc))})"
                ) from None
            except (OSError, RuntimeError) as exc:
                raise MailboxError(self._signin_unreachable(exc)) from None
            _APPS[key] = app
            return app
