"""The checkbox picker: ticks, Select/Deselect all, paging, Add and Remove selected.

The picker's state (query, page, selected ids) arrives with each click inside the
message itself (button value, or the checkboxes' block_id for a tick), so any web
process can serve the next click (SLACK_UX 5). Results replace the message through
response_url (SLACK_UX 7).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks as ui
from bot.flows import guarded, picker_message, responder, ticks_from_state
from chat.words import STALE_PICKER, TICK_FIRST
from sync_engine.model import CrmUser
from sync_engine.service import Engine

log = logging.getLogger(__name__)

STALE = STALE_PICKER


def register(app: App, engine: Engine) -> None:
    def handle(body: dict[str, Any], client: WebClient, respond: Respond, work: Any) -> None:
        slack_user_id = str((body.get("user") or {}).get("id") or "")
        reply = responder(respond, client, slack_user_id, body)
        guarded(client, engine, slack_user_id, reply, lambda user: work(user, reply))

    def replace(reply: Any, text: str, blocks: list[ui.Block]) -> None:
        reply(text=ui.fallback(text), blocks=blocks, replace_original=True)

    def state_of(action: dict[str, Any]) -> ui.PickerState | None:
        try:
            return ui.PickerState.from_value(str(action.get("value") or ""))
        except ValueError:
            return None

    @app.action(ui.ACTION_TICK)
    def tick(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        """Refresh the running count and main button after a tick."""
        ack()
        state = ui.PickerState.from_block_id(str(action.get("block_id") or ""))
        if state is None:
            return  # too long to carry in a block_id; the next button click catches up
        ticked = [
            int(o["value"])
            for o in action.get("selected_options") or []
            if str(o.get("value", "")).isdigit()
        ]

        def work(user: CrmUser, reply: Any) -> None:
            replace(reply, "Picking people", picker_message(engine, user, state, ticked=ticked))

        handle(body, client, respond, work)

    def button(select_page: bool = False, clear: bool = False, step: int = 0) -> Any:
        def listener(
            ack: Ack,
            body: dict[str, Any],
            action: dict[str, Any],
            client: WebClient,
            respond: Respond,
        ) -> None:
            ack()
            state = state_of(action)

            def work(user: CrmUser, reply: Any) -> None:
                if state is None:
                    reply(text=STALE, blocks=ui.problem_blocks(STALE))
                    return
                current = _with_ticks(state, body)
                if clear:
                    current = ui.PickerState(
                        current.mode, current.query, current.offset, (), current.page
                    )
                if step:
                    current = current.at(current.offset + step * ui.PAGE_SIZE)
                blocks = picker_message(engine, user, current, select_page=select_page)
                replace(reply, "Picking people", blocks)

            handle(body, client, respond, work)

        return listener

    app.action(ui.ACTION_ALL)(button(select_page=True))
    app.action(ui.ACTION_NONE)(button(clear=True))
    app.action(ui.ACTION_NEXT)(button(step=1))
    app.action(ui.ACTION_PREV)(button(step=-1))

    def on_selected(apply: Callable[[CrmUser, list[int], Any], None]) -> Callable[..., None]:
        """A main-button listener: run `apply` on the ticked people of every page."""

        def listener(
            ack: Ack,
            body: dict[str, Any],
            action: dict[str, Any],
            client: WebClient,
            respond: Respond,
        ) -> None:
            ack()
            state = state_of(action)

            def work(user: CrmUser, reply: Any) -> None:
                if state is None:
                    reply(text=STALE, blocks=ui.problem_blocks(STALE))
                    return
                chosen = _with_ticks(state, body).selected
                if not chosen:
                    reply(text=TICK_FIRST, blocks=ui.problem_blocks(TICK_FIRST))
                    return
                apply(user, list(chosen), reply)

            handle(body, client, respond, work)

        return listener

    def add_selected(user: CrmUser, chosen: list[int], reply: Any) -> None:
        result = engine.add(user, chosen)
        text = f"Added {len(result.added)} to My CRM Contacts"
        replace(reply, text, ui.added_blocks(result.added, result.already))

    def remove_selected(user: CrmUser, chosen: list[int], reply: Any) -> None:
        result = engine.remove(user, chosen)
        text = f"Removed {len(result.removed)} from My CRM Contacts"
        replace(reply, text, ui.removed_blocks(result.removed, result.not_in_list))

    app.action(ui.ACTION_ADD)(on_selected(add_selected))
    app.action(ui.ACTION_REMOVE)(on_selected(remove_selected))


def _with_ticks(state: ui.PickerState, body: dict[str, Any]) -> ui.PickerState:
    """The state as the user sees it: the stored selection plus this page's ticks."""
    ticked = ticks_from_state(body)
    if ticked is None:
        return state
    return state.merged(state.page, ticked)
