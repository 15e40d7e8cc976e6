"""The rules of DESIGN section 2 on the pure planner: plain values in, actions out."""

from __future__ import annotations

from dataclasses import replace

from sync_engine.model import ContactFields, CrmPerson, Link, MailboxContact, write_back_values
from sync_engine.plan import (
    CreateContact,
    DeleteContact,
    ForgetPerson,
    LinkContact,
    PlanInput,
    RefreshLink,
    UnlinkContact,
    UpdateContact,
    plan_mailbox,
)

CAT = "CRM Contact"


def person(
    pid: int, first: str, last: str, company: str = "Acme", middle: str = "", **more: str
) -> CrmPerson:
    deleted = bool(more.pop("deleted", False))
    fields = ContactFields.of(
        first_name=first, middle_name=middle, last_name=last, company=company, **more
    )
    return CrmPerson(id=pid, fields=fields.with_derived(), deleted=deleted)


def contact(
    item: str,
    first: str,
    last: str,
    company: str = "Acme",
    middle: str = "",
    *,
    categories: tuple[str, ...] = (),
    crm_id: int | None = None,
    created: str = "2026-01-01T00:00:00",
    **more: str,
) -> MailboxContact:
    fields = ContactFields.of(
        first_name=first, middle_name=middle, last_name=last, company=company, **more
    )
    return MailboxContact(item, f"ck-{item}", fields.with_derived(), categories, crm_id, created)


def ours(p: CrmPerson, item: str, **kw: object) -> tuple[MailboxContact, Link]:
    """A contact as the engine created it for `p`, and its link."""
    c = MailboxContact(item, f"ck-{item}", p.fields, (CAT,), p.id, "2026-01-01T00:00:00")
    c = replace(c, **kw)  # type: ignore[arg-type]
    return c, Link(
        p.id,
        item,
        c.change_key,
        p.fields.fingerprint(),
        "created",
        write_back_values(p.fields),
        write_back_values(c.fields),
    )


def plan(subs=(), links=(), people=(), contacts=(), **kw):  # type: ignore[no-untyped-def]
    return plan_mailbox(
        PlanInput(
            category=CAT,
            subscriptions=frozenset(subs),
            links={link.person_id: link for link in links},
            people={p.id: p for p in people},
            contacts=list(contacts),
            **kw,
        )
    )


# -- rule 1: create -------------------------------------------------------------------------


def test_subscribed_person_without_link_or_match_is_created_with_category_and_crm_id():
    p = person(1, "Maria", "Lopez", "Design Right Inc.", email="maria@dr.example")
    result = plan(subs=[1], people=[p])
    [action] = result.actions
    assert isinstance(action, CreateContact)
    assert action.new.crm_id == 1
    assert action.new.categories == (CAT,)
    assert action.new.fields.email == "maria@dr.example"
    assert action.new.fields.display_name == "Maria Lopez"


# -- rule 2: dedupe -------------------------------------------------------------------------


def test_exact_match_on_company_and_names_links_instead_of_creating():
    p = person(1, "Wei", "Chen", "Acme Corp")
    mine = contact("a", "Wei", "Chen", "Acme Corp", categories=("Golf",))
    [action] = plan(subs=[1], people=[p], contacts=[mine]).actions
    assert isinstance(action, LinkContact)
    assert action.item_id == "a" and action.origin == "linked"
    assert action.change is not None
    assert action.change.categories == ("Golf", CAT)  # rule 3: other categories kept
    assert action.change.set_crm_id == 1


def test_blank_matches_blank_none_and_whitespace_alike():
    p = person(1, "Wei", "Chen", "", middle="")
    c = contact("a", " Wei ", "Chen", "   ", middle="")
    [action] = plan(subs=[1], people=[p], contacts=[c]).actions
    assert isinstance(action, LinkContact)


def test_blank_middle_name_does_not_match_a_filled_one():
    p = person(1, "John", "Smith", "Acme")
    c = contact("a", "John", "Smith", "Acme", middle="Paul")
    result = plan(subs=[1], people=[p], contacts=[c])
    assert [type(a) for a in result.actions] == [CreateContact]


