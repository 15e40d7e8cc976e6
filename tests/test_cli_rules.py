"""`crm-contacts rules list|add|remove`, `list --json`'s sources and `crm update-company`
through the command line, in process as a fresh process would run them; bad input is one
line on stderr and changes nothing."""

from __future__ import annotations

import json

import pytest

ALICE = "alice@example.com"


@pytest.fixture
def seeded(cli):  # type: ignore[no-untyped-def]
    cli.ok("crm", "seed")
    return cli


def one_line_error(result, code: int, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert result.code == code, (result.code, result.err)
    lines = [line for line in result.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err
    for word in words:
        assert word in lines[0], lines[0]


def test_rules_add_list_remove_and_list_sources(seeded):  # type: ignore[no-untyped-def]
    cli = seeded
    assert "No standing rules" in cli.ok("rules", "list", "--as", ALICE)
    assert json.loads(cli.ok("rules", "list", "--as", ALICE, "--json")) == []
    cli.ok("add", "--id", "1", "--as", ALICE)  # Maria Lopez, by hand (Bob's client)
    said = cli.ok("rules", "add", "account-manager", "--as", ALICE)
    assert "Rule on: account-manager" in said and "it brings 4 people now" in said
    again = cli.ok("rules", "add", "Account-Manager", "--as", ALICE)
    assert "Rule already on" in again and "nobody new joined" in again
    [rule] = json.loads(cli.ok("rules", "list", "--as", ALICE, "--json"))
    assert (rule["kind"], rule["people"]) == ("account-manager", 4)
    assert rule["description"] == "everyone whose Account Manager you are"

    listed = {p["last_name"]: p for p in json.loads(cli.ok("list", "--as", ALICE, "--json"))}
    assert listed["Lopez"]["sources"] == ["picked"]
    assert listed["Chen"]["sources"] == ["rule:account-manager"]
    assert {tuple(p["sources"]) for p in listed.values()} == {
        ("picked",),
        ("rule:account-manager",),
    }
    table = cli.ok("list", "--as", ALICE)
    assert "account-manager" in table and "picked" in table
    # search --json is not about the list: no sources there
    assert "sources" not in json.loads(cli.ok("search", "Chen", "--as", ALICE, "--json"))[0]

    # the company's Account Manager, set in the embedded CRM, brings its people
    assert cli.ok("crm", "update-company", "Design Right Inc.", "--manager", ALICE)
    said = cli.ok("rules", "add", "company-manager", "--as", ALICE)
    assert "it brings 5 people now" in said and "4 people joined" in said  # Maria was picked
    off = cli.ok("rules", "remove", "company-manager", "--as", ALICE)
    assert "Rule off: company-manager. 4 people only it brought leave" in off
    listed = {p["last_name"]: p for p in json.loads(cli.ok("list", "--as", ALICE, "--json"))}
    assert listed["Lopez"]["sources"] == ["picked"]
    assert "Natarajan" not in listed  # never synced: nothing to unlink
    why = cli.ok("why", "4", "--as", ALICE)
    assert "by your rule company-manager" in why and "company-manager was turned off" in why


BAD = [
    (
        ["rules", "add", "owner", "--as", ALICE],
        2,
        ["'owner' is not a rule kind", "account-manager", "company-manager"],
    ),
    (["rules", "remove", "nonsense", "--as", ALICE], 2, ["not a rule kind"]),
    (
        ["rules", "remove", "company-manager", "--as", ALICE],
        1,
        ["the rule company-manager is not on for alice@example.com", "on: none"],
    ),
    (
        ["rules", "add", "account-manager", "--as", "gone@example.com"],
        1,
        ["gone@example.com is deactivated (disabled)", "not a salesperson"],
    ),
    (["rules", "add", "account-manager", "--as", "room@example.com"], 1, ["not a person"]),
    (["rules", "list", "--as", "nobody@example.com"], 1, ["no CRM user has the email"]),
    (["rules", "add", "--as", ALICE], 2, ["Missing argument 'KIND'"]),
    (
        ["crm", "update-company", "No Such Co", "--manager", ALICE],
        1,
        ["no CRM company is named or has the id 'No Such Co'"],
    ),
    (
        ["crm", "update-company", "Acme Corp", "--manager", "nobody@example.com"],
        1,
        ["no CRM user has the email nobody@example.com"],
    ),
    (["crm", "update-company", "Acme Corp"], 1, ["nothing to change: give --manager"]),
]


def test_bad_rule_input_is_one_line_and_changes_nothing(seeded):  # type: ignore[no-untyped-def]
    cli = seeded
    cli.ok("crm", "add-user", "--email", "gone@example.com", "--disabled")
    cli.ok("crm", "add-user", "--email", "room@example.com", "--resource")
    before = cli.ok("list", "--as", ALICE, "--json")
    for args, code, words in BAD:
        one_line_error(cli(*args), code, *words)
    assert cli.ok("list", "--as", ALICE, "--json") == before
    assert json.loads(cli.ok("rules", "list", "--as", ALICE, "--json")) == []
    assert "Comp_PrimaryUserId" not in cli.ok("crm", "check")  # nothing missing, no advice
