"""Turning a standing rule on or off: from add-group's confirmation, the
`/crm-contacts rules` card, or App Home (which is drawn again instead of replied to)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks as ui
from bot.flows import guarded, responder
from bot.views.home import publish_home
from sync_engine.model import CrmUser
from sync_engine.service import Engine


def _kind(body: dict[str, Any]) -> str:
    """The rule kind the button carries; the engine says if it is not one."""
    return str(((body.get("actions") or [{}])[0] or {}).get("value") or "")


def register(app: App, engine: Engine) -> None:
    @app.action(ui.ACTION_RULE_ON)
    def rule_on(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        """Slow (the first evaluation can bring hundreds): the work runs after the ack."""
        ack()
        slack_user_id = str((body.get("user") or {}).get("id") or "")
        reply = responder(respond, client, slack_user_id, body)

        def work(user: CrmUser) -> None:
            added = engine.rules.add(user, _kind(body))  # safe to repeat (UX 1)
            if body.get("view"):
                publish_home(client, engine, slack_user_id)
            reply(
                text=f"Rule on: {added.kind}",
                blocks=ui.rule_added_blocks(added),
                replace_original=True,
            )

        guarded(client, engine, slack_user_id, reply, work, slow=True)

    @app.action(ui.ACTION_RULE_OFF)
    def rule_off(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        slack_user_id = str((body.get("user") or {}).get("id") or "")
        reply = responder(respond, client, slack_user_id, body)

        def work(user: CrmUser) -> None:
            removed = engine.rules.remove(user, _kind(body))
            if body.get("view"):  # App Home: drawn again without the rule
                publish_home(client, engine, slack_user_id)
                return
            reply(
                text=f"Rule off: {removed.kind}",
                blocks=ui.rules_card(engine.rules.of(user)) + ui.rule_removed_blocks(removed),
                replace_original=True,
            )

        guarded(client, engine, slack_user_id, reply, work, slow=True)
