"""The `clock` process on the embedded default (SQLite): change-driven cycles, back-off,
the daily reconcile, daily digests through the Slack stand-in, and the process itself.

Time is the test's: the scheduler reads an injected clock the tests move forward, never
a sleep. Mailbox requests are counted at the real local target, wrapped by a counting
`mailbox_factory` (the same seam production uses to pick EWS or Graph).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from servers.slack import BOT_TOKEN, SlackStandIn, all_text
from sqlalchemy import create_engine, event, text, update

from bot.cli import _slack_posters
from sync_engine import queue, tables
from sync_engine.config import Settings, load_settings
from sync_engine.crm import schema as s
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.due import Policy, decide, summary_slot
from sync_engine.mailbox import open_mailbox
from sync_engine.mailbox.base import Mailbox, MailboxError
from sync_engine.mailbox.local import LocalMailbox
from sync_engine.model import WriteResult
from sync_engine.schedule import Scheduler
from sync_engine.service import Engine

BIN = Path(sys.executable).parent
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"

# A scheduler process whose mailbox link is slow (the local target; each write takes DELAY
# seconds more, after the target acted, a listing DELAY/4), so a test can stop or kill it
# mid-sync — most likely between a mailbox write and its record in the state store.
SLOW_WORKER = """
import sys, time
from sync_engine.config import load_settings
from sync_engine.logs import setup_logging
from sync_engine.mailbox import open_mailbox
from sync_engine.schedule import Scheduler, run_forever
from sync_engine.service import Engine

DELAY = float(sys.argv[1])


class SlowTarget:
    def __init__(self, inner):
        self.inner, self.address, self.batch_size = inner, inner.address, inner.batch_size

    @property
    def requests(self):
        return self.inner.requests

    def list_contacts(self):
        time.sleep(DELAY / 4)
        yield from self.inner.list_contacts()

    def _slow(self, method, items):
        result = getattr(self.inner, method)(items)
        time.sleep(DELAY)  # the write reached the mailbox; its record has not
        return result

    def create(self, items):
        return self._slow("create", items)

    def update(self, changes):
        return self._slow("update", changes)

    def delete(self, ids):
        return self._slow("delete", ids)

    def check(self):
        return self.inner.check()

    def __getattr__(self, name):  # kind, target_id, find, as_held, forget_state
        return getattr(self.inner, name)

    def close(self):
        self.inner.close()


settings = load_settings()
setup_logging(settings.log_format)
engine = Engine(settings, mailbox_factory=lambda s, a: SlowTarget(open_mailbox(s, a)))
run_forever(Scheduler(engine))
"""


# -- the test's clock and target ---------------------------------------------------------


class Clock:
    """The scheduler's time, moved by the test."""

    def __init__(self) -> None:
        self.t = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **delta: float) -> datetime:
        self.t += timedelta(**delta)
        return self.t


class CountedMailbox:
    """The real local target, counted per mailbox; `down` addresses fail like an outage."""

    def __init__(self, inner: LocalMailbox, target: CountingTarget) -> None:
        self.inner, self.target = inner, target
        self.address, self.batch_size = inner.address, inner.batch_size

    @property
    def requests(self) -> int:
        return self.inner.requests

    def list_contacts(self):  # type: ignore[no-untyped-def]
        if self.address in self.target.down:
            self.inner.requests += 1
            raise MailboxError("the mailbox server did not answer; the next sync retries")
        return self.inner.list_contacts()

    def create(self, items):  # type: ignore[no-untyped-def]
        return self.inner.create(items)

    def update(self, changes):  # type: ignore[no-untyped-def]
        return self.inner.update(changes)

    def delete(self, item_ids):  # type: ignore[no-untyped-def]
        return self.inner.delete(item_ids)

    def check(self) -> list[str]:
        return self.inner.check()

    def __getattr__(self, name: str) -> Any:  # kind, target_id, find, as_held, forget_state
        return getattr(self.inner, name)

    def close(self) -> None:
        self.target.requests[self.address] += self.inner.requests
        self.inner.close()


class CountingTarget:
    """A `mailbox_factory`: opens the real local target and counts opens and requests."""

    def __init__(self) -> None:
        self.opens: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.down: set[str] = set()

    def __call__(self, settings: Settings, address: str) -> Mailbox:
        inner = open_mailbox(settings, address)
        assert isinstance(inner, LocalMailbox)
        self.opens[address] += 1
        return CountedMailbox(inner, self)  # type: ignore[return-value]

    def total(self) -> int:
        return sum(self.requests.values())


def contacts(engine: Engine, address: str) -> dict[str, Any]:
    box = LocalMailbox(engine.settings.local_mailbox_url, address)
    try:
        return {c.fields.full_name(): c for page in box.list_contacts() for c in page}
    finally:
        box.close()


def state(engine: Engine, email: str) -> queue.MailboxRow:
    user = engine.store.user_by_email(email)
    assert user is not None
    row = queue.mailbox(engine.store, user.id)
    assert row is not None
    return row


@pytest.fixture
def target() -> CountingTarget:
    return CountingTarget()


@pytest.fixture
def engine(home: Path, target: CountingTarget) -> Iterator[Engine]:
    e = Engine(load_settings(), mailbox_factory=target)
    yield e
    e.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def demo(engine: Engine) -> Engine:
    """The demo CRM; Alice lists the Acme people, Bob the Design Right people."""
    seed_demo(engine.crm)
    alice, bob = engine.user(ALICE), engine.user(BOB)
    engine.add(alice, [p.id for p in engine.search(alice, 'company:"Acme Corp"').people])
    engine.add(bob, [p.id for p in engine.search(bob, 'company:"Design Right Inc."').people])
    return engine


