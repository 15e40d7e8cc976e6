"""Standing rules (DESIGN rule 11) on plain values: whom the rules bring, who joins and
who leaves a list, and the planner's handling of people a rule let go (rule 5's unlink
with the rule's reason; rule 8 holds a mass departure)."""

from __future__ import annotations

import pytest

from sync_engine.model import ContactFields, CrmPerson, Link, MailboxContact
from sync_engine.plan import Leaving, PlanInput, UnlinkContact, plan_mailbox
from sync_engine.standing.rules import (
    ACCOUNT_MANAGER as AM,
)
from sync_engine.standing.rules import (
    COMPANY_MANAGER as CM,
)
from sync_engine.standing.rules import (
    Entry,
    Owners,
    RuleOn,
    UnknownKind,
    changes,
    describe_sources,
    members,
    parse_kind,
)

ALICE, BOB = 1, 2  # state user ids
ALICE_CRM, BOB_CRM = 11, 12  # their Sage User_UserIds
RULES = [RuleOn(ALICE, ALICE_CRM, AM), RuleOn(ALICE, ALICE_CRM, CM), RuleOn(BOB, BOB_CRM, AM)]


def test_members_follow_the_account_manager_and_the_company_s():
    owners = [
        Owners(1, "Ann", account_manager=ALICE_CRM),
        Owners(2, "Ben", account_manager=BOB_CRM, company_manager=ALICE_CRM),
        Owners(3, "Cy", account_manager=ALICE_CRM, live=False),  # deleted: nobody's
        Owners(4, "Di", account_manager=99, company_manager=98),  # no rule for them
    ]
    assert members(RULES, owners) == {(ALICE, AM, 1), (BOB, AM, 2), (ALICE, CM, 2)}


def test_a_person_given_later_joins_unless_listed_or_removed_by_hand():
    after = {(ALICE, AM, 1), (ALICE, AM, 2), (ALICE, AM, 3)}
    entries = {
        (ALICE, 2): Entry(subscribed=True, picked=True),  # picked already: stays picked
        (ALICE, 3): Entry(excluded=True),  # removed by hand earlier: stays out
    }
    done = changes(set(), after, entries, {1: Owners(1, "Ann", ALICE_CRM)})
    assert [(j.user_id, j.person_id, j.kind, j.name) for j in done.joins] == [(ALICE, 1, AM, "Ann")]
    assert "account-manager" in done.joins[0].reason
    assert done.added == after and not done.dropped and not done.leaves


def test_a_person_no_rule_brings_any_more_leaves_with_the_rule_named_unless_picked():
    before = {(ALICE, AM, 1), (ALICE, AM, 2), (ALICE, AM, 3), (ALICE, CM, 3), (ALICE, AM, 4)}
    after = {(ALICE, CM, 3)}  # 3 is still at a company Alice manages
    entries = {
        (ALICE, 1): Entry(subscribed=True),
        (ALICE, 2): Entry(subscribed=True, picked=True),
        (ALICE, 3): Entry(subscribed=True),
        (ALICE, 4): Entry(subscribed=True),
    }
    owners = {
        1: Owners(1, "Ann", account_manager=BOB_CRM),
        2: Owners(2, "Ben", account_manager=BOB_CRM),
        4: Owners(4, "Di", account_manager=ALICE_CRM, live=False),
    }
    done = changes(before, after, entries, owners)
    assert [(lv.person_id, lv.guarded) for lv in done.leaves] == [(1, True), (4, True)]
    assert done.leaves[0].reason == (
        "no longer matches your rule account-manager (their Account Manager is someone else now)"
    )
    assert "deleted in the CRM" in done.leaves[1].reason
    assert done.dropped == {(ALICE, AM, 1), (ALICE, AM, 2), (ALICE, AM, 3), (ALICE, AM, 4)}


def test_turning_a_rule_off_lets_go_of_whom_only_it_brought_unguarded():
    before = {(ALICE, AM, 1), (ALICE, AM, 2), (ALICE, CM, 2)}
    after = {(ALICE, CM, 2)}
    entries = {(ALICE, 1): Entry(subscribed=True), (ALICE, 2): Entry(subscribed=True)}
    done = changes(before, after, entries, turned_off=True)
    assert [(lv.person_id, lv.guarded, lv.reason) for lv in done.leaves] == [
        (1, False, "your rule account-manager was turned off")
    ]


def test_kinds_are_parsed_leniently_and_unknown_ones_list_the_kinds():
    assert parse_kind(" Account_Manager ") == AM
    with pytest.raises(UnknownKind) as bad:
        parse_kind("owner")
    assert "'owner' is not a rule kind" in str(bad.value)
    assert "account-manager" in str(bad.value) and "company-manager" in str(bad.value)
    assert describe_sources(["picked", "rule:account-manager"]) == (
        "picked by you; you're their Account Manager"
    )


# -- the planner ---------------------------------------------------------------------------


def _linked(n: int) -> tuple[dict[int, Link], dict[int, CrmPerson], list[MailboxContact]]:
    links, people, contacts = {}, {}, []
    for pid in range(1, n + 1):
        fields = ContactFields.of(first_name=f"P{pid}", last_name="Person").with_derived()
        people[pid] = CrmPerson(pid, fields)
        links[pid] = Link(pid, f"item-{pid}", "ck", fields.fingerprint(), "created")
        contacts.append(MailboxContact(f"item-{pid}", "ck", fields, ("CRM Contact",), crm_id=pid))
    return links, people, contacts


def _plan(subscribed: set[int], leaving: dict[int, Leaving], allow: bool = False):  # type: ignore[no-untyped-def]
    links, people, contacts = _linked(12)
    return plan_mailbox(
        PlanInput(
            category="CRM Contact",
            subscriptions=frozenset(subscribed),
            links=links,
            people=people,
            contacts=contacts,
            leaving=leaving,
            allow_mass_delete=allow,
        )
    )


def test_a_rule_departure_is_unlinked_with_the_rule_s_reason():
    why = "no longer matches your rule account-manager (their Account Manager is someone else now)"
    plan = _plan(set(range(2, 13)), {1: Leaving(why)})
    [unlink] = plan.of(UnlinkContact)
    assert (unlink.person_id, unlink.reason) == (1, why)
    assert unlink.change is not None and unlink.change.clear_crm_id
    assert not plan.held_back and not plan.warnings


def test_a_reassignment_of_8_of_12_is_held_by_the_mass_delete_guard():
    why = "no longer matches your rule account-manager (their Account Manager is someone else now)"
    leaving = {pid: Leaving(why) for pid in range(1, 9)}
    held = _plan(set(range(9, 13)), leaving)
    assert held.of(UnlinkContact) == [] and len(held.held_back) == 8
    assert "8 of 12 linked contacts no longer match your standing rules" in held.warnings[0]
    assert "--allow-mass-delete" in held.warnings[0]
    allowed = _plan(set(range(9, 13)), leaving, allow=True)
    assert len(allowed.of(UnlinkContact)) == 8 and not allowed.warnings
    # a rule the user turned off is their own doing: not held, like a removal by hand
    off = {
        pid: Leaving("your rule account-manager was turned off", guarded=False) for pid in leaving
    }
    assert len(_plan(set(range(9, 13)), off).of(UnlinkContact)) == 8
    # and as many removed by hand are not held either (rule 5 as before)
    assert len(_plan(set(range(9, 13)), {}).of(UnlinkContact)) == 8
