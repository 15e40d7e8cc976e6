"""What a sync result or a digest says, before any markup: counts and per-kind groups.

One reading of the outcomes for both front ends (SLACK_UX 8): the counts line in the
order a reader cares about, then each kind's people, failures apart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from chat.failures import for_salesperson
from chat.words import ACTIONS, SHORT, plural
from sync_engine.model import CrmUser, Outcome

if TYPE_CHECKING:
    from sync_engine.service import Engine


def counts(outcomes: Sequence[Outcome], possible_duplicates: Sequence[str] = ()) -> list[str]:
    """ "3 created", "1 failed", "2 possible duplicates": the kinds that happened, in order."""
    failed = [o for o in outcomes if o.action == "failed"]
    done = [o for o in outcomes if o.action != "failed"]
    out = [
        plural(sum(1 for o in done if o.action == key), SHORT[key], SHORT[key])
        for key, _ in ACTIONS
        if any(o.action == key for o in done)
    ]
    if failed:
        out.append(f"{len(failed)} failed")
    if possible_duplicates:
        out.append(plural(len(possible_duplicates), "possible duplicate"))
    return out


def groups(outcomes: Sequence[Outcome]) -> list[tuple[str, str, list[Outcome]]]:
    """(kind, label, outcomes) for each kind that happened, failures not included."""
    return [
        (key, label, [o for o in outcomes if o.action == key])
        for key, label in ACTIONS
        if any(o.action == key for o in outcomes)
    ]


def failures(outcomes: Sequence[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.action == "failed"]


@dataclass(frozen=True)
class DigestContent:
    """What one user's digest of a period says (the front ends add their controls)."""

    since: datetime
    until: datetime
    runs: int
    outcomes: list[Outcome]
    possible_duplicates: list[str]
    warnings: list[str]


def digest_content(
    engine: Engine, user: CrmUser, since: datetime, until: datetime
) -> DigestContent | None:
    """The digest of `since`..`until`; None when nothing happened (no message: UX 9)."""
    activity = engine.activity(user, since, until)
    outcomes = list(activity.outcomes)
    seen = {(o.person_id, o.action, o.detail) for o in outcomes}
    outcomes += [o for o in activity.failures if (o.person_id, o.action, o.detail) not in seen]
    warnings = [*activity.warnings, *([for_salesperson("failed")] if activity.errors else [])]
    if not outcomes and not activity.possible_duplicates and not warnings:
        return None
    return DigestContent(
        since, until, activity.runs, outcomes, list(activity.possible_duplicates), warnings
    )
