"""Replay source: contract replay files (JSON lines) through the same ingest path.

Each line is ``{"topic": str, "payload": object}`` (the payload's exact JSON bytes are fed
on, as if they had arrived over MQTT) or ``{"topic": str, "payload_raw": str}`` (the
string's UTF-8 bytes are fed on: whatever a device sent that was not a JSON object).
Optional extension ``"at"``: the arrival time (epoch s).

Arrival clock (the ``now`` given to :meth:`Ingest.handle`): ``at`` if present, else the
payload's ``sent`` or ``t`` if it has one, else its newest event ``t``, never going
backwards (lines are in arrival
order). Pacing: ``speed=None`` runs as fast as possible; ``speed=N`` sleeps so that
arrival times are replayed at N x real time.

A malformed line (not JSON, no topic, neither or both payload fields) is a dead letter
(reason code ``bad_replay_line``) and the replay goes on.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from drivers._errors import ReplayError

if TYPE_CHECKING:
    from drivers._ingest import Ingest, IngestResult

ResultSink = Callable[["IngestResult"], Awaitable[None]]
YIELD_EVERY = 256  # lines between event-loop yields when running as fast as possible


class _Line(msgspec.Struct, gc=False):
    topic: str
    payload: msgspec.Raw = msgspec.Raw(b"")  # empty: absent (Raw cannot be in a union)
    payload_raw: str | None = None
    at: float | None = None


class _EventT(msgspec.Struct, gc=False):
    t: float = -math.inf


class _Clock(msgspec.Struct, gc=False):
    sent: float | None = None
    t: float | None = None
    events: list[_EventT] = []


_LINE = msgspec.json.Decoder(_Line)
_CLOCK = msgspec.json.Decoder(_Clock)


class ReplayItem(NamedTuple):
    """One replay line: the message (``error`` empty) or a bad line (``error`` set)."""

    lineno: int
    topic: str
    payload: bytes
    at: float
    error: str = ""


def parse_lines(lines: Iterable[bytes], *, start: float = 0.0) -> Iterator[ReplayItem]:
    """Parse replay lines into items with a monotone arrival clock starting at ``start``.

    Never raises for bad content; blank lines are skipped.
    """
    clock = start
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        try:
            rec = _LINE.decode(line)
        except msgspec.DecodeError as exc:
            yield ReplayItem(lineno, "", line, clock, f"bad_replay_line: line {lineno}: {exc}")
            continue
        has_payload = len(rec.payload) > 0
        if has_payload == (rec.payload_raw is not None):
            why = (
                "has both payload and payload_raw" if rec.payload is not None else "has no payload"
            )
            yield ReplayItem(
                lineno, rec.topic, line, clock, f"bad_replay_line: line {lineno} {why}"
            )
            continue
        if has_payload:
            data = bytes(rec.payload)
        else:
            assert rec.payload_raw is not None
            data = rec.payload_raw.encode("utf-8", "surrogateescape")
        cand = rec.at
        if cand is None and has_payload:
            try:
                c = _CLOCK.decode(data)
                cand = c.sent if c.sent is not None else c.t
                if cand is None and c.events:
                    cand = max(e.t for e in c.events)
            except msgspec.DecodeError:
                cand = None
        if cand is not None and math.isfinite(cand):
            clock = max(clock, cand)
        yield ReplayItem(lineno, rec.topic, data, clock)


class ReplaySource:
    """Feeds a replay file (path or lines) through :meth:`Ingest.handle`.

    ``run(ingest, on_result)`` awaits ``on_result`` for every line's result, in file order,
    and returns the number of lines fed. Only an unreadable file raises (``ReplayError``).
    """

    def __init__(self, source: str | Path | Iterable[bytes], *, speed: float | None = None) -> None:
        if speed is not None and not speed > 0:
            msg = f"speed must be > 0 or None, got {speed}"
            raise ValueError(msg)
        self.source = source
        self.speed = speed

    def items(self) -> Iterator[ReplayItem]:
        """The parsed lines (see :func:`parse_lines`)."""
        if isinstance(self.source, str | Path):
            path = Path(self.source)
            try:
                with path.open("rb") as fh:
                    yield from parse_lines(fh)
            except OSError as exc:
                raise ReplayError(str(path), str(exc)) from exc
        else:
            yield from parse_lines(self.source)

    async def run(self, ingest: Ingest, on_result: ResultSink) -> int:
        """Replay everything; see the class doc."""
        n = 0
        wall0 = time.monotonic()
        t0: float | None = None
        for item in self.items():
            if self.speed is not None and item.at > 0:
                if t0 is None:
                    t0 = item.at
                due = wall0 + (item.at - t0) / self.speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if item.error:
                res = ingest.reject(item.topic, item.payload, item.error, item.at)
            else:
                res = ingest.handle(item.topic, item.payload, item.at)
            await on_result(res)
            n += 1
        return n
