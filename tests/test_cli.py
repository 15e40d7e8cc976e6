"""The main story through the command line, on the embedded default (DESIGN rules 1–9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ALICE = "alice@example.com"


def mailbox(cli, who: str = ALICE) -> list[dict]:  # type: ignore[no-untyped-def]
    return json.loads(cli.ok("mailbox", "list", "--as", who, "--json"))


def find(cli, query: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return json.loads(cli.ok("search", query, "--as", ALICE, "--json"))


def sync(cli, *extra: str) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(cli.ok("sync", "--as", ALICE, "--json", *extra))["mailboxes"][0]


@pytest.fixture
def seeded(cli):  # type: ignore[no-untyped-def]
    cli.ok("crm", "seed")
    return cli


def test_every_command_works_on_an_empty_home(cli, home: Path):
    assert "No mailboxes yet" in cli.ok("status")
    user_id = cli.ok("crm", "add-user", "--email", "dora@example.com").strip()
    assert user_id.isdigit()
    assert json.loads(cli.ok("list", "--as", "dora@example.com", "--json")) == []
    assert json.loads(cli.ok("search", "anyone", "--as", "dora@example.com", "--json")) == []
    assert (home / "state.sqlite").exists() and (home / "crm.sqlite").exists()


def test_seed_story(seeded):
    cli = seeded
    design_right = find(cli, 'company:"Design Right Inc."')
    assert len(design_right) == 5 and {p["company"] for p in design_right} == {"Design Right Inc."}
    # select all, add
    cli.ok("add", 'company:"Design Right Inc."', "--all", "--as", ALICE)
    # add-group: Alice is Account Manager for three people at Acme and one at Harbour & Sons
    cli.ok("add-group", "--as", ALICE)
    # a contact already in Outlook with the same company and names
    wei_item = cli.ok(
        "mailbox",
        "add",
        "--as",
        ALICE,
        "--first",
        "Wei",
        "--last",
        "Chen",
        "--company",
        "Acme Corp",
        "--category",
        "Golf",
    ).strip()
    listed = json.loads(cli.ok("list", "--as", ALICE, "--json"))
    assert len(listed) == 9 and {p["status"] for p in listed} == {"pending add"}

    first = sync(cli)
    assert (first["created"], first["linked"], first["failed"]) == (8, 1, 0)
    box = mailbox(cli)
    assert len(box) == 9
    weis = [c for c in box if c["last_name"] == "Chen"]
    assert len(weis) == 1 and weis[0]["id"] == wei_item
    assert weis[0]["categories"] == ["Golf", "CRM Contact"]
    assert all("CRM Contact" in c["categories"] for c in box)
    assert {p["status"] for p in json.loads(cli.ok("list", "--as", ALICE, "--json"))} == {"synced"}

    # idempotent: a second run writes nothing
    second = sync(cli)
    assert second["write_requests"] == 0
    assert all(second[k] == 0 for k in ("created", "linked", "updated", "unlinked", "deleted"))

    # remove one: unlinked, stays without the category
    priya = next(p for p in design_right if p["last_name"] == "Natarajan")
    cli.ok("remove", "--id", str(priya["id"]), "--as", ALICE)
    assert sync(cli)["unlinked"] == 1
    kept = next(c for c in mailbox(cli) if c["last_name"] == "Natarajan")
    assert kept["categories"] == [] and kept["crm_id"] is None

    # CRM edit reaches the mailbox
    zoe = next(p for p in design_right if p["first_name"] == "Zoë")
    cli.ok("crm", "update-person", str(zoe["id"]), "--email", "zoe.bronte@designright.example")
    assert sync(cli)["updated"] == 1
    assert (
        next(c for c in mailbox(cli) if c["first_name"] == "Zoë")["email"]
        == "zoe.bronte@designright.example"
    )

    # delete in the CRM: gone from the mailbox, list and link dropped
    maria = next(p for p in design_right if p["last_name"] == "Lopez")
    cli.ok("crm", "delete-person", str(maria["id"]))
    assert sync(cli)["deleted"] == 1
    assert not [c for c in mailbox(cli) if c["last_name"] == "Lopez"]
    assert maria["id"] not in {p["id"] for p in json.loads(cli.ok("list", "--as", ALICE, "--json"))}
    trail = cli.ok("why", str(maria["id"]), "--as", ALICE)
    assert "subscribed" in trail and "created" in trail and "deleted in the CRM" in trail


def test_add_from_a_query_with_one_match_and_refusal_with_several(seeded):
    cli = seeded
    out = cli.ok("add", "Fatima", "--as", ALICE)
    assert "Fatima Al-Sayed" in out
    several = cli("add", "John Smith", "--as", ALICE)
    assert several.code == 1 and "several people match" in several.err
    assert "Fatima" in cli.ok("list", "--as", ALICE)


def test_adding_twice_keeps_one_subscription_and_one_contact(seeded):
    cli = seeded
    pid = str(find(cli, "Fatima")[0]["id"])
    cli.ok("add", "--id", pid, "--as", ALICE)
    assert "Already in My CRM Contacts" in cli.ok("add", "--id", pid, "--as", ALICE)
    sync(cli)
    cli.ok("add", "--id", pid, "--as", ALICE)
    sync(cli)
    assert len(mailbox(cli)) == 1


def test_contact_deleted_in_outlook_is_not_brought_back(seeded):
    cli = seeded
    pid = str(find(cli, "Fatima")[0]["id"])
    cli.ok("add", "--id", pid, "--as", ALICE)
    sync(cli)
    [item] = mailbox(cli)
    cli.ok("mailbox", "delete", item["id"], "--as", ALICE)
    result = sync(cli)
    assert result["forgotten"] == 1 and result["created"] == 0
    assert mailbox(cli) == [] and json.loads(cli.ok("list", "--as", ALICE, "--json")) == []
    assert sync(cli)["created"] == 0


def test_outlook_value_survives_a_crm_blank(seeded):
    cli = seeded
    pid = str(find(cli, "Fatima")[0]["id"])
    cli.ok("add", "--id", pid, "--as", ALICE)
    sync(cli)
    [item] = mailbox(cli)
    cli.ok(
        "mailbox",
        "update",
        item["id"],
        "--as",
        ALICE,
        "--email",
        "fatima.personal@example.org",
        "--category",
        "CRM Contact",
        "--category",
        "Buyers",
    )
    cli.ok("crm", "update-person", pid, "--email", "")  # blank in the CRM
    sync(cli)
    [after] = mailbox(cli)
    assert after["email"] == "fatima.personal@example.org"
    assert after["categories"] == ["CRM Contact", "Buyers"]


def test_mass_delete_guard_through_the_cli(seeded):
    cli = seeded
    cli.ok("add", 'company:"Design Right Inc."', "--all", "--as", ALICE)
    cli.ok("add-group", "--as", ALICE)
    sync(cli)
    ids = [p["id"] for p in json.loads(cli.ok("list", "--as", ALICE, "--json"))][:6]
    for pid in ids:
        cli.ok("crm", "delete-person", str(pid))
    held = sync(cli)
    assert held["deleted"] == 0 and "Held back 6 deletes" in held["warnings"][0]
    assert len(mailbox(cli)) == 9
    dry = sync(cli, "--allow-mass-delete", "--dry-run")
    assert dry["deleted"] == 6 and len(mailbox(cli)) == 9
    assert sync(cli, "--allow-mass-delete")["deleted"] == 6
    assert len(mailbox(cli)) == 3


def test_sync_all_and_status(seeded):
    cli = seeded
    cli.ok("add-group", "--as", ALICE)
    cli.ok("add-group", "--as", "bob@example.com")
    data = json.loads(cli.ok("sync", "--all", "--json"))
    assert sorted(m["mailbox"] for m in data["mailboxes"]) == [ALICE, "bob@example.com"]
    status = json.loads(cli.ok("status", "--json"))
    assert {s["last_status"] for s in status["mailboxes"]} == {"ok"}
    assert status["problems"] == []


def test_real_process_exit_codes_and_no_traceback(home: Path):
    env = {**os.environ, "CRM_CONTACTS_HOME": str(home)}
    exe = [sys.executable, "-c", "from bot.cli import main; main()"]
    bad = subprocess.run(
        [*exe, "list", "--as", "nobody@example.com"], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error: no CRM user has the email nobody@example.com")
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_demo_walks_the_story_and_can_run_again(cli):
    first = cli.ok("demo")
    for step in (
        "Alice searches",
        "selects all",
        "Add Group Of Contacts",
        "Fatima Al-Sayed",
        "Sync again",
        "removes",
        "deleted in the CRM",
    ):
        assert step in first, step
    assert "Sync: 9 created, 1 linked" in first and "0 writes" in first
    # issue 14: Alice's phone fix in Outlook reaches the CRM
    assert "1 written back to the CRM" in first
    assert "The CRM now has +1 512 555 0123 for John Paul Smith." in first
    again = cli.ok("demo")
    assert "starting Alice's story over" in again and "Sync: 9 created, 1 linked" in again
    assert "1 written back to the CRM" in again
    box = mailbox(cli)
    assert len(box) == 9 and len([c for c in box if c["last_name"] == "Chen"]) == 1
    assert next(c for c in box if c["last_name"] == "Natarajan")["categories"] == []
