"""What the engine's use cases hand back, and the refusals they raise.

Kept apart from `service.py` so that the front ends (Slack, Teams, the CLI) that render
a result or turn a refusal into one line import these plain values without reading the
Engine that makes them; each refusal is an EngineError whose message is that line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sync_engine.errors import EngineError
from sync_engine.model import CrmPerson, Outcome, PersonView


class UnknownUser(EngineError):
    pass


class UnknownPerson(EngineError):
    pass


class SlackIdTaken(EngineError):
    """The CRM user is already mapped to another Slack account (DESIGN 2.10: one list, one
    owner); `slack_user_id` is the account that has it."""

    def __init__(self, slack_user_id: str) -> None:
        super().__init__("this CRM user is already linked to another Slack account")
        self.slack_user_id = slack_user_id


class BadQuery(EngineError):
    pass


@dataclass
class SearchPage:
    query: str
    total: int
    offset: int
    limit: int
    people: list[PersonView]


@dataclass
class AddResult:
    added: list[PersonView] = field(default_factory=list)
    already: list[PersonView] = field(default_factory=list)


@dataclass
class RemoveResult:
    removed: list[PersonView] = field(default_factory=list)
    not_in_list: list[int] = field(default_factory=list)


@dataclass
class MailboxStatus:
    email: str
    mailbox: str
    subscriptions: int
    linked: int
    last_run_at: datetime | None
    last_status: str | None
    last_error: str | None
    last_success_at: datetime | None
    next_due_at: datetime | None
    consecutive_failures: int
    target: str = ""  # "local", "ews" or "graph"; "" while hybrid mode has not decided
    target_reason: str = ""
    write_back_notes: list[str] = field(default_factory=list)  # the CRM's words (issue 19)


@dataclass
class Activity:
    """What the engine did for one user in a period (for summaries)."""

    since: datetime
    until: datetime
    runs: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    possible_duplicates: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action == "failed"]

    @property
    def empty(self) -> bool:
        return not (self.outcomes or self.possible_duplicates or self.warnings or self.errors)


def view(person: CrmPerson, *, in_list: bool = False, status: str = "") -> PersonView:
    return PersonView.of(person, in_list=in_list, status=status)
