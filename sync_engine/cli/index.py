"""`crm-contacts index build|refresh|status`: the people index search reads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from sync_engine.cli.core import app, engine, err, fail, friendly, out
from sync_engine.index import IndexBusy


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


index_app = typer.Typer(
    help="The people index search reads (built from the CRM, kept fresh by the clock).",
    no_args_is_help=True,
)
app.add_typer(index_app, name="index")


@index_app.command("build")
@friendly
def index_build() -> None:
    """Build the index from every CRM person (search uses the CRM meanwhile)."""
    with Progress(
        TextColumn("indexing people"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
    ) as bar:
        task = bar.add_task("index", total=None)
        try:
            report = engine().index.build(
                total=lambda n: bar.update(task, total=n),
                progress=lambda n: bar.advance(task, n),
            )
        except IndexBusy as exc:
            raise fail(str(exc)) from None
    out.print(
        f"Indexed {report.people:,} people ({report.terms:,} distinct words, "
        f"{report.deleted:,} deleted in the CRM) in {report.seconds:.0f} s."
    )


@index_app.command("refresh")
@friendly
def index_refresh(
    sweep: Annotated[
        bool, typer.Option("--sweep", help="Also compare every person id (finds hard deletes).")
    ] = False,
) -> None:
    """Apply the CRM's changes since the last refresh (the clock does this every cycle)."""
    index = engine().index
    if not index.status().ready:
        raise fail("the people index is not built yet; run `crm-contacts index build`")
    report = index.refresh(sweep=True if sweep else None)
    if report.skipped:
        out.print(f"Nothing refreshed: {report.skipped}.")
        return
    swept = " after a full sweep" if report.swept else ""
    out.print(
        f"Refreshed{swept}: {report.changed} people re-read, {report.removed} removed, "
        f"in {report.seconds * 1000:.0f} ms."
    )


@index_app.command("status")
@friendly
def index_status() -> None:
    """Whether the index is built and how fresh it is."""
    s = engine().index.status()
    if s.building and s.building_since:
        out.print(f"being built since {_local(s.building_since)}")
    elif s.building_since:
        out.print(
            f"a build started {_local(s.building_since)} did not finish (its process ended); "
            "the next build starts afresh"
        )
    if not s.ready:
        out.print("not built: search reads the CRM; run `crm-contacts index build`")
        return
    out.print(f"ready: {s.people:,} live people")
    for label, at in (
        ("built", s.built_at),
        ("refreshed", s.refreshed_at),
        ("swept for hard deletes", s.swept_at),
    ):
        if at:
            out.print(f"{label}: {_local(at)}")
    if s.watermark:
        out.print(f"CRM changes applied up to: {s.watermark:%Y-%m-%d %H:%M:%S} (CRM clock)")
