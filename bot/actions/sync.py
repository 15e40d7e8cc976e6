"""*Sync now*, from a result message, the status card or App Home."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks as ui
from bot.flows import guarded, responder, sync_and_report
from chat.words import SYNCING
from sync_engine.model import CrmUser
from sync_engine.service import Engine

__all__ = ["SYNCING", "register"]


def register(app: App, engine: Engine) -> None:
    @app.action(ui.ACTION_SYNC_NOW)
    def sync_now(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        slack_user_id = str((body.get("user") or {}).get("id") or "")
        reply = responder(respond, client, slack_user_id, body)

        def work(user: CrmUser) -> None:
            if body.get("response_url"):
                reply(text=SYNCING)
                sync_and_report(client, engine, user, slack_user_id, reply)
            else:  # App Home: no place for a private note, the DM says it all
                sync_and_report(client, engine, user, slack_user_id)

        guarded(client, engine, slack_user_id, reply, work, slow=True)
