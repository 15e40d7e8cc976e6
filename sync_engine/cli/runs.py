"""Running and watching syncs: sync, status, why, check-mailbox, digest, db upgrade, demo."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sync_engine.answers import MailboxStatus
from sync_engine.cli.core import (
    As,
    Json,
    app,
    db_app,
    engine,
    err,
    fail,
    friendly,
    local_time,
    out,
    print_json,
)
from sync_engine.model import WEEKDAYS, SyncResult
from sync_engine.report import counts_line, detail_lines
from sync_engine.terminal import one_line, visible

# -- syncing ------------------------------------------------------------------------------


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda _n: None
        return
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(visible(label), total=None)
        yield lambda n: bar.advance(task, n)


@app.command()
@friendly
def sync(
    as_: Annotated[str | None, typer.Option("--as", help="Sync this user's mailbox.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Sync every known mailbox.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
    ] = False,
    allow_mass_delete: Annotated[
        bool,
        typer.Option("--allow-mass-delete", help="Carry out deletes the safety limit held back."),
    ] = False,
    allow_mass_edit: Annotated[
        bool,
        typer.Option(
            "--allow-mass-edit", help="Write back the Outlook edits the safety limit held back."
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Bring the mailbox in line with My CRM Contacts and the CRM."""
    if bool(as_) == all_:
        raise fail("give --as EMAIL for one mailbox, or --all")
    e = engine()
    options = {
        "dry_run": dry_run,
        "allow_mass_delete": allow_mass_delete,
        "allow_mass_edit": allow_mass_edit,
    }
    results: list[SyncResult] = []
    show_progress = not as_json and err.is_terminal
    if as_:
        user = e.user(as_)
        with progress_bar(f"syncing {user.email}", show_progress) as advance:
            results.append(e.sync(user, progress=advance, **options))
    else:
        for stored in e.store.users():
            with progress_bar(f"syncing {stored.mailbox}", show_progress) as advance:
                results.append(e.sync_stored(stored, progress=advance, **options))
    if as_json:
        print_json({"mailboxes": [r.as_json() for r in results]})
    else:
        for r in results:
            print_result(r)
    if any(r.error for r in results):
        raise typer.Exit(1)


def print_result(r: SyncResult) -> None:
    head = "Dry run for" if r.dry_run else "Synced"
    out.print(f"{head} {r.mailbox}: {counts_line(r)}", markup=False)
    for line in detail_lines(r):
        out.print(line, markup=False)
    if r.error:
        err.print(f"error: {one_line(f'{r.mailbox}: {r.error}')}")


@app.command()
@friendly
def status(as_json: Json = False) -> None:
    """Every mailbox (list size, last and next sync, the last error in plain words) and
    every open problem with its fix; exit code 1 while a problem is open (cron, monitoring).
    Also a write-back pause, and Sage's own words on the last syncs' failed write-backs."""
    from sync_engine.ops.problems import open_problems

    e = engine()
    statuses = e.statuses()
    problems = open_problems(e).problems
    paused = e.write_back_paused()
    if as_json:
        print_json(
            {
                "mailboxes": [
                    {
                        "email": s.email,
                        "mailbox": s.mailbox,
                        "subscriptions": s.subscriptions,
                        "linked": s.linked,
                        "last_run_at": s.last_run_at.isoformat() if s.last_run_at else None,
                        "last_status": s.last_status,
                        "last_error": s.last_error,
                        "next_due_at": s.next_due_at.isoformat() if s.next_due_at else None,
                        "consecutive_failures": s.consecutive_failures,
                        "write_back_notes": s.write_back_notes,
                        "target": s.target or None,
                        "target_reason": s.target_reason,
                    }
                    for s in statuses
                ],
                "problems": [p.as_json() for p in problems],
                "write_back_paused": paused,
            }
        )
    else:
        print_statuses(statuses, paused)
        for p in problems:
            out.print(f"problem: {p.summary}", markup=False)
            out.print(f"  fix: {p.fix}", markup=False)
    if problems:
        err.print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} open", markup=False)
        raise typer.Exit(1)


