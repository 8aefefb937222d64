"""``limes run``: the live service on MQTT (and Redis for alerts).

Tasks (one TaskGroup, named ``service.*``): the MQTT driver (ingest, heartbeat), the step
loop (tracker every ``step_s`` of wall time), and the metrics HTTP endpoint. Outbound
messages go through :class:`MqttSink`: QoS 0 track updates are dropped (and counted) while
the broker is unreachable; QoS 1 messages wait in a bounded queue (overflow counted, never
silent) and are sent in order once the connection is back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Gauge, start_http_server

from alerts import AlertStore, MemoryAlertStore, RedisAlertStore
from console import ConsoleHub, ConsoleOptions, HubSink, serve_console
from drivers import DriverConnectError, MqttSettings, MqttSource, Publisher
from fusion.config import TrackerConfig
from fusion.state import C_NLIVE
from geo import Site
from service.journal import (
    Durable,
    RedisJournal,
    ResilientStore,
    message_time,
    recover,
    take_snapshot,
)
from service.outbox import Outbox, message_key
from service.runtime import Pipeline

log = logging.getLogger("limes.service")


class MqttSink:
    """Publishes through the driver's connection; buffers QoS 1 while disconnected.

    Invariant: QoS 1 messages leave in the order they were published, and at most
    ``max_pending`` wait; an overflow drops the oldest and counts it (``dropped_qos1``).
    With an ``outbox`` (:class:`service.outbox.Outbox`), each QoS 1 message the broker
    acknowledged (or the overflow dropped) is removed from it; :meth:`restore` queues the
    outbox's messages on start, and the journal replay's publishes of the same messages
    are then dropped once each (``restored_skipped``) so that each leaves once.
    """

    def __init__(self, max_pending: int = 10_000, outbox: Outbox | None = None) -> None:
        self.publisher: Publisher | None = None
        self.pending: collections.deque[tuple[str, bytes, int]] = collections.deque()
        self.max_pending = max_pending
        self.outbox = outbox
        self.restored: collections.Counter[bytes] = collections.Counter()
        self.restored_skipped = 0
        self.dropped_qos0 = 0
        self.dropped_qos1 = 0
        self.sent = 0
        self._flushing = False

    def restore(self, msgs: list[tuple[str, bytes, int]]) -> None:
        """Queue the outbox's messages (on start, before the journal replay)."""
        for topic, payload, qos in msgs:
            self.pending.append((topic, payload, qos))
            self.restored[message_key(topic, payload)] += 1

    def end_recovery(self) -> None:
        """The replay is over: live publishes are never taken for restored ones."""
        self.restored.clear()

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Send now if possible; otherwise drop (QoS 0) or queue (QoS 1)."""
        if qos >= 1:
            if self.restored:
                key = message_key(topic, payload)
                if self.restored[key] > 0:  # queued from the outbox already
                    self.restored[key] -= 1
                    self.restored_skipped += 1
                    return
            self.pending.append((topic, payload, qos))
            if len(self.pending) > self.max_pending:
                old = self.pending.popleft()
                self.dropped_qos1 += 1
                if self.outbox is not None:
                    await self.outbox.done(old[0], old[1])
            await self.flush()
            return
        if self.publisher is None or self.pending:
            self.dropped_qos0 += 1
            return
        try:
            await self.publisher.publish(topic, payload, qos=qos)
            self.sent += 1
        except DriverConnectError:
            self.dropped_qos0 += 1

    async def flush(self) -> None:
        """Send queued QoS 1 messages in order until the queue is empty or sending fails.

        One flush at a time: the step loop and the alert path both flush, and two
        interleaved flushes would send the head twice and then pop an unsent message
        (or an empty queue). A flush that finds one running returns at once: the running
        one sends what was queued meanwhile, in order.
        """
        if self._flushing:
            return
        self._flushing = True
        try:
            while self.pending and self.publisher is not None:
                item = self.pending[0]
                try:
                    await self.publisher.publish(item[0], item[1], qos=item[2])
                except DriverConnectError:
                    return
                if self.pending and self.pending[0] is item:  # not dropped by an overflow
                    self.pending.popleft()
                self.sent += 1
                if self.outbox is not None:
                    await self.outbox.done(item[0], item[1])
        finally:
            self._flushing = False


@dataclass(frozen=True)
class LiveSettings:
    """Settings of a live run (from the command line).

    ``clock`` is the service's ``now`` (ingest, heartbeats, tracker steps); ``clock_rate``
    is how many ``clock`` seconds pass per wall second (used only to sleep between steps).
    Tests and accelerated simulations pass :func:`scaled_clock` so that the service's time
    and the devices' event times agree.
    """

    mqtt: MqttSettings
    redis_url: str | None = None
    step_s: float = 0.5
    metrics_port: int | None = 9108
    tracker: TrackerConfig | None = None
    clock: Callable[[], float] = time.time
    clock_rate: float = 1.0
    #: ``now`` of each message is its payload's ``sent`` (else ``t``), and the tracker steps
    #: when a message's ``now`` reaches the next step time, as in a replay: the run is a
    #: deterministic function of the message sequence (fault-injection tests, re-runs)
    message_clock: bool = False
    #: service start time (default: ``clock()``; a journal keeps its first start time)
    started: float | None = None
    #: journal inputs in a Redis Stream and snapshot the state (needs ``redis_url``)
    journal: bool = True
    snapshot_s: float = 30.0
    #: measurement rows waiting for the tracker above which batches are shed (counted)
    max_pending_rows: int = 500_000

    def __post_init__(self) -> None:
        if not self.clock_rate > 0:
            msg = f"clock_rate must be > 0, got {self.clock_rate}"
            raise ValueError(msg)


def scaled_clock(t0: float, rate: float) -> Callable[[], float]:
    """A clock reading ``t0`` now and running ``rate`` times wall time (monotonic)."""
    wall0 = time.monotonic()

    def now() -> float:
        return t0 + (time.monotonic() - wall0) * rate

    return now


class _Metrics:
    """Service-level gauges on the ingest registry (one scrape shows everything)."""

    def __init__(self, pipe: Pipeline, sink: MqttSink) -> None:
        reg = pipe.core.ingest.metrics.registry
        c = pipe.core.counters
        g = Gauge("limes_tracker_live_tracks", "Live tracks", registry=reg)
        g.set_function(lambda: float(pipe.core.tracker.table.ctr[C_NLIVE]))
        Gauge("limes_tracker_steps", "Tracker steps", registry=reg).set_function(
            lambda: float(c.steps)
        )
        Gauge("limes_tracker_rows", "Measurement rows tracked", registry=reg).set_function(
            lambda: float(c.rows)
        )
        Gauge(
            "limes_tracker_late_dropped", "Rows older than the horizon", registry=reg
        ).set_function(lambda: float(c.late_dropped))
        Gauge("limes_publish_pending", "QoS 1 messages waiting", registry=reg).set_function(
            lambda: float(len(sink.pending))
        )
        Gauge("limes_publish_dropped_qos0", "Track updates dropped", registry=reg).set_function(
            lambda: float(sink.dropped_qos0)
        )
        Gauge("limes_publish_dropped_qos1", "QoS 1 overflow", registry=reg).set_function(
            lambda: float(sink.dropped_qos1)
        )


async def run_live(
    site: Site,
    settings: LiveSettings,
    stop: asyncio.Event | None = None,
    *,
    console: ConsoleOptions | None = None,
) -> None:
    """Run until ``stop`` is set (or SIGINT/SIGTERM when ``stop`` is None); with
    ``console``, serve the operator console on the same loop."""
    stop = stop if stop is not None else _signal_event()
    clock = settings.clock
    started = settings.started if settings.started is not None else clock()
    journal: RedisJournal | None = None
    store: AlertStore = MemoryAlertStore()
    if settings.redis_url:
        store = ResilientStore(RedisAlertStore.from_url(settings.redis_url))
        if settings.journal:
            journal = RedisJournal.from_url(settings.redis_url)
            started = await journal.meta(started)
    outbox = Outbox(journal.client) if journal is not None else None
    sink = MqttSink(outbox=outbox)
    hub = ConsoleHub(site, clock=clock) if console is not None else None
    pipe = Pipeline(
        site, HubSink(sink, hub) if hub is not None else sink, started=started, store=store,
        tracker_config=settings.tracker,
        step_s=settings.step_s,
    )  # fmt: skip
    durable = Durable(pipe, journal, max_pending_rows=settings.max_pending_rows)
    if hub is not None:
        hub.act = durable.console  # console actions are journaled before they apply
    recovered = None
    if journal is not None and outbox is not None:
        # outbound messages not acknowledged before the last stop go first, then the
        # replay (whose publishes of the same messages are dropped once each)
        unsent = await outbox.load()
        sink.restore(unsent)
        pipe.alerts.outbox = outbox
        recovered = await recover(durable, journal)
        outbox.end_recovery()
        sink.end_recovery()
        if unsent:
            log.info("outbox: %d unacknowledged messages queued again", len(unsent))
    if recovered is None or not (recovered.snapshot or recovered.replayed):
        await pipe.restore()
    _Metrics(pipe, sink)
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port, registry=pipe.core.ingest.metrics.registry)
        log.info("metrics on http://0.0.0.0:%d/metrics", settings.metrics_port)

    async def on_message(topic: str, payload: bytes) -> None:
        # runs before the message is acknowledged: journaled, then applied
        if settings.message_clock:
            now = message_time(payload, durable.now)
            if pipe.core.due(now):
                await durable.step(now)
                await durable.after_step()
        else:
            now = clock()
        await durable.message(topic, payload, now)

    driver = MqttSource(settings.mqtt, on_message)
    consoles = contextlib.AsyncExitStack()
    try:
        if hub is not None and console is not None:
            await consoles.enter_async_context(serve_console(hub, pipe, console))
        async with driver:
            sink.publisher = driver.publisher
            log.info("limes service for site %r on mqtt %s", site.name, settings.mqtt.endpoint)
            async with asyncio.TaskGroup() as tg:
                stepper = tg.create_task(
                    _step_loop(durable, sink, stop, clock, settings), name="service.step"
                )
                tracing = None
                if os.environ.get("LIMES_TRACEMALLOC_S"):
                    every = float(os.environ["LIMES_TRACEMALLOC_S"])
                    tracing = tg.create_task(_trace_memory(every), name="service.tracemalloc")
                await stop.wait()
                stepper.cancel()
                if tracing is not None:
                    tracing.cancel()
    finally:
        await consoles.aclose()
        with contextlib.suppress(Exception):
            await store.aclose()
        if journal is not None:
            with contextlib.suppress(Exception):
                await journal.aclose()
    log.info("limes service stopped")


async def _step_loop(
    durable: Durable,
    sink: MqttSink,
    stop: asyncio.Event,
    clock: Callable[[], float],
    settings: LiveSettings,
) -> None:
    """Steps (wall clock), flushes, self-checks and snapshots."""
    step_s = durable.pipe.core.step_s
    rate = settings.clock_rate
    next_snapshot = time.monotonic() + settings.snapshot_s
    while not stop.is_set():
        now = clock()
        await sink.flush()
        await _self_check(durable, sink)
        if not settings.message_clock:
            await durable.step(now)
            await durable.after_step()
        journal = durable.journal
        store = durable.pipe.store
        if (
            journal is not None
            and isinstance(store, ResilientStore)
            and time.monotonic() >= next_snapshot
        ):
            async with durable.lock:
                await take_snapshot(durable, journal, store)
            next_snapshot = time.monotonic() + settings.snapshot_s
        if settings.message_clock:
            await asyncio.sleep(step_s / rate)
        else:
            await asyncio.sleep(max(0.0, (now + step_s - clock()) / rate))


async def _self_check(durable: Durable, sink: MqttSink) -> None:
    """Retry what Redis could not take; raise or clear the service's own faults."""
    if sink.outbox is not None:
        await sink.outbox.retry()
    journal = durable.journal
    store = durable.pipe.store
    if journal is not None:
        ok = await journal.flush()
        await durable.set_fault(
            "journal", None if ok else "Redis unreachable, input journal buffered in memory"
        )
    if isinstance(store, ResilientStore):
        ok = await store.flush()
        await durable.set_fault(
            "alert_store", None if ok else "Redis unreachable, alert writes buffered in memory"
        )
    overflow = sink.dropped_qos1 > durable.health.outbound_dropped
    durable.health.outbound_dropped = sink.dropped_qos1
    if overflow:
        await durable.set_fault("outbound", "MQTT outbound queue overflowed (oldest dropped)")
    elif not sink.pending:
        await durable.set_fault("outbound", None)


async def _trace_memory(every_s: float, top: int = 15) -> None:
    """Diagnostics (``LIMES_TRACEMALLOC_S=60``): every ``every_s`` log the allocation
    sites whose live Python memory grew most since the first sample, and the totals.
    Slows the service (tracemalloc records every allocation): soak investigations only."""
    import tracemalloc

    tracemalloc.start(1)
    await asyncio.sleep(every_s)
    first = tracemalloc.take_snapshot()
    while True:
        await asyncio.sleep(every_s)
        snap = tracemalloc.take_snapshot()
        stats = snap.compare_to(first, "lineno")
        total = sum(st.size for st in snap.statistics("filename"))
        log.warning("tracemalloc: %.1f MiB traced; growth since first sample:", total / 2**20)
        for st in stats[:top]:
            log.warning(
                "tracemalloc: %+8.1f KiB %+8d blocks  %s", st.size_diff / 1024, st.count_diff,
                st.traceback,
            )  # fmt: skip


def _signal_event() -> asyncio.Event:
    ev = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, ev.set)
    return ev
