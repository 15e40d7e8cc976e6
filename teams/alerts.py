"""Admin alerts in Teams: the `AlertSender` that posts to TEAMS_ADMIN_CHANNEL.

The notice's plain lines go into TextRuns (never read as markdown), so an error text
cannot format or link anything. A channel of a team the app is not installed in cannot
be posted to: said once in the log with the fix, and the send fails, so the announcer
keeps the alert and tries again next cycle (as with Slack's ADMIN_CHANNEL)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sync_engine import chat_accounts
from teams.cards.common import card, fit, line, run
from teams.identity import FRONT_END
from teams.sender import Sender

if TYPE_CHECKING:
    from sync_engine.ops.alerts import Notice
    from sync_engine.service import Engine

log = logging.getLogger("crm_contacts.alerts")


class TeamsAlerts:
    """Posts each notice as one card in the admin channel."""

    name = "teams"

    def __init__(self, engine: Engine, sender: Sender, channel_id: str) -> None:
        self.engine = engine
        self.sender = sender
        self.channel_id = channel_id
        self._said_missing = False

    def send(self, notice: Notice) -> None:
        place = chat_accounts.find(self.engine, FRONT_END, "channel", self.channel_id)
        if place is None or not place.service_url:
            if not self._said_missing:
                self._said_missing = True
                log.error(
                    "admin alerts not sent to Teams: the app is not installed in the team of "
                    "TEAMS_ADMIN_CHANNEL %s; add the app to that team (docs/teams.md). "
                    "Alerts are kept and sent once it can post.",
                    self.channel_id[:80],
                    extra={"event": "alerts_refused"},
                )
            raise RuntimeError("the Teams app is not installed in TEAMS_ADMIN_CHANNEL's team")
        lines = notice.lines()
        mark = "🚨 " if notice.started else "✅ "
        body = [line(run(mark), run(fit(lines[0], 400), bold=True))]
        body += [line(run(fit(text, 900)), spacing="Small") for text in lines[1:]]
        self.sender.send_card(self.channel_id, place.service_url, fit(lines[0], 300), card(body))