def print_statuses(statuses: list[MailboxStatus], paused: str | None = None) -> None:
    if paused:
        out.print(paused, markup=False)
    if not statuses:
        out.print("No mailboxes yet; add people with `crm-contacts add --as EMAIL`.")
        return
    table = Table()
    columns = ("mailbox", "target", "in list", "linked", "last sync", "result", "next due")
    for column in (*columns, "last error"):
        table.add_column(column)
    for s in statuses:
        last = local_time(s.last_run_at) if s.last_run_at else "never"
        due = local_time(s.next_due_at) if s.next_due_at else "—"
        table.add_row(
            s.mailbox,
            s.target or "—",
            str(s.subscriptions),
            str(s.linked),
            last,
            s.last_status or "—",
            due,
            s.last_error or "",
        )
    out.print(table)
    # why each mailbox has its target: the setting itself, or (hybrid) what Graph answered
    reasons = {s.target_reason for s in statuses}
    if len(reasons) == 1:
        out.print(f"target: {reasons.pop()}", markup=False)
    else:
        for s in statuses:
            out.print(
                f"{s.mailbox}: {s.target or 'target not decided yet'}, {s.target_reason}",
                markup=False,
            )
    notes = [note for s in statuses for note in s.write_back_notes]
    if notes:  # the CRM's own words: the admin's, never shown to the salesperson
        out.print("Write-back at the last syncs, in Sage CRM's words:")
        for note in notes:
            out.print(f"  {note}", markup=False)


@app.command()
@friendly
def why(person_id: Annotated[int, typer.Argument(help="CRM person id")], as_: As) -> None:
    """The audit trail of one person in your mailbox: why it is there, or gone."""
    e = engine()
    events = e.why(e.user(as_), person_id)
    if not events:
        raise fail(f"nothing recorded for person {person_id} in this mailbox")
    for ev in events:
        out.print(f"{local_time(ev.at)}  {ev.action:<12} {ev.reason}  [{ev.actor}]", markup=False)


@app.command("check-mailbox")
@friendly
def check_mailbox(as_: As) -> None:
    """Connect to the user's mailbox and say in plain words whether it can be synced."""
    e = engine()
    for line in e.check_mailbox(e.user(as_)):
        out.print(line, markup=False)


@app.command()
@friendly
def digest(
    as_: As,
    time: Annotated[
        str | None, typer.Option("--time", metavar="HH:MM", help="Local time, 24-hour clock.")
    ] = None,
    default_time: Annotated[
        bool, typer.Option("--default-time", help="Back to SUMMARY_TIME.")
    ] = False,
    weekly: Annotated[
        str | None,
        typer.Option("--weekly", metavar="DAY", help="Once a week, on DAY (monday … sunday)."),
    ] = None,
    daily: Annotated[bool, typer.Option("--daily", help="Every day (the default).")] = False,
    snooze: Annotated[
        int | None,
        typer.Option("--snooze", metavar="DAYS", help="No digest for DAYS days; 0 resumes."),
    ] = None,
    off: Annotated[
        bool | None, typer.Option("--off/--on", help="Turn the digest off, or back on.")
    ] = None,
    as_json: Json = False,
) -> None:
    """The user's digest DM: its time, daily or weekly, snooze, off. No option: show it."""
    if weekly is not None and daily:
        raise fail("give --weekly DAY or --daily, not both")
    e = engine()
    user = e.user(as_)
    frequency = "weekly" if weekly is not None else ("daily" if daily else None)
    prefs = e.set_digest_prefs(
        user,
        time=time,
        default_time=default_time,
        frequency=frequency,
        weekday=weekly,
        snooze_days=snooze,
        off=off,
    )
    if as_json:
        print_json(
            {
                "email": user.email,
                "time": prefs.time,
                "chosen_time": prefs.chosen_time,
                "frequency": prefs.frequency,
                "weekday": WEEKDAYS[prefs.weekday],
                "snoozed_until": prefs.snoozed_until.isoformat() if prefs.snoozed_until else None,
                "off": prefs.off,
                "time_zone": prefs.tz or "UTC",
            }
        )
        return
    out.print(f"Digest for {user.email}: {prefs.describe()}", markup=False)


@db_app.command("upgrade")
@friendly
def db_upgrade() -> None:
    """Bring the state database's schema up to date (also done on every start)."""
    from sync_engine import migrate

    e = engine()
    out.print(f"State database at revision {migrate.current_revision(e.store.engine)}.")


@app.command()
@friendly
def demo() -> None:
    """Walk the seed story on the embedded default, printing each step and the mailbox."""
    from sync_engine.demo import run_demo

    run_demo(engine(recreate_stale_crm=True), out)
