"""Write-back (issue 14) on the pure planner: which Outlook edits of linked contacts go to
the CRM, which lose to a CRM edit, and that nothing echoes once both sides agree."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from sync_engine.model import (
    WRITE_BACK_FIELDS,
    ContactFields,
    CrmPerson,
    Link,
    MailboxContact,
    write_back_values,
)
from sync_engine.plan import PlanInput, RefreshLink, UpdateContact, plan_mailbox
from sync_engine.write_back import (
    RecentWriteBack,
    WriteBackInput,
    WriteBackPlan,
    plan_write_back,
)

CAT = "CRM Contact"


def person(pid: int, **values: str) -> CrmPerson:
    base = {"first_name": "Maria", "last_name": f"Lopez{pid}", "company": "Acme"}
    base["business_phone"] = "+1 555 0100"
    base["email"] = "maria@acme.example"
    fields = ContactFields.of(**{**base, **values}).with_derived()
    return CrmPerson(id=pid, fields=fields)


def synced(p: CrmPerson) -> tuple[MailboxContact, Link]:
    """A contact and link as a sync leaves them: both sides agree, baselines remembered."""
    c = MailboxContact(f"item-{p.id}", "ck-1", p.fields, (CAT,), p.id)
    link = Link(
        p.id,
        c.item_id,
        c.change_key,
        p.fields.fingerprint(),
        "created",
        write_back_values(p.fields),
        write_back_values(c.fields),
    )
    return c, link


def edited(c: MailboxContact, **values: str) -> MailboxContact:
    """The user edits the contact in Outlook: new values, a new change key."""
    return replace(c, change_key=c.change_key + "x", fields=replace(c.fields, **values))


def wb(people, contacts, links, **kw) -> WriteBackPlan:  # type: ignore[no-untyped-def]
    return plan_write_back(
        WriteBackInput(
            links={link.person_id: link for link in links},
            people={p.id: p for p in people},
            contacts=list(contacts),
            subscriptions=frozenset(p.id for p in people),
            **kw,
        )
    )


def test_an_outlook_phone_edit_is_written_back():
    p = person(1)
    c, link = synced(p)
    plan = wb([p], [edited(c, business_phone="+1 555 0199")], [link])
    [write] = plan.writes
    assert write.person_id == 1 and write.changes == (("business_phone", "+1 555 0199"),)
    assert not plan.conflicts and not plan.held


def test_formatting_noise_is_no_edit():
    p = person(1)
    c, link = synced(p)
    noisy = edited(
        c,
        business_phone="+1 (555) 01-00",  # Outlook re-spaced it
        email="Maria@ACME.example",  # case means nothing in an email
        first_name="Maria  ",  # a trailing space
    )
    assert wb([p], [noisy], [link]).writes == []


def test_company_address_and_derived_fields_never_flow_back():
    p = person(1)
    c, link = synced(p)
    moved = edited(
        c, company="Other Co", street="1 Main St", city="Leeds", display_name="M", file_as="M"
    )
    assert wb([p], [moved], [link]).writes == []


def test_an_outlook_blank_never_erases_the_crm():
    p = person(1)
    c, link = synced(p)
    assert wb([p], [edited(c, business_phone="")], [link]).writes == []


def test_both_sides_made_the_same_edit_writes_nothing():
    p = person(1)
    c, link = synced(p)
    crm_now = person(1, business_phone="+1 555 0199")
    assert wb([crm_now], [edited(c, business_phone="+15550199")], [link]).writes == []


def test_conflict_the_crm_wins_by_default_and_the_loss_is_reported():
    p = person(1)
    c, link = synced(p)
    crm_now = person(1, business_phone="+1 555 0111")
    plan = wb([crm_now], [edited(c, business_phone="+1 555 0199")], [link])
    assert plan.writes == []
    [lost] = plan.conflicts
    assert (lost.person_id, lost.field) == (1, "business_phone")


def test_a_crm_blank_against_an_outlook_edit_is_no_conflict_outlook_keeps_it():
    p = person(1, department="Sales")
    c, link = synced(p)
    crm_now = person(1, department="")
    plan = wb([crm_now], [edited(c, department="Front desk")], [link])
    assert plan.writes == [] and plan.conflicts == []


def test_conflict_policy_latest_writes_the_outlook_edit():
    p = person(1)
    c, link = synced(p)
    crm_now = person(1, business_phone="+1 555 0111")
    plan = wb(
        [crm_now], [edited(c, business_phone="+1 555 0199")], [link], conflict_policy="latest"
    )
    assert [w.changes for w in plan.writes] == [(("business_phone", "+1 555 0199"),)]
    assert plan.conflicts == []


def test_a_crm_edit_of_another_field_is_no_conflict():
    p = person(1)
    c, link = synced(p)
    crm_now = person(1, job_title="CTO")
    plan = wb([crm_now], [edited(c, business_phone="+1 555 0199")], [link])
    assert [w.changes for w in plan.writes] == [(("business_phone", "+1 555 0199"),)]


def test_another_mailboxs_edit_in_the_crm_is_replaced_by_this_later_edit():
    # Bob's sync wrote +1 555 0111 from his Outlook; Alice's edit is seen later: it wins
    # even under WRITE_BACK_CONFLICT=crm, because the CRM change was an Outlook edit too.
    p = person(1)
    c, link = synced(p)
    crm_now = person(1, business_phone="+1 555 0111")
    recent = {1: {"business_phone": RecentWriteBack("+1 555 0111", "bob@example.com")}}
    plan = wb([crm_now], [edited(c, business_phone="+1 555 0199")], [link], recent=recent)
    [write] = plan.writes
    assert write.replaces == (("business_phone", "bob@example.com"),)
    assert plan.conflicts == []


def test_an_earlier_edit_loses_to_another_mailboxs_later_edit_already_in_the_crm():
    # Bob's later edit (09:05) reached the CRM first; Alice's 09:00 edit is seen now but
    # made earlier: Bob's stays, Alice's loses (and gets his value from the main plan).
    p = person(1)
    c, link = synced(p)
    crm_now = person(1, business_phone="+1 555 0111")
    bob_at = datetime(2026, 11, 28, 9, 5, tzinfo=UTC)
    recent = {1: {"business_phone": RecentWriteBack("+1 555 0111", "bob@example.com", bob_at)}}
    mine = replace(edited(c, business_phone="+1 555 0199"), modified_at="2026-11-28T09:00:00Z")
    plan = wb([crm_now], [mine], [link], recent=recent)
    assert plan.writes == []
    [lost] = plan.conflicts
    assert (lost.field, lost.newer_from) == ("business_phone", "bob@example.com")
    # the same edit made after Bob's wins
    later = replace(mine, modified_at="2026-11-28T09:10:00+00:00")
    [write] = wb([crm_now], [later], [link], recent=recent).writes
    assert write.replaces == (("business_phone", "bob@example.com"),)
    assert write.edited_at == datetime(2026, 11, 28, 9, 10, tzinfo=UTC)


def test_latest_policy_compares_pers_updateddate_with_the_outlook_edit_time():
    p = person(1)
    c, link = synced(p)
    crm_now = replace(person(1, job_title="CTO"), updated_at=datetime(2026, 11, 28, 9, 5))
    earlier = replace(edited(c, job_title="CEO"), modified_at="2026-11-28T09:00:00Z")
    plan = wb([crm_now], [earlier], [link], conflict_policy="latest")
    assert plan.writes == [] and [x.policy for x in plan.conflicts] == ["latest"]
    later = replace(earlier, modified_at="2026-11-28T09:10:00Z")
    plan = wb([crm_now], [later], [link], conflict_policy="latest")
    assert [w.changes for w in plan.writes] == [(("job_title", "CEO"),)]
    # the default policy is unchanged: the CRM wins whatever the times
    plan = wb([crm_now], [later], [link])
    assert plan.writes == [] and [x.policy for x in plan.conflicts] == ["crm"]


def test_links_without_remembered_values_are_not_compared():
    p = person(1)
    c, link = synced(p)
    legacy = replace(link, crm_values=None, mailbox_values=None)
    assert wb([p], [edited(c, business_phone="+1 555 0199")], [legacy]).writes == []


def test_a_person_off_the_list_or_deleted_is_not_written():
    p = person(1)
    c, link = synced(p)
    plan = plan_write_back(
        WriteBackInput(
            links={1: link},
            people={1: p},
            contacts=[edited(c, business_phone="+1 555 0199")],
            subscriptions=frozenset(),
        )
    )
    assert plan.writes == []
    gone = replace(p, deleted=True)
    assert wb([gone], [edited(c, business_phone="+1 555 0199")], [link]).writes == []


def _many(n: int) -> tuple[list[CrmPerson], list[MailboxContact], list[Link]]:
    people, contacts, links = [], [], []
    for pid in range(1, n + 1):
        p = person(pid)
        c, link = synced(p)
        people.append(p)
        contacts.append(c)
        links.append(link)
    return people, contacts, links


def test_mass_edit_guard_holds_every_write_back_and_says_how_to_let_it_through():
    people, contacts, links = _many(20)
    rewritten = [edited(c, mobile_phone="+44 7700 900000") for c in contacts[:6]]
    plan = wb(people, rewritten + contacts[6:], links)
    assert plan.writes == [] and len(plan.held) == 6
    assert "--allow-mass-edit" in plan.warnings[0]
    assert plan.pending() == {pid: frozenset({"mobile_phone"}) for pid in range(1, 7)}
    allowed = wb(people, rewritten + contacts[6:], links, allow_mass_edit=True)
    assert len(allowed.writes) == 6 and allowed.held == []


def test_the_guard_lets_a_few_edits_through():
    people, contacts, links = _many(20)
    rewritten = [edited(c, mobile_phone="+44 7700 900000") for c in contacts[:5]]
    assert len(wb(people, rewritten + contacts[5:], links).writes) == 5  # 5 is not > 5


def test_a_pending_edit_is_not_overwritten_by_a_crm_change_and_stays_pending():
    # The write-back was held (or failed) and the CRM changed the job title meanwhile:
    # the CRM -> Exchange plan writes the title but leaves Outlook's phone, and the link
    # keeps the old phone as the remembered mailbox value, so the edit is seen again.
    p = person(1)
    c, link = synced(p)
    mine = edited(c, business_phone="+1 555 0199")
    crm_now = person(1, job_title="CTO", business_phone="+1 555 0111")
    result = plan_mailbox(
        PlanInput(
            category=CAT,
            subscriptions=frozenset({1}),
            links={1: link},
            people={1: crm_now},
            contacts=[mine],
            pending={1: frozenset({"business_phone"})},
        )
    )
    [update] = result.actions
    assert isinstance(update, UpdateContact)
    assert dict(update.change.set_fields) == {"job_title": "CTO"}
    assert update.mailbox_values is not None
    assert update.mailbox_values["business_phone"] == "+1 555 0100"
    assert update.mailbox_values["job_title"] == "CTO"


# -- no echo, as a property ----------------------------------------------------------------

values = st.sampled_from(["", "x", "Y", "+1 555 0100", "+1 555 0199", "a@b.example"])
edits = st.dictionaries(st.sampled_from(WRITE_BACK_FIELDS), values, max_size=4)


@given(outlook=edits, crm=edits, policy=st.sampled_from(["crm", "latest"]))
def test_after_one_sync_the_next_one_finds_nothing_to_write_either_way(outlook, crm, policy):
    """Whatever both sides edited, once the write-back and the CRM -> Exchange plan are
    done (and remembered on the link), a second sync writes nothing to either side."""
    p = person(1)
    c, link = synced(p)
    contact = edited(c, **outlook)
    crm_person = replace(p, fields=replace(p.fields, **crm).with_derived())
    first = wb([crm_person], [contact], [link], conflict_policy=policy)
    for write in first.writes:  # the CRM takes the write (as sync._write_back does)
        fields = replace(crm_person.fields, **dict(write.changes)).with_derived()
        crm_person = replace(crm_person, fields=fields)
    result = plan_mailbox(
        PlanInput(
            category=CAT,
            subscriptions=frozenset({1}),
            links={1: link},
            people={1: crm_person},
            contacts=[contact],
        )
    )
    new_link, new_contact = link, contact
    for action in result.actions:  # the mailbox takes the write (as the applier does)
        assert isinstance(action, UpdateContact | RefreshLink)
        if isinstance(action, UpdateContact):
            new_contact = replace(action.change.applied_to(contact), change_key="ck-2")
        new_link = Link(
            1,
            new_contact.item_id,
            new_contact.change_key,
            action.fingerprint,
            "created",
            action.crm_values,
            action.mailbox_values,
        )
    second = wb([crm_person], [new_contact], [new_link], conflict_policy=policy)
    assert second.writes == [] and second.conflicts == []
    again = plan_mailbox(
        PlanInput(
            category=CAT,
            subscriptions=frozenset({1}),
            links={1: new_link},
            people={1: crm_person},
            contacts=[new_contact],
        )
    )
    assert again.actions == []
