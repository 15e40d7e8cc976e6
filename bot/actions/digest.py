"""The digest's own controls (SLACK_UX 9): the overflow menu on the digest DM and on the
`/crm-contacts digest` card. Each click changes one setting and redraws the message."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks as ui
from bot.flows import DIGEST_CHOICES, guarded, open_digest_time, responder, show_digest
from sync_engine.model import CrmUser
from sync_engine.service import Engine

STALE = f"That menu is out of date. `{ui.COMMAND} digest` shows your digest settings."


def register(app: App, engine: Engine) -> None:
    @app.action(ui.ACTION_DIGEST_MENU)
    def digest_menu(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        ack()
        choice = str((action.get("selected_option") or {}).get("value") or "")
        place = str(action.get("block_id") or "")
        slack_user_id = str((body.get("user") or {}).get("id") or "")
        reply = responder(respond, client, slack_user_id, body)

        def work(user: CrmUser) -> None:
            if choice == "time":  # a trigger_id lives 3 seconds: open the modal right away
                trigger = str(body.get("trigger_id") or "")
                url = str(body.get("response_url") or "")
                open_digest_time(client, engine, user, trigger, place, url)
            elif choice in DIGEST_CHOICES:
                prefs = engine.set_digest_prefs(user, **DIGEST_CHOICES[choice])
                show_digest(engine, user, place, reply, ui.digest_note(choice, prefs))
            else:
                reply(text=STALE, blocks=ui.problem_blocks(STALE))

        guarded(client, engine, slack_user_id, reply, work, prompt=choice == "time")
