"""Property: whatever a user, the CRM and Outlook do — and wherever a sync is killed —
a clean sync afterwards leaves the mailbox exactly as the rules say."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_engine.config import Settings
from sync_engine.crm.embedded import EmbeddedCrm
from sync_engine.mailbox.local import LocalMailbox
from sync_engine.model import ContactChange, ContactFields, MailboxContact, NewContact, WriteResult
from sync_engine.service import Engine

ME = "rep@example.com"
CAT = "CRM Contact"
PEOPLE = [  # (first, middle, last, company): two namesakes, a blank company, accents
    ("Maria", "", "Lopez", "Design Right Inc."),
    ("John", "Paul", "Smith", "Design Right Inc."),
    ("John", "", "Smith", "Acme Corp"),
    ("John", "", "Smith", "Acme Corp"),
    ("Zoë", "", "Brontë", ""),
    ("Seán", "", "O'Brien", "Harbour & Sons"),
    ("Wei", "", "Chen", "Acme Corp"),
]


class Crash(BaseException):
    """The process dies here (not an Exception: nothing in the engine may catch it)."""


class CrashingMailbox:
    """The real local target, killed on its n-th write: before it, or just after it."""

    def __init__(self, inner: LocalMailbox, at: int, after_write: bool) -> None:
        self.inner, self.at, self.after_write, self.writes = inner, at, after_write, 0
        self.address, self.batch_size = inner.address, inner.batch_size

    @property
    def requests(self) -> int:
        return self.inner.requests

    def list_contacts(self):  # type: ignore[no-untyped-def]
        return self.inner.list_contacts()

    def _write(self, op, items):  # type: ignore[no-untyped-def]
        self.writes += 1
        if self.writes == self.at and not self.after_write:
            raise Crash
        result = op(items)
        if self.writes == self.at:
            raise Crash
        return result

    def create(self, items: Sequence[NewContact]) -> list[WriteResult]:
        return self._write(self.inner.create, items)

    def update(self, items: Sequence[ContactChange]) -> list[WriteResult]:
        return self._write(self.inner.update, items)

    def delete(self, items: Sequence[str]) -> list[WriteResult]:
        return self._write(self.inner.delete, items)

    def check(self) -> list[str]:
        return self.inner.check()

    def __getattr__(self, name: str) -> Any:  # kind, target_id, find, as_held, forget_state
        return getattr(self.inner, name)

    def close(self) -> None:
        self.inner.close()


person_index = st.integers(0, len(PEOPLE) - 1)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), person_index),
        st.tuples(st.just("remove"), person_index),
        st.tuples(st.just("add_group"), st.just(0)),
        st.tuples(st.just("crm_edit"), person_index, st.sampled_from(["email", "title", "last"])),
        st.tuples(st.just("crm_delete"), person_index),
        st.tuples(
            st.just("outlook_edit"), st.integers(0, 20), st.sampled_from(["email", "categories"])
        ),
        st.tuples(st.just("outlook_delete"), st.integers(0, 20)),
        st.tuples(st.just("outlook_twin"), person_index),
        st.tuples(st.just("outlook_own"), st.integers(0, 3)),
        st.tuples(st.just("sync"), st.just(0)),
        st.tuples(st.just("crash_sync"), st.integers(1, 3), st.booleans()),
    ),
    max_size=14,
)


class World:
    def __init__(self, root: Path, batch_size: int) -> None:
        self.settings = Settings(crm_contacts_home=root, mass_delete_min=1000)
        self.crash: tuple[int, bool] | None = None
        self.batch_size = batch_size
        self.engine = Engine(self.settings, mailbox_factory=self.open)
        crm = EmbeddedCrm(self.engine.crm)
        crm.add_user(ME, "Rep", "One")
        self.crm = crm
        self.ids = [
            crm.add_person(first=f, middle=m, last=last, company=c, manager=ME if i % 2 else None)
            for i, (f, m, last, c) in enumerate(PEOPLE)
        ]
        self.user = self.engine.user(ME)
        self.box = LocalMailbox(self.settings.local_mailbox_url, ME)
        self.deleted_in_crm: set[int] = set()
        self.own: dict[str, str] = {}  # hand-made contacts no CRM person matches: item -> name
        self.edits = 0

    def open(self, settings: Settings, address: str):  # type: ignore[no-untyped-def]
        inner = LocalMailbox(
            settings.local_mailbox_url, address, batch_size=self.batch_size, page_size=3
        )
        if self.crash is None:
            return inner
        at, after = self.crash
        return CrashingMailbox(inner, at, after)

    def contacts(self) -> list[MailboxContact]:
        return [c for page in self.box.list_contacts() for c in page]

    def do(self, op: tuple) -> None:  # type: ignore[type-arg]
        kind = op[0]
        live = [pid for pid in self.ids if pid not in self.deleted_in_crm]
        if kind == "add" and self.ids[op[1]] in live:
            self.engine.add(self.user, [self.ids[op[1]]])
        elif kind == "remove":
            self.engine.remove(self.user, [self.ids[op[1]]])
        elif kind == "add_group":
            self.engine.add_group(self.user)
        elif kind == "crm_edit" and self.ids[op[1]] in live:
            self.edits += 1
            field = op[2]
            value = f"Changed{self.edits}" if field == "last" else f"v{self.edits}@crm.example"
            self.crm.update_person(self.ids[op[1]], **{field: value})
        elif kind == "crm_delete" and self.ids[op[1]] in live:
            self.crm.delete_person(self.ids[op[1]])
            self.deleted_in_crm.add(self.ids[op[1]])
        elif kind in ("outlook_edit", "outlook_delete"):
            contacts = sorted(self.contacts(), key=lambda c: c.item_id)
            if not contacts:
                return
            target = contacts[op[1] % len(contacts)]
            if kind == "outlook_delete":
                self.box.delete([target.item_id])
                self.own.pop(target.item_id, None)
            elif op[2] == "email":
                self.box.user_edit(target.item_id, fields={"email": "typed@outlook.example"})
            else:
                self.box.user_edit(target.item_id, categories=(*target.categories, "Golf"))
        elif kind == "outlook_twin":
            f, m, last, c = PEOPLE[op[1]]
            fields = ContactFields.of(
                first_name=f, middle_name=m, last_name=last, company=c
            ).with_derived()
            self.box.create([NewContact(fields, ("Personal",), None)])
        elif kind == "outlook_own":
            fields = ContactFields.of(
                first_name="Own", last_name=f"Person{op[1]}", company="Mine"
            ).with_derived()
            [made] = self.box.create([NewContact(fields, (), None)])
            self.own[made.item_id] = fields.full_name()
        elif kind == "sync":
            self.engine.sync(self.user)
        elif kind == "crash_sync":
            self.crash = (op[1], op[2])
            try:
                self.engine.sync(self.user)
            except Crash:
                pass
            finally:
                self.crash = None

    def check(self) -> None:
        stored = self.engine.store.ensure_user(self.user.id, ME)
        subs = set(self.engine.store.subscriptions(stored.id))
        links = self.engine.store.links(stored.id)
        contacts = self.contacts()
        by_id = {c.item_id: c for c in contacts}
        tagged = [c.crm_id for c in contacts if c.crm_id is not None]
        # never two contacts for one person
        assert len(tagged) == len(set(tagged)), tagged
        # every subscribed live person is linked, and only they are
        assert set(links) == subs, (links, subs)
        assert not subs & self.deleted_in_crm
        people = self.engine.crm.people_by_ids(subs)
        for pid, link in links.items():
            c = by_id[link.item_id]
            assert c.crm_id == pid and CAT in c.categories
            crm = people[pid].fields
            assert (c.fields.first_name, c.fields.last_name, c.fields.company) == (
                crm.first_name,
                crm.last_name,
                crm.company,
            )
        # no orphan carries our id or our category
        assert {c.crm_id for c in contacts if c.crm_id is not None} == set(links)
        assert {c.item_id for c in contacts if CAT in c.categories} == {
            link.item_id for link in links.values()
        }
        # nothing deleted that the rules keep: the user's own contacts survive every sync,
        # and the engine deleted only people deleted in the CRM
        assert set(self.own) <= set(by_id)
        deleted = {
            e.person_id for e in self.engine.store.events(stored.id) if e.action == "deleted"
        }
        assert deleted <= self.deleted_in_crm


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, batch_size=st.sampled_from([1, 2, 100]))
def test_any_history_then_a_clean_sync_leaves_exactly_what_the_rules_say(ops, batch_size):
    with tempfile.TemporaryDirectory() as root:
        world = World(Path(root), batch_size)
        try:
            for op in ops:
                world.do(op)
            first = world.engine.sync(world.user)
            assert first.error is None, first.error
            world.check()
            again = world.engine.sync(world.user)
            assert again.write_requests == 0 and not again.outcomes, again.outcomes
            world.check()
        finally:
            world.box.close()
            world.engine.close()
