"""Finding people and choosing them: search, add, add-group, remove, list."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from sync_engine.cli.core import (
    As,
    Json,
    app,
    engine,
    fail,
    friendly,
    out,
    print_json,
)
from sync_engine.model import PersonView

# -- people tables ------------------------------------------------------------------------


def people_table(people: list[PersonView], *, title: str = "", status: bool = False) -> Table:
    table = Table(title=title or None, title_justify="left")
    for column in ("id", "name", "company", "job title", "email"):
        table.add_column(column)
    table.add_column("status" if status else "in my list")
    if status:  # why in the list: picked by hand, or the rules (list --json: sources)
        table.add_column("why", max_width=16, overflow="fold")
    for p in people:
        flag = p.status if status else ("✓" if p.in_list else "")
        why = [" ".join(s.removeprefix("rule:") for s in p.sources or ())] if status else []
        table.add_row(str(p.id), p.name, p.company, p.job_title, p.email, flag, *why)
    return table


def print_people(
    people: list[PersonView], as_json: bool, *, title: str = "", status: bool = False
) -> None:
    if as_json:
        print_json([p.as_json() for p in people])
    elif people:
        out.print(people_table(people, title=title, status=status))


# -- finding and choosing people ------------------------------------------------------------


@app.command()
@friendly
def search(
    query: Annotated[
        str, typer.Argument(help='Name, company or email; company:"Name" for one company.')
    ],
    as_: As,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: Json = False,
) -> None:
    """Search CRM people."""
    e = engine()
    page = e.search(e.user(as_), query, limit=limit)
    if as_json:
        print_people(page.people, True)
        return
    if not page.people:
        raise fail(f"nobody matches '{query}'; try another spelling, an email, or company:\"…\"")
    shown = (
        f"{len(page.people)} of {page.total}" if page.total > len(page.people) else str(page.total)
    )
    print_people(page.people, False, title=f"{shown} people match '{page.query}'")


@app.command()
@friendly
def add(
    as_: As,
    query: Annotated[
        str | None, typer.Argument(help="Add the person this finds (or all, with --all).")
    ] = None,
    ids: Annotated[
        list[int] | None, typer.Option("--id", help="CRM person id (repeat for several).")
    ] = None,
    all_matches: Annotated[
        bool, typer.Option("--all", help="Add every person the query finds.")
    ] = False,
) -> None:
    """Add people to My CRM Contacts (they reach the mailbox at the next sync)."""
    e = engine()
    user = e.user(as_)
    if bool(query) == bool(ids):
        raise fail("give either a search QUERY or one or more --id ID")
    if query:
        page = e.search(user, query, limit=0)
        if not page.people:
            raise fail(f"nobody matches '{query}'; try `crm-contacts search` with another spelling")
        if len(page.people) > 1 and not all_matches:
            print_people(page.people[:20], False, title=f"{page.total} people match '{query}'")
            raise fail("several people match; add them by --id, or all of them with --all")
        ids = [p.id for p in page.people]
    result = e.add(user, ids or [], source="cli")
    report_added(result.added, result.already)


def report_added(added: list[PersonView], already: list[PersonView]) -> None:
    if added:
        out.print(people_table(added, title=f"Added {len(added)} to My CRM Contacts"))
    if already:
        out.print(f"Already in My CRM Contacts: {', '.join(p.name for p in already)}", markup=False)
    if not added and not already:
        out.print("Nobody to add.")


@app.command("add-group")
@friendly
def add_group(as_: As) -> None:
    """Add everyone whose Account Manager is you."""
    e = engine()
    result = e.add_group(e.user(as_))
    if not result.added and not result.already:
        out.print("You are Account Manager for nobody in the CRM.")
        return
    report_added(result.added, result.already)


@app.command()
@friendly
def remove(
    as_: As,
    ids: Annotated[list[int], typer.Option("--id", help="CRM person id (repeat for several).")],
) -> None:
    """Remove people from My CRM Contacts (the contact stays, without the category)."""
    e = engine()
    result = e.remove(e.user(as_), ids)
    for p in result.removed:
        out.print(f"Removed {p.name} ({p.id}); the next sync unlinks it", markup=False)
    if result.not_in_list:
        raise fail(f"not in your list: {', '.join(str(i) for i in result.not_in_list)}")


@app.command("list")
@friendly
def list_(as_: As, as_json: Json = False) -> None:
    """My CRM Contacts, with each person's sync status."""
    e = engine()
    people = e.my_list(e.user(as_))
    if not people and not as_json:
        out.print("My CRM Contacts is empty; add people with `crm-contacts search` and `add`.")
        return
    print_people(people, as_json, title=f"My CRM Contacts ({len(people)})", status=True)
