"""The pure parts of safe write-back (issue 19): a phone split as Sage keeps it, the
sanity of each value before it may reach the CRM, when the CRM holds what was written,
and the CRM database's clock taken off Pers_UpdatedDate under WRITE_BACK_CONFLICT=latest."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from test_write_back_plan import edited, person, synced, wb

from sync_engine.crm.clock import describe_offset, measure_offset
from sync_engine.crm.phones import split_phone
from sync_engine.write_back_checks import held_as_written, refusal


@pytest.mark.parametrize(
    ("number", "row", "parts"),
    [
        # the row's own codes, as Outlook got them joined: kept as the row writes them
        ("+44 20 7946 0999", ("44", "20"), ("44", "20", "7946 0999")),
        ("+44 20 7946 0999", ("+44", "20"), ("+44", "20", "7946 0999")),
        ("44 20 7946 0999", ("44", "20"), ("44", "20", "7946 0999")),
        ("020 7946 0999", ("44", "20"), ("44", "20", "7946 0999")),  # national, the row's country
        ("(512) 555-0199", ("1", "512"), ("1", "512", "555-0199")),
        ("+44 20 7946 0999 ext. 12", ("44", "20"), ("44", "20", "7946 0999 ext. 12")),
        # other codes, or none on the row: libphonenumber's split, the row's '+' style
        ("+1 512 555 0199", ("44", "20"), ("1", "512", "555 0199")),
        ("+44 20 7946 0999", ("", ""), ("+44", "20", "7946 0999")),
        ("+1 (512) 555-0199", ("", ""), ("+1", "512", "555-0199")),
        ("+44 7700 900123", ("", ""), ("+44", "", "7700 900123")),  # a mobile: no area code
        # nothing to split it by: whole, codes blank
        ("555 0199", ("", ""), ("", "", "555 0199")),
    ],
)
def test_a_phone_is_split_as_sage_keeps_it(number, row, parts):  # type: ignore[no-untyped-def]
    assert split_phone(number, *row) == parts


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        (
            "email",
            "/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn=x",
            "not an email",
        ),
        ("email2", "a b@example.com", "not an email"),
        ("web_page", "javascript:alert(1)", "not an http or https"),
        ("web_page", "data:text/html,<b>x</b>", "looks like HTML"),
        ("web_page", "ftp://files.example.com", "not an http or https"),
        ("job_title", "<script>alert(1)</script>", "looks like HTML"),
        ("job_title", "CEO\x1b]8;;https://evil.example\x1b\\", "control or text-direction"),
        ("last_name", "Smith\u202e", "control or text-direction"),
        ("department", "Sales\nMarketing", "control or text-direction"),
        ("title", "Dr\x85", "control or text-direction"),  # C1 (NEL)
        ("mobile_phone", "1" * 200_000, "200,000 characters"),
        ("business_phone", "call me", "not a phone number"),
    ],
)
def test_hostile_values_are_refused_with_the_reason(name, value, why):  # type: ignore[no-untyped-def]
    reason = refusal(name, value)
    assert reason is not None and why in reason


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("email", "zoë@exämple.com"),
        ("web_page", "www.designright.example"),
        ("web_page", "https://designright.example/team?x=1"),
        ("web_page", "intranet:8080/people"),
        ("job_title", "R&D lead, 3 < 4"),
        ("last_name", "O'Brien-Åström"),
        ("business_phone", "+44 (0)20 7946-0999 ext. 12"),
    ],
)
def test_ordinary_values_pass(name, value):  # type: ignore[no-untyped-def]
    assert refusal(name, value) is None


def test_the_crm_holds_what_was_written_up_to_formatting_noise():
    assert held_as_written("email", "Zoe@Home.Example", "zoe@home.example")
    assert held_as_written("business_phone", "+44 20 7946 0999", "44 20 7946 0999")
    assert held_as_written("job_title", "Head  of Ops ", "Head of Ops")
    assert not held_as_written("job_title", "Head of Ops", "HEAD OF OPS")
    assert not held_as_written("business_phone", "+44 20 7946 0999", "+44 20 7946 0000")


def test_latest_takes_the_crm_clocks_offset_off_pers_updateddate():
    p = person(1)
    c, link = synced(p)
    # the CRM's server runs an hour ahead of UTC: its 10:05 is 09:05 UTC
    crm_now = replace(person(1, job_title="CTO"), updated_at=datetime(2026, 11, 28, 10, 5))
    outlook = replace(edited(c, job_title="CEO"), modified_at="2026-11-28T09:10:00Z")
    naive = wb([crm_now], [outlook], [link], conflict_policy="latest")
    assert naive.writes == []  # read as UTC, the CRM's edit looks 55 minutes later
    measured = wb(
        [crm_now], [outlook], [link], conflict_policy="latest", crm_clock_offset=timedelta(hours=1)
    )
    assert [w.changes for w in measured.writes] == [(("job_title", "CEO"),)]


@pytest.mark.postgres
def test_the_database_clock_is_measured_against_utc(pg_url):  # type: ignore[no-untyped-def]
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SET TIME ZONE 'Asia/Kolkata'"))  # UTC+05:30, no daylight saving
            offset = measure_offset(conn)
    finally:
        engine.dispose()
    assert abs(offset - timedelta(hours=5, minutes=30)) <= timedelta(seconds=2)
    assert describe_offset(offset).startswith("5 h 30 min")
    assert describe_offset(-timedelta(hours=5)) == "5 h behind UTC"
