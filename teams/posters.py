"""What the clock process posts to Teams: each user's digest in their personal chat (a
proactive message, with its controls) and the team summary in a channel.

Proactive messages go to the conversation the user last wrote to us from (kept in
chat_accounts): Teams needs the conversation id and its service URL, both from an
activity of that user (Microsoft Learn, "Send proactive messages").
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sync_engine import chat_accounts
from sync_engine.model import CrmUser
from teams.bridge import LoopThread, RouteAdapter
from teams.cards.summary import team_summary_card
from teams.front import sdk_app
from teams.identity import FRONT_END
from teams.sender import Sender
from teams.settings import TeamsSettings
from teams.work import digest_card

if TYPE_CHECKING:
    from sync_engine.digests import TeamDigest
    from sync_engine.service import Engine

log = logging.getLogger(__name__)


class TeamsDigests:
    """The scheduler's AccountPoster for Teams users."""

    def __init__(self, engine: Engine, sender: Sender) -> None:
        self.engine = engine
        self.sender = sender

    def reaches(self, user_id: int) -> tuple[bool, str | None]:
        accounts = [
            a for a in chat_accounts.of_user(self.engine, user_id, FRONT_END) if a.conversation_id
        ]
        return (bool(accounts), accounts[0].tz if accounts else None)

    def post(self, user: CrmUser, user_id: int, since: datetime, until: datetime) -> bool:
        message = digest_card(self.engine, user, since, until)
        if message is None:
            return False  # nothing happened: no message (UX 9)
        text, content = message
        sent = False
        for account in chat_accounts.of_user(self.engine, user_id, FRONT_END):
            if account.conversation_id and account.service_url:
                self.sender.send_card(account.conversation_id, account.service_url, text, content)
                sent = True
        return sent


def team_poster(engine: Engine, sender: Sender, channel_id: str):  # type: ignore[no-untyped-def]
    """The team summary to TEAMS_SUMMARY_CHANNEL, a channel of a team the app is in."""

    def post(digest: TeamDigest) -> bool:
        place = chat_accounts.find(engine, FRONT_END, "channel", channel_id)
        if place is None or not place.service_url:
            log.error(
                "team summary not sent to Teams: the app is not installed in the team of "
                "TEAMS_SUMMARY_CHANNEL %s (install it there: docs/teams.md)",
                channel_id[:80],
                extra={"event": "team_summary_refused"},
            )
            return False
        lines = [
            (line.name, line.email, dict(line.counts), bool(line.errors)) for line in digest.lines
        ]
        text, content = team_summary_card(lines, digest.since)
        sender.send_card(channel_id, place.service_url, text, content)
        return True

    return post


_OUTBOX: dict[str, Sender] = {}


def clock_sender(teams: TeamsSettings) -> Sender:
    """One SDK app and loop per clock process, for every proactive message."""
    if "sender" not in _OUTBOX:
        loop = LoopThread("crm-contacts-teams-clock")
        app = sdk_app(teams, RouteAdapter())
        loop.run(app.initialize(), 30)
        _OUTBOX["sender"] = Sender(app.api, loop)
    return _OUTBOX["sender"]


def clock_posters(engine: Engine, teams: TeamsSettings):  # type: ignore[no-untyped-def]
    """(account poster, team poster, channel) for the clock process; Nones when Teams is
    not configured."""
    if not teams.configured or teams.problem():
        return None, None, None
    sender = clock_sender(teams)
    channel = teams.teams_summary_channel
    team = team_poster(engine, sender, channel) if channel else None
    return TeamsDigests(engine, sender), team, channel
