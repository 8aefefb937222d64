"""Exceptions of the drivers package, and the one place third-party errors are mapped.

Every exception carries its data as attributes (not only in the message), and every
mapped exception chains the original cause (``raise ... from exc``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping


class DriverError(Exception):
    """Base class of every error raised by :mod:`drivers`."""


class DriverConnectError(DriverError):
    """The MQTT broker at ``endpoint`` (``host:port``) could not be reached or dropped us."""

    def __init__(self, endpoint: str, detail: str = "") -> None:
        self.endpoint = endpoint
        self.detail = detail
        super().__init__(
            f"MQTT broker {endpoint}: {detail}" if detail else f"MQTT broker {endpoint}"
        )


class PayloadError(DriverError):
    """A message on ``topic`` was rejected for ``reason`` (``"<code>: <detail>"``).

    The ingest path never raises this for bad input (it returns dead letters); it is
    raised by strict helpers such as :meth:`drivers.Ingest.decode_strict`.
    """

    def __init__(self, topic: str, reason: str) -> None:
        self.topic = topic
        self.reason = reason
        super().__init__(f"{topic}: {reason}")


class ReplayError(DriverError):
    """A replay file could not be opened or read (``path``). Bad lines are dead letters."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"replay {path}: {detail}")


@contextlib.contextmanager
def map_exceptions(
    mapping: Mapping[type[BaseException], type[DriverError]], **data: str
) -> Iterator[None]:
    """Translate third-party exceptions into ours, chaining the cause.

    ``mapping`` is tried in order; the target class is built with ``**data`` plus
    ``detail=str(exc)``. Unmapped exceptions pass through unchanged.
    """
    try:
        yield
    except Exception as exc:
        for source, target in mapping.items():
            if isinstance(exc, source):
                raise target(**data, detail=str(exc)) from exc  # type: ignore[call-arg]
        raise
