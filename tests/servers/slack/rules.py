"""Slack's rules, written out independently of bot/blocks: limits, and what Slack does to text."""

from __future__ import annotations

from typing import Any

BOT_TOKEN = "xoxb-loopback-test-token"  # a test token; never a real one
APP_TOKEN = "xapp-loopback-test-token"  # a test app-level token (Socket Mode)
SIGNING_SECRET = "loopback-signing-secret"  # a test secret; never a real one
TEAM_ID = "T0LOOP"

# Block Kit limits, written out here independently of bot/blocks.
LIMITS = {
    "message_blocks": 50,
    "view_blocks": 100,
    "checkbox_options": 10,
    "section_text": 3000,
    "option_text": 75,
    "button_text": 75,
    "button_value": 2000,
    "block_id": 255,
    "action_id": 255,
    "context_elements": 10,
    "actions_elements": 25,
    "fields": 10,
    "field_text": 2000,
    "header_text": 150,
    "overflow_options": 5,
    "select_options": 100,
}

# The text of one message's blocks, all together. Slack answers `msg_blocks_too_long` past
# about 12,000 characters although every block is within its own limit: not in the Block
# Kit reference; reported in slackapi/bolt-js#2509 (refused at ~13,200 characters of
# markdown blocks; the maintainers: "12,000 text characters with a buffer for block
# containers") and slackapi/bolt-js#2867 (still refused at 11,341 characters of `.text`).
# Counted here as every text object's `text` anywhere in the blocks.
MESSAGE_TEXT_LIMIT = 12_000
# A trigger_id opens a modal within 3 seconds of the click, once (Slack's "Handling user
# interaction": trigger_id expires in three seconds; views.open answers
# `expired_trigger_id`, and `exchanged_trigger_id` for a trigger already used).
TRIGGER_SECONDS = 3.0
# A response_url takes up to 5 posts within 30 minutes of the interaction (Slack's
# "Handling user interaction" and "Implementing slash commands"). The docs give the limits,
# not the refusal; we answer as an incoming webhook answers a post it refuses: an HTTP error
# status with the reason as plain text (404 `expired_url` / `used_url`).
RESPONSE_URL_USES = 5
RESPONSE_URL_SECONDS = 30 * 60
# The bot scopes the app asks for in manifest.yml (chat:write.public lets it post in any
# public channel without being invited; chat.postMessage's documented errors otherwise:
# `not_in_channel`, and `channel_not_found` for a private channel it is not in).
DEFAULT_SCOPES = frozenset(
    {"commands", "chat:write", "chat:write.public", "im:write", "users:read", "users:read.email"}
)


def message_text_length(blocks: list[dict[str, Any]]) -> int:
    """Characters of text in `blocks`: every mrkdwn / plain_text object's `text`."""
    total = 0

    def walk(obj: Any) -> None:
        nonlocal total
        if isinstance(obj, dict):
            if obj.get("type") in ("mrkdwn", "plain_text") and isinstance(obj.get("text"), str):
                total += len(obj["text"])
            for value in obj.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    walk(blocks)
    return total


def slack_escape(text: str) -> str:
    """What Slack does to slash-command text before sending it: `&`, `<`, `>` as entities
    (Slack's "Formatting text: escaping" and "Implementing slash commands")."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def block_kit_problems(blocks: list[dict[str, Any]], limit: int) -> list[str]:
    """Every way `blocks` break Slack's limits (empty when Slack would accept them)."""
    problems: list[str] = []
    if len(blocks) > limit:
        problems.append(f"{len(blocks)} blocks > {limit}")

    def text_of(obj: Any) -> str:
        return str(obj.get("text", "")) if isinstance(obj, dict) else ""

    def element(el: dict[str, Any]) -> None:
        kind = el.get("type")
        if len(str(el.get("action_id", ""))) > LIMITS["action_id"]:
            problems.append("action_id too long")
        if kind == "button":
            if len(text_of(el.get("text"))) > LIMITS["button_text"]:
                problems.append(f"button text over 75: {text_of(el.get('text'))!r}")
            if len(str(el.get("value", ""))) > LIMITS["button_value"]:
                problems.append("button value over 2000")
        if kind == "checkboxes":
            options = el.get("options") or []
            if not options or len(options) > LIMITS["checkbox_options"]:
                problems.append(f"checkboxes with {len(options)} options")
            for option in options:
                for part in ("text", "description"):
                    if len(text_of(option.get(part))) > LIMITS["option_text"]:
                        problems.append(f"option {part} over 75: {text_of(option.get(part))!r}")
            initial = el.get("initial_options")
            if initial is not None and (not initial or any(o not in options for o in initial)):
                problems.append("initial_options empty or not among the options")
        if kind in ("overflow", "static_select"):
            options = el.get("options") or []
            most = LIMITS["overflow_options" if kind == "overflow" else "select_options"]
            if not options or len(options) > most:
                problems.append(f"{kind} with {len(options)} options")
            for option in options:
                if len(text_of(option.get("text"))) > LIMITS["option_text"]:
                    problems.append(f"{kind} option over 75: {text_of(option.get('text'))!r}")
            initial = el.get("initial_option")
            if initial is not None and initial not in options:
                problems.append("initial_option not among the options")

    for block in blocks:
        kind = block.get("type")
        if len(str(block.get("block_id", ""))) > LIMITS["block_id"]:
            problems.append("block_id over 255")
        if kind == "section":
            if len(text_of(block.get("text"))) > LIMITS["section_text"]:
                problems.append("section text over 3000")
            fields = block.get("fields") or []
            if len(fields) > LIMITS["fields"]:
                problems.append("more than 10 fields")
            if any(len(text_of(f)) > LIMITS["field_text"] for f in fields):
                problems.append("field over 2000")
            if not block.get("text") and not fields:
                problems.append("section without text or fields")
            if block.get("accessory"):
                element(block["accessory"])
        elif kind == "context":
            if len(block.get("elements") or []) > LIMITS["context_elements"]:
                problems.append("context with more than 10 elements")
        elif kind == "actions":
            elements = block.get("elements") or []
            if not elements or len(elements) > LIMITS["actions_elements"]:
                problems.append(f"actions block with {len(elements)} elements")
            for el in elements:
                element(el)
        elif kind == "header":
            if len(text_of(block.get("text"))) > LIMITS["header_text"]:
                problems.append("header over 150")
        elif kind == "input":
            element(block.get("element") or {})
    ids = [b["block_id"] for b in blocks if b.get("block_id")]
    if len(ids) != len(set(ids)):
        problems.append("duplicate block_id")
    return problems
