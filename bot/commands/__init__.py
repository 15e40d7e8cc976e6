"""Slash-command listeners (`/crm-contacts ...`)."""

from bot.commands.crm_contacts import register

__all__ = ["register"]
