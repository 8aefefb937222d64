"""The async service around :class:`service.core.Core`: live MQTT, replay and embedded runs.

One :class:`Pipeline` owns the core, the alert service and an output :class:`Sink`; the
three ways to run differ only in where messages come from and how time passes:

* :func:`run_live` — :class:`drivers.MqttDriver` feeds messages (manual QoS 1 acks after
  the core accepted them), a step task runs the tracker every ``step_s`` of wall time,
  outputs are published on MQTT, alerts live in Redis.
* :func:`replay_file` — a replay file through the same path, the arrival clock taken from
  the file (deterministic: same input, byte-identical output files).
* the embedded demo (:mod:`service.demo`) — simulated devices through the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import msgspec

from alerts import AlertEngine, AlertService, AlertStore, Input, MemoryAlertStore
from drivers import (
    DEADLETTER_TOPIC,
    DriverMetrics,
    IngestResult,
    ReplayItem,
    ReplaySource,
    encode_dead_letter,
)
from fusion.config import TrackerConfig
from geo import Site
from service.core import Core, StepOutput, track_topic

log = logging.getLogger("limes.service")

_enc = msgspec.json.Encoder()


class Sink(Protocol):
    """Where the service's outbound messages go (MQTT, files, memory)."""

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Send one message."""


@dataclass
class MemorySink:
    """Keeps every outbound message (embedded runs and tests); optional callback."""

    messages: list[tuple[str, bytes, int]] = field(default_factory=list)
    on_message: Callable[[str, bytes], None] | None = None

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Record the message."""
        self.messages.append((topic, payload, qos))
        if self.on_message is not None:
            self.on_message(topic, payload)


class FileSink:
    """Writes track updates and alerts as JSON lines (contract formats), and optionally every
    outbound message as a replay-format line ``{"topic","payload"}``."""

    def __init__(
        self,
        tracks: IO[bytes] | None,
        alerts: IO[bytes] | None,
        messages: IO[bytes] | None = None,
    ) -> None:
        self.tracks = tracks
        self.alerts = alerts
        self.messages = messages
        self.counts: dict[str, int] = {"tracks": 0, "alerts": 0, "messages": 0}

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Append the message to the file of its kind."""
        del qos
        if topic.startswith("limes/v1/tracks/") and self.tracks is not None:
            self.tracks.write(payload + b"\n")
            self.counts["tracks"] += 1
        elif topic.startswith("limes/v1/alerts/") and self.alerts is not None:
            self.alerts.write(payload + b"\n")
            self.counts["alerts"] += 1
        if self.messages is not None:
            self.messages.write(
                b'{"topic":' + _enc.encode(topic) + b',"payload":' + payload + b"}\n"
            )
            self.counts["messages"] += 1


class Pipeline:
    """Core + alert service + sink: the one path every run mode uses.

    Invariant: for every accepted message, its alert inputs are submitted before the next
    message is handled; a step's track updates are published before its alert inputs are
    submitted (so consoles see the track before the alert that names it).
    """

    def __init__(
        self,
        site: Site,
        sink: Sink,
        *,
        started: float,
        store: AlertStore | None = None,
        tracker_config: TrackerConfig | None = None,
        step_s: float = 0.5,
    ) -> None:
        self.site = site
        self.sink = sink
        self.core = Core(site, started=started, tracker_config=tracker_config, step_s=step_s)
        self.store: AlertStore = store if store is not None else MemoryAlertStore()
        self.engine = AlertEngine(site, site.cfg.alerts)
        self.alerts = AlertService(self.engine, self.store, sink.publish)
        self.last_step: StepOutput | None = None

    async def restore(self) -> None:
        """Reload open alerts and patrol positions from the store (after a restart)."""
        await self.alerts.restore()

    async def submit(self, inputs: Iterable[Input]) -> None:
        """Feed alert inputs in order."""
        for i in inputs:
            await self.alerts.submit(i)

    async def on_result(self, res: IngestResult) -> None:
        """Hand an ingest result on: dead letters out, then :meth:`accept`."""
        for dl in res.dead_letters:
            await self.sink.publish(DEADLETTER_TOPIC, encode_dead_letter(dl), 1)
        await self.accept(res)

    async def accept(self, res: IngestResult) -> None:
        """Measurements into the core's buffer, health / patrol / ack into the alerts."""
        await self.submit(self.core.accept(res))

    async def step(self, now: float) -> StepOutput:
        """One tracker step at ``now``: publish track updates, then run the alert rules."""
        out = self.core.step(now)
        for u in out.tracks:
            await self.sink.publish(track_topic(u), _enc.encode(u), 0)
        await self.submit(self.core.tick(now))
        await self.submit(out.alert_inputs)
        self.last_step = out
        return out

    async def feed(self, item: ReplayItem) -> IngestResult:
        """One replay/simulated message at its arrival time, after the steps due by then.

        Steps run on the ``step_s`` grid of the arrival clock, also through quiet spells
        without messages, so confirmed tracks report at least every ``track_report_s``.
        """
        while self.core.due(item.at):
            await self.step(self.core.next_step_at(item.at))
        if item.error:
            res = self.core.reject(item.topic, item.payload, item.error, item.at)
        else:
            res = self.core.ingest.handle(item.topic, item.payload, item.at)
        await self.on_result(res)
        return res


