"""The `crm-contacts` command line: the same use cases as the Slack command.

Errors are one line on stderr with exit code 1 (2 for usage errors, from click);
`--json` prints machine-readable output with the stable keys documented in the README.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import wraps
from typing import Annotated, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from sync_engine.config import ConfigError, Settings, load_settings
from sync_engine.crm.embedded import EmbeddedCrm, seed_demo, seed_large
from sync_engine.crm.source import CrmError
from sync_engine.mailbox.base import MailboxError
from sync_engine.model import WEEKDAYS, ContactFields, NewContact, PersonView, SyncResult
from sync_engine.report import counts_line, detail_lines
from sync_engine.service import Engine, EngineError
from sync_engine.store import StoreError
from sync_engine.terminal import PlainConsole, json_text, one_line, visible

app = typer.Typer(
    name="crm-contacts",
    help="Bring the CRM people you care about into your Exchange Contacts folder.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
crm_app = typer.Typer(
    help="The CRM: seed the embedded demo CRM, add and change people.", no_args_is_help=True
)
mailbox_app = typer.Typer(
    help="Look at a mailbox's Contacts folder; edit the local one as a user would in Outlook.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="The state database.", no_args_is_help=True)
app.add_typer(crm_app, name="crm")
app.add_typer(mailbox_app, name="mailbox")
app.add_typer(db_app, name="db")

# Piped output gets wide tables rather than rows wrapped at 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
# Every string printed is text, never markup, with control characters shown (terminal.py).
out = PlainConsole(soft_wrap=True, width=_WIDTH)
err = PlainConsole(stderr=True, soft_wrap=True)

As = Annotated[
    str, typer.Option("--as", help="Act as the CRM user with this email (their mailbox).")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON with stable keys.")]

F = TypeVar("F", bound=Callable[..., object])
USER_ERRORS = (EngineError, CrmError, StoreError, ConfigError, MailboxError)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"error: {one_line(message)}")
    return typer.Exit(code)


def friendly(func: F) -> F:
    """Turn every expected problem into one line on stderr and a non-zero exit."""

    @wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as exc:
            raise fail(str(exc)) from None
        except SQLAlchemyError as exc:  # the state database failed after it was opened
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:160]
            raise fail(
                f"the state database is busy or unreachable ({reason}); nothing was changed, "
                "try again in a minute"
            ) from None
        except KeyboardInterrupt:
            raise fail("interrupted; run the same command again to finish", 130) from None

    return wrapper  # type: ignore[return-value]


_engine: Engine | None = None


def settings() -> Settings:
    return engine().settings if _engine else load_settings()


def engine() -> Engine:
    """One engine per process, opened (and migrated) on first use."""
    global _engine
    if _engine is None:
        _engine = Engine(load_settings())
    return _engine


def reset_engine() -> None:
    """Forget the cached engine (tests run many commands in one process)."""
    global _engine
    if _engine is not None:
        _engine.close()
    _engine = None


def local_time(moment: datetime) -> str:
    """A stored (UTC) time in the reader's own time zone, labelled."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def print_json(data: object) -> None:
    sys.stdout.write(json_text(data) + "\n")


# -- people tables ------------------------------------------------------------------------


def people_table(people: list[PersonView], *, title: str = "", status: bool = False) -> Table:
    table = Table(title=title or None, title_justify="left")
    for column in ("id", "name", "company", "job title", "email"):
        table.add_column(column)
    table.add_column("status" if status else "in my list")
    for p in people:
        flag = p.status if status else ("✓" if p.in_list else "")
        table.add_row(str(p.id), p.name, p.company, p.job_title, p.email, flag)
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


# -- syncing ------------------------------------------------------------------------------


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda _n: None
        return
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(visible(label), total=None)
        yield lambda n: bar.advance(task, n)