def team_sharing_one_person(engine: Engine, count: int) -> tuple[EmbeddedCrm, int, list[str]]:
    """`count` salespeople (rep00@…), each listing a person of their own and one they all
    share ("Shared Customer", a Buyer at Big Co): the CRM, the shared person, the emails."""
    crm = EmbeddedCrm(engine.crm)
    shared = crm.add_person(first="Shared", last="Customer", company="Big Co", title="Buyer")
    emails = []
    for n in range(count):
        email = f"rep{n:02d}@example.com"
        user = engine.crm.user_by_id(crm.add_user(email, "Rep", str(n)))
        own = crm.add_person(first="Own", last=f"Lead{n:02d}", company="Small Co")
        engine.add(user, [own, shared])  # type: ignore[arg-type]
        emails.append(email)
    return crm, shared, emails


def person_id(engine: Engine, first: str, last: str) -> int:
    with engine.crm.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    'SELECT "Pers_PersonId" FROM "Person" WHERE "Pers_FirstName" = :f AND "Pers_LastName" = :l'
                ),
                {"f": first, "l": last},
            ).scalar_one()
        )


# -- the rules, as pure functions -----------------------------------------------------------


def _row(**values: Any) -> queue.MailboxRow:
    from sync_engine.state.rows import StoredUser

    base: dict[str, Any] = dict(
        user=StoredUser(1, 1, "a@example.com", "a@example.com"),
        list_changed_at=None,
        last_run_at=None,
        last_status=None,
        last_error=None,
        last_success_at=None,
        crm_watermark=None,
        consecutive_failures=0,
        next_due_at=None,
        reconcile_at=None,
        summary_until=None,
    )
    base.update(values)
    return queue.MailboxRow(**base)


def test_backoff_doubles_from_two_intervals_and_stops_at_an_hour():
    policy = Policy(interval=timedelta(seconds=60))
    waits = [policy.backoff(n).total_seconds() for n in range(1, 8)]
    assert waits == [120, 240, 480, 960, 1920, 3600, 3600]
    assert policy.backoff(10_000) == timedelta(hours=1)


def test_decide_names_every_reason_and_respects_back_off():
    policy = Policy()
    t0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    synced = dict(
        last_status="ok", last_run_at=t0, last_success_at=t0, reconcile_at=t0 + timedelta(hours=24)
    )
    assert decide(_row(list_changed_at=t0), t0, False, policy).reasons == (
        "first sync",
        "list changed",
    )
    assert not decide(_row(**synced), t0, False, policy).due
    assert decide(
        _row(**synced, list_changed_at=t0 + timedelta(seconds=1)), t0, False, policy
    ).reasons == ("list changed",)
    assert decide(_row(**synced), t0, True, policy).reasons == ("crm changed",)
    assert decide(_row(**synced), t0 + timedelta(hours=24), False, policy).reasons == ("reconcile",)
    failed = dict(
        last_status="failed",
        last_run_at=t0,
        last_success_at=t0 - timedelta(hours=1),
        consecutive_failures=3,
        next_due_at=t0 + timedelta(minutes=8),
    )
    waiting = decide(_row(**failed), t0 + timedelta(minutes=7), True, policy)
    assert not waiting.due and waiting.backing_off_until == t0 + timedelta(minutes=8)
    assert decide(_row(**failed), t0 + timedelta(minutes=8), True, policy).reasons == (
        "retry",
        "crm changed",
    )
    # a failure recorded by a hand-run sync has no next_due_at: back off from its last run
    manual = {**failed, "next_due_at": None}
    assert not decide(_row(**manual), t0 + timedelta(minutes=7), False, policy).due
    assert decide(_row(**manual), t0 + timedelta(minutes=8), False, policy).due
    partial = dict(synced, last_status="partial", next_due_at=t0 + timedelta(minutes=15))
    assert not decide(_row(**partial), t0 + timedelta(minutes=14), False, policy).due
    assert decide(_row(**partial), t0 + timedelta(minutes=15), False, policy).reasons == ("retry",)


def test_summary_slot_is_the_users_local_hour():
    grace = timedelta(hours=4)
    # New York on summer time (from 8 March 2026): 08:00 is 12:00 UTC
    assert summary_slot(
        datetime(2026, 3, 10, 12, 5, tzinfo=UTC), "America/New_York", "08:00", grace
    ) == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    # ... and on winter time: 13:00 UTC
    assert summary_slot(
        datetime(2026, 3, 2, 13, 5, tzinfo=UTC), "America/New_York", "08:00", grace
    ) == datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
    # not yet 08:00 there, and yesterday's is more than the grace ago
    assert (
        summary_slot(datetime(2026, 3, 10, 11, 59, tzinfo=UTC), "America/New_York", "08:00", grace)
        is None
    )
    # half-hour zones, and the day before in UTC
    assert summary_slot(
        datetime(2026, 3, 10, 3, 0, tzinfo=UTC), "Asia/Kolkata", "08:00", grace
    ) == datetime(2026, 3, 10, 2, 30, tzinfo=UTC)
    assert (
        summary_slot(datetime(2026, 3, 10, 1, 0, tzinfo=UTC), "Pacific/Auckland", "08:00", grace)
        is None
    )
    assert summary_slot(
        datetime(2026, 3, 9, 19, 30, tzinfo=UTC), "Pacific/Auckland", "08:00", grace
    ) == datetime(2026, 3, 9, 19, 0, tzinfo=UTC)
    # unknown or missing zone: UTC
    for tz in ("Mars/Olympus_Mons", None, ""):
        assert summary_slot(
            datetime(2026, 3, 10, 8, 1, tzinfo=UTC), tz, "08:00", grace
        ) == datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


