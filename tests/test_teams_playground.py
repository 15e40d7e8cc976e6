"""End to end in Microsoft 365 Agents Playground, Microsoft's local Teams emulator.

`crm-contacts serve` runs as the Procfile runs it; the Playground (npm
`@microsoft/m365agentsplayground`, installed by `npm ci` from the repository's lock) is
started as `agentsplayground -e http://127.0.0.1:PORT/api/messages -c msteams`, and its
web UI is driven by Playwright in Debian's headless Chromium, as a salesperson clicks:
search, tick people on two pages, add, sync, and read the result card. The Playground
renders Adaptive Cards with the same renderer as Teams; the screenshots of the picker and
the result card in docs/ come from this test (TEAMS_SCREENSHOTS_DIR=docs).

Identity goes the production way: the Playground's user (Alex Wilber, a fixed Entra
object id) is looked up in the loopback Graph, matched to the CRM user alexw@example.com.
The Playground sends no token, so the server runs with TEAMS_PLAYGROUND=true (loopback
only: activities whose serviceUrl is not on this machine are dropped).

Outside CI the test is skipped when node_modules or Chromium are missing; with CI=true
that is a failure (.ci/run installs Chromium).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.graph import graph_server

ROOT = Path(__file__).resolve().parent.parent
PLAYGROUND = ROOT / "node_modules" / ".bin" / "agentsplayground"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The Playground's default tenant and user (its /_internal/v1/config).
TENANT = "00000000-0000-0000-0000-0000000000001"
ALEX_OBJECT_ID = "00000000-0000-0000-0000-0000000000020"
ALEX = "alexw@example.com"
COMPANY = "Contoso Pharmaceuticals"
PEOPLE = [
    ("Ada", "Abbott"),
    ("Ben", "Barker"),
    ("Cleo", "Carter"),
    ("Dev", "Dutta"),
    ("Eva", "Ekdahl"),
    ("Finn", "Foster"),
    ("Gia", "Greco"),
    ("Hal", "Hughes"),
    ("Ivy", "Ingram"),
    ("Jon", "Jansen"),
    ("Kai", "Kowalski"),
    ("Lia", "Lindqvist"),
]
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing; CI needs it (.ci/run installs it)")
    pytest.skip(f"{what} is missing (npm ci; apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, f"{url} did not come up"
            time.sleep(0.2)


@contextlib.contextmanager
def running(
    args: list[str], env: dict[str, str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def test_search_tick_two_pages_add_sync_in_the_agents_playground(
    home: Path, cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    if not PLAYGROUND.exists():
        _missing("node_modules/.bin/agentsplayground (npm ci)")
    if not Path(CHROMIUM).exists():
        _missing("Debian's chromium")
    from playwright.sync_api import expect, sync_playwright

    # The CRM: Alex, salesperson, and twelve people at one company (two pages of ten).
    from sync_engine.config import load_settings
    from sync_engine.crm.embedded import EmbeddedCrm
    from sync_engine.service import Engine

    engine = Engine(load_settings())
    crm = EmbeddedCrm(engine.crm)
    crm.add_user(ALEX, "Alex", "Wilber")
    for first, last in PEOPLE:
        email = f"{first.lower()}.{last.lower()}@contoso.example"
        crm.add_person(first=first, last=last, company=COMPANY, email=email)
    engine.close()

    with graph_server() as graph:
        graph.roles.append("User.Read.All")
        graph.add_user(ALEX, object_id=ALEX_OBJECT_ID)
        port, pg_port = _free_port(), _free_port()
        env = {
            **os.environ,
            **{k: v for k, v in graph.env().items() if k != "MAILBOX_BACKEND"},
            "CRM_CONTACTS_HOME": str(home),
            "PORT": str(port),
            "TEAMS_PLAYGROUND": "true",
            "TEAMS_TENANT_ID": TENANT,
            "TEAMS_APPSETTINGS_BROWSER": "none",
            "TEAMSAPPTESTER_BROWSER": "none",  # the Playground must not try to open a browser
        }
        for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "TEAMS_APP_ID", "MAILBOX_BACKEND"):
            env.pop(name, None)
        exe = str(Path(sys.executable).parent / "crm-contacts")
        with (
            running([exe, "serve"], env, tmp_path, tmp_path / "serve.log") as server,
            running(
                [
                    str(PLAYGROUND),
                    "-e",
                    f"http://127.0.0.1:{port}/api/messages",
                    "-c",
                    "msteams",
                    "-p",
                    str(pg_port),
                    "--dt",
                ],
                env,
                tmp_path,
                tmp_path / "playground.log",
            ) as playground,
        ):
            _wait_http(f"http://127.0.0.1:{port}/healthz", server, tmp_path / "serve.log")
            _wait_http(
                f"http://127.0.0.1:{pg_port}/_debug/ping", playground, tmp_path / "playground.log"
            )
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
                )
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.set_default_timeout(30_000)
                page.goto(f"http://127.0.0.1:{pg_port}/")
                # connected: the Playground has told the bot it was installed
                expect(page.get_by_text("conversationUpdate 200")).to_be_visible()
                say = page.locator("[data-lexical-editor=true]")

                def send(text: str) -> None:
                    say.click()
                    page.keyboard.type(text)
                    page.keyboard.press("Enter")

                send(f"search {COMPANY}")
                picker = page.locator(".ac-adaptiveCard").filter(has_text="12 people match").last
                expect(picker).to_contain_text("page 1 of 2")
                ticked = []
                boxes = picker.get_by_role("checkbox")
                expect(boxes).to_have_count(10)
                for n in (0, 4, 9):
                    boxes.nth(n).click()
                    ticked.append(boxes.nth(n).get_attribute("aria-label") or "")
                shots = Path(os.environ.get("TEAMS_SCREENSHOTS_DIR") or tmp_path)
                picker.screenshot(path=str(shots / "teams-picker.png"))
                picker.get_by_role("button", name="Next ▶").click()
                expect(picker).to_contain_text("page 2 of 2")
                expect(picker).to_contain_text("3 selected (3 on other pages)")
                expect(boxes).to_have_count(2)
                for n in (0, 1):
                    boxes.nth(n).click()
                    ticked.append(boxes.nth(n).get_attribute("aria-label") or "")
                picker.screenshot(path=str(shots / "teams-picker-page-2.png"))
                picker.get_by_role("button", name="Add selected to My CRM Contacts").click()
                added = page.locator(".ac-adaptiveCard").filter(has_text="Added 5 people").last
                chosen = sorted(label.split(" — ")[0] for label in ticked)
                assert len(set(chosen)) == 5, ticked
                for name in chosen:
                    expect(added).to_contain_text(name)

                send("sync")
                result = page.locator(".ac-adaptiveCard").filter(has_text=f"Sync of {ALEX}").last
                expect(result).to_contain_text("5 created", timeout=60_000)
                expect(result).to_contain_text("Created in your Contacts (5)")
                result.screenshot(path=str(shots / "teams-result.png"))
                browser.close()

    # What the list and the mailbox hold now is what the cards said.
    listed = json.loads(cli.ok("list", "--as", ALEX, "--json"))
    assert sorted(f"{p['first_name']} {p['last_name']}" for p in listed) == chosen
    assert all(p["status"] == "synced" for p in listed)
    contacts = json.loads(cli.ok("mailbox", "list", "--as", ALEX, "--json"))
    assert sorted(f"{c['first_name']} {c['last_name']}" for c in contacts) == chosen
