"""A loopback stand-in for Slack: the Web API the bot calls, and Slack's side of requests.

Why: the bot must be tested over the real wire (slack_sdk's HTTP client, Bolt's signature
check, response_url webhooks), not against mocks of our own code.

- `SlackStandIn` answers `POST /api/<method>` like slack.com/api (auth.test, users.info,
  conversations.open, chat.postMessage, chat.postEphemeral, chat.update, views.open,
  views.update, views.publish) and `POST /respond/<name>` like a response_url. It records
  every call, answers 429 with Retry-After on demand, and checks every message and view it
  receives against Slack's Block Kit limits, independently of the bot's own code
  (`violations`). It holds to the limits Slack enforces beyond Block Kit's own: a message's
  total text (`msg_blocks_too_long`), a trigger_id's 3 seconds, a response_url's 5 uses in
  30 minutes, and posting only where the bot may (`not_in_channel`, `channel_not_found`).
- `SlackSender` plays Slack towards the bot: signed slash commands (their text HTML-escaped
  as Slack sends it) and block_actions (X-Slack-Signature v0), with the checkbox state a
  Slack client would send.

Modules: `rules` (Slack's limits and what it does to text, each with its source),
`web_api` (the stand-in's HTTP end, `SlackStandIn`), `socket_mode` (the WebSocket end of
Socket Mode), `sender` (Slack's side: signed requests to the bot, and helpers that read
what the bot sent).
"""

from __future__ import annotations

from .rules import (
    APP_TOKEN,
    BOT_TOKEN,
    DEFAULT_SCOPES,
    LIMITS,
    MESSAGE_TEXT_LIMIT,
    RESPONSE_URL_SECONDS,
    RESPONSE_URL_USES,
    SIGNING_SECRET,
    TEAM_ID,
    TRIGGER_SECONDS,
    block_kit_problems,
    message_text_length,
    slack_escape,
)
from .sender import (
    Reply,
    SlackSender,
    all_text,
    checkbox_options,
    find_element,
    has_element,
    sign,
)
from .socket_mode import SocketModeLink
from .web_api import Call, SlackStandIn

__all__ = [
    "APP_TOKEN",
    "BOT_TOKEN",
    "DEFAULT_SCOPES",
    "LIMITS",
    "MESSAGE_TEXT_LIMIT",
    "RESPONSE_URL_SECONDS",
    "RESPONSE_URL_USES",
    "SIGNING_SECRET",
    "TEAM_ID",
    "TRIGGER_SECONDS",
    "Call",
    "Reply",
    "SlackSender",
    "SlackStandIn",
    "SocketModeLink",
    "all_text",
    "block_kit_problems",
    "checkbox_options",
    "find_element",
    "has_element",
    "message_text_length",
    "sign",
    "slack_escape",
]