# -- change-driven cycles ---------------------------------------------------------------------


def test_thousand_idle_mailboxes_cost_no_mailbox_request_and_one_change_reaches_its_30(
    home: Path, target: CountingTarget, clock: Clock
):
    engine = Engine(load_settings(), mailbox_factory=target)
    crm = EmbeddedCrm(engine.crm)
    shared = crm.add_person(first="Shared", last="Buyer", company="Big Co", title="Buyer")
    lonely = crm.add_person(first="Lonely", last="Lead", company="Nobody Ltd")
    sharers: set[str] = set()
    for n in range(1000):
        email = f"rep{n:04d}@example.com"
        user_id = crm.add_user(email, "Rep", str(n))
        own = crm.add_person(first="Own", last=f"Person{n:04d}", company="Small Co")
        crm_user = engine.crm.user_by_id(user_id)
        assert crm_user is not None
        people = [own]
        if n % 33 == 0 and len(sharers) < 30:
            people.append(shared)
            sharers.add(email)
        engine.add(crm_user, people)
    assert len(sharers) == 30
    scheduler = Scheduler(engine, now=clock)

    first = scheduler.run_cycle()
    assert len(first.synced) == 1000 and not first.failed and first.error is None
    assert target.opens.total() == 1000

    # idle: no mailbox opened, no request; count the database statements too
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        statements.append(statement.split()[0].upper())

    for db in (engine.store.engine, engine.crm.engine):
        event.listen(db, "before_cursor_execute", record)
    before = target.total()
    began = time.perf_counter()
    for _ in range(3):
        clock.advance(seconds=60)
        idle = scheduler.run_cycle()
        assert idle.due == 0 and idle.synced == [] and idle.requests == 0
    idle_seconds = (time.perf_counter() - began) / 3
    assert target.total() == before and target.opens.total() == 1000
    per_cycle = len(statements) / 3
    assert per_cycle <= 4 and set(statements) == {"SELECT"}, statements
    print(
        f"\nidle cycle over 1000 mailboxes: {per_cycle:.0f} queries, {idle_seconds * 1000:.1f} ms"
    )

    # a person nobody lists changes: nobody is synced, and the watermarks move on
    crm.update_person(lonely, title="Still nobody's")
    clock.advance(seconds=60)
    assert scheduler.run_cycle().due == 0
    statements.clear()
    clock.advance(seconds=60)
    assert scheduler.run_cycle().due == 0 and len(statements) <= 4 and set(statements) == {"SELECT"}

    # one person shared by 30 mailboxes changes: exactly those 30, in the next cycle
    crm.update_person(shared, title="Head of Buying")
    clock.advance(seconds=60)
    opened_before = Counter(target.opens)
    began = time.perf_counter()
    changed = scheduler.run_cycle()
    seconds = time.perf_counter() - began
    assert set(changed.synced) == sharers and len(changed.synced) == 30
    assert {a for a in target.opens if target.opens[a] != opened_before[a]} == sharers
    assert changed.requests == 60  # per mailbox: one listing page, one update batch
    for email in sharers:
        assert contacts(engine, email)["Shared Buyer"].fields.job_title == "Head of Buying"
    print(
        f"30 mailboxes synced after one shared change in {seconds:.2f} s, {changed.requests} requests"
    )
    clock.advance(seconds=60)
    assert scheduler.run_cycle().due == 0
    engine.close()


def test_list_company_and_soft_delete_changes_are_synced_hard_deletes_at_the_reconcile(
    demo: Engine, target: CountingTarget, clock: Clock
):
    engine = demo
    scheduler = Scheduler(engine, now=clock)
    assert sorted(scheduler.run_cycle().synced) == [ALICE, BOB]
    assert set(contacts(engine, ALICE)) == {"John Smith", "Ana Isabel García", "Wei Chen"}
    crm = EmbeddedCrm(engine.crm)

    # a hard delete leaves no updated date behind: change-driven cycles cannot see it
    crm.purge_person(person_id(engine, "Wei", "Chen"))
    clock.advance(seconds=60)
    assert scheduler.run_cycle().due == 0
    assert "Wei Chen" in contacts(engine, ALICE)

    # ... the daily full reconcile of every mailbox does
    clock.advance(hours=24)
    reconcile = scheduler.run_cycle()
    assert sorted(reconcile.synced) == [ALICE, BOB]
    assert "Wei Chen" not in contacts(engine, ALICE)
    alice_id = engine.store.user_by_email(ALICE).id  # type: ignore[union-attr]
    assert engine.store.runs(alice_id, limit=1)[0].trigger == "reconcile"
    clock.advance(seconds=60)
    assert scheduler.run_cycle().due == 0  # and not again until tomorrow

    # a Sage soft delete bumps Pers_UpdatedDate: the next cycle removes the contact
    crm.delete_person(person_id(engine, "Ana", "García"))
    clock.advance(seconds=60)
    assert scheduler.run_cycle().synced == [ALICE]
    assert "Ana Isabel García" not in contacts(engine, ALICE)

    # a company renamed in the CRM reaches the people of that company, and only them
    with engine.crm.engine.begin() as conn:
        conn.execute(
            update(s.company)
            .where(s.company.c.Comp_Name == "Design Right Inc.")
            .values(
                Comp_Name="Design Right Group",
                Comp_UpdatedDate=datetime.now(UTC).replace(tzinfo=None),
            )
        )
    clock.advance(seconds=60)
    assert scheduler.run_cycle().synced == [BOB]
    assert {c.fields.company for c in contacts(engine, BOB).values()} == {"Design Right Group"}

    # the list changes (Slack, CLI): the next cycle picks it up
    alice = engine.user(ALICE)
    engine.add(alice, [person_id(engine, "Tom", "Baker")])
    clock.advance(seconds=60)
    assert scheduler.run_cycle().synced == [ALICE]
    assert "Tom Baker" in contacts(engine, ALICE)


