"""Search over CRM people: ranking, the company filter, accents and typos, paging, scoping."""

from __future__ import annotations

import pytest

from sync_engine.answers import BadQuery
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo
from sync_engine.crm.search import SearchError, parse_query, search_people
from sync_engine.service import Engine


@pytest.fixture
def engine(home):  # type: ignore[no-untyped-def]
    e = Engine()
    seed_demo(e.crm)
    yield e
    e.close()


def names(people) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.name for p in people]


def test_parse_query_splits_the_company_filter():
    q = parse_query('smith company:"Design Right Inc."')
    assert (q.tokens, q.company) == (("smith",), "Design Right Inc.")
    assert parse_query("company:Acme").company == "Acme"
    for bad in ("", "   ", "company:", 'company:""'):
        with pytest.raises(SearchError):
            parse_query(bad)


def test_full_name_ranks_the_exact_person_first(engine):
    found = search_people(engine.crm, "John Smith")
    assert names(found)[:2] == ["John Paul Smith", "John Smith"] or names(found)[:2] == [
        "John Smith",
        "John Paul Smith",
    ]
    assert {p.fields.company for p in found[:2]} == {"Design Right Inc.", "Acme Corp"}
    assert names(search_people(engine.crm, "Smith John Acme"))[0] == "John Smith"


def test_company_filter_is_exact(engine):
    found = search_people(engine.crm, 'company:"Design Right Inc."')
    assert len(found) == 5 and {p.fields.company for p in found} == {"Design Right Inc."}
    assert search_people(engine.crm, 'company:"Design Right"') == []
    assert names(search_people(engine.crm, 'Lopez company:"design right inc."')) == ["Maria Lopez"]


def test_company_words_email_accents_and_typos(engine):
    assert len(search_people(engine.crm, "Design Right")) == 5
    assert names(search_people(engine.crm, "jsmith@acme.example")) == ["John Smith"]
    assert names(search_people(engine.crm, "Bronte")) == ["Zoë Brontë"]
    assert names(search_people(engine.crm, "Natarjan")) == ["Priya Natarajan"]
    assert names(search_people(engine.crm, "Harbour"))[0] == "Tom Baker"
    assert names(search_people(engine.crm, "<!channel>")) == ["<!channel> & Co"]


def test_deleted_people_are_not_found(engine):
    [maria] = search_people(engine.crm, "Maria Lopez")
    EmbeddedCrm(engine.crm).delete_person(maria.id)
    assert search_people(engine.crm, "Maria Lopez") == []


def test_paging_and_in_list_marks_are_per_user(engine):
    alice, bob = engine.user("alice@example.com"), engine.user("bob@example.com")
    page1 = engine.search(alice, "Design Right", limit=2)
    page3 = engine.search(alice, "Design Right", limit=2, offset=4)
    assert page1.total == 5 and len(page1.people) == 2 and len(page3.people) == 1
    engine.add(alice, [page1.people[0].id])
    assert engine.search(alice, "Design Right", limit=2).people[0].in_list
    assert not engine.search(bob, "Design Right", limit=2).people[0].in_list
    with pytest.raises(BadQuery):
        engine.search(alice, "  ")
