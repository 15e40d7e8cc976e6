"""`crm-contacts crm check`: can we read this Sage CRM database, and (with SAGE_REST_URL)
can we write to it through its REST API? For the Sage admin before go-live and whenever
something looks wrong: docs/sage-crm.md shows its output for the usual cases."""

from __future__ import annotations

from typing import Annotated

import typer

from sync_engine.cli.core import crm_app, engine, fail, friendly, out
from sync_engine.config import Settings, load_settings


@crm_app.command("check")
@friendly
def crm_check(
    write_probe: Annotated[
        int | None,
        typer.Option(
            "--write-probe",
            metavar="PERSON_ID",
            help="Also change this person's job title through Sage's REST API and put it back.",
        ),
    ] = None,
) -> None:
    """Can we read the Sage CRM database at CRM_DATABASE_URL (tables, columns, counts, link
    types, one timed search, the indexes a DBA may add), and write through SAGE_REST_URL?
    Changes nothing unless --write-probe is given. Exit 0 when all works."""
    from sync_engine.crm.check import check_crm
    from sync_engine.crm.source import SageCrm
    from sync_engine.crm.writer import write_back_status

    settings = load_settings()
    if write_probe is not None and not (settings.crm_database_url and settings.sage_rest_url):
        raise fail(
            "--write-probe tries Sage CRM's REST API: set CRM_DATABASE_URL and SAGE_REST_URL "
            "(with SAGE_REST_USER and SAGE_REST_PASSWORD) first",
            code=2,
        )
    embedded = not settings.crm_database_url
    crm = engine().crm if embedded else SageCrm(settings.crm_url, writable=False)
    try:
        report = check_crm(crm)
        for line in report.lines:
            out.print(line, markup=False)
        out.print(write_back_status(embedded, settings.sage_rest_url), markup=False)
        problems = [f"MISSING  {p}" for p in report.problems]
        warnings = list(report.warnings)
        rest_problems = 0
        if settings.sage_rest_url and not embedded:
            rest = _check_rest(settings, crm, write_probe)
            problems += [f"FAILED   {p}" for p in rest.problems]
            warnings += rest.warnings
            rest_problems = len(rest.problems)
    finally:
        if not embedded:
            crm.close()
    for line in problems:
        out.print(line, markup=False)
    for warning in warnings:
        out.print(f"WARN     {warning}", markup=False)
    if report.indexes:
        out.print(
            "Indexes a DBA may add to speed up search and change detection (we never create them):"
        )
        for statement in report.indexes:
            out.print(f"  {statement}", markup=False)
    if not report.ok:
        raise fail(
            f"the CRM database lacks {len(report.problems)} thing(s) we read (listed above); "
            "see docs/sage-crm.md"
        )
    if rest_problems:
        raise fail(
            "write-back to Sage CRM does not work as set up (listed above); see docs/write-back.md"
        )
    out.print("All tables and columns we read are readable.")


def _check_rest(settings: Settings, crm, probe: int | None):  # type: ignore[no-untyped-def]
    """The REST half; a login that works lifts a write-back pause, a refused one sets it."""
    from sync_engine.crm.check_rest import check_rest
    from sync_engine.write_back_state import pause_write_back, resume_write_back

    rest = check_rest(settings, crm, probe_person=probe)
    for line in rest.lines:
        out.print(line, markup=False)
    store = engine().store
    if rest.login_ok:
        if resume_write_back(store):
            out.print("write-back: resumed (it was paused after a refused login)")
    elif rest.login_ok is False:
        pause_write_back(store, settings, rest.refused)
        out.print("write-back: paused until the login works (no sync will try this password)")
    return rest
