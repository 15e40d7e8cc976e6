"""The bounded pools the bot's work runs in after the ack: `chat.work`, shared with the
Teams front end (one web process, one set of bounds)."""

from chat.work import NOTICE_AFTER, PROMPT, REQUESTS, SLOW, SYNCS, Coalescer, WorkPool

__all__ = ["NOTICE_AFTER", "PROMPT", "REQUESTS", "SLOW", "SYNCS", "Coalescer", "WorkPool"]
