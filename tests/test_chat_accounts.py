"""Chat accounts of front ends other than Slack (migration 0016), on SQLite and
PostgreSQL: one account per CRM user per front end, its address and time zone kept."""

from __future__ import annotations

import pytest

from sync_engine import chat_accounts
from sync_engine.service import Engine


@pytest.fixture
def engine(engine_on_each_db: Engine) -> Engine:
    return engine_on_each_db


def test_an_account_maps_one_user_and_keeps_where_to_reach_them(engine: Engine) -> None:
    alice = engine.user("alice@example.com")
    first = chat_accounts.remember_user(
        engine,
        "teams",
        "aad-1",
        alice,
        tenant_id="t",
        conversation_id="a:1",
        service_url="https://smba.example/teams",
        tz="Europe/Paris",
        checked=True,
    )
    assert first.email == "alice@example.com" and first.checked_at is not None
    # a message from a group chat carries no personal conversation: the address stays
    again = chat_accounts.remember_user(
        engine,
        "teams",
        "aad-1",
        alice,
        tenant_id="t",
        conversation_id=None,
        service_url=None,
        tz=None,
        checked=False,
    )
    assert again.conversation_id == "a:1" and again.tz == "Europe/Paris"
    assert again.checked_at == first.checked_at
    assert engine.digest_prefs(alice).tz == "Europe/Paris"  # no Slack zone: the Teams one
    # another account taking the same CRM user replaces the first (one list, one owner)
    chat_accounts.remember_user(
        engine,
        "teams",
        "aad-2",
        alice,
        tenant_id="t",
        conversation_id="a:2",
        service_url="https://smba.example/teams",
        tz=None,
        checked=True,
    )
    assert chat_accounts.find(engine, "teams", "user", "aad-1") is None
    [only] = chat_accounts.of_user(engine, first.user_id or 0, "teams")
    assert only.account_id == "aad-2" and only.conversation_id == "a:2"
    chat_accounts.remember_channel(engine, "teams", "19:x", tenant_id="t", service_url="u")
    chat_accounts.remember_channel(engine, "teams", "19:x", tenant_id="t", service_url="v")
    channel = chat_accounts.find(engine, "teams", "channel", "19:x")
    assert channel is not None and channel.service_url == "v" and channel.user_id is None
