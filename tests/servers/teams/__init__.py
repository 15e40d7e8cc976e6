"""A loopback Bot Connector: what Teams enforces on a bot, on 127.0.0.1 over HTTPS."""

from .connector import BotConnector

__all__ = ["BotConnector"]
