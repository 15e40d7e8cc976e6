"""Admin alerts in Slack: the `AlertSender` that posts to ADMIN_CHANNEL.

The message is built from the notice's plain lines; every value in it (mailbox
addresses, server errors) is escaped for mrkdwn, so an error text cannot ping a channel.
A channel Slack refuses (the bot not in it, archived) is said once in the log with the
fix; the announcer retries the message next cycle, so it goes out once that is fixed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.blocks.common import fit, fit_escaped, section

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from sync_engine.ops.alerts import Notice

log = logging.getLogger("crm_contacts.alerts")

# chat.postMessage's answers that only a person can fix (Slack's chat.postMessage errors):
# the bot is not in the public channel (and has no chat:write.public), cannot see the
# private one, or the channel is archived.
CHANNEL_REFUSALS = ("not_in_channel", "channel_not_found", "is_archived")


class SlackAlerts:
    """Posts each notice as one message in the admin channel."""

    name = "slack"

    def __init__(self, client: WebClient, channel: str) -> None:
        self.client = client
        self.channel = channel
        self._said_refusal = False

    def send(self, notice: Notice) -> None:
        from slack_sdk.errors import SlackApiError

        lines = notice.lines()
        mark = ":rotating_light:" if notice.started else ":white_check_mark:"
        head = f"{mark} *{fit_escaped(lines[0], 400)}*"
        body = "\n".join(fit_escaped(line, 900) for line in lines[1:])
        blocks = [section(head)] + ([section(body)] if body else [])
        try:
            self.client.chat_postMessage(
                channel=self.channel, text=fit(lines[0], 300), blocks=blocks, unfurl_links=False
            )
        except SlackApiError as exc:
            reason = str(exc.response.get("error") or "")
            if reason in CHANNEL_REFUSALS and not self._said_refusal:
                self._said_refusal = True
                log.error(
                    "admin alerts not sent: Slack refused ADMIN_CHANNEL %s (%s); invite the "
                    "bot to that channel (/invite @CRM Contacts) or give the app "
                    "chat:write.public. Alerts are kept and sent once it can post.",
                    self.channel,
                    reason,
                    extra={"event": "alert_channel_refused", "error": reason},
                )
            raise
