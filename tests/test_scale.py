"""What one clock cycle costs as a company grows (issue 22, item 6), counted in database
statements rather than timed (the times are bench/bench_scale.py's): a change seen by
many mailboxes reads its CRM people once for the cycle, never a stale copy, and the
scheduler's bookkeeping rides on the sync's own writes.

The embedded CRM and the real local target, an injected clock; nothing of ours mocked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event
from test_schedule import Clock, CountingTarget, contacts, team_sharing_one_person

from sync_engine.config import load_settings
from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.mailbox import open_mailbox
from sync_engine.schedule import Scheduler
from sync_engine.service import Engine

MAILBOXES = 20
PEOPLE_READ = 'SELECT "Person"."Pers_PersonId", "Person"."Pers_CompanyId",'


class Statements:
    """Every statement an engine sends, by its first word."""

    def __init__(self, *engines) -> None:  # type: ignore[no-untyped-def]
        self.seen: Counter[str] = Counter()
        for db in engines:
            event.listen(db, "before_cursor_execute", self._record)

    def _record(self, _conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        self.seen[" ".join(statement.split()[:3])] += 1

    def total(self) -> int:
        return sum(self.seen.values())


@pytest.fixture
def team(home: Path) -> Iterator[tuple[Engine, EmbeddedCrm, int, list[str]]]:
    """20 salespeople, each listing a person of their own and one they all share."""
    engine = Engine(load_settings(), mailbox_factory=CountingTarget())
    crm, shared, emails = team_sharing_one_person(engine, MAILBOXES)
    yield engine, crm, shared, emails
    engine.close()


def test_a_change_listed_by_many_mailboxes_reads_its_people_once_for_the_cycle(team) -> None:  # type: ignore[no-untyped-def]
    engine, crm, shared, emails = team
    clock = Clock()
    scheduler = Scheduler(engine, now=clock)
    assert len(scheduler.run_cycle().synced) == MAILBOXES
    crm.update_person(shared, title="Head of Buying")
    clock.advance(seconds=60)
    counted = Statements(engine.crm.engine)
    changed = scheduler.run_cycle()
    assert sorted(changed.synced) == emails
    for email in emails:
        assert contacts(engine, email)["Shared Customer"].fields.job_title == "Head of Buying"
    # The people are read twice in the whole cycle (the search index's refresh, and once
    # for every sync), not once per mailbox; per sync are left the CRM user and the CRM's
    # latest change (the watermark). Before: 5 statements per sync, 121 in all.
    shown = "\n".join(f"{n} {text[:70]}" for text, n in counted.seen.items())
    assert counted.seen[PEOPLE_READ] == 2, shown
    assert counted.total() <= 2 * MAILBOXES + 25, shown


def test_a_crm_change_during_the_cycle_is_never_hidden_by_the_cycles_copy(home: Path) -> None:
    """The first mailbox's sync changes the shared person in the CRM after the cycle read
    its people; every later sync of the cycle must see the new value."""
    state = {"engine": None, "changed": False}

    def target(settings, address):  # type: ignore[no-untyped-def]
        if not state["changed"]:  # as the cycle's first sync starts: someone edits the CRM
            state["changed"] = True
            EmbeddedCrm(state["engine"].crm).update_person(shared, title="Changed mid-cycle")  # type: ignore[union-attr]
        return open_mailbox(settings, address)

    engine = Engine(load_settings(), mailbox_factory=target)
    state["engine"] = engine
    _, shared, emails = team_sharing_one_person(engine, 5)
    try:
        report = Scheduler(engine, now=Clock()).run_cycle()
        assert sorted(report.synced) == emails
        titles = {e: contacts(engine, e)["Shared Customer"].fields.job_title for e in emails}
        first = [e for e, title in titles.items() if title == "Buyer"]
        assert len(first) <= 1, titles  # only the sync already under way may have missed it
        assert sum(title == "Changed mid-cycle" for title in titles.values()) >= 4, titles
    finally:
        engine.close()
