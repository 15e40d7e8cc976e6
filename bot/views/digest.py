"""The digest's time modal: the submission saves the time (and day) and redraws the
message the modal was opened from, through that click's response_url."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient

from bot import blocks as ui
from bot.flows import guarded, responder, show_digest
from sync_engine.model import CrmUser
from sync_engine.service import Engine


def register(app: App, engine: Engine) -> None:
    @app.view(ui.DIGEST_MODAL)
    def digest_time_saved(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        view = body.get("view") or {}
        values = (view.get("state") or {}).get("values") or {}
        picked = (values.get(ui.DIGEST_TIME_BLOCK) or {}).get(ui.DIGEST_TIME_ACTION) or {}
        chosen = (values.get(ui.DIGEST_DAY_BLOCK) or {}).get(ui.DIGEST_DAY_ACTION) or {}
        time = str(picked.get("selected_time") or "")
        day = str((chosen.get("selected_option") or {}).get("value") or "")
        if not time:
            ack(response_action="errors", errors={ui.DIGEST_TIME_BLOCK: "Pick a time."})
            return
        ack()
        place, url = _metadata(str(view.get("private_metadata") or ""))
        slack_user_id = str((body.get("user") or {}).get("id") or "")
        reply = responder(Respond(response_url=url), client, slack_user_id, {"response_url": url})

        def work(user: CrmUser) -> None:
            weekday = int(day) if day.isdigit() else None
            prefs = engine.set_digest_prefs(user, time=time, weekday=weekday)
            show_digest(engine, user, place, reply, ui.digest_note("time", prefs))

        guarded(client, engine, slack_user_id, reply, work)


def _metadata(raw: str) -> tuple[str, str]:
    """(where the controls are, the response_url to redraw them); blanks if not ours."""
    try:
        data = json.loads(raw)
        return str(data.get("place") or ""), str(data.get("url") or "")
    except (ValueError, AttributeError):
        return "", ""
