"""`crm-contacts serve` (the Procfile's web process) answers Slack and Teams in one
process, each on its own path, with /healthz beside them."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from servers.graph import graph_server
from servers.slack import SIGNING_SECRET, SlackSender, SlackStandIn
from servers.teams import BotConnector
from teams_harness import ALICE, ALICE_AAD
from test_bot_http import option_names, serving


def test_serve_answers_slack_and_teams_in_one_process(home: Path) -> None:
    with SlackStandIn() as slack, graph_server() as graph:
        slack.add_user("U_ALICE", ALICE)
        connector = BotConnector(ca=graph._ca).start()
        try:
            graph.roles.append("User.Read.All")
            graph.add_user(ALICE, object_id=ALICE_AAD)
            env = {k: v for k, v in {**graph.env(), **connector.env()}.items()}
            env.pop("MAILBOX_BACKEND")
            with serving(home, slack, SLACK_SIGNING_SECRET=SIGNING_SECRET, **env) as url:
                with urllib.request.urlopen(url + "/healthz", timeout=5) as health:
                    assert health.status == 200
                reply, name = SlackSender(url + "/slack/events", slack).command(
                    "search Design Right Inc."
                )
                assert reply.status == 200
                assert len(option_names(slack.wait_for("response_url", name=name)[0].blocks)) == 5
                chat = connector.conversation()
                activity = connector.activity(chat, text="search Design Right Inc.", user=ALICE_AAD)
                assert connector.send(url + "/api/messages", activity).status_code == 200
                card = connector.wait_for(chat, "people match", timeout=30)
                assert "5 people match" in card.text
                forged = connector.send(
                    url + "/api/messages", activity, token=connector.token(forged=True)
                )
                assert forged.status_code == 401
        finally:
            connector.stop()