async def run_items(
    pipeline_for: Callable[[float], Awaitable[Pipeline]],
    items: Iterable[ReplayItem],
    *,
    speed: float | None = None,
    on_step: Callable[[Pipeline], None] | None = None,
) -> Pipeline | None:
    """Feed ``items`` (arrival order) through a pipeline made at the first arrival time.

    ``speed`` None: as fast as possible; N: the arrival clock runs N times wall time.
    A last step ``hold_s`` after the final arrival time flushes what is pending.
    """
    pipe: Pipeline | None = None
    wall0 = time.monotonic()
    t0 = 0.0
    last = 0.0
    for n, item in enumerate(items):
        if pipe is None:
            pipe = await pipeline_for(item.at)
            t0 = item.at
        if speed is not None:
            delay = wall0 + (item.at - t0) / speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        elif n % 256 == 0:
            await asyncio.sleep(0)
        steps_before = pipe.core.counters.steps
        await pipe.feed(item)
        if on_step is not None and pipe.core.counters.steps != steps_before:
            on_step(pipe)
        last = item.at
    if pipe is not None:  # flush: go on along the step grid past the hold, then to its end
        end = max(last, pipe.core.tracker.frontier) + pipe.core.hold_s
        while pipe.core.due(end):
            await pipe.step(pipe.core.next_step_at(end))
        if pipe.core.pending_rows:
            await pipe.step(end)
        if on_step is not None:
            on_step(pipe)
    return pipe


async def replay_file(
    site: Site,
    source: str | Path,
    *,
    tracks: str | Path,
    alerts: str | Path,
    messages: str | Path | None = None,
    tracker_config: TrackerConfig | None = None,
    step_s: float = 0.5,
    speed: float | None = None,
) -> dict[str, Any]:
    """``limes replay``: feed a replay file, write track updates and alerts as JSON lines.

    Deterministic: the clock is the file's arrival clock and the alert store is the
    embedded one, so the same input gives byte-identical outputs. Returns a summary.
    """
    # the output files are written synchronously on purpose: a replay has no other
    # work to overlap, and sequential writes keep the output byte-deterministic
    with contextlib.ExitStack() as stack:
        f_tracks = stack.enter_context(Path(tracks).open("wb"))  # noqa: ASYNC230
        f_alerts = stack.enter_context(Path(alerts).open("wb"))  # noqa: ASYNC230
        f_msgs = stack.enter_context(Path(messages).open("wb")) if messages else None  # noqa: ASYNC230
        sink = FileSink(f_tracks, f_alerts, f_msgs)

        async def make(t0: float) -> Pipeline:
            return Pipeline(site, sink, started=t0, tracker_config=tracker_config, step_s=step_s)

        pipe = await run_items(make, ReplaySource(source).items(), speed=speed)
    return summary(pipe, sink.counts)


def summary(pipe: Pipeline | None, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """Counters of a finished run (for the CLI and logs)."""
    if pipe is None:
        return {"messages": 0}
    c = pipe.core.counters
    m = pipe.core.ingest.metrics
    out: dict[str, Any] = {
        "steps": c.steps,
        "measurements": c.rows,
        "track_updates": c.track_updates,
        "late_dropped": c.late_dropped,
        "replayed_rows": c.replayed_rows,
        "alerts": dict(sorted(pipe.engine.counters.items())),
        "ingest": ingest_totals(m),
    }
    if counts is not None:
        out["written"] = counts
    return out


def ingest_totals(metrics: DriverMetrics) -> dict[str, float]:
    """Each ingest counter summed over its labels (``received``, ``rejected``, ...)."""
    out: dict[str, float] = {}
    for family in metrics.registry.collect():
        if family.type != "counter":
            continue
        name = family.name.removeprefix("limes_ingest_").removeprefix("limes_")
        out[name] = sum(s.value for s in family.samples if s.name.endswith("_total"))
    return dict(sorted(out.items()))