def test_same_names_at_another_company_is_not_a_duplicate():
    p = person(1, "John", "Smith", "Acme Corp")
    c = contact("a", "John", "Smith", "Design Right Inc.")
    result = plan(subs=[1], people=[p], contacts=[c])
    assert [type(a) for a in result.actions] == [CreateContact]
    assert result.possible_duplicates == []


def test_case_or_accent_difference_is_reported_never_linked():
    p = person(1, "Zoë", "Brontë", "Design Right Inc.")
    c = contact("a", "zoe", "bronte", "Design Right Inc.")
    result = plan(subs=[1], people=[p], contacts=[c])
    assert [type(a) for a in result.actions] == [CreateContact]
    [dup] = result.possible_duplicates
    assert dup.item_id == "a" and "case or accents" in dup.why


def test_canonically_equal_names_link_but_case_and_accents_still_do_not():
    composed = person(1, "Zo\u00eb", "Bront\u00eb", "Caf\u00e9 Ren\u00e9")  # as the CRM holds them
    typed = contact(
        "a", "Zoe\u0308", "Bronte\u0308", "Cafe\u0301 Rene\u0301"
    )  # as Outlook got them
    assert typed.fields.first_name != composed.fields.first_name  # other code points ...
    result = plan(subs=[1], people=[composed], contacts=[typed])
    [action] = result.actions  # ... the same text: linked, no visually identical twin
    assert isinstance(action, LinkContact) and action.item_id == "a"
    assert result.possible_duplicates == []
    for first, last in (
        ("Zoe", "Bront\u00eb"),
        ("zo\u00eb", "Bront\u00eb"),
        ("ZOE\u0308", "BRONTE\u0308"),
    ):
        other = contact("b", first, last, "Caf\u00e9 Ren\u00e9")
        result = plan(subs=[1], people=[composed], contacts=[other])
        assert [type(a) for a in result.actions] == [CreateContact], (first, last)
        assert [d.item_id for d in result.possible_duplicates] == ["b"]


def test_typo_is_reported_as_possible_duplicate():
    p = person(1, "Priya", "Natarajan", "Design Right Inc.")
    c = contact("a", "Priya", "Natarajn", "Design Right Inc.")
    result = plan(subs=[1], people=[p], contacts=[c])
    assert [type(a) for a in result.actions] == [CreateContact]
    assert [d.item_id for d in result.possible_duplicates] == ["a"]


def test_several_exact_matches_link_the_oldest_and_report_the_rest():
    p = person(1, "Wei", "Chen", "Acme")
    newer = contact("b", "Wei", "Chen", "Acme", created="2026-03-01T00:00:00")
    oldest = contact("c", "Wei", "Chen", "Acme", created="2025-01-01T00:00:00")
    result = plan(subs=[1], people=[p], contacts=[newer, oldest])
    [action] = result.actions
    assert isinstance(action, LinkContact) and action.item_id == "c"
    assert [d.item_id for d in result.possible_duplicates] == ["b"]


def test_a_contact_linked_to_one_person_is_not_handed_to_a_namesake():
    a, b = person(1, "John", "Smith", "Acme"), person(2, "John", "Smith", "Acme")
    c = contact("x", "John", "Smith", "Acme")
    result = plan(subs=[1, 2], people=[a, b], contacts=[c])
    kinds = sorted(type(x).__name__ for x in result.actions)
    assert kinds == ["CreateContact", "LinkContact"]


# -- rule 4: update ---------------------------------------------------------------------------


def test_crm_change_rewrites_mapped_fields_only():
    old = person(1, "Ana", "García", "Acme", email="old@acme.example", job_title="CFO")
    c, link = ours(old, "a")
    new = replace(old, fields=replace(old.fields, email="new@acme.example"))
    [action] = plan(subs=[1], links=[link], people=[new], contacts=[c]).actions
    assert isinstance(action, UpdateContact)
    assert action.change.set_fields == (("email", "new@acme.example"),)
    assert action.change.categories is None


