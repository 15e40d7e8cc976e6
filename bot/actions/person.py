"""The person card: open it from a list, add the person, or remove them."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks as ui
from bot.flows import guarded, responder
from sync_engine.model import CrmUser
from sync_engine.service import Engine

NEXT_SYNC = "It reaches your mailbox at the next sync, within a few minutes."


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
                    message = "That card is out of date. Look the person up again."
                    reply(text=message, blocks=ui.problem_blocks(message))
                    return
                person_id = int(value)
                note = ""
                if kind == "add":
                    result = engine.add(user, [person_id])
                    note = "Added to My CRM Contacts. " + NEXT_SYNC if result.added else ""
                elif kind == "remove":
                    if engine.remove(user, [person_id]).removed:
                        note = (
                            "Removed from My CRM Contacts. The contact stays in Outlook and "
                            "loses the CRM Contact category at the next sync."
                        )
                    else:
                        note = "Not in My CRM Contacts, so there was nothing to remove."
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
