"""The digest's own controls (SLACK_UX 9): the overflow menu on the digest DM and on the
`/crm-contacts digest` card. Each click changes one setting and redraws the message."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks as ui
from bot.flows import (
    DIGEST_CHOICES,
    fill_digest_time,
    guarded,
    open_loading,
    responder,
    show_digest,
)
from bot.work import PROMPT
from sync_engine.model import CrmUser
from sync_engine.service import Engine

log = logging.getLogger(__name__)

STALE = f"That menu is out of date. `{ui.COMMAND} digest` shows your digest settings."


def in_modal(client: WebClient, view: dict[str, Any]) -> Any:
    """A reply that shows a problem in the opened "Loading…" modal instead of leaving it."""

    def reply(**message: Any) -> Any:
        problem = {
            **ui.loading_modal("Digest time", ui.DIGEST_MODAL),
            "blocks": message.get("blocks") or ui.problem_blocks(message.get("text", "")),
        }
        return client.views_update(view_id=view["id"], view=problem)

    return reply


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

        if choice == "time":
            # A trigger_id lives 3 seconds: from the prompt pool (no backlog holds it up),
            # the modal opens first, before any look-up, and is filled afterwards.
            trigger = str(body.get("trigger_id") or "")
            url = str(body.get("response_url") or "")

            def open_then_fill() -> None:
                view = open_loading(client, trigger, "Digest time", ui.DIGEST_MODAL)
                if view is None:
                    return
                guarded(
                    client,
                    engine,
                    slack_user_id,
                    in_modal(client, view),  # a problem shows where the user looks
                    lambda user: fill_digest_time(client, engine, user, view, place, url),
                )

            if PROMPT.submit(open_then_fill) is None:
                log.warning("Change time… not opened: the prompt queue is full")
            return

        def work(user: CrmUser) -> None:
            if choice in DIGEST_CHOICES:
                prefs = engine.set_digest_prefs(user, **DIGEST_CHOICES[choice])
                show_digest(engine, user, place, reply, ui.digest_note(choice, prefs))
            else:
                reply(text=STALE, blocks=ui.problem_blocks(STALE))

        guarded(client, engine, slack_user_id, reply, work)
