"""The `crm` commands: seed the embedded demo CRM, add and change people and users."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sync_engine.cli.core import (
    crm_app,
    engine,
    err,
    friendly,
    out,
)
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo, seed_large

# -- the CRM ------------------------------------------------------------------------------


def writer() -> EmbeddedCrm:
    return EmbeddedCrm(engine().crm)


@crm_app.command("seed")
@friendly
def crm_seed(
    people: Annotated[
        int | None, typer.Option(help="Generate this many extra people (benchmarks).", min=0)
    ] = None,
) -> None:
    """Load the demo data set, or generate a large CRM with --people N."""
    crm = engine().crm
    if people is None:
        result = seed_demo(crm)
        if result["created"]:
            out.print(f"Seeded the demo CRM: {result['users']} users, {result['people']} people.")
        else:
            out.print(f"The CRM already has {result['people']} people; nothing seeded.")
        return
    with Progress(
        TextColumn("generating people"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        task = bar.add_task("seed", total=people)
        result = seed_large(crm, people, progress=lambda n: bar.advance(task, n))
    out.print(f"Added {result['people']} people in {result['companies']} companies.")


@crm_app.command("add-user")
@friendly
def crm_add_user(
    email: Annotated[str, typer.Option(help="The user's email (= their mailbox).")],
    first: str = "",
    last: str = "",
) -> None:
    """Add a CRM user (a salesperson)."""
    user_id = writer().add_user(email, first, last)
    out.print(str(user_id))


@crm_app.command("add-person")
@friendly
def crm_add_person(
    first: Annotated[str, typer.Option()],
    last: Annotated[str, typer.Option()],
    middle: str = "",
    company: str = "",
    email: str = "",
    title: str = "",
    manager: Annotated[str | None, typer.Option(help="Account Manager's email.")] = None,
) -> None:
    """Add a CRM person; prints the new id."""
    person_id = writer().add_person(
        first=first,
        last=last,
        middle=middle,
        company=company,
        email=email,
        title=title,
        manager=manager,
    )
    out.print(str(person_id))


@crm_app.command("update-person")
@friendly
def crm_update_person(
    person_id: Annotated[int, typer.Argument(help="CRM person id")],
    first: str | None = None,
    middle: str | None = None,
    last: str | None = None,
    company: str | None = None,
    email: str | None = None,
    title: str | None = None,
    manager: Annotated[str | None, typer.Option(help="Account Manager's email.")] = None,
) -> None:
    """Change a CRM person's fields ('' makes a field blank)."""
    writer().update_person(
        person_id,
        first=first,
        middle=middle,
        last=last,
        company=company,
        email=email,
        title=title,
        manager=manager,
    )
    out.print(f"Updated person {person_id}.")


@crm_app.command("delete-person")
@friendly
def crm_delete_person(person_id: Annotated[int, typer.Argument(help="CRM person id")]) -> None:
    """Delete a CRM person the way Sage does (Pers_Deleted = 1)."""
    writer().delete_person(person_id)
    out.print(f"Deleted person {person_id}; the next sync removes it from every mailbox.")
