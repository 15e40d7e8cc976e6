"""View listeners: the App Home dashboard and the search modal."""

from bot.views.home import register

__all__ = ["register"]
