"""Health checks and `/metrics` over HTTP, for a load balancer, an orchestrator and
Prometheus.

`probe_app` is a tiny WSGI app answering `GET /healthz` (200 or 503 with a JSON body
saying why) and `GET /metrics`; the web process mounts it beside Slack's endpoint, the
clock serves it alone at METRICS_PORT. The web process is healthy while its state
database answers; the clock while its last cycle ended less than three intervals ago.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from sync_engine.ops.metrics import exposition

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
PROBE_PATHS = (HEALTH_PATH, METRICS_PATH)

Check = Callable[[], tuple[bool, dict[str, Any]]]
StartResponse = Callable[..., Any]


def database_check(engine: Any) -> Check:
    """Healthy while the state database answers `SELECT 1`."""

    def check() -> tuple[bool, dict[str, Any]]:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any failure to answer is "unhealthy", said in one word
            return False, {"database": f"unreachable ({type(exc).__name__})"}
        return True, {"database": "ok"}

    return check


class ClockHealth:
    """The clock's liveness: its last cycle ended less than three intervals ago. A process
    that just started has three intervals for its first cycle."""

    def __init__(self, interval: timedelta, now: Callable[[], datetime]) -> None:
        self.interval = interval
        self.now = now
        self._lock = threading.Lock()
        self._started = now()
        self._last: datetime | None = None

    def beat(self) -> None:
        """A cycle ended (whatever it found: a cycle that could not read the CRM still ran)."""
        with self._lock:
            self._last = self.now()

    def check(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            last = self._last
        since = last or self._started
        age = (self.now() - since).total_seconds()
        limit = 3 * self.interval.total_seconds()
        return age <= limit, {
            "last_cycle_at": last.isoformat() if last else None,
            "age_seconds": round(age, 3),
            "limit_seconds": limit,
        }


def _reply(start_response: StartResponse, status: str, body: bytes, ctype: str) -> list[bytes]:
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def probe_app(check: Check) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """WSGI: `/healthz` from `check`, `/metrics` from this process's registry, 404 else."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", b"Use GET", "text/plain")
        if path == METRICS_PATH:
            body, ctype = exposition()
            return _reply(start_response, "200 OK", body, ctype)
        if path == HEALTH_PATH:
            ok, detail = check()
            body = json.dumps({"ok": ok, **detail}).encode()
            status = "200 OK" if ok else "503 Service Unavailable"
            return _reply(start_response, status, body, "application/json; charset=utf-8")
        return _reply(start_response, "404 Not Found", b"Not Found", "text/plain; charset=utf-8")

    return app
