"""Events about people: Slack says a member changed (`user_change`).

Why: a Slack user's email, membership and guest status are cached for an hour
(Engine.SLACK_PROFILE_TTL); when Slack tells us sooner that someone changed (made a
guest, deactivated, another email), their next request asks Slack again and a guest or
a former member is refused at once. No business logic here: one engine call.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App

from sync_engine.service import Engine

log = logging.getLogger(__name__)


def register(app: App, engine: Engine) -> None:
    @app.event("user_change")
    def user_changed(event: dict[str, Any]) -> None:
        slack_user_id = str((event.get("user") or {}).get("id") or "")
        if slack_user_id and engine.recheck_slack_user(slack_user_id):
            log.info(
                "Slack user %s changed: checked again at their next request",
                slack_user_id,
                extra={"event": "slack_user_changed"},
            )