def test_crm_blank_never_erases_what_the_user_typed():
    old = person(1, "Ana", "García", "Acme", job_title="CFO")
    c, link = ours(old, "a")
    c = replace(c, fields=replace(c.fields, mobile_phone="+34 600 000 001", job_title="CFO"))
    blanked = replace(old, fields=replace(old.fields, job_title="", department="Finance"))
    [action] = plan(subs=[1], links=[link], people=[blanked], contacts=[c]).actions
    assert isinstance(action, UpdateContact)
    assert dict(action.change.set_fields) == {"department": "Finance"}


def test_unchanged_crm_with_outlook_edit_of_unmapped_things_writes_nothing():
    p = person(1, "Ana", "García", "Acme")
    c, link = ours(p, "a")
    c = replace(c, categories=("VIP", CAT), change_key="ck-newer")
    result = plan(subs=[1], links=[link], people=[p], contacts=[c])
    assert result.writes == 0
    assert [type(a) for a in result.actions] == [RefreshLink]


def test_category_removed_in_outlook_is_put_back_keeping_the_others():
    p = person(1, "Ana", "García", "Acme")
    c, link = ours(p, "a", categories=("VIP",))
    [action] = plan(subs=[1], links=[link], people=[p], contacts=[c]).actions
    assert isinstance(action, UpdateContact)
    assert action.change.categories == ("VIP", CAT)
    assert action.change.set_fields == ()


# -- rule 5: remove = unlink ----------------------------------------------------------------


def test_removing_from_the_list_unlinks_and_keeps_the_contact():
    p = person(1, "Tom", "Baker", "Harbour")
    c, link = ours(p, "a", categories=("Golf", CAT))
    [action] = plan(subs=[], links=[link], people=[p], contacts=[c]).actions
    assert isinstance(action, UnlinkContact)
    assert action.change.categories == ("Golf",)
    assert action.change.clear_crm_id
    assert not any(
        isinstance(a, DeleteContact) for a in plan(links=[link], people=[p], contacts=[c]).actions
    )


# -- rule 6: deleted in the CRM ---------------------------------------------------------------


def test_soft_deleted_person_is_deleted_from_the_mailbox():
    p = person(1, "Maria", "Lopez")
    c, link = ours(p, "a")
    gone = replace(p, deleted=True)
    [action] = plan(subs=[1], links=[link], people=[gone], contacts=[c]).actions
    assert isinstance(action, DeleteContact) and action.item_id == "a"


def test_hard_deleted_person_is_deleted_too():
    p = person(1, "Maria", "Lopez")
    other = person(2, "Wei", "Chen")
    c, link = ours(p, "a")
    c2, link2 = ours(other, "b")
    result = plan(subs=[1, 2], links=[link, link2], people=[other], contacts=[c, c2])
    assert [(type(a), a.person_id) for a in result.actions] == [(DeleteContact, 1)]


def test_subscribed_but_never_synced_person_deleted_in_crm_drops_the_subscription():
    gone = replace(person(1, "Maria", "Lopez"), deleted=True)
    [action] = plan(subs=[1], people=[gone, person(2, "A", "B")]).actions
    assert isinstance(action, ForgetPerson) and action.drop_subscription


# -- rule 7: deleted in Outlook ---------------------------------------------------------------


def test_contact_deleted_in_outlook_is_not_resurrected():
    p = person(1, "Wei", "Chen")
    _, link = ours(p, "a")
    [action] = plan(subs=[1], links=[link], people=[p], contacts=[]).actions
    assert isinstance(action, ForgetPerson)
    assert action.outcome == "forgotten" and action.drop_subscription


# -- rule 8: safety ---------------------------------------------------------------------------


def _many(n: int) -> tuple[list[CrmPerson], list[MailboxContact], list[Link]]:
    people = [person(i, f"P{i}", f"L{i}") for i in range(1, n + 1)]
    pairs = [ours(p, f"i{p.id}") for p in people]
    return people, [c for c, _ in pairs], [link for _, link in pairs]


