"""Every query we send to the CRM, compiled for SQL Server (Sage CRM's database).

No SQL Server runs here, so the whole read path (search of every kind, add, add-group,
sync, change detection, `crm check`) runs on the embedded CRM while every statement it
sends is captured, and each one is compiled with SQLAlchemy's `mssql` dialect and checked
for what T-SQL needs: TOP instead of LIMIT (T-SQL has no LIMIT), LIKE patterns that
escape `[` (SQL Server reads `[...]` as a character class: "LIKE (Transact-SQL)",
wildcard characters), and at most 2,100 parameters per statement ("Maximum capacity
specifications for SQL Server": parameters per user-defined function / RPC). Each also
reads only the columns of schema.READ, which docs/sage-crm.md grants.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.dialects import mssql, sqlite
from sqlalchemy.sql import Select

from sync_engine.config import load_settings
from sync_engine.crm import ownership
from sync_engine.crm import schema as s
from sync_engine.crm.check import check_crm
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo, seed_large
from sync_engine.crm.rows import linked_rows, live_links, row_is_live
from sync_engine.crm.scope import managed_by
from sync_engine.crm.search import like_pattern, search_ids
from sync_engine.service import Engine

MSSQL = mssql.dialect(paramstyle="qmark")  # one '?' per parameter, as pyodbc/pymssql send them
SQL_SERVER_MAX_PARAMETERS = 2100

ALICE = "alice@example.com"


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    e = Engine(load_settings())
    seed_demo(e.crm)
    seed_large(e.crm, 2600)
    crm = EmbeddedCrm(e.crm)
    crm.add_person(first="Bracket", last="O[Brien]", email="b[1]@x.example", company="A[B] Ltd")
    yield e
    e.close()


def capture(engine: Engine) -> list[object]:
    statements: list[object] = []

    def before_execute(conn, clause, multiparams, params, options) -> None:  # type: ignore[no-untyped-def]
        statements.append(clause)

    event.listen(engine.crm.engine, "before_execute", before_execute)
    return statements


def read_story(engine: Engine) -> None:
    alice = engine.user(ALICE)
    for query in (
        "Smith",
        "john smith",
        "smith john",
        "maria.lopez@designright",
        'company:"Design Right Inc."',
        "Design Right",
        "Smtih Jhon",  # nothing by prefix: the three-letter retry
        "O[Br",
        "100%_off\\",
    ):
        engine.search(alice, query)
        search_ids(engine.crm, query)
    ids = list(range(1, 2700))
    engine.crm.people_by_ids(ids)
    engine.add(alice, ids[:30])
    engine.add_group(alice)
    engine.sync(alice)
    engine.sync(alice)
    since = engine.crm.latest_change()
    engine.crm.changes_since(None)
    engine.crm.changes_since(since)
    engine.crm.changes_since(None, ids=ids)
    engine.crm.user_by_id(1)
    engine.crm.users()
    engine.crm.count_live_people()
    list(engine.crm.iter_people())
    engine.crm.emails_of(ids)
    check_crm(engine.crm)
    # the standing rules' reads: change detection, everyone some users own, owners of some
    engine.rules.add(alice, "account-manager")
    engine.rules.add(alice, "company-manager")
    ownership.changed_since(engine.crm, since)
    ownership.changed_since(engine.crm, None)
    list(ownership.owned_by(engine.crm, "account-manager", range(1, 1500)))  # chunked
    list(ownership.owned_by(engine.crm, "company-manager", range(1, 10)))
    ownership.ownership_of(engine.crm, ids)
    with engine.crm._connect() as conn:  # what write-back reads (issue 19)
        linked_rows(conn, 1)
        live_links(conn, "phone", ids)
        row_is_live(conn, "email", 1)
    managed_by(engine.crm, 1, ids)


def test_every_crm_query_compiles_for_sql_server(engine: Engine):
    statements = capture(engine)
    read_story(engine)
    selects = [st for st in statements if isinstance(st, Select)]
    assert len(selects) > 60
    assert not [st for st in statements if not isinstance(st, Select)], "only SELECTs"
    unread = {
        column.name
        for table in s.TABLES.values()
        for column in table.c
        if column.name not in s.READ[table.name]
    }
    limited = 0
    for st in selects:
        t_sql = str(st.compile(dialect=MSSQL, compile_kwargs={"render_postcompile": True}))
        lite = str(
            st.compile(dialect=sqlite.dialect(), compile_kwargs={"render_postcompile": True})
        )
        assert not re.search(r"\bLIMIT\b", t_sql), t_sql
        if re.search(r"\bLIMIT\b", lite):
            limited += 1
            assert re.search(r"\bTOP\b", t_sql), t_sql
        assert t_sql.count("?") <= SQL_SERVER_MAX_PARAMETERS, t_sql[:300]
        touched = set(re.findall(r"\b\w+_\w+\b", t_sql)) & unread
        assert not touched, f"reads columns outside schema.READ: {touched}"
    assert limited > 10  # searches, check's one-row reads
    biggest = max(
        str(st.compile(dialect=MSSQL, compile_kwargs={"render_postcompile": True})).count("?")
        for st in selects
    )
    assert 800 <= biggest <= SQL_SERVER_MAX_PARAMETERS  # the id lists were chunked, not cut


def test_like_patterns_escape_brackets_and_wildcards_for_sql_server(engine: Engine):
    assert like_pattern("a[b]%_\\") == "a\\[b]\\%\\_\\\\%"
    statements = capture(engine)
    search_ids(engine.crm, "O[Br")
    patterns = []
    for st in statements:
        compiled = st.compile(dialect=MSSQL, compile_kwargs={"render_postcompile": True})  # type: ignore[attr-defined]
        if " LIKE " in str(compiled):
            assert "ESCAPE '\\'" in str(compiled)
            patterns += [v for v in compiled.params.values() if isinstance(v, str) and "[" in v]
    assert patterns and all("\\[" in p and not re.search(r"(?<!\\)\[", p) for p in patterns)


def test_a_bracket_in_a_name_or_email_is_found_literally(engine: Engine):
    alice = engine.user(ALICE)
    found = engine.search(alice, "O[Brien]").people
    assert [p.last_name for p in found][:1] == ["O[Brien]"]
    by_mail = engine.search(alice, "b[1]@x").people
    assert [p.last_name for p in by_mail] == ["O[Brien]"]
    assert engine.search(alice, 'company:"A[B] Ltd"').people[0].last_name == "O[Brien]"
