"""App Home (the dashboard, SLACK_UX 10) and the search modal it opens.

Home has no response_url, so everything it starts answers in the user's DM.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import blocks as ui
from bot.flows import guarded, picker_message
from bot.identity import NotMapped, crm_user_for
from bot.summary import post_dm
from bot.typed import straight_quotes
from bot.work import PROMPT, REQUESTS
from sync_engine.model import CrmUser
from sync_engine.service import Engine, EngineError

log = logging.getLogger(__name__)


def publish_home(client: WebClient, engine: Engine, slack_user_id: str) -> None:
    """Draw the user's App Home afresh (when opened, and after a change made from it)."""
    try:
        user = crm_user_for(client, engine, slack_user_id)
        st = engine.status(user)
        failed = [p for p in engine.my_list(user) if p.status.startswith("failed")]
        view = ui.home_view(ui.status_blocks(st), failed, engine.rules.of(user))
    except (NotMapped, EngineError) as exc:
        view = ui.home_problem_view(str(exc))
    client.views_publish(user_id=slack_user_id, view=view)


def register(app: App, engine: Engine) -> None:
    def dm(client: WebClient, slack_user_id: str) -> Any:
        def reply(**message: Any) -> None:
            post_dm(client, slack_user_id, message.get("text", ""), message.get("blocks", []))

        return reply

    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab") not in (None, "home"):
            return
        slack_user_id = str(event.get("user") or "")

        def publish() -> None:
            publish_home(client, engine, slack_user_id)

        if REQUESTS.submit(publish) is None:
            log.warning("App Home not drawn: the request queue is full")

    @app.action(ui.ACTION_HOME_SEARCH)
    def open_search(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        trigger = str(body.get("trigger_id") or "")
        # a trigger_id lives 3 seconds: the modal opens from the prompt pool, not the queue
        PROMPT.submit(lambda: client.views_open(trigger_id=trigger, view=ui.search_modal()))

    @app.view(ui.SEARCH_MODAL)
    def search_submitted(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        values = ((body.get("view") or {}).get("state") or {}).get("values") or {}
        typed = ((values.get(ui.SEARCH_INPUT_BLOCK) or {}).get(ui.SEARCH_INPUT_ACTION) or {}).get(
            "value"
        )
        query = straight_quotes(str(typed or "").strip())
        if not query:
            ack(
                response_action="errors",
                errors={ui.SEARCH_INPUT_BLOCK: "Type a name, email or company."},
            )
            return
        ack()
        slack_user_id = str((body.get("user") or {}).get("id") or "")
        reply = dm(client, slack_user_id)

        def work(user: CrmUser) -> None:
            blocks = picker_message(engine, user, ui.PickerState("add", query))
            reply(text=ui.fallback(f"CRM people matching {query}"), blocks=blocks)

        guarded(client, engine, slack_user_id, reply, work)

    @app.action(ui.ACTION_HOME_LIST)
    def my_list(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        slack_user_id = str((body.get("user") or {}).get("id") or "")
        reply = dm(client, slack_user_id)

        def work(user: CrmUser) -> None:
            blocks = picker_message(engine, user, ui.PickerState("remove", ""))
            reply(text="My CRM Contacts", blocks=blocks)

        guarded(client, engine, slack_user_id, reply, work)