def test_a_failing_mailbox_backs_off_up_to_an_hour_and_status_says_why(
    demo: Engine, target: CountingTarget, clock: Clock, cli
):
    engine = demo
    target.down.add(ALICE)
    scheduler = Scheduler(engine, now=clock)
    first = scheduler.run_cycle()
    assert first.failed == [ALICE] and first.synced == [BOB]  # one bad mailbox holds up nobody
    row = state(engine, ALICE)
    assert row.consecutive_failures == 1 and "did not answer" in (row.last_error or "")
    assert row.next_due_at == clock.t + timedelta(minutes=2)

    status = {s["mailbox"]: s for s in json.loads(cli.ok("status", "--json"))["mailboxes"]}
    assert status[ALICE]["last_status"] == "failed"
    assert "did not answer" in status[ALICE]["last_error"]
    assert status[ALICE]["next_due_at"] == row.next_due_at.isoformat()  # type: ignore[union-attr]
    assert status[BOB]["last_status"] == "ok" and status[BOB]["next_due_at"] is None
    assert "did not answer" in cli.ok("status")

    # waiting: the mailbox is not touched until its time, even when one of its people
    # changes (the retry is a full sync, it brings the change along)
    EmbeddedCrm(engine.crm).update_person(person_id(engine, "Wei", "Chen"), title="CTO")
    clock.advance(seconds=60)
    waiting = scheduler.run_cycle()
    assert waiting.due == 0 and waiting.backing_off == 1 and target.opens[ALICE] == 1

    waits = []
    for _ in range(7):
        clock.t = state(engine, ALICE).next_due_at  # type: ignore[assignment]
        assert scheduler.run_cycle().failed == [ALICE]
        row = state(engine, ALICE)
        waits.append(int((row.next_due_at - clock.t).total_seconds()))  # type: ignore[operator]
    assert waits == [240, 480, 960, 1920, 3600, 3600, 3600]
    assert row.consecutive_failures == 8 and target.opens[ALICE] == 8

    # the server is back: the next due cycle syncs it and forgets the failures
    target.down.clear()
    clock.t = row.next_due_at  # type: ignore[assignment]
    recovered = scheduler.run_cycle()
    assert recovered.synced == [ALICE]
    row = state(engine, ALICE)
    assert (row.last_status, row.consecutive_failures, row.next_due_at) == ("ok", 0, None)
    assert len(contacts(engine, ALICE)) == 3
    assert contacts(engine, ALICE)["Wei Chen"].fields.job_title == "CTO"
    clock.advance(seconds=60)
    assert scheduler.run_cycle().due == 0


def test_a_deactivated_crm_user_is_reported_and_backs_off(demo: Engine, clock: Clock):
    engine = demo
    with engine.crm.engine.begin() as conn:
        conn.execute(
            update(s.users).where(s.users.c.User_EmailAddress == BOB).values(User_Deleted=1)
        )
    report = Scheduler(engine, now=clock).run_cycle()
    assert report.failed == [BOB] and report.synced == [ALICE]
    row = state(engine, BOB)
    assert "gone or deactivated" in (row.last_error or "") and row.next_due_at is not None


# -- daily digests -------------------------------------------------------------------------------


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as stand_in:
        yield stand_in
        assert stand_in.violations == []


