"""The engine's user-facing error, apart from service.py so every use-case module (the
standing rules' too) can raise it without importing the Engine."""

from __future__ import annotations


class EngineError(Exception):
    """A user-facing problem; str() is one line that says what to do."""
