"""Add-group, after the user confirmed the count in Slack's confirm dialog."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks as ui
from bot.flows import guarded, responder
from chat.words import GROUP_ADDING
from sync_engine.model import CrmUser
from sync_engine.service import Engine


def register(app: App, engine: Engine) -> None:
    @app.action(ui.ACTION_GROUP_ADD)
    def add_group(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        """Slow (it can be hundreds): ack, say so in place, then replace with the result."""
        ack()
        slack_user_id = str((body.get("user") or {}).get("id") or "")
        reply = responder(respond, client, slack_user_id, body)

        def work(user: CrmUser) -> None:
            reply(
                text="Adding your group…",
                blocks=[ui.section(GROUP_ADDING)],
                replace_original=True,
            )
            # Idempotent: a second click adds nobody twice (SLACK_UX 1).
            result = engine.add_group(user)
            reply(
                text=f"Added {len(result.added)} to My CRM Contacts",
                blocks=ui.added_blocks(result.added, result.already),
                replace_original=True,
            )

        guarded(client, engine, slack_user_id, reply, work, slow=True)