def test_daily_digest_one_dm_per_user_at_their_local_hour_none_when_nothing_new(
    demo: Engine, slack: SlackStandIn, clock: Clock, monkeypatch: pytest.MonkeyPatch
):
    engine = demo
    # 08:00 is "a few minutes from now" in UTC, so today's activity falls inside the digest
    at = (datetime.now(UTC) + timedelta(minutes=3)).replace(second=0, microsecond=0)
    monkeypatch.setenv("SUMMARY_TIME", at.strftime("%H:%M"))
    monkeypatch.setenv("SUMMARY_CHANNEL", "C_SALES")
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)
    engine.settings = load_settings()
    engine.remember_slack_user("U_ALICE", ALICE, "UTC")
    engine.remember_slack_user("U_BOB", BOB, "America/Sao_Paulo")  # UTC-3: his 08:00 is 3 h later
    engine.remember_slack_user("U_CAROL", CAROL, "Europe/Paris")
    # the posters `crm-contacts scheduler` wires when SLACK_BOT_TOKEN is set
    poster, team = _slack_posters(engine.settings, engine)
    assert poster is not None and team is not None
    scheduler = Scheduler(engine, now=clock, summary_poster=poster, team_poster=team)

    # a day of activity: first syncs, then an update for Alice and a delete for Bob
    scheduler.run_cycle()
    crm = EmbeddedCrm(engine.crm)
    crm.update_person(person_id(engine, "Wei", "Chen"), title="CTO")
    crm.delete_person(person_id(engine, "Priya", "Natarajan"))
    clock.advance(seconds=60)
    assert sorted(scheduler.run_cycle().synced) == [ALICE, BOB]
    # Carol lists someone and removes them again before any sync: nothing happened to her mailbox
    carol = engine.user(CAROL)
    engine.add(carol, [person_id(engine, "Fatima", "Al-Sayed")])
    engine.remove(carol, [person_id(engine, "Fatima", "Al-Sayed")])

    def dms() -> list[Any]:
        return [c for c in slack.of("chat.postMessage") if c.params["channel"].startswith("D")]

    clock.t = at - timedelta(minutes=1)
    assert scheduler.run_summaries() == 0 and slack.of("chat.postMessage") == []

    clock.t = at + timedelta(minutes=1)
    assert scheduler.run_summaries() == 1
    assert scheduler.run_summaries() == 0  # once
    (dm,) = dms()
    assert dm.params["channel"] == "DU_ALICE"
    assert "3 created" in dm.params["text"] and "1 updated" in dm.params["text"]
    body = all_text(dm.blocks)
    for name in ("John Smith", "Ana Isabel García", "Wei Chen"):
        assert name in body
    # the team summary, at SUMMARY_TIME UTC in SUMMARY_CHANNEL: counts per salesperson
    (channel,) = [c for c in slack.of("chat.postMessage") if c.params["channel"] == "C_SALES"]
    team_text = all_text(channel.blocks)
    assert "2 salespeople" in channel.params["text"]
    assert "alice@example.com): 3 created, 1 updated" in team_text
    assert "bob@example.com): 5 created, 1 deleted" in team_text
    assert "carol" not in team_text

    clock.t = at + timedelta(hours=3, minutes=1)  # 08:01 in São Paulo
    assert scheduler.run_summaries() == 1
    bob_dm = dms()[-1]
    assert bob_dm.params["channel"] == "DU_BOB"
    assert "5 created" in bob_dm.params["text"] and "1 deleted" in bob_dm.params["text"]
    assert "Priya Natarajan" in all_text(bob_dm.blocks) and "Zoë Brontë" in all_text(bob_dm.blocks)

    # Carol's 08:00 in Paris came and went: nothing happened to her mailbox, so no DM
    assert [c.params["channel"] for c in dms()] == ["DU_ALICE", "DU_BOB"]
    assert state(engine, CAROL).summary_until is not None  # considered, nothing to say

    # the next day: nothing new for anyone, no message at all
    clock.t = at + timedelta(days=1, hours=3, minutes=2)
    assert scheduler.run_summaries() == 0
    assert len(slack.of("chat.postMessage")) == 3


def test_a_digest_that_fails_to_post_is_retried_not_lost(
    demo: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
):
    engine = demo
    monkeypatch.setenv("SUMMARY_TIME", "08:00")
    engine.settings = load_settings()
    engine.remember_slack_user("U_ALICE", ALICE, "UTC")
    scheduler = Scheduler(engine, now=clock)
    scheduler.run_cycle()
    calls: list[tuple[datetime, datetime]] = []

    def flaky(user, slack_user_id, since, until):  # type: ignore[no-untyped-def]
        calls.append((since, until))
        if len(calls) == 1:
            raise ConnectionError("slack.com unreachable")
        return True

    scheduler.summary_poster = flaky
    clock.t = datetime.now(UTC).replace(hour=8, minute=5, second=0, microsecond=0)
    if clock.t > datetime.now(UTC):
        clock.t -= timedelta(days=1)
    assert scheduler.run_summaries() == 0
    assert scheduler.run_summaries() == 1
    assert scheduler.run_summaries() == 0
    assert calls[0] == calls[1] and len(calls) == 2


def manifest_scopes() -> frozenset[str]:
    """The bot scopes manifest.yml asks for (what an installed app has)."""
    manifest = (Path(__file__).resolve().parent.parent / "manifest.yml").read_text()
    return frozenset(re.findall(r"^\s+- ([a-z:.]+)\s+#", manifest, flags=re.MULTILINE))


def team_rig(
    engine: Engine, slack: SlackStandIn, clock: Clock, monkeypatch: pytest.MonkeyPatch, channel: str
) -> tuple[Scheduler, datetime]:
    """A day of activity and a scheduler whose team summary is due at `at` in `channel`."""
    at = (datetime.now(UTC) + timedelta(minutes=3)).replace(second=0, microsecond=0)
    monkeypatch.setenv("SUMMARY_TIME", at.strftime("%H:%M"))
    monkeypatch.setenv("SUMMARY_CHANNEL", channel)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)
    engine.settings = load_settings()
    _, team = _slack_posters(engine.settings, engine)
    scheduler = Scheduler(engine, now=clock, team_poster=team)
    scheduler.run_cycle()
    return scheduler, at


def test_with_the_manifests_scopes_the_team_summary_reaches_a_public_channel_uninvited(
    demo: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
):
    """chat:write.public (manifest.yml) lets the bot post in a public channel nobody invited
    it to; without it Slack answers `not_in_channel`."""
    with SlackStandIn(scopes=manifest_scopes()) as slack:
        slack.add_channel("C_SALES", private=False, member=False)
        scheduler, at = team_rig(demo, slack, clock, monkeypatch, "C_SALES")
        clock.t = at + timedelta(minutes=1)
        scheduler.run_summaries()
        (posted,) = slack.of("chat.postMessage")
        assert posted.params["channel"] == "C_SALES" and slack.refused() == []
        assert "salespeople with activity" in posted.params["text"]


