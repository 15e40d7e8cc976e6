"""The Teams front end on the loopback Bot Connector and Graph: what the Teams tests share.

The bot runs in this process as `crm-contacts serve` runs it (waitress, the SDK on its
own loop); activities reach it over HTTP signed as the channel signs them, and what it
sends goes to the loopback Connector, which refuses what Teams refuses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from servers.graph import graph_server
from servers.teams import BotConnector
from servers.teams.connector import Posted

ALICE = "alice@example.com"
ALICE_AAD = "5b1e0f5e-1c3a-4a0e-9a55-0a11ce000001"
BOB = "bob@example.com"
BOB_AAD = "5b1e0f5e-1c3a-4a0e-9a55-0b0b00000002"
GUEST_AAD = "5b1e0f5e-1c3a-4a0e-9a55-6e5700000003"
EXTRA_AT_DESIGN_RIGHT = [
    ("Anna", "Berg"),
    ("Carl", "Dahl"),
    ("Dora", "Engel"),
    ("Emil", "Fors"),
    ("Frida", "Gran"),
    ("Gus", "Holm"),
    ("Hedda", "Ivar"),
    ("Ivo", "Jarl"),
]


@dataclass
class Teams:
    connector: BotConnector
    graph: Any
    engine: Any
    front: Any
    url: str

    def install_in_team(self, channel: str) -> None:
        """The app added to the team of `channel` (installationUpdate, as Teams sends it)."""
        team_data = {"team": {"id": channel, "name": "Sales"}, "channel": {"id": channel}}
        install = self.connector.activity(
            channel, type="installationUpdate", user=ALICE_AAD, channel_data=team_data
        )
        install["action"] = "add"
        answer = self.connector.send(self.url, install)
        assert answer.status_code == 200, answer.text

    def say(self, text: str, conversation: str, user: str = ALICE_AAD, **kw: Any) -> httpx.Response:
        activity = self.connector.activity(conversation, text=text, user=user, **kw)
        return self.connector.send(self.url, activity)

    def ask(self, text: str, conversation: str, has: str, user: str = ALICE_AAD) -> Posted:
        """Say `text` and wait for the bot's message holding `has`."""
        after = len(self.connector.posted)
        response = self.say(text, conversation, user)
        assert response.status_code == 200, response.text
        return self.connector.wait_for(conversation, has, after=after)

    def click(
        self,
        card: dict[str, Any],
        title: str,
        conversation: str,
        *,
        ticks: dict[int, bool] | None = None,
        message_id: str = "",
        user: str = ALICE_AAD,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Click the Action.Execute titled `title` (its start) as Teams sends it: the
        action's data plus every input of the card (toggles as "true"/"false")."""
        action = next(
            a for a in card.get("actions", []) if str(a.get("title", "")).startswith(title)
        )
        inputs = {
            e["id"]: e.get("value", "false")
            for e in card.get("body", [])
            if e.get("type") == "Input.Toggle"
        }
        for person_id, on in (ticks or {}).items():
            inputs[f"p:{person_id}"] = "true" if on else "false"
        value = {
            "action": {
                "type": "Action.Execute",
                "title": action["title"],
                "verb": action["verb"],
                "data": {**action.get("data", {}), **inputs, **(data or {})},
            },
            "trigger": "manual",
        }
        activity = self.connector.activity(
            conversation,
            type="invoke",
            name="adaptiveCard/action",
            value=value,
            user=user,
            reply_to=message_id or "unknown",
        )
        response = self.connector.send(self.url, activity)
        assert response.status_code == 200, response.text
        return dict(response.json())


def toggles(card: dict[str, Any]) -> dict[int, str]:
    """person id → toggle title, for the toggles on a card."""
    return {
        int(e["id"][2:]): e["title"]
        for e in card.get("body", [])
        if e.get("type") == "Input.Toggle"
    }


@contextlib.contextmanager
def teams_bot(home: Any, monkeypatch: Any, **settings: str) -> Iterator[Teams]:
    from bot.server import HttpServer, SlackWsgi
    from sync_engine.config import load_settings
    from sync_engine.crm.embedded import DESIGN_RIGHT, EmbeddedCrm, seed_demo
    from sync_engine.service import Engine
    from teams.front import TeamsFront
    from teams.settings import load_teams_settings

    with graph_server() as graph:
        connector = BotConnector(ca=graph._ca).start()
        try:
            graph.roles.append("User.Read.All")
            graph.add_user(ALICE, object_id=ALICE_AAD)
            graph.add_user(BOB, object_id=BOB_AAD)
            graph.add_user(
                "guest_outside.example#EXT#@contoso.example",
                mail="guest@outside.example",
                object_id=GUEST_AAD,
                user_type="Guest",
            )
            for name, value in {**graph.env(), **connector.env(), **settings}.items():
                if name != "MAILBOX_BACKEND":
                    monkeypatch.setenv(name, value)
            if settings.get("TEAMS_PLAYGROUND"):
                monkeypatch.delenv("TEAMS_APP_ID")
            engine = Engine(load_settings())
            seed_demo(engine.crm)
            crm = EmbeddedCrm(engine.crm)
            for first, last in EXTRA_AT_DESIGN_RIGHT:
                crm.add_person(
                    first=first,
                    last=last,
                    company=DESIGN_RIGHT,
                    email=f"{first.lower()}@designright.example",
                )
            front = TeamsFront(engine, load_teams_settings())
            server = HttpServer(SlackWsgi(None, others=[front.wsgi]), "127.0.0.1", 0)
            server.start()
            try:
                yield Teams(
                    connector, graph, engine, front, f"http://127.0.0.1:{server.port}/api/messages"
                )
            finally:
                server.close()
                front.close()
                engine.close()
        finally:
            connector.stop()
