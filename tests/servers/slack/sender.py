"""Slack's side: signed requests to the bot, and helpers that read what the bot sent."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from .rules import SIGNING_SECRET, TEAM_ID, slack_escape
from .web_api import Call, SlackStandIn


def sign(secret: str, timestamp: int, body: str) -> str:
    """X-Slack-Signature v0, as Slack computes it."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class Reply:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class SlackSender:
    """Sends what Slack would send to the bot's request URL, correctly signed."""

    def __init__(self, bot_url: str, stand_in: SlackStandIn, secret: str = SIGNING_SECRET) -> None:
        self.bot_url = bot_url
        self.stand_in = stand_in
        self.secret = secret
        self._n = itertools.count(1)

    def post(
        self,
        body: str,
        *,
        content_type: str = "application/x-www-form-urlencoded",
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> Reply:
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature or sign(self.secret, ts, body),
        }
        request = urllib.request.Request(
            self.bot_url, data=body.encode(), headers=headers, method="POST"
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                reply = Reply(response.status, response.read().decode())
        except urllib.error.HTTPError as exc:
            reply = Reply(exc.code, exc.read().decode())
        self.last_elapsed = time.monotonic() - started
        return reply

    def command(self, text: str, user: str = "U_ALICE", **kwargs: Any) -> tuple[Reply, str]:
        """A `/crm-contacts` slash command typed as `text`; returns the HTTP reply and its
        response_url name. Like Slack, the text arrives with `&`, `<`, `>` escaped."""
        name = f"cmd{next(self._n)}"
        form = {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "loopback",
            "channel_id": "C_SALES",
            "channel_name": "sales",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/crm-contacts",
            "text": slack_escape(text),
            "api_app_id": "A_CRM",
            "response_url": self.stand_in.response_url(name),
            "trigger_id": self.stand_in.issue_trigger(f"trigger-{name}"),
        }
        return self.post(urlencode(form), **kwargs), name

    def click(
        self,
        blocks: list[dict[str, Any]],
        action_id: str,
        *,
        user: str = "U_ALICE",
        ticked: Iterable[int] | None = None,
        tick_event: bool = False,
        view: dict[str, Any] | None = None,
        option: str | None = None,
        message: Call | None = None,
    ) -> tuple[Reply, str]:
        """Click `action_id` in an ephemeral message showing `blocks`, as a Slack client would.

        The checkboxes state is the message's initial options unless `ticked` says which
        person ids are ticked now. `tick_event` sends the checkbox change itself.
        Like Slack for an ephemeral message, the payload carries no copy of the message.
        `option` is the value picked in an overflow menu or a select. `message` is the
        chat.postMessage call of a message the bot posted (a DM): then, as Slack does,
        the container is not ephemeral and the payload carries a copy of the message.
        """
        name = f"act{next(self._n)}"
        element, block_id = find_element(blocks, action_id)
        values: dict[str, Any] = {}
        selected: list[dict[str, Any]] | None = None
        for block in blocks:
            for el in block.get("elements") or []:
                if el.get("type") == "checkboxes":
                    if ticked is None:
                        chosen = list(el.get("initial_options") or [])
                    else:
                        wanted = {str(i) for i in ticked}
                        chosen = [o for o in el["options"] if o["value"] in wanted]
                    values[block["block_id"]] = {
                        el["action_id"]: {"type": "checkboxes", "selected_options": chosen}
                    }
                    selected = chosen
        action: dict[str, Any] = {
            "type": element["type"],
            "action_id": element["action_id"],
            "block_id": block_id,
            "action_ts": f"{time.time():.6f}",
        }
        if element["type"] == "button":
            action["text"] = element["text"]
            if "value" in element:
                action["value"] = element["value"]
        if element["type"] == "checkboxes" or tick_event:
            action["selected_options"] = selected or []
        if element["type"] in ("overflow", "static_select"):
            picked = [o for o in element["options"] if o["value"] == option]
            assert picked, f"no option {option!r} in {element['action_id']}"
            action["selected_option"] = picked[0]
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
            "api_app_id": "A_CRM",
            "token": "legacy-verification-token",
            "trigger_id": self.stand_in.issue_trigger(f"trigger-{name}"),
            "team": {"id": TEAM_ID, "domain": "loopback"},
            "actions": [action],
            "state": {"values": values},
        }
        if message is not None:
            channel = str(message.params["channel"])
            payload["container"] = {
                "type": "message",
                "message_ts": "1700000000.000200",
                "channel_id": channel,
                "is_ephemeral": False,
            }
            payload["channel"] = {"id": channel, "name": "directmessage"}
            payload["message"] = {
                "type": "message",
                "ts": "1700000000.000200",
                "bot_id": "BBOT",
                "text": message.params.get("text", ""),
                "blocks": blocks,
            }
            payload["response_url"] = self.stand_in.response_url(name)
        elif view is None:
            payload["container"] = {
                "type": "message",
                "message_ts": "1700000000.000100",
                "channel_id": "C_SALES",
                "is_ephemeral": True,
            }
            payload["channel"] = {"id": "C_SALES", "name": "sales"}
            payload["response_url"] = self.stand_in.response_url(name)
        else:
            payload["container"] = {"type": "view", "view_id": view.get("id", "V1")}
            payload["view"] = view
        return self.post(urlencode({"payload": json.dumps(payload)})), name

    def submit_view(
        self, view: dict[str, Any], values: dict[str, Any], user: str = "U_ALICE"
    ) -> Reply:
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": "loopback"},
            "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
            "api_app_id": "A_CRM",
            "trigger_id": self.stand_in.issue_trigger(f"trigger-view{next(self._n)}"),
            "view": {**view, "id": view.get("id", "V_MODAL"), "state": {"values": values}},
        }
        return self.post(urlencode({"payload": json.dumps(payload)}))

    def event(self, event: dict[str, Any]) -> Reply:
        payload = {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": "A_CRM",
            "type": "event_callback",
            "event_id": f"Ev{next(self._n)}",
            "event_time": int(time.time()),
            "event": event,
        }
        return self.post(json.dumps(payload), content_type="application/json")


def find_element(blocks: list[dict[str, Any]], action_id: str) -> tuple[dict[str, Any], str]:
    """The interactive element with `action_id` in `blocks`, and its block_id."""
    for block in blocks:
        candidates = list(block.get("elements") or [])
        if block.get("accessory"):
            candidates.append(block["accessory"])
        for el in candidates:
            if el.get("action_id") == action_id:
                return el, str(block.get("block_id") or "")
    raise AssertionError(f"no element {action_id} in {json.dumps(blocks)[:500]}")


def has_element(blocks: list[dict[str, Any]], action_id: str) -> bool:
    try:
        find_element(blocks, action_id)
    except AssertionError:
        return False
    return True


def all_text(blocks: list[dict[str, Any]]) -> str:
    """Every text in the blocks, joined (for asserting what a reader sees)."""
    out: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            if obj.get("type") in ("mrkdwn", "plain_text") and "text" in obj:
                out.append(str(obj["text"]))
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    walk(blocks)
    return "\n".join(out)


def checkbox_options(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All checkbox options in a message (one element per page in our picker)."""
    return [
        option
        for block in blocks
        for el in block.get("elements") or []
        if el.get("type") == "checkboxes"
        for option in el["options"]
    ]
