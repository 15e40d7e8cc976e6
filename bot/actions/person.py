"""The person card: open it from a list, add the person, or remove them."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks as ui
from bot.flows import guarded, responder
from chat.words import ADDED_ONE, NEXT_SYNC, NOT_IN_LIST, REMOVED_ONE, STALE_CARD
from sync_engine.model import CrmUser
from sync_engine.service import Engine

__all__ = ["NEXT_SYNC", "register"]


def register(app: App, engine: Engine) -> None:
    def person_listener(kind: str) -> Any:
        def listener(
            ack: Ack,
            body: dict[str, Any],
            action: dict[str, Any],
            client: WebClient,
            respond: Respond,
        ) -> None:
            ack()
            slack_user_id = str((body.get("user") or {}).get("id") or "")
            reply = responder(respond, client, slack_user_id, body)
            value = str(action.get("value") or "")

            def work(user: CrmUser) -> None:
                if not value.isdigit():
                    reply(text=STALE_CARD, blocks=ui.problem_blocks(STALE_CARD))
                    return
                person_id = int(value)
                note = ""
                if kind == "add":
                    result = engine.add(user, [person_id])
                    note = ADDED_ONE if result.added else ""
                elif kind == "remove":
                    removed = engine.remove(user, [person_id]).removed
                    note = REMOVED_ONE if removed else NOT_IN_LIST
                person = engine.person(user, person_id)
                reply(
                    text=ui.fallback(person.name or "CRM person"),
                    blocks=ui.person_card(person, note),
                    replace_original=True,
                )

            guarded(client, engine, slack_user_id, reply, work)

        return listener

    app.action(ui.ACTION_PERSON_OPEN)(person_listener("open"))
    app.action(ui.ACTION_PERSON_ADD)(person_listener("add"))
    app.action(ui.ACTION_PERSON_REMOVE)(person_listener("remove"))
