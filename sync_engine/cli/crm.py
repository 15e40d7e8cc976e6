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
    disabled: Annotated[
        bool, typer.Option("--disabled", help="A disabled user (User_Disabled).")
    ] = False,
    resource: Annotated[
        bool, typer.Option("--resource", help="A resource, not a person (User_Resource).")
    ] = False,
    template: Annotated[
        bool, typer.Option("--template", help="A user template (User_IsTemplate).")
    ] = False,
) -> None:
    """Add a CRM user (a salesperson, unless disabled, a resource or a template)."""
    user_id = writer().add_user(
        email, first, last, disabled=disabled, resource=resource, template=template
    )
    out.print(str(user_id))


# The options of add-person and update-person beyond the names, in Sage's words:
# emails and phones go to Sage's link tables, the address to the default address.
Opt = Annotated[str | None, typer.Option()]
Manager = Annotated[str | None, typer.Option(help="Account Manager's email.")]
Email = Annotated[str | None, typer.Option(help="Business email (email 1).")]
Email2 = Annotated[str | None, typer.Option(help="Private email (email 2).")]
Phone = Annotated[str | None, typer.Option(help="Business phone.")]
Fax = Annotated[str | None, typer.Option(help="Fax (Sage: Alternative).")]
Street = Annotated[str | None, typer.Option(help="Address line 1 of the default address.")]


def _given(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v is not None}


@crm_app.command("add-person")
@friendly
def crm_add_person(
    first: Annotated[str, typer.Option()],
    last: Annotated[str, typer.Option()],
    middle: str = "",
    company: str = "",
    manager: Manager = None,
    title: Opt = None,
    department: Opt = None,
    salutation: Opt = None,
    suffix: Opt = None,
    website: Opt = None,
    email: Email = None,
    email2: Email2 = None,
    phone: Phone = None,
    mobile: Opt = None,
    fax: Fax = None,
    home_phone: Opt = None,
    street: Street = None,
    city: Opt = None,
    state: Opt = None,
    postcode: Opt = None,
    country: Opt = None,
) -> None:
    """Add a CRM person; prints the new id."""
    person_id = writer().add_person(
        first=first,
        last=last,
        middle=middle,
        company=company,
        manager=manager,
        **_given(
            title=title,
            department=department,
            salutation=salutation,
            suffix=suffix,
            website=website,
            email=email,
            email2=email2,
            phone=phone,
            mobile=mobile,
            fax=fax,
            home_phone=home_phone,
            street=street,
            city=city,
            state=state,
            postcode=postcode,
            country=country,
        ),
    )
    engine().index.follow()
    out.print(str(person_id))


@crm_app.command("update-person")
@friendly
def crm_update_person(
    person_id: Annotated[int, typer.Argument(help="CRM person id")],
    first: Opt = None,
    middle: Opt = None,
    last: Opt = None,
    company: Opt = None,
    manager: Manager = None,
    title: Opt = None,
    department: Opt = None,
    salutation: Opt = None,
    suffix: Opt = None,
    website: Opt = None,
    email: Email = None,
    email2: Email2 = None,
    phone: Phone = None,
    mobile: Opt = None,
    fax: Fax = None,
    home_phone: Opt = None,
    street: Street = None,
    city: Opt = None,
    state: Opt = None,
    postcode: Opt = None,
    country: Opt = None,
) -> None:
    """Change a CRM person's fields ('' makes a field blank)."""
    writer().update_person(person_id, **{k: v for k, v in locals().items() if k != "person_id"})
    engine().index.follow()  # search sees the change at once, in every process
    out.print(f"Updated person {person_id}.")


@crm_app.command("delete-person")
@friendly
def crm_delete_person(person_id: Annotated[int, typer.Argument(help="CRM person id")]) -> None:
    """Delete a CRM person the way Sage does (Pers_Deleted = 1)."""
    writer().delete_person(person_id)
    engine().index.follow()
    out.print(f"Deleted person {person_id}; the next sync removes it from every mailbox.")


@crm_app.command("update-company")
@friendly
def crm_update_company(
    company: Annotated[str, typer.Argument(help="The company's exact name, or its id.")],
    manager: Annotated[
        str | None, typer.Option(help="The company's Account Manager's email ('' clears it).")
    ] = None,
) -> None:
    """Change a CRM company's Account Manager (Comp_PrimaryUserId), as Sage's company
    screen does; the company-manager rule follows it."""
    company_id = writer().update_company(company, manager=manager)
    out.print(f"Updated company {company_id}.")
