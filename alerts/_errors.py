"""Exceptions of the alerts package; each carries the data a caller needs."""

from __future__ import annotations

__all__ = ["AlertError", "CotSendError", "PayloadError", "StoreError"]


class AlertError(Exception):
    """Base class of every error raised by :mod:`alerts`."""


class PayloadError(AlertError):
    """An input message could not be decoded: ``topic`` and ``reason``."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"{topic}: {reason}")
        self.topic = topic
        self.reason = reason


class StoreError(AlertError):
    """The alert store failed to apply an operation: ``op`` (a name) and ``reason``.

    Redis errors are translated into this once, in the store, with the cause chained.
    """

    def __init__(self, op: str, reason: str) -> None:
        super().__init__(f"alert store {op}: {reason}")
        self.op = op
        self.reason = reason


class CotSendError(AlertError):
    """A CoT event could not be sent to ``endpoint``."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"CoT {endpoint}: {reason}")
        self.endpoint = endpoint
        self.reason = reason