def test_a_team_channel_the_bot_cannot_post_in_is_one_log_line_and_no_retry(
    demo: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """A private channel the bot is not in answers `channel_not_found`: one clear log line,
    then nothing more (no post, no line) tick after tick until SUMMARY_CHANNEL changes;
    the period is kept and goes to the new channel."""
    with SlackStandIn(scopes=manifest_scopes()) as slack:
        slack.add_channel("C_PRIVATE", private=True, member=False)
        scheduler, at = team_rig(demo, slack, clock, monkeypatch, "C_PRIVATE")
        with caplog.at_level("INFO", logger="crm_contacts.schedule"):
            for minute in range(1, 6):
                clock.t = at + timedelta(minutes=minute)
                scheduler.run_summaries()
        assert [c.error for c in slack.refused("chat.postMessage")] == ["channel_not_found"]
        said = [r for r in caplog.records if "team summary" in r.getMessage()]
        assert len(said) == 1 and said[0].levelname == "ERROR"
        line = said[0].getMessage()
        assert "C_PRIVATE" in line and "channel_not_found" in line and "invite" in line

        # the admin points SUMMARY_CHANNEL at a channel the bot may post in
        slack.add_channel("C_TEAM", private=True, member=True)
        monkeypatch.setenv("SUMMARY_CHANNEL", "C_TEAM")
        demo.settings = load_settings()
        _, scheduler.team_poster = _slack_posters(demo.settings, demo)
        scheduler.settings = demo.settings
        clock.t = at + timedelta(minutes=7)
        scheduler.run_summaries()
        (posted,) = slack.of("chat.postMessage")
        assert posted.params["channel"] == "C_TEAM"
        assert "salespeople with activity" in posted.params["text"]


# -- each user's own digest settings (SLACK_UX 9) ----------------------------------------------


class DigestRig:
    """Alice mapped to Slack in `tz`, the scheduler with the Slack poster, and the test's days.

    The state store stamps runs and events with the real time while the scheduler reads
    the test's clock; `dated` puts the activity since its last call at a moment of the
    test's week, as if the syncs had run then."""

    def __init__(self, engine: Engine, slack: SlackStandIn, clock: Clock, tz: str) -> None:
        self.engine, self.slack, self.clock, self.tz = engine, slack, clock, tz
        engine.remember_slack_user("U_ALICE", ALICE, tz)
        self.alice = engine.user(ALICE)
        poster, _ = _slack_posters(engine.settings, engine)
        self.scheduler = Scheduler(engine, now=clock, summary_poster=poster)
        self.day0 = clock.t.astimezone(ZoneInfo(tz)).date()
        self._seen = (0, 0)

    def local(self, day: int, hhmm: str) -> datetime:
        """`hhmm` on the test's `day` in Alice's zone, as UTC."""
        hour, minute = (int(p) for p in hhmm.split(":"))
        moment = datetime.combine(self.day0 + timedelta(days=day), dtime(hour, minute))
        return moment.replace(tzinfo=ZoneInfo(self.tz)).astimezone(UTC)

    def dated(self, moment: datetime) -> None:
        with self.engine.store.engine.begin() as conn:
            runs, events = self._seen
            conn.execute(
                update(tables.runs)
                .where(tables.runs.c.id > runs)
                .values(started_at=moment, finished_at=moment)
            )
            conn.execute(update(tables.events).where(tables.events.c.id > events).values(at=moment))
            self._seen = (
                conn.execute(text("SELECT max(id) FROM runs")).scalar() or 0,
                conn.execute(text("SELECT max(id) FROM events")).scalar() or 0,
            )

    def change_wei(self, title: str, at: datetime) -> None:
        """Wei Chen (on Alice's list) changes in the CRM; the next cycle syncs it at `at`."""
        EmbeddedCrm(self.engine.crm).update_person(
            person_id(self.engine, "Wei", "Chen"), title=title
        )
        assert ALICE in self.scheduler.run_cycle().synced
        self.dated(at)

    def days_with_a_dm(self, days: range, hhmm: str) -> list[int]:
        """Run the digests a minute after `hhmm` on each day; the days a DM went out."""
        sent = []
        for day in days:
            self.clock.t = self.local(day, hhmm) + timedelta(minutes=1)
            if self.scheduler.run_summaries():
                sent.append(day)
        return sent

    def dms(self) -> list[Any]:
        return [c for c in self.slack.of("chat.postMessage") if c.params["channel"] == "DU_ALICE"]


@pytest.fixture
def rig(
    demo: Engine, slack: SlackStandIn, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], DigestRig]:
    monkeypatch.setenv("SUMMARY_TIME", "08:00")
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)
    demo.settings = load_settings()

    def make(tz: str) -> DigestRig:
        r = DigestRig(demo, slack, clock, tz)
        assert sorted(r.scheduler.run_cycle().synced) == [ALICE, BOB]  # Alice: 3 created
        return r

    return make


