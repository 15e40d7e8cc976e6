"""`/crm-contacts <subcommand> ...`: parse, ack at once, do the work, respond privately.

Every reply is ephemeral (contact details are private, SLACK_UX 11); the sync result is
a DM because the user comes back to it (SLACK_UX 9).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks as ui
from bot.flows import digest_changes, guarded, picker_message, responder, sync_and_report
from bot.typed import slash_text
from chat.rules import keeps_group
from chat.words import ALIASES, parse, unknown_command
from sync_engine.model import CrmUser
from sync_engine.service import Engine

log = logging.getLogger(__name__)

Reply = Callable[..., Any]
__all__ = ["ALIASES", "parse", "register"]


def _search(engine: Engine, user: CrmUser, query: str, reply: Reply, *_: Any) -> None:
    state = ui.PickerState("add", query[: ui.MAX_QUERY])
    blocks = picker_message(engine, user, state)
    reply(text=ui.fallback(f"CRM people matching {query}"), blocks=blocks)


def _add(engine: Engine, user: CrmUser, query: str, reply: Reply, *_: Any) -> None:
    page = engine.search(user, query, limit=ui.PAGE_SIZE, offset=0)
    if page.total == 0:
        reply(text=ui.fallback(f"No one matches {query}"), blocks=ui.no_match(query))
        return
    if page.total == 1:
        result = engine.add(user, [page.people[0].id])
        reply(text="Added to My CRM Contacts", blocks=ui.added_blocks(result.added, result.already))
        return
    note = "several people match: tick the ones you mean"
    blocks = picker_message(engine, user, ui.PickerState("add", query[: ui.MAX_QUERY]), note=note)
    reply(text=ui.fallback(f"{page.total} people match {query}"), blocks=blocks)


def _add_group(engine: Engine, user: CrmUser, _query: str, reply: Reply, *_: Any) -> None:
    people = engine.group(user)
    kept = keeps_group(engine.rules.of(user))
    reply(
        text=f"{len(people)} people have you as Account Manager",
        blocks=ui.group_confirm_blocks(people, rule_on=kept),
    )


def _rules(engine: Engine, user: CrmUser, _query: str, reply: Reply, *_: Any) -> None:
    reply(text="Your standing rules", blocks=ui.rules_card(engine.rules.of(user)))


def _person(engine: Engine, user: CrmUser, query: str, reply: Reply, *_: Any) -> None:
    page = engine.search(user, query, limit=ui.PAGE_SIZE, offset=0)
    if page.total == 0:
        reply(text=ui.fallback(f"No one matches {query}"), blocks=ui.no_match(query))
    elif page.total == 1:
        person = engine.person(user, page.people[0].id)
        reply(text=ui.fallback(person.name), blocks=ui.person_card(person))
    else:
        blocks = ui.person_choices(query, page.people, page.total)
        reply(text=ui.fallback(f"{page.total} people match {query}"), blocks=blocks)


def _list(engine: Engine, user: CrmUser, query: str, reply: Reply, *_: Any) -> None:
    blocks = picker_message(engine, user, ui.PickerState("remove", query))
    reply(text="My CRM Contacts", blocks=blocks)


def _status(engine: Engine, user: CrmUser, _query: str, reply: Reply, *_: Any) -> None:
    st = engine.status(user)
    reply(text=ui.fallback(f"Sync status of {st.mailbox}"), blocks=ui.status_blocks(st))


def _digest(engine: Engine, user: CrmUser, text: str, reply: Reply, *_: Any) -> None:
    """The digest's settings with its controls; words after `digest` change them first."""
    note = ""
    if text:
        engine.set_digest_prefs(user, **digest_changes(text))
        note = "✓ Saved."
    prefs = engine.digest_prefs(user)
    reply(text=ui.fallback(f"Your digest: {prefs.describe()}"), blocks=ui.digest_card(prefs, note))


def _sync(
    engine: Engine, user: CrmUser, _q: str, reply: Reply, client: WebClient, slack_user_id: str
) -> None:
    sync_and_report(client, engine, user, slack_user_id, reply)


# subcommand → (work, needs a query, what to say right away); slow ones are the syncs
SLOW = {"sync"}
SUBCOMMANDS: dict[str, tuple[Callable[..., None], bool, str]] = {
    "search": (_search, True, ""),
    "add": (_add, True, ""),
    "add-group": (_add_group, False, ""),
    "rules": (_rules, False, ""),
    "person": (_person, True, ""),
    "list": (_list, False, ""),
    "remove": (_list, False, ""),
    "status": (_status, False, ""),
    "digest": (_digest, False, ""),
    "sync": (_sync, False, "Syncing your mailbox… I'll DM you the result."),
}


def register(app: App, engine: Engine) -> None:
    @app.command(ui.COMMAND)
    def crm_contacts(
        ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond, body: dict[str, Any]
    ) -> None:
        sub, query = parse(slash_text(str(command.get("text") or "")))
        query = query[: ui.MAX_QUERY]  # as a picker keeps it; 20,000 words are not a name
        if sub in ("", "help"):
            ack(text=ui.help_text(), blocks=ui.help_blocks(), response_type="ephemeral")
            return
        if sub not in SUBCOMMANDS:
            intro = ui.escape(unknown_command(sub))
            ack(text=ui.help_text(intro), blocks=ui.help_blocks(intro), response_type="ephemeral")
            return
        work, needs_query, right_away = SUBCOMMANDS[sub]
        if needs_query and not query:
            message = f"Tell me whom to look for, for example `{ui.COMMAND} {sub} Jane Doe`."
            ack(text=message, blocks=ui.problem_blocks(message), response_type="ephemeral")
            return
        # Ack within 3 seconds, always; everything slow happens after (SLACK_UX 1).
        if right_away:
            ack(text=right_away, response_type="ephemeral")
        else:
            ack()
        slack_user_id = str(command.get("user_id") or "")
        reply = responder(respond, client, slack_user_id, body)
        guarded(
            client,
            engine,
            slack_user_id,
            reply,
            lambda user: work(engine, user, query, reply, client, slack_user_id),
            slow=sub in SLOW,
        )
