"""View listeners: the App Home dashboard, the search modal and the digest's time modal."""

from slack_bolt import App

from bot.views import digest, home
from sync_engine.service import Engine


def register(app: App, engine: Engine) -> None:
    """Wire every view listener; each module owns one view."""
    home.register(app, engine)
    digest.register(app, engine)


__all__ = ["register"]
