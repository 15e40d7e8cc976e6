"""An index that cannot be knocked over (issue 18, item 5), tried as a hostile tester would.

Each case on PostgreSQL (where lengths, NUL and encodings are enforced), and on SQLite:
a company whose folded name is longer than any key column; values longer than the
index's columns (cut; a person whose email it cannot hold is skipped and logged, never
their batch); a build killed by SIGKILL (the claim dies with it, the old index keeps
answering); query words ending in U+10FFFF or holding a lone surrogate; a 10,000-letter
query (bounded memory).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
import tracemalloc

import pytest

from sync_engine.answers import BadQuery
from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.service import Engine

LIGATURE = "\ufdfa"  # ARABIC LIGATURE SALLALLAHOU ALAYHE WASALLAM: NFKD makes it 18 characters


@pytest.fixture
def engine(engine_on_each_db: Engine) -> Engine:
    e = engine_on_each_db
    e.index.LOOK_EVERY = 0  # each search as if seconds after the CRM edit before it
    return e


@pytest.fixture
def alice(engine):  # type: ignore[no-untyped-def]
    return engine.user("alice@example.com")


def names(engine, user, query: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.name for p in engine.search(user, query, limit=50).people]


def test_a_company_folding_past_every_key_is_indexed_and_found(engine, alice):  # type: ignore[no-untyped-def]
    crm = EmbeddedCrm(engine.crm)
    company = LIGATURE * 20  # folds to 360 characters; the key columns hold 320
    crm.add_person(first="Hamid", last="Rahimi", company=company)
    assert names(engine, alice, "Rahimi") == ["Hamid Rahimi"]  # the first search's build
    crm.add_person(first="Layla", last="Haddad", company=company)  # and a refresh
    assert names(engine, alice, f'company:"{company}"') == ["Hamid Rahimi", "Layla Haddad"]
    assert names(engine, alice, "Haddad") == ["Layla Haddad"]
    assert "John Smith" in names(engine, alice, "Smith")  # everyone else's search too
    assert engine.index.status().people == 14


def test_values_past_their_columns_are_cut_and_a_person_it_cannot_show_is_left_out_alone(  # type: ignore[no-untyped-def]
    engine, alice, caplog
) -> None:
    crm = EmbeddedCrm(engine.crm)
    title = "Director of " + "very " * 180 + "long titles"  # 923 characters; 255 kept
    crm.add_person(first="A" * 300, last="Longname", company="Acme Corp", title=title)
    crm.add_person(first="Nul\x00l", last="Byte", company="Acme Corp")  # PostgreSQL refuses NUL
    no_address = crm.add_person(first="Ivo", last="Overlong", email="i" * 330 + "@x.example")
    with caplog.at_level(logging.WARNING, logger="crm_contacts.index"):
        assert set(names(engine, alice, "Smith")) == {"John Smith", "John Paul Smith"}  # built
        [long] = engine.search(alice, "Longname").people  # found by every word it has
        assert long.first_name == "A" * 254 + "…" and long.job_title == title[:254] + "…"
        assert names(engine, alice, "Byte") == ["Null Byte"]  # NUL dropped, person kept
        assert names(engine, alice, "Overlong") == []  # an email cut short would be wrong
        later = crm.add_person(first="Una", last="Longmail", email="u" * 400 + "@x.example")
        crm.add_person(first="Tess", last="Batch", company="Acme Corp")  # the same refresh
        assert names(engine, alice, "Batch") == ["Tess Batch"]
        assert names(engine, alice, "Longmail") == []
    skipped = [r for r in caplog.records if getattr(r, "event", "") == "index_person_skipped"]
    assert [r.person for r in skipped] == [no_address, later]  # type: ignore[attr-defined]
    assert "its email is 340 characters, more than the 320 kept" in skipped[0].getMessage()
    assert engine.index.status().people == 15  # 12 demo people, Longname, Byte and Batch
    engine.index.refresh(sweep=True)  # the sweep does not read them again, nor log again
    assert (
        len([r for r in caplog.records if getattr(r, "event", "") == "index_person_skipped"]) == 2
    )


KILLED_BUILD = textwrap.dedent(
    """
    import os, signal
    from sync_engine.service import Engine
    engine = Engine()
    # killed as SIGKILL, the OOM killer or a second SIGTERM would: after its first batch
    engine.index.build(progress=lambda n: os.kill(os.getpid(), signal.SIGKILL))
    """
)


def test_a_killed_rebuild_leaves_no_claim_and_the_old_index_answering(engine, alice, cli):  # type: ignore[no-untyped-def]
    assert names(engine, alice, "Natarajan") == ["Priya Natarajan"]  # the first search's index
    killed = subprocess.run([sys.executable, "-c", KILLED_BUILD], capture_output=True, timeout=60)
    assert killed.returncode == -9, killed.stderr.decode()
    status = engine.index.status()
    assert status.building_since is not None  # it had claimed the index ...
    deadline = time.monotonic() + 10  # (PostgreSQL ends a dead client's session at once)
    while status.building and time.monotonic() < deadline:
        time.sleep(0.05)
        status = engine.index.status()
    assert not status.building and status.ready  # ... the claim died with it
    assert status.people == 12
    assert "did not finish (its process ended)" in cli.ok("index", "status")
    assert names(engine, alice, "Natarajan") == ["Priya Natarajan"]  # the old index answers
    report = engine.index.build()  # and the next build starts at once
    assert report.people == 12 and not engine.index.status().building


def test_query_words_at_the_ends_of_unicode_do_not_crash(engine, alice):  # type: ignore[no-untyped-def]
    top = "\U0010ffff"  # the last code point: no "next character" to end a prefix range
    assert "John Smith" in names(engine, alice, f"jsmith@{top}")  # an email prefix, then words
    assert "John Smith" in names(engine, alice, f"Smith{top}")
    assert "John Smith" in names(engine, alice, "Smith \ud800")  # a lone surrogate (JSON "\ud800")
    assert names(engine, alice, f"{top}{top}.{top}") == []
    assert names(engine, alice, "\ud7ff.x") == []  # the next code point is a surrogate


def test_a_10000_letter_query_takes_little_memory_and_too_many_words_are_refused(  # type: ignore[no-untyped-def]
    engine, alice, cli
):
    names(engine, alice, "Smith")  # the index the first search builds
    tracemalloc.start()
    try:
        letters = ("abcdefghijklmnopqrstuvwxyz" * 400)[:10_000]  # one edit away: 10,000 forms
        assert engine.search(alice, letters).total == 0
        assert engine.search(alice, f"Smith {letters}.x").total == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, f"{peak / 1e6:.0f} MB"
    with pytest.raises(BadQuery, match="at most 20 different words"):
        engine.search(alice, " ".join(f"w{n}" for n in range(21)))
    assert engine.search(alice, " ".join(["Smith", "John"] * 30)).total >= 1  # repeats are one
    refused = cli("search", " ".join(f"w{n}" for n in range(21)), "--as", "alice@example.com")
    assert refused.code == 1 and refused.err.count("\n") == 1 and "at most 20" in refused.err


LONG = "Wolfeschlegelsteinhausenbergerdorffwelchevoralternwarengewissenhaft"  # 66 letters


def test_a_word_past_the_bound_finds_its_person_typos_and_all_and_every_word_counts(  # type: ignore[no-untyped-def]
    engine, alice
):
    crm = EmbeddedCrm(engine.crm)
    crm.add_person(first="Hubert", last=LONG, company="Acme Corp")  # indexed: 40 letters
    hubert = f"Hubert {LONG}"
    typed = {
        "whole": LONG,
        "longer still": LONG + "berg",
        "a letter left out": LONG[:10] + LONG[11:],
        "a letter added": LONG[:10] + "x" + LONG[10:],
        "a letter wrong": LONG[:10] + "x" + LONG[11:],
        "two letters swapped": LONG[:10] + LONG[11] + LONG[10] + LONG[12:],
    }
    for how, word in typed.items():
        assert names(engine, alice, word) == [hubert], how
        assert names(engine, alice, f"hubert {word.upper()}") == [hubert], how
    # the bound on a query's words counts them as the index splits them, however joined
    for query in (
        "-".join(f"w{n}" for n in range(21)),
        "Smith " + ".".join("abcdefghijklmnopqrst"),
    ):
        with pytest.raises(BadQuery, match="at most 20 different words"):
            engine.search(alice, query)
    started = time.monotonic()
    huge = " ".join("-".join(f"w{n}x{m}" for m in range(500)) for n in range(20))
    with pytest.raises(BadQuery, match="at most 20 different words"):
        engine.search(alice, huge)  # 10,000 words in 20 tokens: refused, not looked up
    assert time.monotonic() - started < 2
    # the same word in any case is one word: 21 spellings of "smith" are one condition
    spellings = [
        "".join(c.upper() if n >> i & 1 else c for i, c in enumerate("smith")) for n in range(21)
    ]
    assert "John Smith" in names(engine, alice, " ".join(spellings))
