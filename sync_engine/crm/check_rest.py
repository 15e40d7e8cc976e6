"""`crm check` proves the write path before anyone relies on it (issue 19): with
SAGE_REST_URL set, log in and read one person through Sage's REST API, say which of the
resources write-back uses the API answers, say whose edits may be written (the scope),
and, with `--write-probe PERSON_ID`, change one field of a person the admin names and
put it back, verifying both through the database.

A successful login lifts a write-back pause (write_back_state.py); a refused one
records it, so the clock's syncs do not try the same password again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from sync_engine.config import Settings
from sync_engine.crm import schema as s
from sync_engine.crm.check import CheckReport
from sync_engine.crm.sage_rest import READ_BACK, SUCCESS, Calls, SageRestClient, sage_words
from sync_engine.crm.source import SageCrm, _live
from sync_engine.crm.writer import CrmUnavailable
from sync_engine.masking import mask_urls
from sync_engine.model import clean

RESOURCES = ("Person", "Email", "Phone", "EmailLink", "PhoneLink")
PROBE_VALUE = "crm-contacts write probe"
SCOPES = {
    "listed": "listed: any person in a salesperson's list, as Sage's own integration",
    "managed": (
        "managed: only people a salesperson is Account Manager for, or whose company they manage"
    ),
}


@dataclass
class RestReport(CheckReport):
    """`crm check`'s report, and how the login went."""

    login_ok: bool | None = None  # None: not tried (unreachable, redirected)
    refused: str = ""  # Sage's words on a refused login


def check_rest(
    settings: Settings,
    crm: SageCrm,
    *,
    probe_person: int | None = None,
    client: Callable[[Settings], SageRestClient] = SageRestClient.from_settings,
) -> RestReport:
    """Everything the REST API must do for write-back, tried with SAGE_REST_*."""
    report = RestReport()
    rest = client(settings)
    user = settings.sage_rest_user or ""
    report.lines.append(f"Sage CRM REST API: {mask_urls(rest.base_url)} as {user!r}")
    try:
        _login(rest, crm, report)
        if report.login_ok:
            _resources(rest, report)
            if probe_person is not None:
                _probe(rest, crm, probe_person, report)
    finally:
        rest.close()
    report.lines.append(
        f"write-back scope: {SCOPES[settings.write_back_scope]} (WRITE_BACK_SCOPE). "
        f"Every write goes through {user!r}, which reaches whatever its Sage profile and "
        "territories allow, whoever's Outlook edit it carries"
    )
    return report


def _login(rest: SageRestClient, crm: SageCrm, report: RestReport) -> None:
    with crm._connect() as conn:
        pid = conn.execute(
            select(func.min(s.person.c.Pers_PersonId)).where(_live(s.person.c.Pers_Deleted))
        ).scalar()
    path = f"Person('{pid}')" if pid is not None else "Person"
    try:
        response = rest.request(Calls(), "GET", path)
    except CrmUnavailable as exc:
        if exc.pause:
            report.login_ok = False
            report.refused = str(exc)
            report.problems.append(
                f"{exc}: check SAGE_REST_USER and SAGE_REST_PASSWORD (each failed login counts "
                "towards Sage's Account Lockout Threshold)"
            )
        else:
            report.problems.append(str(exc))
        return
    report.login_ok = True
    if response.status_code in SUCCESS:
        report.lines.append(f"ok  login accepted; {path} read through REST")
    else:
        report.problems.append(f"cannot read {path} through REST ({sage_words(response)})")


def _resources(rest: SageRestClient, report: RestReport) -> None:
    """Which entities the API exposes (`$prototypes/{Entity}`, as Sage's sample client
    reads an entity's fields)."""
    answered, missing = [], []
    for name in RESOURCES:
        try:
            response = rest.request(Calls(), "GET", f"$prototypes/{name}")
        except CrmUnavailable as exc:
            report.problems.append(str(exc))
            return
        (answered if response.status_code in SUCCESS else missing).append(name)
    report.lines.append(f"ok  REST resources answered: {', '.join(answered) or 'none'}")
    core = [m for m in missing if m in ("Person", "Email", "Phone")]
    if core:
        report.problems.append(
            f"REST resources not answered: {', '.join(core)}: write-back cannot change them"
        )
    links = [m for m in missing if m not in core]
    if links:
        report.warnings.append(
            f"REST resources not answered: {', '.join(links)}: a person without an email or "
            "phone of a type cannot get one, and a row shared with another record cannot be "
            "replaced, so those write-backs fail (and leave nothing behind); changing a "
            "person's own existing email or phone works"
        )


def _probe(rest: SageRestClient, crm: SageCrm, pid: int, report: RestReport) -> None:
    """Change Pers_Title of person `pid` and put it back, each step read from the database."""
    before = _title(crm, pid)
    if before is None:
        report.problems.append(f"write probe: no live person {pid} in the CRM database")
        return
    probe = PROBE_VALUE if clean(before) != PROBE_VALUE else PROBE_VALUE + " 2"
    for value, step in ((probe, "set"), (before or "", "put back")):
        calls = Calls()
        try:
            error = rest.send(calls, "PATCH", f"Person('{pid}'){READ_BACK}", {"Pers_Title": value})
        except CrmUnavailable as exc:
            report.problems.append(f"write probe: {exc}")
            return
        held = clean(_title(crm, pid))
        if error or held != clean(value):
            why = error or f"Sage answered success but the database holds {held!r}"
            report.problems.append(f"write probe: Pers_Title of Person('{pid}') not {step}: {why}")
            return
    report.lines.append(
        f"ok  write probe: Person('{pid}') Pers_Title set to {probe!r} and put back to "
        f"{clean(before)!r}, both read back from the database"
    )


def _title(crm: SageCrm, pid: int) -> str | None:
    p = s.person
    with crm._connect() as conn:
        row = conn.execute(
            select(p.c.Pers_Title).where(p.c.Pers_PersonId == pid, _live(p.c.Pers_Deleted))
        ).first()
    return None if row is None else clean(row[0])