def test_a_changed_time_moves_the_dm_to_that_local_hour(rig: Callable[[str], DigestRig]):
    r = rig("Asia/Kolkata")
    r.dated(r.local(0, "07:00"))
    r.clock.t = r.local(0, "07:30")
    r.engine.set_digest_prefs(r.alice, time="17:30", now=r.clock.t)

    assert r.days_with_a_dm(range(1), "08:00") == []  # SUMMARY_TIME is no longer hers
    assert r.days_with_a_dm(range(1), "17:30") == [0]  # 17:30 in Kolkata
    (dm,) = r.dms()
    assert "3 created" in dm.params["text"]
    assert "*Daily digest* at *17:30* your time (Asia/Kolkata)" in all_text(dm.blocks)
    assert r.days_with_a_dm(range(1, 3), "17:30") == []  # nothing new, nothing sent

    # back to SUMMARY_TIME: the next change comes at 08:00 the morning after
    r.clock.t = r.local(2, "18:00")
    r.engine.set_digest_prefs(r.alice, default_time=True, now=r.clock.t)
    r.change_wei("CTO", r.local(2, "20:00"))
    assert r.days_with_a_dm(range(3, 4), "17:30") == []
    assert r.days_with_a_dm(range(3, 5), "08:00") == [3]
    assert "1 updated" in r.dms()[-1].params["text"]
    assert "Wei Chen" in all_text(r.dms()[-1].blocks)


def test_weekly_sends_once_a_week_on_its_day_with_the_weeks_counts(
    rig: Callable[[str], DigestRig],
):
    r = rig("America/Chicago")
    r.dated(r.local(0, "07:00"))  # Alice's first sync: 3 created
    r.clock.t = r.local(0, "07:30")
    weekday = (r.day0 + timedelta(days=3)).weekday()
    prefs = r.engine.set_digest_prefs(
        r.alice, frequency="weekly", weekday=weekday, time="09:00", now=r.clock.t
    )
    assert prefs.weekly
    r.change_wei("CTO", r.local(1, "12:00"))  # 1 updated, the day after

    assert r.days_with_a_dm(range(4), "09:00") == [3]
    first = r.dms()[-1]
    # the whole week: the first sync three days before is in it, not only the last day
    assert "3 created" in first.params["text"] and "1 updated" in first.params["text"]
    assert "*Weekly digest*" in all_text(first.blocks)
    assert state(r.engine, ALICE).summary_until == r.local(3, "09:00")

    r.change_wei("Chief Technology Officer", r.local(6, "12:00"))
    assert r.days_with_a_dm(range(4, 18), "09:00") == [10]  # once more, a week later
    second = r.dms()[-1]
    # since the last one: this week's update only
    assert "1 updated" in second.params["text"] and "created" not in second.params["text"]
    assert len(r.dms()) == 2


def test_a_snoozed_digest_sends_nothing_until_its_date(rig: Callable[[str], DigestRig]):
    r = rig("Europe/Paris")
    r.dated(r.local(0, "07:00"))
    assert r.days_with_a_dm(range(1), "08:00") == [0]
    r.clock.t = r.local(0, "09:00")  # snoozed from the digest: three days
    prefs = r.engine.set_digest_prefs(r.alice, snooze_days=3, now=r.clock.t)
    assert prefs.snoozed_until == r.day0 + timedelta(days=3)
    r.change_wei("CTO", r.local(1, "12:00"))
    until = state(r.engine, ALICE).summary_until

    assert r.days_with_a_dm(range(1, 3), "08:00") == []
    assert state(r.engine, ALICE).summary_until == until  # skipped, not used up
    assert r.days_with_a_dm(range(3, 5), "08:00") == [3]
    # the first digest after the snooze covers the snoozed days
    assert "1 updated" in r.dms()[-1].params["text"] and len(r.dms()) == 2


def test_a_digest_turned_off_sends_nothing_until_turned_on(rig: Callable[[str], DigestRig]):
    r = rig("America/Sao_Paulo")
    r.clock.t = r.local(0, "06:00")
    r.engine.set_digest_prefs(r.alice, off=True, now=r.clock.t)
    r.dated(r.local(0, "07:00"))  # 3 created: a digest would have said so at 08:00

    assert r.days_with_a_dm(range(3), "08:00") == []
    assert state(r.engine, ALICE).summary_until is None
    r.clock.t = r.local(2, "09:00")
    r.engine.set_digest_prefs(r.alice, off=False, now=r.clock.t)
    r.change_wei("CTO", r.local(2, "12:00"))
    assert r.days_with_a_dm(range(2, 5), "08:00") == [3]
    assert "1 updated" in r.dms()[-1].params["text"] and len(r.dms()) == 1


# -- the process -------------------------------------------------------------------------------


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    env.update(CRM_CONTACTS_HOME=str(home), SYNC_INTERVAL_SECONDS="1", LOG_FORMAT="json", **extra)
    return env


