"""The command line prints CRM values and echoed input as text: no Rich markup, no terminal
escapes, one line per error (issue 15, items 2 and 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_secrets_and_config import one_line

ALICE = "alice@example.com"
OSC8 = "\x1b]8;;http://e.x\x1b\\C\x1b]8;;\x1b\\"  # a hyperlink to http://e.x on "C"
HOSTILE = {  # short enough for a table row not to wrap
    "first": OSC8,
    "last": "[/] Evilname",
    "company": "[link=http://e.x]A[/link]\x1b[2J\x9b1m\u202eb",
}


@pytest.fixture
def hostile(cli):  # type: ignore[no-untyped-def]
    cli.ok("crm", "seed")
    person_id = cli.ok(
        "crm",
        "add-person",
        "--first",
        HOSTILE["first"],
        "--last",
        HOSTILE["last"],
        "--company",
        HOSTILE["company"],
        "--manager",
        ALICE,
    ).strip()
    return cli, int(person_id)


def assert_inert(output: str) -> None:
    """Nothing a terminal would act on: no ESC, no C1 CSI, no bidi override."""
    for raw in ("\x1b", "\x9b", "\u202e", "\x07"):
        assert raw not in output, repr(raw)


def test_a_hostile_crm_person_is_printed_as_text_by_every_command(hostile) -> None:  # type: ignore[no-untyped-def]
    cli, person_id = hostile
    group = cli("add-group", "--as", ALICE)  # adds, then prints the table
    assert group.code == 0, group.err
    listed = cli("list", "--as", ALICE)
    found = cli("search", "Evilname", "--as", ALICE)
    shown = cli("search", "company:[link=http://e.x]A[/link]", "--as", ALICE)
    for result in (group, listed, found, shown):
        assert "Traceback" not in result.err
        assert_inert(result.out + result.err)
    for result in (group, listed):
        assert "[/] Evilname" in result.out
        assert "\\e]8;;http://e.x\\e\\C\\e]8;;\\e\\ [/] Evilname" in result.out
        assert "[link=http://e.x]A[/link]\\e[2J\\x9b1m\\u202eb" in result.out
    assert str(person_id) in listed.out


def test_markup_in_a_query_is_echoed_as_typed(hostile) -> None:  # type: ignore[no-untyped-def]
    cli, _ = hostile
    broken = cli("search", "Smith [/]", "--as", ALICE)
    assert "Traceback" not in broken.err and "MarkupError" not in broken.err
    assert "Smith [/]" in broken.out + broken.err
    link = cli("search", "[link=http://evil.example]Smith", "--as", ALICE)
    assert "[link=http://evil.example]" in link.out + link.err


def test_json_output_keeps_the_values_and_escapes_what_a_terminal_would_run(hostile) -> None:  # type: ignore[no-untyped-def]
    cli, person_id = hostile
    cli.ok("add", "--id", str(person_id), "--as", ALICE)
    out = cli.ok("list", "--as", ALICE, "--json")
    assert_inert(out)
    person = next(p for p in json.loads(out) if p["id"] == person_id)
    assert (person["first_name"], person["last_name"], person["company"]) == (
        HOSTILE["first"],
        HOSTILE["last"],
        HOSTILE["company"],
    )


@pytest.mark.parametrize(
    "args",
    [
        ["search", "Smith\udcff", "--as", ALICE],
        ["list", "--as", "alice\udcff@example.com"],
        ["crm", "add-person", "--first", "A\udcff", "--last", "B"],
    ],
)
def test_invalid_utf8_in_an_argument_is_one_line(cli, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    cli.ok("crm", "seed")
    line = one_line(cli(*args), "not valid UTF-8", "\\xff")
    assert "\udcff" not in line


def test_a_newline_in_as_cannot_fake_a_second_error_line(cli) -> None:  # type: ignore[no-untyped-def]
    cli.ok("crm", "seed")
    line = one_line(cli("list", "--as", "alice@example.com\nerror: fake"), "\\nerror: fake")
    assert "no CRM user" in line


def test_invalid_utf8_bytes_in_a_real_process(home: Path) -> None:
    env = {**os.environ, "CRM_CONTACTS_HOME": str(home), "LC_ALL": "C.UTF-8"}
    exe = os.fsencode(Path(sys.executable).parent / "crm-contacts")
    subprocess.run([exe, b"crm", b"seed"], env=env, check=True, capture_output=True)
    done = subprocess.run(
        [exe, b"search", b"Smith\xff", b"--as", ALICE.encode()], env=env, capture_output=True
    )
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "error: the argument Smith\\xff is not valid UTF-8; check your terminal's character encoding"
    ]
