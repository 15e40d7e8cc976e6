"""The engine's front door: every use case the CLI, the Slack bot and the scheduler offer.

Callers hold no rules; they call these methods and render what comes back. Every method
acts for one CRM user and only ever on that user's own list (DESIGN rule 10).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from sync_engine.answers import (
    Activity,
    AddResult,
    BadQuery,
    MailboxStatus,
    RemoveResult,
    SearchPage,
    SlackIdTaken,
    UnknownPerson,
    UnknownUser,
    view,
)
from sync_engine.config import Settings, load_settings
from sync_engine.crm.search import SearchError, parse_query, search_ids
from sync_engine.crm.source import CrmError, SageCrm
from sync_engine.crm.writer import CrmWriter, EmbeddedWriter, write_back_status
from sync_engine.digest_settings import DigestSettings
from sync_engine.errors import EngineError
from sync_engine.files import private_dir, private_sqlite
from sync_engine.index import IndexBusy, PeopleIndex
from sync_engine.mailbox import open_mailbox
from sync_engine.mailbox.base import Mailbox
from sync_engine.mailbox.choose import LABELS, describe
from sync_engine.model import (
    CrmPerson,
    CrmUser,
    Outcome,
    PersonView,
    SyncResult,
)
from sync_engine.ops import metrics
from sync_engine.people_snapshot import PeopleSnapshot
from sync_engine.standing.rules import describe_sources
from sync_engine.standing.service import StandingRules
from sync_engine.state.rows import Event, StoredUser
from sync_engine.state.targets import TargetState
from sync_engine.store import EmailTaken, MailboxBusy, Store, utcnow
from sync_engine.sync import Claimed, OnRecord, sync_mailbox
from sync_engine.write_back_state import (
    OrphanRows,
    resume_if_credentials_changed,
    write_back_paused,
)

log = logging.getLogger("crm_contacts.index")


MailboxFactory = Callable[[Settings, str], Mailbox]


class Engine(DigestSettings):
    """Opens the state store and the CRM once; opens a mailbox target per sync."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        mailbox_factory: MailboxFactory | None = None,
        recreate_stale_crm: bool = False,
    ) -> None:
        self.settings = settings or load_settings()
        self.store = Store.open(self.settings.state_url, self.settings.crm_contacts_home)
        embedded = not self.settings.crm_database_url
        if embedded:  # ours to create, private; a real Sage CRM is never touched
            private_dir(self.settings.crm_contacts_home)
            private_sqlite(self.settings.crm_url)
        self.crm = SageCrm(
            self.settings.crm_url,
            writable=embedded,
            recreate_stale=embedded and recreate_stale_crm,  # only the demo asks
        )
        self.index = PeopleIndex(self.store.engine, self.crm, self.store.home)
        self.rules = StandingRules(self.store, self.crm, self._stored)  # DESIGN rule 11
        self.targets = TargetState(self.store.engine)  # hybrid placements, synced targets
        self._said_fallback = False
        self.writer = metrics.counting(self._open_writer(embedded))  # write-backs counted
        # The default factory keeps what EWS/Graph learn about addresses in the state store.
        self.mailbox_factory = mailbox_factory or self._open_mailbox

    def _open_mailbox(self, settings: Settings, address: str) -> Mailbox:
        return open_mailbox(settings, address, identities=self.store, placements=self.targets)

    def _open_writer(self, embedded: bool) -> CrmWriter | None:
        """Write-back (issue 14): on for the embedded CRM, through Sage's REST API for a
        real one once SAGE_REST_URL is set, else off."""
        if embedded:
            return EmbeddedWriter(self.crm)
        if self.settings.sage_rest_url:
            from sync_engine.crm.sage_rest import SageRestWriter

            resume_if_credentials_changed(self.store, self.settings)  # issue 19's pause
            return SageRestWriter.from_settings(self.settings, self.crm, OrphanRows(self.store))
        return None

    def write_back_status(self) -> str:
        return write_back_status(not self.settings.crm_database_url, self.settings.sage_rest_url)

    def close(self) -> None:
        self.store.close()
        self.crm.close()
        if self.writer is not None:
            self.writer.close()

    # -- who is asking -------------------------------------------------------------------

    def user(self, email: str) -> CrmUser:
        """The CRM user with this email, or a clear UnknownUser."""
        email = (email or "").strip()
        if "@" not in email:
            raise UnknownUser(
                f"'{email}' is not an email address; give the CRM user's email, e.g. --as alice@example.com"
            )
        found = self.crm.user_by_email(email)
        if found is None:
            raise UnknownUser(
                f"no CRM user has the email {email}; ask your CRM administrator to set it as "
                "your email address in Sage CRM (Administration | Users)"
            )
        if found.inactive:
            raise UnknownUser(
                f"the CRM user {email} is {found.inactive} in Sage CRM, so not a salesperson; "
                "ask your CRM administrator (Administration | Users)"
            )
        return found

    def _stored(self, user: CrmUser) -> StoredUser:
        """The user's state row. If the email (so the mailbox) was handed over from another
        CRM user whose own email has since changed, that row moves to its new email first."""
        try:
            return self.store.ensure_user(user.id, user.email)
        except EmailTaken as taken:
            other = self.crm.user_by_id(taken.crm_user_id)
            if other is not None and other.email and other.email != user.email:
                self.store.ensure_user(other.id, other.email)
                return self.store.ensure_user(user.id, user.email)
            raise UnknownUser(
                f"the email {user.email} belongs to two CRM users (ids {taken.crm_user_id} and "
                f"{user.id}); ask your CRM administrator to give each user their own email"
            ) from None

    def remember_slack_user(
        self, slack_user_id: str, email: str, tz: str | None = None, *, replace: bool = False
    ) -> CrmUser:
        """Map a Slack account to the CRM user with `email`. SlackIdTaken when another Slack
        account already has that user, unless `replace` (the other one is gone)."""
        user = self.user(email)
        stored = self._stored(user)
        if stored.slack_user_id and stored.slack_user_id != slack_user_id and not replace:
            raise SlackIdTaken(stored.slack_user_id)
        self.store.set_slack_user(stored.id, slack_user_id, tz)
        return user

    # How long a Slack user's email, membership and time zone are trusted before Slack is
    # asked again: someone made a guest, removed from the workspace or given another
    # address must not keep acting for long (issue 22.5: an hour at most; at once when
    # Slack sends user_change, see `recheck_slack_user`).
    SLACK_PROFILE_TTL = timedelta(hours=1)

    def recheck_slack_user(self, slack_user_id: str) -> bool:
        """Slack says this user changed (user_change): their next request asks Slack again
        whether they are still a full member with that email. False if not mapped."""
        return self.store.expire_slack_check(slack_user_id)

    def slack_email(self, slack_user_id: str) -> str | None:
        """The cached email of a Slack user, or None when unknown or due a fresh look."""
        stored = self.store.user_by_slack(slack_user_id)
        if stored is None or stored.slack_checked_at is None:
            return None
        if utcnow() - stored.slack_checked_at > self.SLACK_PROFILE_TTL:
            return None
        return stored.email

    # -- finding people ------------------------------------------------------------------

    # A CRM this small is indexed on the first search (a few seconds); a bigger one is
    # indexed by `crm-contacts index build` or the clock, and searched in the CRM meanwhile.
    INDEX_ON_FIRST_SEARCH_MAX = 50_000

    def search(self, user: CrmUser, query: str, *, limit: int = 10, offset: int = 0) -> SearchPage:
        try:
            parsed = parse_query(query)
        except SearchError as exc:
            raise BadQuery(str(exc)) from None
        mine = self.store.subscriptions(self._stored(user).id)
        found = self._search_index(parsed)
        if found is not None:
            page = found[offset : offset + limit] if limit else found[offset:]
            views = [replace(p, in_list=p.id in mine) for p in page]
            return SearchPage(query.strip(), len(found), offset, limit, views)
        ranked = search_ids(self.crm, query)
        ids = ranked[offset : offset + limit] if limit else ranked[offset:]
        people = self.crm.people_by_ids(ids)  # only the shown page is loaded in full
        return SearchPage(
            query=query.strip(),
            total=len(ranked),
            offset=offset,
            limit=limit,
            people=[view(people[i], in_list=i in mine) for i in ids if i in people],
        )

    def _search_index(self, parsed) -> Sequence[PersonView] | None:  # type: ignore[no-untyped-def]
        """The index's answer; None (search the CRM) while it is missing or being built."""
        found = self.index.search(parsed)
        if found is not None:
            return found
        if (
            not self._said_fallback
            and not self.index.status().building
            and (self.crm.count_live_people() <= self.INDEX_ON_FIRST_SEARCH_MAX)
        ):
            try:
                self.index.build()
                return self.index.search(parsed)
            except IndexBusy:
                pass
            except SQLAlchemyError as exc:  # the CRM's search still answers; the log says why
                log.error(
                    "people index build failed",
                    extra={"event": "index_build_failed", "error": type(exc).__name__},
                )
        if not self._said_fallback:  # said once; the first search alone tries a build
            self._said_fallback = True
            log.warning(
                "people index not built yet: searching the CRM directly; "
                "run `crm-contacts index build` (the clock builds it too)",
                extra={"event": "index_fallback"},
            )
        return None

    def person(self, user: CrmUser, person_id: int) -> PersonView:
        person = self.crm.people_by_ids([person_id]).get(person_id)
        if person is None or person.deleted:
            raise UnknownPerson(f"no CRM person has the id {person_id}; find people with search")
        mine = self.store.subscriptions(self._stored(user).id)
        return view(person, in_list=person_id in mine)

    def _live_people(self, person_ids: Iterable[int]) -> dict[int, CrmPerson]:
        ids = list(dict.fromkeys(int(i) for i in person_ids))
        found = {pid: p for pid, p in self.crm.people_by_ids(ids).items() if not p.deleted}
        missing = [pid for pid in ids if pid not in found]
        if missing:
            listed = ", ".join(str(m) for m in missing[:5])
            raise UnknownPerson(f"no CRM person has the id {listed}; find people with search")
        return {pid: found[pid] for pid in ids}

    # -- My CRM Contacts -----------------------------------------------------------------

    def add(
        self, user: CrmUser, person_ids: Iterable[int], *, source: str = "search", actor: str = ""
    ) -> AddResult:
        """Add people to the user's list; already-added people are reported, not added twice."""
        people = self._live_people(person_ids)
        if not people:
            raise BadQuery("nobody to add: give at least one person")
        stored = self._stored(user)
        names = {pid: p.name for pid, p in people.items()}
        new = set(self.store.add_subscriptions(stored.id, names, source, actor or user.email))
        self.rules.picked(stored.id, names, source)  # by hand from now on, even if a rule had them
        result = AddResult()
        for pid, person in people.items():
            (result.added if pid in new else result.already).append(view(person, in_list=True))
        return result

    def group(self, user: CrmUser) -> list[PersonView]:
        """Everyone whose Account Manager is the user (Sage's Add Group Of Contacts)."""
        mine = self.store.subscriptions(self._stored(user).id)
        return [view(p, in_list=p.id in mine) for p in self.crm.people_managed_by(user.id)]

    def add_group(self, user: CrmUser, *, actor: str = "") -> AddResult:
        people = self.crm.people_managed_by(user.id)
        if not people:
            return AddResult()
        return self.add(user, [p.id for p in people], source="group", actor=actor)

    def remove(self, user: CrmUser, person_ids: Iterable[int], *, actor: str = "") -> RemoveResult:
        """Take people off the user's list; the next sync unlinks (never deletes) them."""
        ids = list(dict.fromkeys(int(i) for i in person_ids))
        stored = self._stored(user)
        removed = set(self.store.remove_subscriptions(stored.id, ids, actor or user.email))
        self.rules.removed(stored.id, removed)  # a rule does not bring them back
        people = self.crm.people_by_ids(removed)
        result = RemoveResult(not_in_list=[pid for pid in ids if pid not in removed])
        for pid in ids:
            if pid in removed:
                person = people.get(pid)
                result.removed.append(
                    view(person) if person else PersonView(pid, "", "", f"person {pid}", "", "", "")
                )
        return result

    def my_list(self, user: CrmUser) -> list[PersonView]:
        """The user's list, each with its sync status, sorted by name."""
        stored = self._stored(user)
        subs = self.store.subscriptions(stored.id)
        links = self.store.links(stored.id)
        people = self.crm.people_by_ids(set(subs) | set(links))
        failed = self._last_failures(stored.id)
        sources = self.rules.sources(stored.id)
        out = []
        for pid in set(subs) | set(links):
            person = people.get(pid)
            if pid in failed:
                status = f"failed: {failed[pid]}"
            elif pid not in subs:
                status = "pending removal"
            elif person is None or person.deleted:
                status = "pending delete (deleted in the CRM)"
            elif pid in links:
                status = (
                    "synced"
                    if links[pid].fingerprint == person.fields.fingerprint()
                    else "pending update"
                )
            else:
                status = "pending add"
            v = (
                view(person, in_list=pid in subs, status=status)
                if person
                else PersonView(
                    pid, "", "", f"person {pid}", "", "", "", in_list=pid in subs, status=status
                )
            )
            why = sources.get(pid, ())
            out.append(replace(v, sources=why, why=describe_sources(why)))
        out.sort(key=lambda v: (v.last_name.casefold(), v.first_name.casefold(), v.id))
        return out

    def _last_failures(self, user_id: int) -> dict[int, str]:
        runs = self.store.runs(user_id, limit=1)
        if not runs or not runs[0].result:
            return {}
        return {f["id"]: f["reason"] for f in runs[0].result.get("failures", [])}

    # -- syncing -------------------------------------------------------------------------

    def sync(
        self,
        user: CrmUser,
        *,
        dry_run: bool = False,
        allow_mass_delete: bool = False,
        allow_mass_edit: bool = False,
        trigger: str = "manual",
        progress: Callable[[int], None] | None = None,
        stored: StoredUser | None = None,
        on_record: OnRecord | None = None,
        snapshot: PeopleSnapshot | None = None,
        claimed: Claimed | None = None,
    ) -> SyncResult:
        """`stored`: the user's state row when the caller just read it (the scheduler),
        used as is while it still matches the CRM user; `on_record`, `snapshot` (the
        cycle's CRM people) and `claimed` (the mailbox lock the caller holds): see
        sync_mailbox."""
        if stored is None or (stored.crm_user_id, stored.email) != (
            user.id,
            user.email.strip().lower(),
        ):
            stored = self._stored(user)
        if trigger == "manual" and not dry_run:  # the clock keeps them before its syncs
            self.rules.keep()
        mailbox = self.mailbox_factory(self.settings, stored.mailbox)
        try:
            result = sync_mailbox(
                self.store,
                self.crm,
                mailbox,
                stored,
                self.settings,
                dry_run=dry_run,
                allow_mass_delete=allow_mass_delete,
                trigger=trigger,
                progress=progress,
                writer=self.writer,
                allow_mass_edit=allow_mass_edit,
                on_record=on_record,
                snapshot=snapshot,
                claimed=claimed,
            )
            metrics.record_sync(metrics.target_name(mailbox, self.settings.mailbox_backend), result)
        finally:
            mailbox.close()
        if result.error and not result.busy and self.settings.mailbox_backend == "hybrid":
            self.targets.recheck(stored.mailbox)  # it may have moved: ask Graph again
        return result

    def sync_stored(self, stored: StoredUser, **kwargs: object) -> SyncResult:
        """Sync a mailbox known to the state store (the scheduler's and `sync --all`'s path)."""
        user = self.crm.user_by_id(stored.crm_user_id)
        if user is None or user.inactive:
            why = user.inactive if user else "gone"
            return SyncResult(
                mailbox=stored.mailbox,
                error=f"the CRM user is {why} in Sage CRM, so not a salesperson; nothing synced",
            )
        return self.sync(user, **kwargs)  # type: ignore[arg-type]

    def check_mailbox(self, user: CrmUser) -> list[str]:
        address = self._stored(user).mailbox
        mailbox = self.mailbox_factory(self.settings, address)
        try:
            kind, why = describe(self.settings, address, self.targets)
            served = f"Served by {LABELS.get(kind, kind)}: {why}."
            paused = self.write_back_paused()
            return [
                served,
                *mailbox.check(),
                self.write_back_status(),
                *([paused] if paused else []),
            ]
        finally:
            mailbox.close()

    def reset_mailbox(self, user: CrmUser) -> str:
        """Forget the target's saved state for the user's mailbox (delta link, item ids):
        the next sync finds its contacts again by CRM id (no twin, nothing forgotten)."""
        address = self._stored(user).mailbox
        try:
            with self.store.mailbox_lock(address):  # not while a sync of it runs
                mailbox = self.mailbox_factory(self.settings, address)
                try:
                    mailbox.forget_state()
                finally:
                    mailbox.close()
                self.targets.forget(address)
        except MailboxBusy:
            raise EngineError(
                f"a sync of {address} is running; reset it when that sync is done"
            ) from None
        return address

    # -- looking back --------------------------------------------------------------------

    def status(self, user: CrmUser) -> MailboxStatus:
        return self._status(self._stored(user))

    def statuses(self) -> list[MailboxStatus]:
        return [self._status(u) for u in self.store.users()]

    def _status(self, stored: StoredUser) -> MailboxStatus:
        subs, linked = self.store.counts(stored.id)
        state = self.store.mailbox_state(stored.id)
        next_due = state.next_due_at
        if (
            next_due is None
            and state.list_changed_at
            and (state.last_run_at is None or state.list_changed_at > state.last_run_at)
        ):
            next_due = state.list_changed_at + timedelta(
                seconds=self.settings.sync_interval_seconds
            )
        target, target_reason = describe(self.settings, stored.mailbox, self.targets)
        return MailboxStatus(
            target=target,
            target_reason=target_reason,
            email=stored.email,
            mailbox=stored.mailbox,
            subscriptions=subs,
            linked=linked,
            last_run_at=state.last_run_at,
            last_status=state.last_status,
            last_error=state.last_error,
            last_success_at=state.last_success_at,
            next_due_at=next_due,
            consecutive_failures=state.consecutive_failures,
            write_back_notes=self._last_admin_notes(stored.id),
        )

    def _last_admin_notes(self, user_id: int) -> list[str]:
        runs = self.store.runs(user_id, limit=1)
        return list((runs[0].result or {}).get("admin_notes", [])) if runs else []

    def write_back_paused(self) -> str | None:
        """Why write-back is paused after Sage refused our login, or None (issue 19)."""
        return write_back_paused(self.store)

    def why(self, user: CrmUser, person_id: int) -> list[Event]:
        """The audit trail of one person in the user's mailbox, oldest first."""
        return self.store.events(self._stored(user).id, person_id=person_id)

    def activity(self, user: CrmUser, since: datetime, until: datetime) -> Activity:
        """What the syncs did for the user between `since` and `until`."""
        stored = self._stored(user)
        activity = Activity(since=since, until=until)
        runs = [
            r
            for r in self.store.runs(stored.id, since=since, limit=10000)
            if not r.dry_run and r.started_at < until
        ]
        activity.runs = len(runs)
        for run in reversed(runs):
            data = run.result or {}
            activity.possible_duplicates.extend(
                d
                for d in data.get("possible_duplicates", [])
                if d not in activity.possible_duplicates
            )
            activity.warnings.extend(
                w for w in data.get("warnings", []) if w not in activity.warnings and w != run.error
            )
            if run.error and run.error not in activity.errors:
                activity.errors.append(run.error)
        names = {}
        events = [
            e
            for e in self.store.events(stored.id, since=since, until=until)
            if e.run_id is not None
        ]
        ids = {e.person_id for e in events if e.person_id is not None}
        for pid, person in self.crm.people_by_ids(ids).items():
            names[pid] = person.name
        for e in events:
            if e.person_id is None or e.action in ("held",):
                continue
            activity.outcomes.append(
                Outcome(
                    e.person_id, names.get(e.person_id, f"person {e.person_id}"), e.action, e.reason
                )
            )
        return activity


__all__ = ["CrmError", "Engine", "EngineError"]
