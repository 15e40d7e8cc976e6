"""A sync result, the digest and the team summary as Teams cards: the same words as
Slack's (`chat.words`, `chat.summary`), within a card's bytes (UX 8)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from chat.failures import TEAM_FAILED, for_salesperson
from chat.summary import counts, failures, groups
from chat.words import (
    DUPLICATES_LABEL,
    FAILURE_HINT,
    MAX_WARNINGS,
    NAMES_PER_KIND,
    NOTHING_CHANGED,
    plural,
    sync_title,
)
from sync_engine.model import Outcome, SyncResult
from teams.cards.common import (
    CARD_BUDGET,
    MAX_TITLE,
    Card,
    Element,
    card,
    fit,
    fitted_lines,
    line,
    run,
    size,
    words,
)

SEE_ALL = "`list` shows everyone in My CRM Contacts."
SEE_FAILED = (
    "`list` shows each one's status; `crm-contacts why ID` tells an admin one person's story."
)


def _outcome(outcome: Outcome) -> Element:
    runs = [run("• "), run(fit(outcome.name, MAX_TITLE), bold=outcome.action == "failed")]
    if outcome.detail:
        runs.append(run(f" — {fit(outcome.detail, 400)}", italic=True))
    return line(*runs, spacing="None")


def summary_card(
    title: str,
    outcomes: Sequence[Outcome],
    possible_duplicates: Sequence[str] = (),
    warnings: Sequence[str] = (),
    error: str | None = None,
    *,
    subtitle: str = "",
    reserve: list[Element] | None = None,
    actions: list[Element] | None = None,
) -> tuple[str, Card]:
    """(one-line text, card): per-person outcomes, duplicates and failures; long lists show
    their first people and "…and N more" with where to see all. Failures get twice the
    room of any other list."""
    said = counts(outcomes, possible_duplicates)
    head: list[Element] = [line(run(fit(title, 300), bold=True))]
    if subtitle:
        head.append(words(subtitle, subtle=True))
    if error:
        head.append(line(run("❌ "), run(fit(error, 1000))))
    if said:
        head.append(words(" · ".join(said), subtle=True))
    elif not error and not warnings:
        head.append(words(NOTHING_CHANGED))
    tail = [line(run("⚠️ "), run(fit(w, 500))) for w in warnings[:MAX_WARNINGS]]
    tail += list(reserve or [])
    lists: list[tuple[str, list[Element], str, int, int]] = []
    for _key, label, group in groups(outcomes):
        shown = [_outcome(o) for o in group[:NAMES_PER_KIND]]
        lists.append((f"{label} ({len(group)})", shown, SEE_ALL, len(group) - len(shown), 1))
    failed = failures(outcomes)
    if failed:
        lists.append((f"⚠️ Failed ({len(failed)})", [_outcome(o) for o in failed], SEE_FAILED, 0, 2))
    if possible_duplicates:
        dupes = [line(run("• "), run(fit(d, 400)), spacing="None") for d in possible_duplicates]
        lists.append((DUPLICATES_LABEL, dupes, "", 0, 1))
    room = CARD_BUDGET - size(card(head + tail, actions)) - 300 * (len(lists) + 1)
    weights = sum(w for *_, w in lists) or 1
    body = list(head)
    for list_title, items, more, hidden, weight in lists:
        body.append(words(list_title, bold=True))
        body += fitted_lines(items, room * weight // weights, more=more, hidden=hidden)
        if list_title.startswith("⚠️ Failed"):
            body.append(words(FAILURE_HINT, subtle=True))
    body += tail
    text = title + (": " + ", ".join(said) if said else "") + (f" — {error}" if error else "")
    return fit(text, 1000), card(body, actions)


def sync_result_card(result: SyncResult) -> tuple[str, Card]:
    """The message after a hand-run sync (always sent: the user asked for it)."""
    failed = bool(result.error and not result.outcomes)
    return summary_card(
        sync_title(result.mailbox, dry_run=result.dry_run, failed=failed),
        result.outcomes,
        result.possible_duplicates,
        result.warnings,
        for_salesperson(result.error),
    )


def team_summary_card(
    lines: Sequence[tuple[str, str, dict[str, int], bool]], since: datetime
) -> tuple[str, Card]:
    """The team digest: counts per salesperson, no contact details (a shared channel)."""
    title = f"CRM Contacts: {plural(len(lines), 'salesperson', 'salespeople')} with activity"
    items = []
    for name, email, per_action, failed in lines:
        runs = [run("• "), run(fit(name, 100), bold=True), run(f" ({fit(email, 100)})")]
        said = ", ".join(f"{n} {action}" for action, n in per_action.items())
        runs.append(run(f": {said or 'no changes'}"))
        if failed:
            runs.append(run(f" — ❌ {TEAM_FAILED}"))
        items.append(line(*runs, spacing="None"))
    head = [words(title, bold=True), words(f"Since {since:%Y-%m-%d %H:%M} UTC", subtle=True)]
    room = CARD_BUDGET - size(card(head)) - 300
    more = "`crm-contacts status` lists every mailbox."
    return title, card(head + fitted_lines(items, room, more=more))
