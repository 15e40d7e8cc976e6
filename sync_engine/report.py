"""Plain-text lines for a sync result, shared by the command line and the demo."""

from __future__ import annotations

from sync_engine.model import SyncResult

ACTIONS = ("created", "linked", "updated", "unlinked", "deleted", "forgotten", "failed")


def counts_line(r: SyncResult) -> str:
    """'8 created, 1 linked' or 'nothing to do'."""
    return ", ".join(f"{r.count(a)} {a}" for a in ACTIONS if r.count(a)) or "nothing to do"


def detail_lines(r: SyncResult) -> list[str]:
    """One line per person (created ones only by name) and per duplicate hint or warning."""
    lines = []
    for o in r.outcomes:
        detail = f" ({o.detail})" if o.detail and o.action != "created" else ""
        lines.append(f"  {o.action:<9} {o.name}{detail}")
    lines += [f"  possible duplicate: {d}" for d in r.possible_duplicates]
    lines += [f"  warning: {w}" for w in r.warnings]
    return lines
