"""The Teams front end: the Teams SDK app, its handlers, and where their answers go.

Handlers run on the SDK's loop and only read the activity, check the tenant and queue
the work (`teams.jobs`); the engine and Graph are called from the pools; cards come
from `teams.cards`, the use cases from `teams.work`. Personal scope only for anything
that shows contact details (SLACK_UX 11); the message extension inserts one person's
card where the user chooses to.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from microsoft_teams.apps import App

from chat.words import (
    FULL,
    GROUP_ADDING,
    NEEDS_QUERY,
    SUBCOMMANDS,
    SYNCING,
    needs_query,
    parse,
    unknown_command,
)
from chat.work import sync_now
from sync_engine import chat_accounts
from teams import work
from teams.auth import BotTokens, cloud
from teams.bridge import LoopThread, RouteAdapter, TeamsWsgi
from teams.cards.common import (
    CARD_CONTENT_TYPE,
    VERB_ADD,
    VERB_DIGEST,
    VERB_GROUP_ADD,
    VERB_GROUP_CONFIRM,
    VERB_NEXT,
    VERB_PERSON_ADD,
    VERB_PERSON_OPEN,
    VERB_PERSON_REMOVE,
    VERB_PREV,
    VERB_REMOVE,
    VERB_RULE_OFF,
    VERB_RULE_ON,
    VERB_SHOW,
    VERB_SYNC,
    VERB_TICK_ALL,
    VERB_TICK_NONE,
    Card,
    card,
    problem,
    words,
)
from teams.cards.person import detail_of, name_of, person_card
from teams.cards.results import group_question_card, help_card
from teams.cards.summary import sync_result_card
from teams.identity import FRONT_END, Asker, Directory, Identities, NotMapped
from teams.jobs import Late, Refused, later, run_for, submit
from teams.sender import Sender
from teams.settings import TeamsSettings

if TYPE_CHECKING:
    from sync_engine.service import Engine

log = logging.getLogger(__name__)

PERSONAL_ONLY = "I show contact details in our personal chat only: message me there."
_MENTION = re.compile(r"<at>.*?</at>", re.S)
PICKER_VERBS = {
    VERB_TICK_ALL,
    VERB_TICK_NONE,
    VERB_PREV,
    VERB_NEXT,
    VERB_ADD,
    VERB_REMOVE,
    VERB_SHOW,
}
RULE_VERBS = {VERB_RULE_ON, VERB_RULE_OFF}
EXTENSION_RESULTS = 10


def sdk_app(teams: TeamsSettings, adapter: RouteAdapter) -> App:
    """The Teams SDK app: our identity and cloud, our HTTP adapter, no telemetry baggage."""
    options: dict[str, Any] = {
        "http_server_adapter": adapter,
        "messaging_endpoint": "/api/messages",
        "cloud": cloud(teams),
        "telemetry": {"agent365": False},
    }
    if teams.teams_playground:
        # The Playground sends no token: accepted only there (checked at start-up).
        options["dangerously_allow_unauthenticated_requests"] = True
    else:
        options.update(
            client_id=teams.teams_app_id,
            tenant_id=teams.teams_tenant_id,
            token=BotTokens(teams),
            dangerously_allow_unauthenticated_requests=False,
        )
    return App(**options)


def asker_of(raw: dict[str, Any]) -> Asker:
    """Who sent an activity and where it came from, as Teams says (checked later)."""
    conversation = raw.get("conversation") or {}
    channel_data = raw.get("channelData") or {}
    tenant = str((channel_data.get("tenant") or {}).get("id") or conversation.get("tenantId") or "")
    personal = conversation.get("conversationType") in (None, "personal")
    return Asker(
        aad_object_id=str((raw.get("from") or {}).get("aadObjectId") or ""),
        tenant_id=tenant,
        conversation_id=str(conversation.get("id") or "") if personal else "",
        service_url=str(raw.get("serviceUrl") or ""),
        tz=str(raw.get("localTimezone") or "") or None,
    )


LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def on_this_machine(service_url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        return (urlsplit(service_url).hostname or "") in LOOPBACK
    except ValueError:
        return False


class TeamsFront:
    """The Teams SDK app inside `crm-contacts serve`, and what it needs to answer."""

    def __init__(self, engine: Engine, teams: TeamsSettings) -> None:
        self.engine = engine
        self.settings = teams
        self.loop = LoopThread()
        self.adapter = RouteAdapter()
        self.app = sdk_app(teams, self.adapter)
        self.sender = Sender(self.app.api, self.loop)
        self.identities = Identities(
            engine, teams.teams_tenant_id or "", Directory(engine.settings)
        )
        self._register()
        self.loop.run(self.app.initialize(), 30)
        self.wsgi = TeamsWsgi(self.adapter, self.loop, loopback_only=teams.teams_playground)

    def close(self) -> None:
        self.loop.close()

    # ------------------------------------------------------------------ handlers

    def _register(self) -> None:
        app = self.app

        def raw_of(ctx: Any) -> dict[str, Any] | None:
            """The activity as Teams sent it; None for one to drop: with TEAMS_PLAYGROUND
            (no token checked) anything whose serviceUrl is not on this machine, so no
            answer carrying contact details can be sent elsewhere."""
            raw = dict(ctx.activity.model_dump(by_alias=True, exclude_none=True))
            if self.settings.teams_playground and not on_this_machine(
                str(raw.get("serviceUrl") or "")
            ):
                log.warning(
                    "dropped an activity for a serviceUrl off this machine (TEAMS_PLAYGROUND)",
                    extra={"event": "teams_playground_remote"},
                )
                return None
            return raw

        @app.on_message
        async def on_message(ctx: Any) -> None:
            raw = raw_of(ctx)
            if raw is not None:
                self.message(raw)

        @app.on_card_action
        async def on_card_action(ctx: Any) -> Any:
            raw = raw_of(ctx)
            return None if raw is None else await self.card_action(raw)

        @app.on_message_ext_query
        async def on_query(ctx: Any) -> Any:
            raw = raw_of(ctx)
            return None if raw is None else await self.extension_query(raw)

        @app.on_conversation_update
        async def on_conversation_update(ctx: Any) -> None:
            raw = raw_of(ctx)
            if raw is not None:
                self.installed(raw)

        @app.on_install_add
        async def on_install(ctx: Any) -> None:
            raw = raw_of(ctx)
            if raw is not None:
                self.installed(raw)

    # -------------------------------------------------------------- messages

    def message(self, raw: dict[str, Any]) -> None:
        """A command typed in the personal chat (or picked from the command menu)."""
        asker = asker_of(raw)
        conversation = str((raw.get("conversation") or {}).get("id") or "")
        service_url = asker.service_url
        if not self._tenant_ok(asker, conversation, service_url):
            return
        if not asker.conversation_id:
            self._say(conversation, service_url, PERSONAL_ONLY)
            return
        text = _MENTION.sub("", str(raw.get("text") or "")).strip()
        sub, query = parse(text)
        query = query[:500]

        def reply(content: Card, summary: str = "") -> None:
            self.sender.send_card(conversation, service_url, summary or "CRM Contacts", content)

        if sub in ("", "help") or sub not in SUBCOMMANDS:
            intro = "" if sub in ("", "help") else unknown_command(sub)
            self._queue(lambda: reply(help_card(intro), "What I can do"), conversation, service_url)
            return
        if sub in NEEDS_QUERY and not query:
            message = needs_query(sub, "").replace("` ", "`")
            self._queue(lambda: reply(problem(message)), conversation, service_url)
            return
        if sub == "sync":
            self._say(conversation, service_url, SYNCING)
            self._sync(asker, conversation, service_url)
            return
        use_case = work.COMMANDS[sub]

        def job() -> None:
            try:
                content = run_for(
                    self.identities, asker, lambda user: use_case(self.engine, user, query)
                )
            except Refused as exc:
                content = problem(str(exc))
            reply(content)

        self._queue(job, conversation, service_url)

    def _queue(self, job: Any, conversation: str, service_url: str, slow: bool = False) -> None:
        def guarded() -> None:
            try:
                job()
            except Exception:
                log.exception("could not answer in Teams")

        if not submit(guarded, slow=slow):
            self._say(conversation, service_url, FULL)

    def _say(self, conversation: str, service_url: str, text: str) -> None:
        """`_tell`, from a pool: handlers run on the SDK's loop and must never wait on it."""
        later(lambda: self._tell(conversation, service_url, text))

    def _tell(self, conversation: str, service_url: str, text: str) -> None:
        try:
            self.sender.send_card(conversation, service_url, text, card([words(text)]))
        except Exception:
            log.exception("could not tell a Teams user something")

    def _tenant_ok(self, asker: Asker, conversation: str, service_url: str) -> bool:
        try:
            self.identities.check_tenant(asker)
        except NotMapped as exc:
            self._say(conversation, service_url, str(exc))
            return False
        return True

    # -------------------------------------------------------------- card actions

    async def card_action(self, raw: dict[str, Any]) -> dict[str, Any]:
        """An Action.Execute: the new card within the budget, else "working on it" and
        the card replaces the message when it is ready."""
        asker = asker_of(raw)
        action = (raw.get("value") or {}).get("action") or {}
        verb = str(action.get("verb") or "")
        data = action.get("data") if isinstance(action.get("data"), dict) else {}
        conversation = str((raw.get("conversation") or {}).get("id") or "")
        message_id = str(raw.get("replyToId") or "")
        try:
            self.identities.check_tenant(asker)
        except NotMapped as exc:
            return _card_response(problem(str(exc)))
        if verb == VERB_SYNC:
            if not asker.conversation_id:
                return _message_response(PERSONAL_ONLY)
            self._sync(asker, conversation, asker.service_url)
            return _message_response(SYNCING)
        if verb == VERB_GROUP_CONFIRM:
            if data.get("cancel"):
                return _card_response(card([words("Not added: nothing changed.")]))
            count = data.get("count")
            if not isinstance(count, int) or count < 1:
                return _card_response(problem("That button is out of date. Run add-group again."))
            return _card_response(group_question_card(count))
        use_case = self._verb(verb, data)
        if use_case is None:
            return _card_response(problem("That button is out of date. Run the command again."))

        def deliver_late(content: Card) -> None:
            if message_id:
                self.sender.update_card(
                    conversation, asker.service_url, message_id, "CRM Contacts", content
                )

        pending: Late[Card] = Late(deliver_late)

        def job() -> None:
            try:
                pending.finish(run_for(self.identities, asker, use_case))
            except Refused as exc:
                pending.finish(problem(str(exc)))
            except BaseException as exc:
                pending.fail(exc)

        # Slow, as in Slack: adding a group or turning a rule on or off can touch hundreds.
        slow = verb == VERB_GROUP_ADD or (verb in RULE_VERBS and data.get("confirmed") is True)
        if not submit(job, slow=slow):
            return _card_response(problem(FULL))
        answer = await pending.answer(self.settings.teams_invoke_budget)
        if answer is None:
            text = GROUP_ADDING if verb == VERB_GROUP_ADD else "Working on it…"
            return _card_response(card([words(text)]))
        return _card_response(answer)

    def _verb(self, verb: str, data: dict[str, Any]) -> Any:
        engine = self.engine
        if verb in PICKER_VERBS:
            return lambda user: work.picker_action(engine, user, verb, data)
        kinds = {VERB_PERSON_OPEN: "open", VERB_PERSON_ADD: "add", VERB_PERSON_REMOVE: "remove"}
        if verb in kinds:
            return lambda user: work.person_action(engine, user, kinds[verb], data)
        if verb == VERB_GROUP_ADD:
            return lambda user: work.group_add(engine, user)
        if verb == VERB_DIGEST:
            return lambda user: work.digest_action(engine, user, data)
        if verb in RULE_VERBS:
            return lambda user: work.rule_action(engine, user, verb == VERB_RULE_ON, data)
        return None

    # -------------------------------------------------------------- sync now

    def _sync(self, asker: Asker, conversation: str, service_url: str) -> None:
        """Sync the asker's mailbox and post the result in the personal chat (slow: in the
        SLOW pool). Repeated clicks coalesce as Slack's do (`chat.work.SYNCS`)."""

        def job() -> None:
            try:
                user = self.identities.crm_user(asker)
            except NotMapped as exc:
                self._tell(conversation, service_url, str(exc))
                return

            def show(result: Any) -> None:
                text, content = sync_result_card(result)
                self.sender.send_card(conversation, service_url, text, content)

            sync_now(
                self.engine, user, lambda note: self._tell(conversation, service_url, note), show
            )

        def guarded() -> None:
            try:
                job()
            except Exception:
                log.exception("a Teams sync failed")
                self._tell(conversation, service_url, "The sync could not run; try again soon.")

        if not submit(guarded, slow=True):
            self._say(conversation, service_url, FULL)

    # -------------------------------------------------------------- message extension

    async def extension_query(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The search-based message extension: people the asker may see, each as a card
        to insert into any chat (no buttons: the chat's other members have lists of their
        own). Answered within Teams' time limit, like a card action."""
        asker = asker_of(raw)
        value = raw.get("value") or {}
        parameters = value.get("parameters") or []
        query = ""
        for parameter in parameters:
            if isinstance(parameter, dict) and parameter.get("name") != "initialRun":
                query = str(parameter.get("value") or "")[:200]
        try:
            self.identities.check_tenant(asker)
        except NotMapped as exc:
            return _extension_message(str(exc))
        if not query.strip():
            return _extension_message("Type a name, an email or a company.")
        pending: Late[dict[str, Any]] = Late(lambda _: None)

        def search(user: Any) -> dict[str, Any]:
            page = self.engine.search(user, query, limit=EXTENSION_RESULTS, offset=0)
            return _extension_results(page.people)

        def job() -> None:
            try:
                pending.finish(run_for(self.identities, asker, search))
            except Refused as exc:
                pending.finish(_extension_message(str(exc)))
            except BaseException as exc:
                pending.fail(exc)

        if not submit(job):
            return _extension_message(FULL)
        answer = await pending.answer(self.settings.teams_invoke_budget)
        return answer or _extension_message("Still searching… type one more letter.")

    # -------------------------------------------------------------- installs

    def installed(self, raw: dict[str, Any]) -> None:
        """The app was added to a team: keep where its channels are (the team summary
        goes to TEAMS_SUMMARY_CHANNEL, which must be one of them)."""
        channel_data = raw.get("channelData") or {}
        team = channel_data.get("team") or {}
        channel = channel_data.get("channel") or {}
        tenant = str((channel_data.get("tenant") or {}).get("id") or "")
        if not team or tenant.lower() != (self.settings.teams_tenant_id or "").lower():
            return
        service_url = str(raw.get("serviceUrl") or "")
        for channel_id in {str(team.get("id") or ""), str(channel.get("id") or "")} - {""}:
            chat_accounts.remember_channel(
                self.engine, FRONT_END, channel_id, tenant_id=tenant, service_url=service_url
            )
        log.info("Teams app installed in a team", extra={"event": "teams_installed"})


def _card_response(content: Card) -> dict[str, Any]:
    return {"statusCode": 200, "type": CARD_CONTENT_TYPE, "value": content}


def _message_response(text: str) -> dict[str, Any]:
    return {"statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": text}


def _extension_message(text: str) -> dict[str, Any]:
    return {"composeExtension": {"type": "message", "text": text}}


def _extension_results(people: list[Any]) -> dict[str, Any]:
    attachments = []
    for person in people:
        content = person_card(person)
        content.pop("actions", None)  # inserted for others to read: no buttons
        content["body"] = [
            b for b in content["body"] if "My CRM Contacts" not in str(b)
        ]  # and not the sender's own list
        attachments.append(
            {
                "contentType": CARD_CONTENT_TYPE,
                "content": content,
                "preview": {
                    "contentType": "application/vnd.microsoft.card.thumbnail",
                    "content": {"title": name_of(person), "text": detail_of(person)},
                },
            }
        )
    return {
        "composeExtension": {
            "type": "result",
            "attachmentLayout": "list",
            "attachments": attachments,
        }
    }
