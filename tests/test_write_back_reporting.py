"""Write-back (issue 14) as people see it: the CLI's summary, the Slack summary and
digest, a dry run that writes nothing to either side."""

from __future__ import annotations

import json

from bot.summary import summary_blocks
from sync_engine.model import Outcome


def test_the_slack_summary_counts_and_lists_write_backs_and_lost_conflicts():
    _, blocks = summary_blocks(
        "Sync of alice@example.com — done",
        [
            Outcome(1, "Zoë Brontë", "written_back", "business_phone"),
            Outcome(2, "Seán O'Brien", "conflict", "mobile_phone"),
        ],
    )
    shown = json.dumps(blocks, ensure_ascii=False)
    assert "1 sent to the CRM" in shown and "1 overruled by the CRM" in shown
    assert "Zoë Brontë" in shown and "business_phone" in shown
    assert "Your Outlook edits the CRM overruled" in shown


def _mailbox(cli) -> list[dict]:  # type: ignore[no-untyped-def]
    return json.loads(cli.ok("mailbox", "list", "--as", "alice@example.com", "--json"))


def test_the_cli_reports_a_write_back_and_a_dry_run_writes_nothing(cli):  # type: ignore[no-untyped-def]
    me = "alice@example.com"
    cli.ok("demo")  # the demo CRM, Alice's list and mailbox
    [sean] = [c for c in _mailbox(cli) if c["last_name"] == "O'Brien"]
    cli.ok("mailbox", "update", sean["id"], "--as", me, "--mobile", "+353 85 000 0000")
    dry = json.loads(cli.ok("sync", "--as", me, "--dry-run", "--json"))["mailboxes"][0]
    assert dry["written_back"] == 1 and dry["crm_requests"] == 0
    person = json.loads(cli.ok("search", "O'Brien", "--as", me, "--json"))[0]
    shown = cli.ok("sync", "--as", me)
    assert "1 written back to the CRM" in shown and "written back Seán O'Brien" in shown
    assert "mobile_phone" in shown
    why = cli.ok("why", str(person["id"]), "--as", me)
    # `why` names the salesperson whose edit was written
    assert "written_back" in why and f"changed in Outlook by {me}, written to the CRM" in why
    again = json.loads(cli.ok("sync", "--as", me, "--json"))["mailboxes"][0]
    assert (again["written_back"], again["crm_requests"], again["write_requests"]) == (0, 0, 0)