def test_mass_delete_is_held_back_and_everything_else_still_happens():
    people, contacts, links = _many(20)
    gone = [replace(p, deleted=True) for p in people[:6]]  # 6 of 20 = 30 % and more than 5
    new = person(99, "New", "Person")
    result = plan(
        subs=[p.id for p in people] + [99],
        links=links,
        people=gone + people[6:] + [new],
        contacts=contacts,
    )
    assert not any(isinstance(a, DeleteContact) for a in result.actions)
    assert len(result.held_back) == 6
    assert any(isinstance(a, CreateContact) for a in result.actions)
    assert "Held back 6 deletes" in result.warnings[0]


def test_mass_delete_goes_ahead_when_allowed():
    people, contacts, links = _many(20)
    gone = [replace(p, deleted=True) for p in people[:6]]
    result = plan(
        subs=[p.id for p in people],
        links=links,
        people=gone + people[6:],
        contacts=contacts,
        allow_mass_delete=True,
    )
    assert len([a for a in result.actions if isinstance(a, DeleteContact)]) == 6


def test_a_few_deletes_are_under_the_limit():
    people, contacts, links = _many(20)
    gone = [replace(p, deleted=True) for p in people[:5]]  # 5 is not more than 5
    result = plan(
        subs=[p.id for p in people], links=links, people=gone + people[5:], contacts=contacts
    )
    assert len(result.of(DeleteContact)) == 5 and not result.warnings


def test_empty_crm_answer_holds_back_every_delete():
    people, contacts, links = _many(3)
    result = plan(
        subs=[p.id for p in people], links=links, people=[], contacts=contacts, crm_is_empty=True
    )
    assert result.of(DeleteContact) == [] and len(result.held_back) == 3
    assert "no people at all" in result.warnings[0]


# -- rule 9: idempotent and crash-safe ----------------------------------------------------------


def test_second_run_with_no_change_plans_no_write():
    people, contacts, links = _many(10)
    result = plan(subs=[p.id for p in people], links=links, people=people, contacts=contacts)
    assert result.actions == [] and result.writes == 0


def test_contact_created_by_an_interrupted_run_is_found_again_by_crm_id():
    p = person(1, "Wei", "Chen")
    c, _ = ours(p, "a")
    [action] = plan(subs=[1], people=[p], contacts=[c]).actions
    assert isinstance(action, LinkContact)
    assert action.origin == "created" and action.change is None


def test_interrupted_unlink_is_finished_without_a_write():
    p = person(1, "Wei", "Chen")
    _, link = ours(p, "a")
    released = contact("a", "Wei", "Chen")
    [action] = plan(subs=[], links=[link], people=[p], contacts=[released]).actions
    assert isinstance(action, UnlinkContact) and action.change is None


def test_contact_with_our_crm_id_but_off_the_list_is_released():
    p = person(1, "Wei", "Chen")
    c, _ = ours(p, "a")
    [action] = plan(subs=[], people=[p], contacts=[c]).actions
    assert isinstance(action, UnlinkContact) and action.change.clear_crm_id


def test_removed_from_the_list_then_deleted_in_the_crm_is_only_unlinked():
    p = person(1, "Tom", "Baker", "Harbour")
    c, link = ours(p, "a")
    gone = replace(p, deleted=True)
    [action] = plan(subs=[], links=[link], people=[gone], contacts=[c]).actions
    assert isinstance(action, UnlinkContact)  # off the list, the contact is the user's


def test_a_wiped_contacts_folder_does_not_empty_the_list():
    people, contacts, links = _many(20)
    result = plan(subs=[p.id for p in people], links=links, people=people, contacts=[])
    assert result.actions == [] and len(result.held_back) == 20
    assert "was the Contacts folder emptied" in result.warnings[0]
    allowed = plan(
        subs=[p.id for p in people], links=links, people=people, contacts=[], allow_mass_delete=True
    )
    assert len(allowed.of(ForgetPerson)) == 20
    few = plan(subs=[p.id for p in people], links=links, people=people, contacts=contacts[2:])
    assert len(few.of(ForgetPerson)) == 2 and not few.warnings
