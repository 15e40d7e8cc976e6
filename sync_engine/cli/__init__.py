"""The `crm-contacts` command line: the same use cases as the Slack command.

One module per responsibility: `core` (the apps, the engine, errors, `run_cli`),
`people` (search, add, remove, list), `runs` (sync, status, why, digest, demo), `crm`
(the CRM: seed, people), `crm_check` (`crm check`), `index` (the people index search reads),
`rules` (the standing rules) and `mailbox` (a Contacts folder). Importing this package
registers every command.
"""

from sync_engine.cli import crm, crm_check, index, mailbox, people, rules, runs
from sync_engine.cli.core import (
    app,
    engine,
    err,
    fail,
    friendly,
    main,
    out,
    print_json,
    reset_engine,
    run_cli,
    settings,
)

__all__ = [
    "app",
    "crm",
    "crm_check",
    "engine",
    "err",
    "fail",
    "friendly",
    "index",
    "mailbox",
    "main",
    "out",
    "people",
    "print_json",
    "reset_engine",
    "rules",
    "run_cli",
    "runs",
    "settings",
]
