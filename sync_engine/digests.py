"""The clock's second job: each user's digest on their own settings, and the team summary.

Kept apart from the sync cycles (`schedule.py`) because it is a different piece of work:
it reads what the syncs recorded and posts it through the chat front ends (Slack, Teams),
claiming each period in the state database so several clock processes send it once. The
`Scheduler` mixes `DigestJobs` in; when a digest is due is decided by `due.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sync_engine import queue
from sync_engine.config import ConfigError
from sync_engine.crm.source import CrmError
from sync_engine.due import Clock, Policy, digest_since, digest_slot, summary_slot
from sync_engine.mailbox.base import MailboxError
from sync_engine.model import CrmUser
from sync_engine.queue import MailboxRow
from sync_engine.store import StoreError

# The clock process's one logger: its cycle and digest lines filter as one.
log = logging.getLogger("crm_contacts.schedule")

# (CRM user, Slack user id, since, until) -> True if a DM was posted.
SummaryPoster = Callable[[CrmUser, str, datetime, datetime], bool]


class AccountPoster(Protocol):
    """Digests to the users of another chat front end (Teams), by the state user id."""

    def reaches(self, user_id: int) -> tuple[bool, str | None]:
        """Whether the user has an account there, and its time zone (IANA) if known."""
        ...

    def post(self, user: CrmUser, user_id: int, since: datetime, until: datetime) -> bool:
        """Post the digest; True if a message went out."""
        ...


TEAM_MARK = "team_summary"
# What the clock's jobs expect to meet (the CRM, a mailbox, the state database or the
# settings failing): one log line each, not a traceback; the next tick tries again.
KNOWN_ERRORS = (MailboxError, CrmError, StoreError, ConfigError)


@dataclass
class TeamLine:
    email: str
    name: str
    counts: dict[str, int]
    errors: list[str]


@dataclass
class TeamDigest:
    since: datetime
    until: datetime
    lines: list[TeamLine]


TeamPoster = Callable[[TeamDigest], bool]


class SummaryChannelRefused(Exception):
    """The chat service will not post in SUMMARY_CHANNEL (the bot is not in it, or cannot
    see it): retrying cannot help until someone fixes the channel or the setting."""

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"{channel}: {reason}")
        self.channel = channel
        self.reason = reason


class DigestJobs:
    """The digest half of the `Scheduler` (mixed into it): `run_summaries` is its job."""

    # Set by the Scheduler's constructor.
    engine: Any
    settings: Any
    now: Clock
    policy: Policy
    summary_poster: SummaryPoster | None
    team_poster: TeamPoster | None
    account_poster: AccountPoster | None
    store: Any
    crm: Any
    _other_channel: str | None
    _refused_channel: str | None

    @property
    def team_channel(self) -> str | None:
        """Where the team summary goes: SUMMARY_CHANNEL (as the settings are now), or
        another front end's channel."""
        return self.settings.summary_channel or self._other_channel

    def run_summaries(self) -> int:
        """Post every digest that is due now (each user's own settings); how many DMs went out."""
        sent = 0
        try:
            if self.summary_poster is not None or self.account_poster is not None:
                sent = self._user_summaries()
            if self.team_poster is not None and self.team_channel:
                self._team_summary()
        except KNOWN_ERRORS as exc:
            log.error("summaries failed", extra={"event": "summaries_failed", "error": str(exc)})
        except Exception:
            log.exception("summaries failed", extra={"event": "summaries_failed"})
        return sent

    def _user_summaries(self) -> int:
        now = self.now()
        sent = 0
        for row in queue.mailboxes(self.store):
            slack_id = row.user.slack_user_id if self.summary_poster is not None else None
            elsewhere, tz = (
                self.account_poster.reaches(row.user.id) if self.account_poster else (False, None)
            )
            if not slack_id and not elsewhere:
                continue
            until = digest_slot(
                now,
                row.user.slack_tz or tz,
                row.digest,
                self.settings.summary_time,
                self.policy.summary_grace,
                row.summary_until,
            )
            if until is None:
                continue  # not its time or day, snoozed, off, or already sent
            since = digest_since(until, row.summary_until, row.digest)
            if not queue.claim_summary(self.store, row.user.id, row.summary_until, until):
                continue  # another scheduler process took it
            user = self.crm.user_by_id(row.user.crm_user_id)
            if user is None or user.inactive:
                continue
            posted, failed = self._post_digest(user, row, slack_id, elsewhere, since, until)
            if failed is not None:
                # Nothing went out: the period is given back and tried at the next tick.
                # One front end has it: kept, so that one is not sent it again each tick.
                if not posted:
                    queue.release_summary(self.store, row.user.id, row.summary_until, until)
                said = "retrying at the next tick" if not posted else "another chat has it"
                log.warning(
                    f"digest not sent; {said}",
                    extra={
                        "event": "summary_failed",
                        "mailbox": row.user.mailbox,
                        "error": f"{type(failed).__name__}: {failed}"[:300],
                    },
                )
                if not posted:
                    continue
            sent += int(bool(posted))
            log.info(
                "digest sent" if posted else "digest: nothing to say",
                extra={
                    "event": "summary",
                    "mailbox": row.user.mailbox,
                    "posted": bool(posted),
                    "frequency": row.digest.frequency,
                },
            )
        return sent

    def _post_digest(
        self,
        user: CrmUser,
        row: MailboxRow,
        slack_id: str | None,
        elsewhere: bool,
        since: datetime,
        until: datetime,
    ) -> tuple[bool, Exception | None]:
        """Post the digest on each front end the user has, each on its own (one refusing
        does not stop the other); whether any posted, and the last failure."""
        posted, failed = False, None
        if slack_id and self.summary_poster is not None:
            try:
                posted = self.summary_poster(user, slack_id, since, until)
            except Exception as exc:
                failed = exc
        if elsewhere and self.account_poster is not None:
            try:
                posted = self.account_poster.post(user, row.user.id, since, until) or posted
            except Exception as exc:
                failed = exc
        return posted, failed

    def _team_summary(self) -> bool:
        assert self.team_poster is not None
        if self._refused_channel is not None and self._refused_channel == self.team_channel:
            return False  # said once; nothing changes until the setting does
        now = self.now()
        until = summary_slot(now, "UTC", self.settings.summary_time, self.policy.summary_grace)
        previous = queue.mark(self.store, TEAM_MARK)
        if until is None or (previous is not None and previous >= until):
            return False
        if not queue.claim_mark(self.store, TEAM_MARK, previous, until):
            return False
        since = max(previous or until - timedelta(days=1), until - timedelta(days=7))
        digest = self.team_digest(since, until)
        if not digest.lines:
            log.info("team summary: nothing to say", extra={"event": "team_summary"})
            return False
        try:
            posted = self.team_poster(digest)
        except SummaryChannelRefused as exc:
            # give the period back, so it goes out once the channel is fixed
            queue.claim_mark(self.store, TEAM_MARK, until, previous or until - timedelta(days=1))
            self._refused_channel = self.team_channel
            log.error(
                "team summary not sent: Slack refused SUMMARY_CHANNEL %s (%s); invite the "
                "bot to that channel or give the app chat:write.public, then restart the "
                "clock process. No retry until SUMMARY_CHANNEL changes.",
                exc.channel,
                exc.reason,
                extra={"event": "team_summary_refused", "error": exc.reason},
            )
            return False
        except Exception as exc:
            queue.claim_mark(self.store, TEAM_MARK, until, previous or until - timedelta(days=1))
            log.warning(
                "team summary not sent; retrying at the next tick",
                extra={"event": "team_summary_failed", "error": f"{type(exc).__name__}"},
            )
            return False
        log.info("team summary", extra={"event": "team_summary", "people": len(digest.lines)})
        return bool(posted)

    def team_digest(self, since: datetime, until: datetime) -> TeamDigest:
        """Per salesperson: what the syncs did in the period, and what failed."""
        lines = []
        for row in queue.mailboxes(self.store):
            user = self.crm.user_by_id(row.user.crm_user_id)
            if user is None:
                continue
            activity = self.engine.activity(user, since, until)
            if activity.empty:
                continue
            counts: dict[str, int] = {}
            for outcome in activity.outcomes:
                counts[outcome.action] = counts.get(outcome.action, 0) + 1
            lines.append(TeamLine(user.email, user.name, counts, list(activity.errors)))
        return TeamDigest(since=since, until=until, lines=lines)
