"""The `crm-contacts` command line's frame: the Typer apps, one engine per process, and
the error handling every command shares.

Errors are one line on stderr with exit code 1 (2 for usage errors, from click);
`--json` prints machine-readable output with the stable keys documented in the README.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Annotated, TypeVar

import typer
from sqlalchemy.exc import SQLAlchemyError

from sync_engine.config import ConfigError, Settings, load_settings
from sync_engine.crm.source import CrmError
from sync_engine.mailbox.base import MailboxError
from sync_engine.service import Engine, EngineError
from sync_engine.store import StoreError
from sync_engine.terminal import PlainConsole, json_text, one_line

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


def engine(*, recreate_stale_crm: bool = False) -> Engine:
    """One engine per process, opened (and migrated) on first use. Only the demo may
    recreate an embedded CRM an older release left behind."""
    global _engine
    if _engine is None:
        _engine = Engine(load_settings(), recreate_stale_crm=recreate_stale_crm)
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
