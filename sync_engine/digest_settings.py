"""The digest's settings (SLACK_UX 9): the Engine's two use cases for them, and the
checks of a time, a day and a snooze length as a user types them.

Kept apart from `service.py` because it is one concern every way in shares (the Slack
modal, Teams cards, the CLI): each bad value is one BadDigestSetting line, and
`set_digest_prefs` checks everything before it writes anything. The `Engine` mixes
`DigestSettings` in.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sync_engine import chat_accounts
from sync_engine.due import zone
from sync_engine.errors import EngineError
from sync_engine.model import FREQUENCIES, WEEKDAYS, CrmUser, DigestPrefs
from sync_engine.store import Store, utcnow


class BadDigestSetting(EngineError):
    """A digest setting that cannot be used (a time that is not HH:MM, an unknown day)."""


# A snooze longer than this is "off" in disguise; say so instead.
MAX_SNOOZE_DAYS = 90


class DigestSettings:
    """The digest half of the `Engine`'s use cases (mixed into it)."""

    # Set by the Engine's constructor and methods.
    settings: Any
    store: Store
    _stored: Any  # (CrmUser) -> StoredUser

    def digest_prefs(self, user: CrmUser, *, now: datetime | None = None) -> DigestPrefs:
        """The user's digest settings as they apply: their time or SUMMARY_TIME, their
        zone, and a snooze only while it lasts (in their local date)."""
        stored = self._stored(user)
        prefs = self.store.digest_prefs(stored.id)
        tz = stored.slack_tz or chat_accounts.time_zone(self, stored.id)
        today = (now or utcnow()).astimezone(zone(tz)).date()
        snoozed = (
            prefs.snoozed_until if prefs.snoozed_until and prefs.snoozed_until > today else None
        )
        return replace(
            prefs, time=prefs.time or self.settings.summary_time, tz=tz, snoozed_until=snoozed
        )

    def set_digest_prefs(
        self,
        user: CrmUser,
        *,
        time: str | None = None,
        default_time: bool = False,
        frequency: str | None = None,
        weekday: int | str | None = None,
        snooze_days: int | str | None = None,
        off: bool | None = None,
        now: datetime | None = None,
    ) -> DigestPrefs:
        """Change some of the user's digest settings; the rest stay. Returns them all.

        Everything is checked before anything is written, so a bad value changes nothing
        (BadDigestSetting, one line). `snooze_days` counts from the user's local today
        (0 resumes at once); `default_time` goes back to SUMMARY_TIME; `now` is the
        caller's clock (tests)."""
        values: dict[str, object] = {}
        if time is not None and default_time:
            raise BadDigestSetting("give a time or go back to the default time, not both")
        if time is not None:
            values["time"] = parse_time(time)
        elif default_time:
            values["time"] = None
        if frequency is not None:
            wanted = str(frequency).strip().lower()
            if wanted not in FREQUENCIES:
                raise BadDigestSetting(
                    f"'{frequency}' is not a digest frequency; choose daily or weekly"
                )
            values["frequency"] = wanted
        if weekday is not None:
            values["weekday"] = parse_weekday(weekday)
        stored = self._stored(user)
        moment = now or utcnow()
        if snooze_days is not None:
            days = parse_days(snooze_days)
            tz = stored.slack_tz or chat_accounts.time_zone(self, stored.id)
            today = moment.astimezone(zone(tz)).date()
            values["snoozed_until"] = today + timedelta(days=days) if days else None
        if off is not None:
            values["off"] = bool(off)
        if values:
            self.store.set_digest_prefs(stored.id, moment, **values)
        return self.digest_prefs(user, now=moment)


def parse_time(text: str) -> str:
    """'8:30' or '08:30' (24-hour clock) as 'HH:MM'; BadDigestSetting otherwise."""
    raw = str(text).strip()
    hour, sep, minute = raw.partition(":")
    if not (
        sep
        and hour.isdigit()
        and minute.isdigit()
        and len(hour) <= 2
        and len(minute) == 2
        and int(hour) < 24
        and int(minute) < 60
    ):
        raise BadDigestSetting(
            f"'{raw[:40]}' is not a time of day; give HH:MM on the 24-hour clock, e.g. 17:30"
        )
    return f"{int(hour):02d}:{int(minute):02d}"


def parse_weekday(value: int | str) -> int:
    """0-6 (Monday first) or a day's name or its first three letters; BadDigestSetting."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < 7:
            return value
    else:
        word = str(value).strip().lower()
        for number, name in enumerate(WEEKDAYS):
            if len(word) >= 3 and name.lower().startswith(word):
                return number
    raise BadDigestSetting(
        f"'{str(value)[:40]}' is not a day of the week; give e.g. monday, tue or friday"
    )


def parse_days(value: int | str) -> int:
    """A snooze length: 0 (resume) to MAX_SNOOZE_DAYS days; BadDigestSetting otherwise."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) > MAX_SNOOZE_DAYS:
        raise BadDigestSetting(
            f"'{text[:40]}' is not a snooze length; give 1 to {MAX_SNOOZE_DAYS} days "
            "(0 resumes), or turn the digest off"
        )
    return int(text)
