"""Standing rules in Slack, over real HTTP: signed slash commands and clicks in, Web API
calls out to the Slack stand-in (the `bot` fixture of test_bot_http). Add-group offers
to keep the group; `/crm-contacts rules` lists the rules with a button each; App Home
shows them with a button to turn each off; the list says why each person is in it."""

from __future__ import annotations

import test_bot_http
from servers.slack import all_text, checkbox_options
from test_bot_http import Bot, buttons

from bot import blocks as ui
from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.schedule import Scheduler

ALICE = "alice@example.com"

# test_bot_http's fixtures; the bot under a name that is not also our `bot` package's
slack = test_bot_http.slack
slack_bot = test_bot_http.bot


def test_add_group_offers_to_keep_the_group_and_rules_turn_off(slack_bot: Bot) -> None:
    confirm = slack_bot.shown("add-group")
    offer = buttons(confirm)[ui.ACTION_RULE_ON]
    assert offer["text"]["text"] == ui.KEEP_GROUP and "confirm" in offer
    on = slack_bot.click(confirm, ui.ACTION_RULE_ON)
    assert on.params["replace_original"] is True
    assert "Rule on:" in all_text(on.blocks) and "4 people now" in all_text(on.blocks)
    alice = slack_bot.user(ALICE)
    assert [r.kind for r in slack_bot.engine.rules.of(alice)] == ["account-manager"]
    # a second click (Slack retried, or the user clicked again) adds nobody twice
    again = slack_bot.click(confirm, ui.ACTION_RULE_ON, count=1)
    assert "Rule already on" in all_text(again.blocks)
    kept = slack_bot.shown("add-group")
    assert ui.ACTION_RULE_ON not in buttons(kept) and "`account-manager` keeps" in all_text(kept)

    # the list says why each person is in it
    EmbeddedCrm(slack_bot.engine.crm).add_person(first="Lena", last="Later", manager=ALICE)
    slack_bot.engine.add(alice, [1])  # Maria Lopez, by hand
    assert Scheduler(slack_bot.engine).run_cycle().error is None  # the clock's next cycle
    listed = {
        o["text"]["text"].strip("*"): o["description"]["text"]
        for o in checkbox_options(slack_bot.shown("list"))
    }
    assert "you're their Account Manager" in listed["Lena Later"]
    assert "picked by you" in listed["Maria Lopez"]

    # /crm-contacts rules: each kind with its button; turning one off says who leaves
    card = slack_bot.shown("rules")
    text = all_text(card)
    assert "everyone whose Account Manager you are" in text and "5 people" in text
    assert buttons(card)[ui.ACTION_RULE_OFF]["value"] == "account-manager"
    assert buttons(card)[ui.ACTION_RULE_ON]["value"] == "company-manager"
    off = slack_bot.click(card, ui.ACTION_RULE_OFF)
    assert "Rule off:" in all_text(off.blocks) and "5 people only it brought" in all_text(
        off.blocks
    )
    assert slack_bot.engine.rules.of(alice) == []
    assert [p.name for p in slack_bot.engine.my_list(alice) if p.in_list] == ["Maria Lopez"]


def test_app_home_shows_the_rules_with_a_button_each_to_turn_them_off(slack_bot: Bot) -> None:
    alice = slack_bot.user(ALICE)
    slack_bot.engine.rules.add(alice, "account-manager")
    slack_bot.send.event({"type": "app_home_opened", "user": "U_ALICE", "tab": "home"})
    view = slack_bot.slack.wait_for("views.publish")[0].view
    text = all_text(view["blocks"])
    assert "Standing rules" in text and "everyone whose Account Manager you are" in text
    turn_off = buttons(view["blocks"])[ui.ACTION_RULE_OFF]
    assert turn_off["style"] == "danger" and turn_off["confirm"]["style"] == "danger"
    reply, _ = slack_bot.send.click(
        view["blocks"], ui.ACTION_RULE_OFF, view={"id": "V_HOME", **view}
    )
    assert reply.status == 200 and slack_bot.send.last_elapsed < 3.0
    redrawn = slack_bot.slack.wait_for("views.publish", 2)[1].view
    assert ui.ACTION_RULE_OFF not in buttons(redrawn["blocks"])
    assert "No standing rules" in all_text(redrawn["blocks"])
    assert slack_bot.engine.rules.of(alice) == []


def test_a_stale_rule_button_gets_a_clear_private_answer(slack_bot: Bot) -> None:
    card = slack_bot.shown("rules")
    card_off = [
        {**b, "accessory": {**b["accessory"], "action_id": ui.ACTION_RULE_OFF}}
        if b.get("accessory", {}).get("value") == "company-manager"
        else b
        for b in card
    ]
    answer = slack_bot.click(card_off, ui.ACTION_RULE_OFF)  # a rule that is not on
    assert "the rule company-manager is not on" in all_text(answer.blocks)
    bogus = [
        {**b, "accessory": {**b["accessory"], "value": "boss"}} if b.get("accessory") else b
        for b in card
    ]
    refused = slack_bot.click(bogus, ui.ACTION_RULE_ON)
    assert "'boss' is not a rule kind" in all_text(refused.blocks)