def wait_until(check: Callable[[], object], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def log_lines(path: Path) -> list[dict[str, Any]]:
    """Every line the process wrote, each one JSON (this fails on any other line)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_scheduler_process_json_logs_no_secret_sigterm_and_one_per_sqlite(
    demo: Engine, home: Path, tmp_path: Path, slack: SlackStandIn
):
    secret = "xoxb-0000-not-a-real-token-but-secret"
    env = _env(home, SLACK_BOT_TOKEN=secret, SLACK_API_URL=slack.api_url)
    first_err = tmp_path / "first.err"
    first = subprocess.Popen(
        [str(BIN / "crm-contacts"), "scheduler"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=first_err.open("w"),
    )
    try:
        wait_until(
            lambda: any(line.get("event") == "cycle" for line in log_lines(first_err)),
            what="the first cycle",
        )
        second = subprocess.run(
            [str(BIN / "crm-contacts"), "scheduler"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert "SQLite supports one scheduler process" in second.stderr
        assert f"pid {first.pid}" in second.stderr and "PostgreSQL" in second.stderr
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=15) == 0
    finally:
        if first.poll() is None:
            first.kill()
    lines = log_lines(first_err)
    events = [line.get("event") for line in lines]
    assert events[0] == "started" and events[-1] == "stopped" and "stopping" in events
    synced = [line for line in lines if line.get("event") == "sync"]
    assert sorted(line["mailbox"] for line in synced) == [ALICE, BOB]
    assert {line["status"] for line in synced} == {"ok"}
    assert all(line["level"] and line["ts"] and line["msg"] for line in lines)
    assert secret not in first_err.read_text() and secret not in second.stderr
    assert {c.method for c in slack.calls} <= {"auth.test"}  # nobody mapped: no DM


def test_sigterm_mid_sync_finishes_that_mailbox_and_the_next_run_does_the_rest(
    home: Path, tmp_path: Path, engine: Engine
):
    crm = EmbeddedCrm(engine.crm)
    for n in range(4):
        email = f"slow{n}@example.com"
        user = engine.crm.user_by_id(crm.add_user(email))
        engine.add(user, [crm.add_person(first="P", last=f"{n}-{k}") for k in range(3)])  # type: ignore[arg-type]
    err = tmp_path / "worker.err"
    worker = subprocess.Popen(
        [sys.executable, "-c", SLOW_WORKER, "0.4"],
        env=_env(home),
        cwd=tmp_path,
        stderr=err.open("w"),
    )
    runs = create_engine(engine.settings.state_url)
    try:

        def running() -> bool:
            with runs.connect() as conn:
                return bool(
                    conn.execute(
                        text("SELECT count(*) FROM runs WHERE status = 'running'")
                    ).scalar()
                )

        wait_until(running, what="a sync in progress")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    with runs.connect() as conn:
        statuses = Counter(r[0] for r in conn.execute(text("SELECT status FROM runs")))
    assert statuses["running"] == 0 and 1 <= statuses["ok"] < 4  # finished the one it had
    assert log_lines(err)[-1]["event"] == "stopped"

    rest = Scheduler(engine).run_cycle()
    assert len(rest.synced) == 4 - statuses["ok"]
    for n in range(4):
        assert len(contacts(engine, f"slow{n}@example.com")) == 3
    runs.dispose()


def test_log_lines_are_one_json_object_each_and_mask_secrets():
    import io
    import logging

    from sync_engine.logs import setup_logging

    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging("json", stream=stream)
    log = logging.getLogger("crm_contacts.test")
    try:
        log.warning(
            "cannot reach postgresql://crm:hunter2@db.example.com/state with xoxb-123-456-abc",
            extra={"event": "x", "slack_bot_token": "xoxb-1-2-3", "detail": {"password": "pw"}},
        )
        try:
            raise RuntimeError("Authorization: Bearer eyJhbGciOi.secret.part")
        except RuntimeError:
            log.exception("boom\nsecond line")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # a multi-line message and a traceback stay on one line each
    first, second = (json.loads(line) for line in lines)
    assert first["msg"] == "cannot reach postgresql://crm:***@db.example.com/state with xox*-***"
    assert first["slack_bot_token"] == "***" and first["detail"] == {"password": "***"}
    assert first["event"] == "x" and first["level"] == "warning"
    assert "eyJhbGciOi" not in second["exc"] and "RuntimeError" in second["exc"]
    for secret in ("hunter2", "xoxb-", "eyJhbGciOi"):
        assert secret not in stream.getvalue()


def test_people_a_hand_run_sync_failed_are_retried_by_the_clock(
    demo: Engine, target: CountingTarget, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create = CountedMailbox.create
    refuse = {"first": True}

    def create(self: CountedMailbox, items: Any) -> list[WriteResult]:
        if refuse["first"]:  # the server is busy for the first contact of every batch
            return [
                WriteResult(error="server busy", error_kind="throttled"),
                *real_create(self, items[1:]),
            ]
        return real_create(self, items)

    monkeypatch.setattr(CountedMailbox, "create", create)
    scheduler = Scheduler(demo, now=clock)
    alice = demo.user(ALICE)
    demo.add_group(alice)
    by_hand = demo.sync(alice)  # /crm-contacts sync
    assert len(by_hand.failed) == 1 and state(demo, ALICE).last_status == "partial"
    refuse["first"] = False
    before = target.opens[ALICE]
    for _ in range(4):  # an hour of 15-minute cycles
        clock.advance(minutes=15)
        scheduler.run_cycle()
    assert target.opens[ALICE] > before
    assert state(demo, ALICE).last_status == "ok"


def test_a_good_hand_run_sync_ends_the_back_off(
    demo: Engine, target: CountingTarget, clock: Clock
) -> None:
    scheduler = Scheduler(demo, now=clock)
    alice = demo.user(ALICE)
    demo.add_group(alice)
    target.down.add(ALICE)
    for _ in range(4):
        row = state(demo, ALICE)
        clock.t = max(clock.t + timedelta(minutes=1), row.next_due_at or clock.t)
        scheduler.run_cycle()
    assert state(demo, ALICE).next_due_at is not None
    target.down.clear()
    assert demo.sync(alice).error is None  # the user presses Sync now
    row = state(demo, ALICE)
    assert (row.last_status, row.consecutive_failures, row.next_due_at) == ("ok", 0, None)
    assert demo.status(alice).next_due_at is None
