"""Exceptions of the console package (each carries its data)."""

from __future__ import annotations


class ConsoleError(Exception):
    """Base class of console errors."""


class UsersFileError(ConsoleError):
    """A users file is missing, unreadable or invalid: ``file: field: reason``."""

    def __init__(self, file: str, field: str, reason: str) -> None:
        super().__init__(f"{file}: {field}: {reason}")
        self.file = file
        self.field = field
        self.reason = reason
