"""Block-action listeners: buttons, checkboxes and menus on our messages."""

from slack_bolt import App

from bot.actions import digest, group, person, picker, rules, sync
from sync_engine.service import Engine


def register(app: App, engine: Engine) -> None:
    """Wire every block action; each module owns the actions of one kind of message."""
    picker.register(app, engine)
    person.register(app, engine)
    group.register(app, engine)
    sync.register(app, engine)
    digest.register(app, engine)
    rules.register(app, engine)


__all__ = ["register"]
