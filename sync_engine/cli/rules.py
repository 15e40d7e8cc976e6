"""`crm-contacts rules list|add|remove`: the standing rules (DESIGN rule 11)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from sync_engine.cli.core import As, Json, app, engine, fail, friendly, local_time, out, print_json
from sync_engine.standing.rules import KINDS, UnknownKind, kinds_listed, parse_kind

rules_app = typer.Typer(
    help="Standing rules: keep everyone you're Account Manager for in My CRM Contacts.",
    no_args_is_help=True,
)
app.add_typer(rules_app, name="rules")

Kind = Annotated[
    str, typer.Argument(metavar="KIND", help=f"The rule: {' or '.join(KINDS)}.", show_default=False)
]


def _kind(text: str) -> str:
    """The kind as typed, or a usage error (exit 2) that lists the kinds."""
    try:
        return parse_kind(text)
    except UnknownKind as exc:
        raise fail(str(exc), 2) from None


@rules_app.command("list")
@friendly
def rules_list(as_: As, as_json: Json = False) -> None:
    """Your standing rules and how many people each brings."""
    e = engine()
    rules = e.rules.of(e.user(as_))
    if as_json:
        print_json(
            [
                {
                    "kind": r.kind,
                    "description": KINDS[r.kind][0],
                    "added_at": r.added_at.isoformat(),
                    "people": r.people,
                }
                for r in rules
            ]
        )
        return
    if not rules:
        out.print(
            f"No standing rules. `crm-contacts rules add KIND --as {as_}` keeps {kinds_listed()} "
            "in My CRM Contacts.",
            markup=False,
        )
        return
    table = Table(title="Standing rules", title_justify="left")
    for column in ("kind", "keeps", "people", "on since"):
        table.add_column(column)
    for r in rules:
        table.add_row(r.kind, KINDS[r.kind][0], str(r.people), local_time(r.added_at))
    out.print(table)


@rules_app.command("add")
@friendly
def rules_add(kind: Kind, as_: As) -> None:
    """Turn a rule on: its people join My CRM Contacts now, and later ones at each sync."""
    kind = _kind(kind)
    e = engine()
    added = e.rules.add(e.user(as_), kind)
    head = "Rule on" if added.new else "Rule already on"
    joined = (
        f"{_people(added.joined)} joined My CRM Contacts (in your mailbox at the next sync)"
        if added.joined
        else "nobody new joined My CRM Contacts"
    )
    out.print(
        f"{head}: {kind} keeps {KINDS[kind][0]} in My CRM Contacts; it brings "
        f"{_people(added.people)} now, {joined}. People who match it later arrive at the "
        "next sync; people who stop matching leave (their contacts stay, without the category).",
        markup=False,
    )


def _people(n: int) -> str:
    return f"{n} {'person' if n == 1 else 'people'}"


@rules_app.command("remove")
@friendly
def rules_remove(kind: Kind, as_: As) -> None:
    """Turn a rule off: the people only it brought leave My CRM Contacts (the contacts
    stay in Outlook without the category); people you picked stay."""
    kind = _kind(kind)
    e = engine()
    removed = e.rules.remove(e.user(as_), kind)
    out.print(
        f"Rule off: {kind}. {_people(removed.leaving)} only it brought leave My CRM Contacts "
        f"at the next sync (the contacts stay, without the category); {removed.staying} stay "
        "(picked by you or kept by another rule).",
        markup=False,
    )
