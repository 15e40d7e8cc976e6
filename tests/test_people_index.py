"""Search served from our own people index, on SQLite and PostgreSQL: every kind of typo a
salesperson makes finds the person (and every query word must match), the clock keeps the
index fresh, a refresh never writes into a build, no CRM query runs for a search once it is
built (one user look-up per command), and the CRM is searched directly until then."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, text

from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.index import IndexBusy
from sync_engine.schedule import Scheduler
from sync_engine.service import Engine
from sync_engine.store import utcnow


@pytest.fixture
def engine(engine_on_each_db: Engine) -> Engine:
    e = engine_on_each_db
    writer = EmbeddedCrm(e.crm)
    writer.add_person(
        first="Bob", last="Stone", company="Granite Works", email="bob@granite.example"
    )
    writer.add_person(
        first="Chloé", last="Dubois", company="Lumière SA", email="c.dubois@lumiere.example"
    )
    writer.add_person(
        first="Aiko", last="Tanaka", company="Sakura Trading", email="aiko.tanaka@sakura.example"
    )
    return e


@pytest.fixture
def alice(engine):  # type: ignore[no-untyped-def]
    return engine.user("alice@example.com")


def top(engine, user, query: str, n: int = 10) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.name for p in engine.search(user, query, limit=n).people]


@pytest.mark.parametrize(
    ("query", "person"),
    [
        ("Stone", "Bob Stone"),  # exact
        ("Ston", "Bob Stone"),  # prefix
        ("Xtone", "Bob Stone"),  # first letter wrong
        ("Stine", "Bob Stone"),  # one letter wrong inside
        ("Stne", "Bob Stone"),  # a missing letter (the example)
        ("Sttone", "Bob Stone"),  # a doubled letter
        ("Stoen", "Bob Stone"),  # two neighbours swapped
        ("tSone", "Bob Stone"),  # ... at the start
        ("Natarjan", "Priya Natarajan"),
        ("Ntaarajan", "Priya Natarajan"),
        ("Chne", "Wei Chen"),  # a short word with a transposition
        ("Wie Chen", "Wei Chen"),  # a three-letter word with a transposition
        ("Zoe Bronte", "Zoë Brontë"),  # accents left out
        ("Lópéz", "Maria Lopez"),  # accents added
        ("Chloe Dubios", "Chloé Dubois"),  # accent left out and a transposition
        ("Stone, Bob", "Bob Stone"),  # Last, First
        ("Smith, Jonh", "John Smith"),  # Last, First with a typo
        ("aiko.tan", "Aiko Tanaka"),  # email prefix
        ("jsmith@acme.example", "John Smith"),  # whole email
        ("Granite", "Bob Stone"),  # company word
        ("Sakura Tanaka", "Aiko Tanaka"),  # company word and name
        ("Garnite", "Bob Stone"),  # company word with a typo
        ("obrien", "Seán O'Brien"),  # the apostrophe left out
        ("O'Brien", "Seán O'Brien"),
    ],
)
def test_each_kind_of_typo_finds_the_person(engine, alice, query, person):  # type: ignore[no-untyped-def]
    engine.index.build()
    found = top(engine, alice, query)
    assert person in found, f"{query!r} -> {found}"


def test_the_closest_person_comes_first_and_the_company_filter_is_exact(engine, alice):  # type: ignore[no-untyped-def]
    engine.index.build()
    assert top(engine, alice, "Smiht John Acme")[0] == "John Smith"
    assert top(engine, alice, "Stne")[0] == "Bob Stone"
    page = engine.search(alice, 'company:"design right inc."', limit=0)
    assert page.total == 5 and {p.company for p in page.people} == {"Design Right Inc."}
    assert top(engine, alice, 'Lopez company:"Design Right Inc."') == ["Maria Lopez"]
    assert engine.search(alice, 'company:"Design Right"').total == 0
    assert engine.search(alice, "qqqqzzzz").total == 0


def test_every_query_word_must_match(engine, alice):  # type: ignore[no-untyped-def]
    engine.index.build()
    # a word like nothing in the index (not exactly, by prefix, nor one edit away) used to
    # be dropped, so `add "Zzyzx Andersson"` added Björn Andersson
    for query in ("Zzyzx Andersson", "Natarajan Qqqqq", "Bob Qqqqq", "Stne Zzyzx"):
        assert engine.search(alice, query).total == 0, query
    assert top(engine, alice, "Andersson") == ["Björn Andersson"]
    assert top(engine, alice, "Natarajan") == ["Priya Natarajan"]
    assert "John Smith" in top(engine, alice, "J Smith")  # a one-letter word, by prefix
    assert engine.search(alice, "Q Smith").total == 0


def test_each_query_word_is_one_condition_and_a_word_nobody_has_reads_no_candidates(  # type: ignore[no-untyped-def]
    engine, alice
):
    engine.index.build()
    assert top(engine, alice, "Stne Bob") == ["Bob Stone"]  # a typo: prefix and typo look-ups
    statements: list[str] = []
    event.listen(engine.store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert top(engine, alice, "Stne Bob") == ["Bob Stone"]
    alone = len(statements)
    statements.clear()
    assert top(engine, alice, "Stne Bob-Stne bob") == ["Bob Stone"]  # the same words again
    assert len(statements) == alone, statements
    statements.clear()
    # one word of a hyphenated query word like nothing in the index: nobody has it, so no
    # candidate is read (the people of "Smith" were read and ranked away)
    assert engine.search(alice, "Smith-Qqqqq").total == 0
    assert not [s for s in statements if "index_postings" in s], statements


def test_canonically_equal_text_finds_the_same_people(engine, alice):  # type: ignore[no-untyped-def]
    # composed in the CRM, typed decomposed (a Mac, a pasted PDF), and the other way round
    EmbeddedCrm(engine.crm).add_person(
        first="Rene\u0301e", last="Lefe\u0300vre", company="Cafe\u0301 Noir"
    )
    assert top(engine, alice, "Zoe\u0308 Bronte\u0308") == ["Zo\u00eb Bront\u00eb"]
    assert top(engine, alice, "Ren\u00e9e Lef\u00e8vre") == ["Rene\u0301e Lefe\u0300vre"]
    assert top(engine, alice, 'company:"Caf\u00e9 Noir"') == ["Rene\u0301e Lefe\u0300vre"]
    assert top(engine, alice, 'company:"Lumie\u0300re SA"') == ["Chlo\u00e9 Dubois"]


def test_no_crm_query_for_the_search_itself_one_user_look_up_per_command(engine):  # type: ignore[no-untyped-def]
    engine.index.build()
    clock = [1000.0]
    engine.index.monotonic = lambda: clock[0]  # seconds passing between searches
    statements: list[str] = []
    event.listen(engine.crm.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    looks = []
    for query in ("Stne", "John Smith", "aiko.tan", 'company:"Acme Corp"', "Garnite"):
        statements.clear()
        user = engine.user("alice@example.com")  # as the CLI's --as and the bot do per command
        assert engine.search(user, query).people
        assert statements[0].lstrip().startswith('SELECT "Users"'), statements  # the user
        looks.append(statements[1:])
        clock[0] += 0.3
    # the first search looked at the CRM's latest change (one statement; nothing changed,
    # so nothing else), the next ones within LOOK_EVERY seconds trusted that look
    assert len(looks[0]) == 1 and "max(" in looks[0][0], looks[0]
    assert looks[1:] == [[]] * 4
    clock[0] += engine.index.LOOK_EVERY
    statements.clear()
    engine.search(user, "Garnite")
    assert len(statements) == 1 and "max(" in statements[0]  # one look again, nothing more
    with engine.crm.engine.connect() as conn:  # ... and every part of it an index look-up
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statements[0]).all()
    tables = [
        row[-1]
        for row in plan
        if row[-1].startswith(("SEARCH", "SCAN ")) and "CONSTANT" not in row[-1]
    ]
    assert len(tables) == 7 and all(" USING COVERING INDEX " in row for row in tables), plan
    page = engine.search(user, "Wei Chen")
    person = page.people[0]
    assert (person.email, person.company, person.manager) == (
        "wei.chen@acme.example",
        "Acme Corp",
        "Alice Walker",
    )


def test_the_crm_is_searched_until_the_index_exists_and_that_is_logged_once(engine, alice, caplog):  # type: ignore[no-untyped-def]
    engine.INDEX_ON_FIRST_SEARCH_MAX = 0  # as for a CRM too big to index on a search
    statements: list[str] = []
    event.listen(engine.crm.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with caplog.at_level(logging.WARNING, logger="crm_contacts.index"):
        assert top(engine, alice, "Natarajan") == ["Priya Natarajan"]
        assert top(engine, alice, "Lopez") == ["Maria Lopez"]
    assert statements, "the fallback reads the CRM"
    said = [r for r in caplog.records if getattr(r, "event", "") == "index_fallback"]
    assert len(said) == 1
    assert not engine.index.status().ready
    assert top(engine, alice, "Stne") == []  # the CRM's prefix search misses a first-letters typo
    engine.index.build()
    assert top(engine, alice, "Stne") == ["Bob Stone"]


def test_a_small_crm_is_indexed_on_the_first_search(engine, alice):  # type: ignore[no-untyped-def]
    assert not engine.index.status().ready
    assert top(engine, alice, "Stne") == ["Bob Stone"]
    assert engine.index.status().ready


def test_the_clock_keeps_the_index_fresh(engine, alice):  # type: ignore[no-untyped-def]
    writer = EmbeddedCrm(engine.crm)
    scheduler = Scheduler(engine)
    scheduler.run_cycle()  # the first cycle builds the missing index (a small CRM: in line)
    assert engine.index.status().ready
    new = writer.add_person(first="Greta", last="Lindqvist", company="Fjord AB")
    report = scheduler.run_cycle()  # before anyone searches
    assert report.index is not None and report.index.changed == 1
    assert top(engine, alice, "Lindqvst") == ["Greta Lindqvist"]

    writer.update_person(new, company="Northwind Traders")
    assert scheduler.run_cycle().index.changed == 1  # type: ignore[union-attr]
    assert "Greta Lindqvist" in top(engine, alice, "Northwind")
    assert top(engine, alice, "Fjord") == []

    writer.delete_person(new)  # soft delete, as Sage does
    scheduler.run_cycle()
    assert top(engine, alice, "Lindqvist") == []
    assert engine.index.status().people == 15  # 12 demo people and 3 more


def test_a_hard_deleted_person_leaves_at_the_next_sweep(engine, alice):  # type: ignore[no-untyped-def]
    engine.index.build()
    [stone] = engine.search(alice, "Bob Stone").people
    EmbeddedCrm(engine.crm).purge_person(stone.id)  # the row is gone: no UpdatedDate to see
    clock = [utcnow()]
    scheduler = Scheduler(engine, now=lambda: clock[0])
    scheduler.run_cycle()
    assert top(engine, alice, "Stone") == ["Bob Stone"]  # between sweeps it is still there
    clock[0] += timedelta(hours=1)
    report = scheduler.run_cycle()
    assert report.index is not None and report.index.swept and report.index.removed == 1
    assert top(engine, alice, "Stone") == []


def test_a_rebuild_gives_the_same_answers_as_the_refreshed_index(engine, alice):  # type: ignore[no-untyped-def]
    engine.index.build()
    writer = EmbeddedCrm(engine.crm)
    writer.add_person(first="Greta", last="Lindqvist", company="Granite Works")
    writer.update_person(next(p.id for p in engine.search(alice, "Wei Chen").people), last="Chan")
    engine.index.refresh()
    queries = ("Granite", "Chan", "Chen", "Lindqvist", "Smith", "Desing Right")
    refreshed = {q: top(engine, alice, q, 50) for q in queries}
    counts = word_counts(engine)
    engine.index.build()
    assert {q: top(engine, alice, q, 50) for q in queries} == refreshed
    assert word_counts(engine) == counts  # how many people have each word: search plans by it


def live_set(engine):  # type: ignore[no-untyped-def]
    from sync_engine.index.sets import SETS

    return SETS[engine.index.status().live_set]


def word_counts(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with engine.store.engine.connect() as conn:
        return dict(
            conn.execute(text(f"SELECT word, people FROM {live_set(engine).terms.name}")).all()
        )


def test_index_commands(cli):  # type: ignore[no-untyped-def]
    cli.ok("crm", "seed")
    assert "not built" in cli.ok("index", "status")
    refused = cli("index", "refresh")
    assert refused.code == 1 and refused.err.strip() == (
        "error: the people index is not built yet; run `crm-contacts index build`"
    )
    assert "Indexed 12 people" in cli.ok("index", "build")
    assert "ready: 12 live people" in cli.ok("index", "status")
    assert "John Smith" in cli.ok("search", "smth", "--as", "alice@example.com")
    cli.ok("crm", "add-person", "--first", "Bob", "--last", "Stone")  # indexed at once
    assert "0 people re-read" in cli.ok("index", "refresh")
    assert "Bob Stone" in cli.ok("search", "Stne", "--as", "alice@example.com")
    assert "after a full sweep" in cli.ok("index", "refresh", "--sweep")


def test_add_with_a_word_nobody_has_adds_nobody(cli):  # type: ignore[no-untyped-def]
    cli.ok("crm", "seed")
    cli.ok("index", "build")
    for query in ("Zzyzx Andersson", "Natarajan Qqqqq"):
        refused = cli("add", query, "--as", "alice@example.com")
        assert refused.code == 1 and f"nobody matches '{query}'" in refused.err
    assert "Natarajan" in cli.ok("search", "Natarajan", "--as", "alice@example.com")
    listed = cli.ok("list", "--as", "alice@example.com")
    assert "Andersson" not in listed and "Natarajan" not in listed


def test_a_refresh_during_a_rebuild_keeps_the_old_index_fresh(engine, alice):  # type: ignore[no-untyped-def]
    engine.index.build()
    seen: list[object] = []

    def greta_arrives_and_someone_searches() -> None:
        # another process, while the rebuild is under way: a change in the CRM, a search
        EmbeddedCrm(engine.crm).add_person(first="Greta", last="Lindqvist", company="Fjord AB")
        other = Engine()
        try:
            seen.extend(p.name for p in other.search(alice, "Lindqvist").people)
            seen.append(other.index.status().building)
        finally:
            other.close()

    def once_the_rebuild_reads_the_crm(*_: object) -> None:
        if not seen and threading.current_thread() is builder:
            elsewhere = threading.Thread(target=greta_arrives_and_someone_searches)
            elsewhere.start()
            elsewhere.join(30)

    event.listen(engine.crm.engine, "before_cursor_execute", once_the_rebuild_reads_the_crm)
    builder = threading.Thread(target=engine.index.build)
    builder.start()
    builder.join(60)
    event.remove(engine.crm.engine, "before_cursor_execute", once_the_rebuild_reads_the_crm)
    assert seen == ["Greta Lindqvist", True]  # the old index answered, and took Greta
    assert not engine.index.status().building
    assert top(engine, alice, "Lindqvst") == ["Greta Lindqvist"]  # the new one has her too
    assert engine.index.status().people == 16  # 12 demo people, 3 more and Greta
    counts = word_counts(engine)
    engine.index.refresh(sweep=True)  # nothing left to change
    assert word_counts(engine) == counts and engine.index.status().people == 16


def test_a_build_waits_for_a_refresh_that_is_writing(engine):  # type: ignore[no-untyped-def]
    from sync_engine.index.state import build_claim, lock_writer, read_status

    engine.index.build()
    claimed = threading.Event()

    def claim() -> None:
        with build_claim(engine.store.engine, engine.store.home):
            claimed.set()

    with engine.store.engine.begin() as conn:
        lock_writer(conn)  # as a refresh applying its changes
        claimer = threading.Thread(target=claim)
        claimer.start()
        assert not claimed.wait(1.0), "the build claimed the index under a writing refresh"
        assert read_status(conn).ready
    claimer.join(20)
    assert claimed.is_set() and engine.index.status().ready  # the old index stays


def test_one_build_at_a_time(engine):  # type: ignore[no-untyped-def]
    from sync_engine.index.state import build_claim

    with build_claim(engine.store.engine, engine.store.home):  # as another process building
        assert engine.index.status().building
        with pytest.raises(IndexBusy, match="another process is building"):
            engine.index.build()
        assert engine.index.refresh().skipped  # the first build is not done: nothing to refresh
    assert not engine.index.status().building
    engine.index.build()
    assert engine.index.status().ready
