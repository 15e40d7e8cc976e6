"""Process logging: one line per event, JSON under LOG_FORMAT=json, never a secret.

Call `setup_logging(settings.log_format)` once at the start of a long-running process
(`crm-contacts scheduler`, `serve`). Fields passed with `extra={...}` become JSON keys
(or `key=value` pairs in text). Anything that looks like a credential is masked, both
as a field and inside a message, because an exception's text can quote a URL or token.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO

from sync_engine.masking import mask_urls

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRET_KEY = re.compile(r"(token|secret|password|passwd|authorization|api_key|cookie)", re.I)
_SECRET_TEXT = [
    (re.compile(r"xox[abposr]-[A-Za-z0-9-]+"), "xox*-***"),  # Slack tokens
    (re.compile(r"xapp-[A-Za-z0-9-]+"), "xapp-***"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
]


def redact(text: str) -> str:
    text = mask_urls(text)  # URLs' passwords, password=…, configured secrets: sync_engine.masking
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def _plain(value: object) -> object:
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


def _fields(record: logging.LogRecord) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        if _SECRET_KEY.search(key):
            out[key] = "***"
        elif isinstance(value, str):
            out[key] = redact(value)
        elif isinstance(value, int | float | bool) or value is None:
            out[key] = value
        elif isinstance(value, dict):
            out[key] = {
                str(k): "***" if _SECRET_KEY.search(str(k)) else _plain(v) for k, v in value.items()
            }
        elif isinstance(value, list | tuple):
            out[key] = [redact(str(v)) if not isinstance(v, int | float) else v for v in value]
        else:
            out[key] = redact(str(value))
    return out


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "msg", ...extra fields, "exc"?} on one line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        data.update(_fields(record))
        if record.exc_info:
            data["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`2026-01-01T08:00:00.000Z info logger: message key=value ...` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line = f"{ts.replace('+00:00', 'Z')} {record.levelname.lower()} {record.name}: "
        line += redact(record.getMessage())
        pairs = " ".join(
            f"{k}={json.dumps(v, ensure_ascii=False, default=str) if not isinstance(v, str) or ' ' in v else v}"
            for k, v in _fields(record).items()
        )
        if pairs:
            line += " " + pairs
        if record.exc_info:
            line += " exc=" + json.dumps(redact(self.formatException(record.exc_info)))
        return line


def setup_logging(
    fmt: str = "text", level: int | str = logging.INFO, stream: IO[str] | None = None
) -> None:
    """Route the root logger to one handler with the chosen format (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_crm_contacts", False):
            root.removeHandler(old)
    handler._crm_contacts = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # APScheduler logs every job run at INFO: one line a minute that says nothing.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "Context impl ..." on every start