@app.command()
@friendly
def sync(
    as_: Annotated[str | None, typer.Option("--as", help="Sync this user's mailbox.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Sync every known mailbox.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
    ] = False,
    allow_mass_delete: Annotated[
        bool,
        typer.Option("--allow-mass-delete", help="Carry out deletes the safety limit held back."),
    ] = False,
    as_json: Json = False,
) -> None:
    """Bring the mailbox in line with My CRM Contacts and the CRM."""
    if bool(as_) == all_:
        raise fail("give --as EMAIL for one mailbox, or --all")
    e = engine()
    options = {"dry_run": dry_run, "allow_mass_delete": allow_mass_delete}
    results: list[SyncResult] = []
    show_progress = not as_json and err.is_terminal
    if as_:
        user = e.user(as_)
        with progress_bar(f"syncing {user.email}", show_progress) as advance:
            results.append(e.sync(user, progress=advance, **options))
    else:
        for stored in e.store.users():
            with progress_bar(f"syncing {stored.mailbox}", show_progress) as advance:
                results.append(e.sync_stored(stored, progress=advance, **options))
    if as_json:
        print_json({"mailboxes": [r.as_json() for r in results]})
    else:
        for r in results:
            print_result(r)
    if any(r.error for r in results):
        raise typer.Exit(1)


def print_result(r: SyncResult) -> None:
    head = "Dry run for" if r.dry_run else "Synced"
    out.print(f"{head} {r.mailbox}: {counts_line(r)}", markup=False)
    for line in detail_lines(r):
        out.print(line, markup=False)
    if r.error:
        err.print(f"error: {one_line(f'{r.mailbox}: {r.error}')}")


@app.command()
@friendly
def status(as_json: Json = False) -> None:
    """Every mailbox: list size, last and next sync, the last error in plain words."""
    statuses = engine().statuses()
    if as_json:
        print_json(
            [
                {
                    "email": s.email,
                    "mailbox": s.mailbox,
                    "subscriptions": s.subscriptions,
                    "linked": s.linked,
                    "last_run_at": s.last_run_at.isoformat() if s.last_run_at else None,
                    "last_status": s.last_status,
                    "last_error": s.last_error,
                    "next_due_at": s.next_due_at.isoformat() if s.next_due_at else None,
                    "consecutive_failures": s.consecutive_failures,
                }
                for s in statuses
            ]
        )
        return
    if not statuses:
        out.print("No mailboxes yet; add people with `crm-contacts add --as EMAIL`.")
        return
    table = Table()
    for column in ("mailbox", "in list", "linked", "last sync", "result", "next due", "last error"):
        table.add_column(column)
    for s in statuses:
        last = local_time(s.last_run_at) if s.last_run_at else "never"
        due = local_time(s.next_due_at) if s.next_due_at else "—"
        table.add_row(
            s.mailbox,
            str(s.subscriptions),
            str(s.linked),
            last,
            s.last_status or "—",
            due,
            s.last_error or "",
        )
    out.print(table)


@app.command()
@friendly
def why(person_id: Annotated[int, typer.Argument(help="CRM person id")], as_: As) -> None:
    """The audit trail of one person in your mailbox: why it is there, or gone."""
    e = engine()
    events = e.why(e.user(as_), person_id)
    if not events:
        raise fail(f"nothing recorded for person {person_id} in this mailbox")
    for ev in events:
        out.print(f"{local_time(ev.at)}  {ev.action:<12} {ev.reason}  [{ev.actor}]", markup=False)


@app.command("check-mailbox")
@friendly
def check_mailbox(as_: As) -> None:
    """Connect to the user's mailbox and say in plain words whether it can be synced."""
    e = engine()
    for line in e.check_mailbox(e.user(as_)):
        out.print(line, markup=False)


@app.command()
@friendly
def digest(
    as_: As,
    time: Annotated[
        str | None, typer.Option("--time", metavar="HH:MM", help="Local time, 24-hour clock.")
    ] = None,
    default_time: Annotated[
        bool, typer.Option("--default-time", help="Back to SUMMARY_TIME.")
    ] = False,
    weekly: Annotated[
        str | None,
        typer.Option("--weekly", metavar="DAY", help="Once a week, on DAY (monday … sunday)."),
    ] = None,
    daily: Annotated[bool, typer.Option("--daily", help="Every day (the default).")] = False,
    snooze: Annotated[
        int | None,
        typer.Option("--snooze", metavar="DAYS", help="No digest for DAYS days; 0 resumes."),
    ] = None,
    off: Annotated[
        bool | None, typer.Option("--off/--on", help="Turn the digest off, or back on.")
    ] = None,
    as_json: Json = False,
) -> None:
    """The user's digest DM: its time, daily or weekly, snooze, off. No option: show it."""
    if weekly is not None and daily:
        raise fail("give --weekly DAY or --daily, not both")
    e = engine()
    user = e.user(as_)
    frequency = "weekly" if weekly is not None else ("daily" if daily else None)
    prefs = e.set_digest_prefs(
        user,
        time=time,
        default_time=default_time,
        frequency=frequency,
        weekday=weekly,
        snooze_days=snooze,
        off=off,
    )
    if as_json:
        print_json(
            {
                "email": user.email,
                "time": prefs.time,
                "chosen_time": prefs.chosen_time,
                "frequency": prefs.frequency,
                "weekday": WEEKDAYS[prefs.weekday],
                "snoozed_until": prefs.snoozed_until.isoformat() if prefs.snoozed_until else None,
                "off": prefs.off,
                "time_zone": prefs.tz or "UTC",
            }
        )
        return
    out.print(f"Digest for {user.email}: {prefs.describe()}", markup=False)


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


# -- mailboxes ----------------------------------------------------------------------------


def local_mailbox(email: str):  # type: ignore[no-untyped-def]
    """The user's mailbox on the local target (the `mailbox` edit commands stand in for Outlook)."""
    from sync_engine.mailbox.local import LocalMailbox

    e = engine()
    if e.settings.mailbox_backend != "local":
        raise fail("this command edits the local target only; edit real mailboxes in Outlook")
    user = e.user(email)
    stored = e.store.ensure_user(user.id, user.email)
    e.settings.crm_contacts_home.mkdir(parents=True, exist_ok=True)
    return LocalMailbox(e.settings.local_mailbox_url, stored.mailbox)


@mailbox_app.command("list")
@friendly
def mailbox_list(as_: As, as_json: Json = False) -> None:
    """The contacts in the user's Contacts folder."""
    e = engine()
    user = e.user(as_)
    box = e.mailbox_factory(e.settings, e.store.ensure_user(user.id, user.email).mailbox)
    try:
        contacts = [c for page in box.list_contacts() for c in page]
    finally:
        box.close()
    contacts.sort(
        key=lambda c: (c.fields.last_name.casefold(), c.fields.first_name.casefold(), c.item_id)
    )
    if as_json:
        print_json(
            [
                {
                    "id": c.item_id,
                    "first_name": c.fields.first_name,
                    "middle_name": c.fields.middle_name,
                    "last_name": c.fields.last_name,
                    "company": c.fields.company,
                    "email": c.fields.email,
                    "job_title": c.fields.job_title,
                    "categories": list(c.categories),
                    "crm_id": c.crm_id,
                }
                for c in contacts
            ]
        )
        return
    print_mailbox(box.address, contacts)


def print_mailbox(address: str, contacts: list) -> None:  # type: ignore[type-arg]
    table = Table(title=f"Contacts of {address} ({len(contacts)})", title_justify="left")
    for column in ("name", "company", "email", "categories", "item id"):
        table.add_column(column)
    for c in contacts:
        table.add_row(
            c.fields.full_name(),
            c.fields.company,
            c.fields.email,
            ", ".join(c.categories),
            c.item_id[:12],
        )
    out.print(table)


@mailbox_app.command("add")
@friendly
def mailbox_add(
    as_: As,
    last: Annotated[str, typer.Option()],
    first: str = "",
    middle: str = "",
    company: str = "",
    email: str = "",
    category: Annotated[
        list[str] | None, typer.Option(help="A category (repeat for several).")
    ] = None,
) -> None:
    """Add a contact by hand, as the user would in Outlook; prints its item id."""
    box = local_mailbox(as_)
    fields = ContactFields.of(
        first_name=first, middle_name=middle, last_name=last, company=company, email=email
    ).with_derived()
    result = box.create([NewContact(fields=fields, categories=tuple(category or ()), crm_id=None)])
    out.print(result[0].item_id)


@mailbox_app.command("update")
@friendly
def mailbox_update(
    item_id: Annotated[
        str, typer.Argument(help="The contact's item id (see `mailbox list --json`).")
    ],
    as_: As,
    first: str | None = None,
    middle: str | None = None,
    last: str | None = None,
    company: str | None = None,
    email: str | None = None,
    category: Annotated[
        list[str] | None, typer.Option(help="Replace the categories (repeat for several).")
    ] = None,
) -> None:
    """Edit a contact as the user would in Outlook."""
    box = local_mailbox(as_)
    names = {
        "first_name": first,
        "middle_name": middle,
        "last_name": last,
        "company": company,
        "email": email,
    }
    fields = {k: v.strip() for k, v in names.items() if v is not None}
    done = box.user_edit(
        item_id, fields=fields, categories=tuple(category) if category is not None else None
    )
    if done is None:
        raise fail(
            f"no contact {item_id} in {box.address}; see `crm-contacts mailbox list --as {as_}`"
        )
    out.print(f"Updated {done.name}.", markup=False)


@mailbox_app.command("delete")
@friendly
def mailbox_delete(item_id: Annotated[str, typer.Argument()], as_: As) -> None:
    """Delete a contact, as the user would in Outlook."""
    box = local_mailbox(as_)
    if box.get(item_id) is None:
        raise fail(
            f"no contact {item_id} in {box.address}; see `crm-contacts mailbox list --as {as_}`"
        )
    box.delete([item_id])
    out.print(f"Deleted {item_id}.")


@db_app.command("upgrade")
@friendly
def db_upgrade() -> None:
    """Bring the state database's schema up to date (also done on every start)."""
    from sync_engine import migrate

    e = engine()
    out.print(f"State database at revision {migrate.current_revision(e.store.engine)}.")


@app.command()
@friendly
def demo() -> None:
    """Walk the seed story on the embedded default, printing each step and the mailbox."""
    from sync_engine.demo import run_demo

    run_demo(engine(), out)


def _click_class(name: str) -> type[Exception]:
    """Click's exception classes, wherever typer keeps them (newer typer vendors click)."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


UsageError = _click_class("UsageError")
_SURROGATES = re.compile("[\udc80-\udcff]")
ClickException = _click_class("ClickException")


def run_cli(argv: list[str] | None = None) -> int:
    """Run a command line; usage errors become one line on stderr (exit 2), not a panel."""
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else argv
    undecodable = next((a for a in args if _SURROGATES.search(a)), None)
    if undecodable is not None:  # bytes that are not UTF-8 (argv is surrogate-escaped)
        err.print(
            f"error: the argument {one_line(undecodable)} is not valid UTF-8; "
            "check your terminal's character encoding"
        )
        return 2
    try:
        result = command.main(args=args, prog_name="crm-contacts", standalone_mode=False)
    except UsageError as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            out.print(ctx.get_help(), markup=False)
            return 2
        hint = f" (see `{ctx.command_path if ctx else 'crm-contacts'} --help`)"
        err.print(f"error: {one_line(exc.format_message())}{hint}")  # type: ignore[attr-defined]
        return 2
    except ClickException as exc:
        err.print(f"error: {one_line(exc.format_message())}")  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 1))
    except typer.Abort:
        err.print("error: interrupted", markup=False)
        return 130
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run_cli())
