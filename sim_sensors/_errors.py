"""Exceptions of the simulator package."""

from __future__ import annotations


class SimError(Exception):
    """Base class of simulator errors."""


class SimConfigError(SimError, ValueError):
    """A scenario configuration is invalid: carries the ``field`` and the ``reason``."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class ScoreInputError(SimError):
    """A truth, tracks or alerts file cannot be read: carries ``path``, ``line``, ``reason``."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        super().__init__(f"{path}:{line}: {reason}" if line else f"{path}: {reason}")
