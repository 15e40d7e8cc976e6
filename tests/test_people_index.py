"""Search served from our own people index, on SQLite and PostgreSQL: every kind of typo a
salesperson makes finds the person (and every query word must match), the clock keeps the
index fresh, a refresh never writes into a build, no CRM query runs for a search once it is
built (one user look-up per command), and the CRM is searched directly until then."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import event, text

from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.index import IndexBusy
from sync_engine.schedule import Scheduler
from sync_engine.service import Engine
from sync_engine.store import utcnow


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, home, monkeypatch):  # type: ignore[no-untyped-def]
    if request.param == "postgresql":
        monkeypatch.setenv("DATABASE_URL", request.getfixturevalue("pg_url"))
    e = Engine()
    seed_demo(e.crm)
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
    yield e
    e.close()


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


def test_no_crm_query_for_the_search_itself_one_user_look_up_per_command(engine):  # type: ignore[no-untyped-def]
    engine.index.build()
    statements: list[str] = []
    event.listen(engine.crm.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for query in ("Stne", "John Smith", "aiko.tan", 'company:"Acme Corp"', "Garnite"):
        statements.clear()
        user = engine.user("alice@example.com")  # as the CLI's --as and the bot do per command
        assert engine.search(user, query).people
        assert len(statements) == 1, statements  # the user look-up, nothing for the search
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
    scheduler.run_cycle()  # the first cycle builds the missing index
    assert engine.index.status().ready
    new = writer.add_person(first="Greta", last="Lindqvist", company="Fjord AB")
    assert top(engine, alice, "Lindqvist") == []  # not yet: the index is ours, not the CRM
    report = scheduler.run_cycle()
    assert report.index is not None and report.index.changed >= 1
    assert top(engine, alice, "Lindqvst") == ["Greta Lindqvist"]

    writer.update_person(new, last="Lindgren")
    scheduler.run_cycle()
    assert top(engine, alice, "Lindgren") == ["Greta Lindgren"]
    assert top(engine, alice, "Lindqvist") == []

    writer.update_person(new, company="Northwind Traders")
    scheduler.run_cycle()
    assert "Greta Lindgren" in top(engine, alice, "Northwind")
    assert top(engine, alice, "Fjord") == []

    writer.delete_person(new)  # soft delete, as Sage does
    scheduler.run_cycle()
    assert top(engine, alice, "Lindgren") == []
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


def word_counts(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with engine.store.engine.connect() as conn:
        return dict(
            conn.execute(text("SELECT word, people FROM index_terms WHERE people > 0")).all()
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
    cli.ok("crm", "add-person", "--first", "Bob", "--last", "Stone")
    assert "1 people re-read" in cli.ok("index", "refresh")
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


def test_a_refresh_that_meets_a_build_writes_nothing(engine, alice, caplog):  # type: ignore[no-untyped-def]
    from sync_engine.index.state import claim_build, release_build

    engine.index.build()
    EmbeddedCrm(engine.crm).add_person(first="Greta", last="Lindqvist", company="Fjord AB")
    latest = engine.crm.latest_change()
    armed = [True]

    def another_build_starts(*_: object) -> None:
        # after the refresh read the status (ready) and while it reads the CRM's changes,
        # another process claims the index for a build
        if armed[0]:
            armed[0] = False
            claim_build(engine.store.engine)

    event.listen(engine.crm.engine, "before_cursor_execute", another_build_starts)
    with caplog.at_level(logging.INFO, logger="crm_contacts.index"):
        report = engine.index.refresh(latest=latest)
    event.remove(engine.crm.engine, "before_cursor_execute", another_build_starts)
    assert not armed[0], "the build was claimed during the refresh"
    assert report.skipped == "a build of the people index started" and report.changed == 0
    said = [r for r in caplog.records if getattr(r, "event", "") == "index_refresh_skipped"]
    assert [r.reason for r in said] == [report.skipped]  # type: ignore[attr-defined]
    with engine.store.engine.connect() as conn:
        written = conn.execute(
            text("SELECT count(*) FROM people_index WHERE last_name = 'Lindqvist'")
        ).scalar()
    assert written == 0  # nothing written into the index the build is rewriting
    assert engine.index.refresh().skipped  # and not while it runs either

    release_build(engine.store.engine)  # the other build gave up; ours runs
    engine.index.build()
    assert top(engine, alice, "Lindqvst") == ["Greta Lindqvist"]
    assert engine.index.status().people == 16  # 12 demo people, 3 more and Greta
    counts = word_counts(engine)
    engine.index.refresh(sweep=True)  # nothing left to change: the build had it all
    assert word_counts(engine) == counts and engine.index.status().people == 16


def test_a_build_waits_for_a_refresh_that_is_writing(engine):  # type: ignore[no-untyped-def]
    import threading

    from sync_engine.index.state import claim_build, lock_writer, read_status

    engine.index.build()
    claimed = threading.Event()

    def build_claim() -> None:
        claim_build(engine.store.engine)
        claimed.set()

    with engine.store.engine.begin() as conn:
        lock_writer(conn)  # as a refresh applying its changes
        claimer = threading.Thread(target=build_claim)
        claimer.start()
        assert not claimed.wait(1.0), "the build claimed the index under a writing refresh"
        assert read_status(conn).ready
    claimer.join(20)
    assert claimed.is_set() and not engine.index.status().ready


def test_one_build_at_a_time(engine):  # type: ignore[no-untyped-def]
    from sync_engine.index.state import claim_build, release_build

    claim_build(engine.store.engine)  # as another process building
    with pytest.raises(IndexBusy, match="another process is building"):
        engine.index.build()
    assert engine.index.refresh().skipped  # a refresh waits for the build
    release_build(engine.store.engine)
    engine.index.build()
    assert engine.index.status().ready
