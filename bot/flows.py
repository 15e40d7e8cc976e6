"""What the listeners share: run engine work for the asker, render it, report problems.

Listeners (commands/, actions/, views/) stay a few lines each; the engine holds the
rules, `bot.blocks` the looks, and this module the glue between them.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks as ui
from bot.identity import NotMapped, crm_user_for
from bot.summary import digest_message, post_dm, sync_result_message
from bot.work import PROMPT, REQUESTS, SLOW
from chat.picker import picker_page, removable, removal_pool
from chat.words import (
    BUSY,
    DIGEST_CHOICES,
    FULL,
    JOINED,
    PROBLEM,
    QUEUED,
    QUEUED_NOTE,
    digest_usage,
)
from chat.words import digest_changes as _digest_changes
from chat.work import sync_now
from sync_engine.model import CrmUser, SyncResult
from sync_engine.service import EngineError

if TYPE_CHECKING:
    from sync_engine.service import Engine

log = logging.getLogger(__name__)

Reply = Callable[..., Any]
__all__ = ["BUSY", "DIGEST_CHOICES", "FULL", "JOINED", "QUEUED", "removable", "removal_pool"]


def guarded(
    client: WebClient,
    engine: Engine,
    slack_user_id: str,
    reply: Reply,
    work: Callable[[CrmUser], None],
    *,
    slow: bool = False,
    prompt: bool = False,
) -> None:
    """Run `work` for the asker after the ack, in a bounded pool (bot.work); returns at once.

    Any problem becomes a short private message (DESIGN 6) through `reply(text=...,
    blocks=...)` (an ephemeral response, or a DM when there is no response_url); no stack
    trace ever reaches a user. Work that has to wait behind others is said to be queued,
    and a full queue is said to be full, so nobody waits on silence (SLACK_UX 1). `slow`
    work (syncs, group adds) has its own pool; `prompt` work (opening a modal: its
    trigger_id lives 3 seconds) goes to the pool no backlog can hold up.
    """

    def queued(ahead: int) -> None:
        note = QUEUED_NOTE.format(ahead=ahead)
        _safe_reply(reply, note, icon=":hourglass_flowing_sand:")

    pool = SLOW if slow else PROMPT if prompt else REQUESTS
    job = lambda: _run_guarded(client, engine, slack_user_id, reply, work)  # noqa: E731
    if pool.submit(job, on_wait=queued) is None:
        log.warning("the %s queue is full; a request was refused", pool.name)
        PROMPT.submit(lambda: _safe_reply(reply, FULL))


def _run_guarded(
    client: WebClient,
    engine: Engine,
    slack_user_id: str,
    reply: Reply,
    work: Callable[[CrmUser], None],
) -> None:
    try:
        user = crm_user_for(client, engine, slack_user_id)
        work(user)
    except (NotMapped, EngineError) as exc:
        message = str(exc) or "That didn't work; please try again."
        _safe_reply(reply, message)
    except Exception:
        ref = uuid.uuid4().hex[:8]
        log.exception("request failed (ref %s)", ref)
        _safe_reply(
            reply,
            PROBLEM.format(ref=ref),
        )


def _safe_reply(reply: Reply, message: str, icon: str = "") -> None:
    try:
        if icon:
            blocks = [ui.section(f"{icon} {ui.fit_escaped(message, 2500)}")]
        else:
            blocks = ui.problem_blocks(message)
        reply(text=ui.fallback(message), blocks=blocks)
    except Exception:
        log.exception("could not tell the user about a problem")


def responder(respond: Any, client: WebClient, slack_user_id: str, body: dict[str, Any]) -> Reply:
    """A reply function: through response_url when the payload has one, else a DM.

    A response_url that is not Slack's own is not used (a DM instead): replies carry
    contact details, and a crafted payload must not send them elsewhere.

    A response_url takes 5 posts within 30 minutes (Slack's "Handling user interaction");
    a modal left open longer, or a refused message, makes it answer an HTTP error, which
    Bolt's `respond` returns without raising. Such a reply is logged in one line and goes
    to the user's DM instead: `dm_instead=(text, blocks)` when the DM should say it
    differently (a DM cannot replace the message the response_url pointed at).
    """
    url = str(body.get("response_url") or "")
    if url and not slack_hook(url, client):
        log.warning("ignored a response_url outside Slack's hooks host", extra={"event": "bad_url"})
        url = ""
    if url:

        def via_response_url(**message: Any) -> Any:
            instead = message.pop("dm_instead", None)
            message.setdefault("response_type", "ephemeral")
            message.setdefault("replace_original", False)
            try:
                response = respond(**message)
                status, answer = int(response.status_code), str(response.body or "")[:80]
            except Exception as exc:  # the response_url did not answer: same as a refusal
                response, status, answer = None, 0, type(exc).__name__
            if status == 200:
                return response
            log.warning(
                "response_url refused a reply (HTTP %s, %s); sending it as a DM",
                status,
                answer,
                extra={"event": "response_url_failed", "status": status, "error": answer},
            )
            text, blocks = instead or (message.get("text", ""), message.get("blocks") or [])
            return post_dm(client, slack_user_id, text, blocks)

        return via_response_url

    def via_dm(**message: Any) -> Any:
        message.pop("replace_original", None)
        message.pop("response_type", None)
        instead = message.pop("dm_instead", None)
        text, blocks = instead or (message.get("text", ""), message.get("blocks", []))
        return post_dm(client, slack_user_id, text, blocks)

    return via_dm


# Slack posts response_urls on this host (docs.slack.dev/interactivity/handling-user-
# interaction: "https://hooks.slack.com/actions/..." and ".../commands/...").
SLACK_HOOKS_HOST = "hooks.slack.com"


def slack_hook(url: str, client: WebClient) -> bool:
    """Whether `url` is a Slack response_url: https on hooks.slack.com, or the host of
    SLACK_API_URL when that is set (a proxy, or the loopback stand-in in tests)."""
    try:
        parts = urlsplit(url)
        api = urlsplit(client.base_url or "")
        here = (parts.scheme, parts.hostname, parts.port)
        api_place = (api.scheme, api.hostname, api.port)
    except ValueError:  # a port that is not a number
        return False
    if parts.username or parts.password:
        return False
    if here in (("https", SLACK_HOOKS_HOST, None), ("https", SLACK_HOOKS_HOST, 443)):
        return True
    return api.hostname not in (None, "slack.com", "www.slack.com") and here == api_place


# ---------------------------------------------------------------- pickers


def picker_message(
    engine: Engine,
    user: CrmUser,
    state: ui.PickerState,
    ticked: Iterable[int] | None = None,
    select_page: bool = False,
    note: str = "",
) -> list[ui.Block]:
    """Render one page of a picker (`chat.picker.picker_page`: the user's ticks on that
    page merged first, UX 5)."""
    page = picker_page(engine, user, state, ticked, select_page, note)
    if isinstance(page, ui.PickerPage):
        return ui.picker_blocks(page)
    if page.mode == "add":
        return ui.no_match(page.query)
    if page.query:
        return [
            ui.section(
                f"None of the people in My CRM Contacts match "
                f"“{ui.fit_escaped(page.query, 200)}”. `{ui.COMMAND} list` shows them all."
            )
        ]
    return [
        ui.section(
            f"My CRM Contacts is empty. `{ui.COMMAND} search <name or company>` finds "
            "people to add."
        )
    ]


def ticks_from_state(body: dict[str, Any]) -> list[int] | None:
    """The ids ticked in the message's checkboxes (None when the message has none)."""
    values = (body.get("state") or {}).get("values") or {}
    if not isinstance(values, dict):
        return None
    for elements in values.values():
        if not isinstance(elements, dict):
            continue
        element = elements.get(ui.ACTION_TICK)
        if isinstance(element, dict):
            return _ids(element.get("selected_options") or [])
    return None


def _ids(options: Sequence[Any]) -> list[int]:
    out: list[int] = []
    for option in options:
        try:
            out.append(int(option["value"]))
        except (TypeError, KeyError, ValueError):
            continue
    return out


# ---------------------------------------------------------------- sync


def sync_and_report(
    client: WebClient,
    engine: Engine,
    user: CrmUser,
    slack_user_id: str,
    reply: Reply | None = None,
) -> None:
    """Sync the asker's mailbox and DM the result (slow: always after the ack); repeated
    clicks and a sync another process holds are said where they were asked
    (`chat.work.sync_now`), never as a DM of their own."""

    def say(note: str) -> None:
        if reply is not None:
            reply(text=note, blocks=[ui.section(note)])

    def show(result: SyncResult) -> None:
        text, blocks = sync_result_message(result)
        post_dm(client, slack_user_id, text, blocks)

    sync_now(engine, user, say, show)


# ---------------------------------------------------------------- the digest's controls

DIGEST_USAGE = digest_usage(ui.COMMAND)


def show_digest(engine: Engine, user: CrmUser, place: str, reply: Reply, note: str = "") -> None:
    """Replace the message that holds digest controls with its new state (UX 7).

    A posted digest is rebuilt from its period (it keeps its content); the settings
    card of `/crm-contacts digest` is drawn again."""
    period = ui.digest_period(place)
    message = digest_message(engine, user, *period, note=note) if period else None
    prefs = engine.digest_prefs(user)
    card_text = ui.fallback(f"Your digest: {prefs.describe()}")
    # what the user must see if the message cannot be redrawn: the new setting, by DM
    instead = (card_text, ui.digest_card(prefs, note))
    if message is not None:
        text, blocks = message
        # a DM the bot posted, not an ephemeral reply: replaced as it is
        reply(
            text=text,
            blocks=blocks,
            replace_original=True,
            response_type=None,
            dm_instead=instead,
        )
        return
    reply(
        text=card_text,
        blocks=ui.digest_card(prefs, note),
        replace_original=True,
        response_type=None if period else "ephemeral",
        dm_instead=instead,
    )


def open_loading(client: WebClient, trigger_id: str, title: str, callback_id: str) -> Any:
    """Open a "Loading…" modal now, before any database or Web API look-up (a trigger_id
    lives 3 seconds); returns the view (its id and hash for views.update), or None with
    one log line when Slack refused the trigger (the user sees no modal and can click
    again)."""
    try:
        response = client.views_open(
            trigger_id=trigger_id, view=ui.loading_modal(title, callback_id)
        )
    except SlackApiError as exc:
        log.warning("could not open the %s modal: %s", title, exc.response.get("error", "error"))
        return None
    return response["view"]


def fill_digest_time(
    client: WebClient,
    engine: Engine,
    user: CrmUser,
    view: dict[str, Any],
    place: str,
    response_url: str,
) -> None:
    """Put the time picker into the opened modal; its submission updates the message at
    `response_url`."""
    metadata = json.dumps({"place": place, "url": response_url}, separators=(",", ":"))
    prefs = engine.digest_prefs(user)
    client.views_update(
        view_id=view["id"], hash=view.get("hash"), view=ui.digest_time_modal(prefs, metadata)
    )


def digest_changes(text: str) -> dict[str, Any]:
    """`/crm-contacts digest <words>` as set_digest_prefs arguments (`chat.words`)."""
    return _digest_changes(text, ui.COMMAND)
