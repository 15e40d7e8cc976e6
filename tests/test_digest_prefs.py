"""Per-user digest settings (SLACK_UX 9): the engine's checks, the rule of when a digest
is due (a pure function of the settings and the test's clock), and the command line.

The digest DMs themselves are in test_schedule.py (the scheduler and the Slack stand-in)
and test_bot_http.py (the controls, clicked over signed HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from sync_engine.config import load_settings
from sync_engine.crm.embedded import seed_demo
from sync_engine.digest_settings import BadDigestSetting
from sync_engine.due import digest_since, digest_slot, summary_slot
from sync_engine.model import DigestPrefs
from sync_engine.service import Engine, EngineError

ALICE, BOB = "alice@example.com", "bob@example.com"
GRACE = timedelta(hours=4)


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    e = Engine(load_settings())
    seed_demo(e.crm)
    yield e
    e.close()


# -- the engine ---------------------------------------------------------------------------


def test_defaults_follow_summary_time_until_the_user_picks_a_time(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = engine.user(ALICE)
    prefs = engine.digest_prefs(alice)
    assert (prefs.time, prefs.chosen_time, prefs.frequency, prefs.weekday) == (
        "08:00",
        False,
        "daily",
        0,
    )
    assert (prefs.snoozed_until, prefs.off) == (None, False)
    assert prefs.describe() == "daily at 08:00 (UTC time)"

    chosen = engine.set_digest_prefs(alice, time="7:05", frequency="Weekly", weekday="fri")
    assert (chosen.time, chosen.chosen_time, chosen.weekly, chosen.weekday) == (
        "07:05",
        True,
        True,
        4,
    )
    assert chosen.describe() == "weekly on Fridays at 07:05 (UTC time)"
    # the rest stays when one setting changes
    assert engine.set_digest_prefs(alice, off=True).describe() == "off"
    back = engine.set_digest_prefs(alice, off=False, default_time=True)
    assert (back.time, back.chosen_time, back.weekday) == ("08:00", False, 4)
    monkeypatch.setenv("SUMMARY_TIME", "09:15")
    engine.settings = load_settings()
    assert engine.digest_prefs(alice).time == "09:15"  # the default moves with SUMMARY_TIME


def test_a_snooze_counts_in_the_users_own_days_and_ends_on_its_date(engine: Engine) -> None:
    engine.remember_slack_user("U_ALICE", ALICE, "Pacific/Auckland")
    alice, bob = engine.user(ALICE), engine.user(BOB)
    # 20:00 UTC on 9 March is already 09:00 on 10 March in Auckland
    now = datetime(2026, 3, 9, 20, 0, tzinfo=UTC)
    assert engine.set_digest_prefs(alice, snooze_days=7, now=now).snoozed_until == date(2026, 3, 17)
    assert engine.set_digest_prefs(bob, snooze_days="7", now=now).snoozed_until == date(2026, 3, 16)
    assert engine.digest_prefs(alice, now=now + timedelta(days=6)).snoozed_until == date(
        2026, 3, 17
    )
    assert engine.digest_prefs(alice, now=now + timedelta(days=7)).snoozed_until is None
    assert engine.set_digest_prefs(bob, snooze_days=0, now=now).snoozed_until is None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"time": "25:00"}, "'25:00' is not a time of day; give HH:MM"),
        ({"time": "8pm"}, "'8pm' is not a time of day"),
        ({"time": "08:0"}, "'08:0' is not a time of day"),
        ({"time": ""}, "'' is not a time of day"),
        ({"time": "08:00", "default_time": True}, "not both"),
        ({"frequency": "hourly"}, "'hourly' is not a digest frequency; choose daily or weekly"),
        ({"weekday": "someday"}, "'someday' is not a day of the week"),
        ({"weekday": "mo"}, "'mo' is not a day of the week"),
        ({"weekday": 7}, "'7' is not a day of the week"),
        ({"snooze_days": -1}, "'-1' is not a snooze length; give 1 to 90 days"),
        ({"snooze_days": 91}, "turn the digest off"),
        ({"snooze_days": "a week"}, "'a week' is not a snooze length"),
        ({"time": "07:00", "snooze_days": 400}, "is not a snooze length"),
    ],
)
def test_bad_settings_are_one_clear_line_and_change_nothing(
    engine: Engine, change: dict[str, object], words: str
) -> None:
    alice = engine.user(ALICE)
    before = engine.digest_prefs(alice)
    with pytest.raises(BadDigestSetting) as refused:
        engine.set_digest_prefs(alice, **change)  # type: ignore[arg-type]
    assert isinstance(refused.value, EngineError)
    message = str(refused.value)
    assert words in message and "\n" not in message and len(message) < 200
    assert engine.digest_prefs(alice) == before


def test_each_user_changes_only_their_own_settings(engine: Engine) -> None:
    alice, bob = engine.user(ALICE), engine.user(BOB)
    engine.set_digest_prefs(alice, time="17:30", frequency="weekly", off=True)
    assert engine.digest_prefs(bob) == DigestPrefs(time="08:00")
    assert engine.digest_prefs(alice).off is True


def test_cli_digest_shows_and_changes_the_settings(cli) -> None:  # type: ignore[no-untyped-def]
    cli.ok("crm", "seed")
    assert cli.ok("digest", "--as", ALICE).strip() == (
        "Digest for alice@example.com: daily at 08:00 (UTC time)"
    )
    assert "weekly on Fridays at 17:30" in cli.ok(
        "digest", "--as", ALICE, "--time", "17:30", "--weekly", "friday"
    )
    shown = json.loads(cli.ok("digest", "--as", ALICE, "--snooze", "3", "--off", "--json"))
    assert shown["off"] is True and shown["snoozed_until"] is not None
    assert (shown["time"], shown["weekday"], shown["frequency"]) == ("17:30", "Friday", "weekly")
    assert "daily at 08:00" in cli.ok("digest", "--as", ALICE, "--on", "--daily", "--default-time")
    for args, words in (
        (["--time", "7pm"], "'7pm' is not a time of day"),
        (["--weekly", "mon", "--daily"], "not both"),
        (["--snooze", "-2"], "is not a snooze length"),
    ):
        result = cli("digest", "--as", ALICE, *args)
        assert result.code == 1 and result.err.count("\n") == 1, result.err
        assert result.err.startswith("error: ") and words in result.err


# -- when a digest is due (pure) -------------------------------------------------------------


def slot(now: datetime, prefs: DigestPrefs, tz: str = "UTC", last: datetime | None = None):  # type: ignore[no-untyped-def]
    return digest_slot(now, tz, prefs, "08:00", GRACE, last)


def test_default_settings_are_the_old_daily_rule() -> None:
    for now in (
        datetime(2026, 3, 10, 12, 5, tzinfo=UTC),
        datetime(2026, 3, 10, 11, 59, tzinfo=UTC),
        datetime(2026, 3, 10, 19, 30, tzinfo=UTC),
    ):
        for tz in ("America/New_York", "Pacific/Auckland", "UTC"):
            assert slot(now, DigestPrefs(), tz) == summary_slot(now, tz, "08:00", GRACE)


def test_the_users_time_in_their_zone_and_once_a_day() -> None:
    evening = DigestPrefs(time="17:30")
    # 17:30 in Kolkata is 12:00 UTC
    assert slot(datetime(2026, 3, 10, 12, 1, tzinfo=UTC), evening, "Asia/Kolkata") == datetime(
        2026, 3, 10, 12, 0, tzinfo=UTC
    )
    assert slot(datetime(2026, 3, 10, 2, 31, tzinfo=UTC), evening, "Asia/Kolkata") is None
    # already sent at 08:00 today, then moved to 17:30: no second digest that day
    morning = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
    at_half_five = datetime(2026, 3, 10, 17, 31, tzinfo=UTC)
    assert slot(at_half_five, evening, last=morning) is None
    assert slot(at_half_five + timedelta(days=1), evening, last=morning) == datetime(
        2026, 3, 11, 17, 30, tzinfo=UTC
    )
    assert slot(at_half_five, evening, last=at_half_five - timedelta(minutes=1)) is None


def test_weekly_only_on_its_local_weekday() -> None:
    # Mondays 08:00 in Auckland are Sunday 19:00 UTC (NZDT, UTC+13)
    mondays = DigestPrefs(frequency="weekly", weekday=0)
    sunday_utc = datetime(2026, 3, 8, 19, 1, tzinfo=UTC)
    assert sunday_utc.weekday() == 6
    assert slot(sunday_utc, mondays, "Pacific/Auckland") == datetime(2026, 3, 8, 19, 0, tzinfo=UTC)
    due = [d for d in range(7) if slot(sunday_utc + timedelta(days=d), mondays, "Pacific/Auckland")]
    assert due == [0]
    fridays = DigestPrefs(frequency="weekly", weekday=4)
    assert [
        d for d in range(7) if slot(sunday_utc + timedelta(days=d), fridays, "Pacific/Auckland")
    ] == [4]


def test_nothing_while_off_or_snoozed_and_nothing_from_before_a_change() -> None:
    now = datetime(2026, 3, 10, 8, 1, tzinfo=UTC)
    assert slot(now, DigestPrefs(off=True)) is None
    snoozed = DigestPrefs(snoozed_until=date(2026, 3, 12))
    assert slot(now, snoozed) is None
    assert slot(now + timedelta(days=1), snoozed) is None
    assert slot(now + timedelta(days=2), snoozed) == datetime(2026, 3, 12, 8, 0, tzinfo=UTC)
    # 08:00 chosen at 09:00: tomorrow, not at once
    changed = DigestPrefs(changed_at=datetime(2026, 3, 10, 9, 0, tzinfo=UTC))
    assert slot(now + timedelta(hours=1), changed) is None
    assert slot(now + timedelta(days=1), changed) == datetime(2026, 3, 11, 8, 0, tzinfo=UTC)


def test_a_digest_covers_the_time_since_the_last_one_at_most_a_week() -> None:
    until = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
    daily, weekly = DigestPrefs(), DigestPrefs(frequency="weekly")
    assert digest_since(until, None, daily) == until - timedelta(days=1)
    assert digest_since(until, None, weekly) == until - timedelta(days=7)
    last = until - timedelta(days=3)
    assert digest_since(until, last, daily) == last == digest_since(until, last, weekly)
    assert digest_since(until, until - timedelta(days=30), daily) == until - timedelta(days=7)
