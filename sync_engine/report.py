"""Plain-text lines for a sync result, shared by the command line and the demo."""

from __future__ import annotations

from sync_engine.model import SyncResult

ACTIONS = ("created", "linked", "updated", "unlinked", "deleted", "forgotten", "failed")
# write-back (issue 14): Outlook edits sent to the CRM, and those that lost to a CRM edit
WRITE_BACK_LABELS = (("written_back", "written back to the CRM"), ("conflict", "lost to the CRM"))


def counts_line(r: SyncResult) -> str:
    """'8 created, 1 linked' or 'nothing to do'."""
    parts = [f"{r.count(a)} {a}" for a in ACTIONS if r.count(a)]
    parts += [f"{r.count(a)} {label}" for a, label in WRITE_BACK_LABELS if r.count(a)]
    return ", ".join(parts) or "nothing to do"


def detail_lines(r: SyncResult) -> list[str]:
    """One line per person (created ones only by name) and per duplicate hint or warning."""
    lines = []
    for o in r.outcomes:
        detail = f" ({o.detail})" if o.detail and o.action != "created" else ""
        action = o.action.replace("_", " ")
        lines.append(f"  {action:<9} {o.name}{detail}")
    lines += [f"  possible duplicate: {d}" for d in r.possible_duplicates]
    lines += [f"  warning: {w}" for w in r.warnings]
    return lines
