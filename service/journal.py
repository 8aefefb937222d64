"""The durable path of the live service: an input journal in a Redis Stream, snapshots,
recovery, and a degraded mode that keeps fusing and alerting while Redis is away.

Design (one process, one writer):

* Every input that changes the pipeline's state is a journal **record**, appended to the
  stream ``limes:{journal}:in`` *before* it is applied: ``m`` an MQTT message (raw topic,
  payload bytes, arrival time), ``s`` a tracker step at ``t``, ``e`` a service health
  event (pseudo-device ``limes-service``). The MQTT driver acknowledges a message only
  after the handler returned, i.e. after the XADD, so an acknowledged message is in the
  journal (or, in degraded mode, in the bounded memory buffer: see below).
* The in-process core consumes the records directly (no consumer group round trip); the
  journal is for recovery. Applying a record is the same code as live (:class:`Durable`),
  and the pipeline is deterministic in its records, so replaying them reproduces the
  same tracks and alert decisions.
* Every ``snapshot_s`` a snapshot (:mod:`service.snapshot`) of the whole pipeline state
  with the id of the last record it includes is written to ``limes:{journal}:snapshot``,
  and the stream is trimmed to that id (one MULTI: both keys share the ``{journal}`` hash
  slot). A snapshot is taken only when nothing is buffered (journal and alert store both
  caught up), so everything it includes is in Redis.
* On start (:func:`recover`): load the snapshot (if any), replay the records after it
  through the pipeline with a sink that drops track updates and dead letters (already
  sent) and passes alerts, taskings and CCP messages, which the alert service publishes
  only when the store applies their write: an alert the store already has is not
  published twice; one the crashed process decided but never stored is stored and
  published now. Then live input resumes (the broker redelivers what was not acked; the
  restored de-duplication windows drop the batches already applied).

Degraded mode: a failed XADD (Redis down, timeout) puts the record into a bounded
in-memory buffer (``max_buffered`` records) and the pipeline goes on; the buffer is
flushed in order once Redis answers again (retried at most every ``retry_s``). Overflow
drops the oldest buffered record, counted (``journal_dropped``). The alert store is
wrapped the same way (:class:`ResilientStore`): alert writes that fail are buffered and
retried (they are idempotent by revision), and reported as applied so the alert is still
published over MQTT. The state changes raise a ``sensor_fault`` alert for the
pseudo-device ``limes-service`` and resolve it on recovery.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from alerts import AlertStore, HealthEvent, StoreError, StoreWrapper
from alerts.model import StoreOp
from console._actions import ACTION_CODEC, ConsoleAction, Outcome, apply_action
from service import snapshot

if TYPE_CHECKING:
    from service.runtime import Pipeline, Sink

log = logging.getLogger("limes.journal")

STREAM: Final = "limes:{journal}:in"
SNAPSHOT: Final = "limes:{journal}:snapshot"
META: Final = "limes:{journal}:meta"
SERVICE_DEVICE: Final = "limes-service"
RECENT_MESSAGES: Final = 65_536  # 16-byte digests: about 5 MiB with the dict
_READ_CHUNK = 2000


# -- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One journal record: ``kind`` ``m`` (message), ``s`` (step), ``e`` (health) or
    ``c`` (a console operator action, ``payload`` its :class:`ConsoleAction` JSON)."""

    kind: str
    t: float
    topic: str = ""
    payload: bytes = b""
    state: str = ""  # ``e``: online / fault
    detail: str = ""

    def fields(self) -> dict[str, bytes | str]:
        """Stream entry fields (``t`` as ``repr``: exact round trip)."""
        out: dict[str, bytes | str] = {"k": self.kind, "t": repr(self.t)}
        if self.kind == "m":
            out["topic"] = self.topic
            out["p"] = self.payload
        elif self.kind == "c":
            out["p"] = self.payload
        elif self.kind == "e":
            out["state"] = self.state
            out["detail"] = self.detail
        return out

    @classmethod
    def from_fields(cls, f: dict[bytes, bytes]) -> Record:
        """Inverse of :meth:`fields`."""
        return cls(
            kind=f[b"k"].decode(),
            t=float(f[b"t"]),
            topic=f.get(b"topic", b"").decode("utf-8", "surrogateescape"),
            payload=f.get(b"p", b""),
            state=f.get(b"state", b"").decode(),
            detail=f.get(b"detail", b"").decode(),
        )


# -- journal ----------------------------------------------------------------------------------


@dataclass
class JournalCounters:
    """Counters of the journal (exported as gauges)."""

    appended: int = 0
    failed: int = 0  # appends that went to the buffer
    dropped: int = 0  # buffered records lost to overflow
    snapshots: int = 0
    snapshot_failed: int = 0
    replayed: int = 0


class RedisJournal:
    """Append-only input journal with a bounded degraded-mode buffer (see module doc)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        max_buffered: int = 100_000,
        retry_s: float = 1.0,
    ) -> None:
        self.client = client
        self.max_buffered = max_buffered
        self.retry_s = retry_s
        self.buffer: collections.deque[Record] = collections.deque()
        self.counters = JournalCounters()
        self.last_id = "0-0"
        self._next_try = -math.inf
        self._flush_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> RedisJournal:
        """A journal on ``redis://...`` with short timeouts (a dead Redis must not stall)."""
        client = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        return cls(client, **kw)

    @property
    def degraded(self) -> bool:
        """True while records wait in memory for Redis."""
        return bool(self.buffer)

    async def append(self, rec: Record) -> None:
        """Journal ``rec`` (Redis, or the buffer when Redis fails)."""
        if self.buffer:
            self._buffer(rec)
            await self.flush()
            return
        try:
            self.last_id = _s(await self.client.xadd(STREAM, rec.fields()))  # type: ignore[arg-type]
            self.counters.appended += 1
        except (RedisError, OSError) as exc:
            log.warning("journal: append failed (%s); buffering in memory", exc)
            self._next_try = time.monotonic() + self.retry_s
            self._buffer(rec)

    def _buffer(self, rec: Record) -> None:
        self.counters.failed += 1
        self.buffer.append(rec)
        if len(self.buffer) > self.max_buffered:
            self.buffer.popleft()
            self.counters.dropped += 1

    async def flush(self, *, force: bool = False) -> bool:
        """Write buffered records in order; True when the buffer is empty.

        Single-flight: the step loop's self-check and an append may both call this; the
        second waits for the first (two concurrent flushers would write one chunk twice
        and pop it twice, losing records that were never written).
        """
        if not self.buffer:
            return True
        async with self._flush_lock:
            return await self._flush(force)

    async def _flush(self, force: bool) -> bool:
        if not self.buffer:
            return True
        now = time.monotonic()
        if not force and now < self._next_try:
            return False
        try:
            while self.buffer:
                chunk = list(self.buffer)[:500]
                async with self.client.pipeline(transaction=False) as p:
                    for rec in chunk:
                        p.xadd(STREAM, rec.fields())  # type: ignore[arg-type]
                    ids = await p.execute()
                _pop_written(self.buffer, chunk)
                self.counters.appended += len(chunk)
                self.last_id = _s(ids[-1])
        except (RedisError, OSError) as exc:
            log.warning("journal: %d records still buffered (%s)", len(self.buffer), exc)
            self._next_try = now + self.retry_s
            return False
        log.info("journal: caught up with Redis")
        return True

    async def write_snapshot(self, data: bytes, position: str) -> None:
        """Store the snapshot and trim the records it includes (one transaction)."""
        async with self.client.pipeline(transaction=True) as p:
            p.set(SNAPSHOT, data)
            p.xtrim(STREAM, minid=position)
            await p.execute()
        self.counters.snapshots += 1

    async def read_snapshot(self) -> bytes | None:
        """The stored snapshot, if any."""
        data: Any = await self.client.get(SNAPSHOT)
        return bytes(data) if data is not None else None

    async def records(self, after: str) -> list[tuple[str, Record]]:
        """Every record with id > ``after`` (``"0-0"``: all), in order."""
        out: list[tuple[str, Record]] = []
        start = f"({after}" if after != "0-0" else "-"
        while True:
            chunk: Any = await self.client.xrange(STREAM, min=start, max="+", count=_READ_CHUNK)
            for rid, f in chunk:
                out.append((_s(rid), Record.from_fields(f)))
            if len(chunk) < _READ_CHUNK:
                return out
            start = f"({_s(chunk[-1][0])}"

    async def meta(self, started: float) -> float:
        """The journal's start time: stored on first use, then always the stored one."""
        await self.client.hsetnx(META, "started", repr(started))
        stored: Any = await self.client.hget(META, "started")
        return float(stored)

    async def aclose(self) -> None:
        """Close the connection."""
        await self.client.aclose()


def _pop_written(buffer: collections.deque[Any], written: Sequence[Any]) -> None:
    """Drop ``written`` from the head of ``buffer``: only entries that are still there
    (an overflow may have dropped the oldest while the write was in flight)."""
    for item in written:
        if buffer and buffer[0] is item:
            buffer.popleft()


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


# -- resilient alert store ---------------------------------------------------------------------


class ResilientStore(StoreWrapper):
    """An :class:`AlertStore` that survives its backend going away.

    ``apply`` that fails (``StoreError``) buffers the ops (bounded, oldest dropped and
    counted) and answers "applied" for each, so the alert is still published; later calls
    first retry the buffer in order (writes are idempotent by revision). Reads fail as
    the backend does.
    """

    def __init__(self, inner: AlertStore, *, max_buffered: int = 100_000, retry_s: float = 1.0):
        super().__init__(inner)
        self.max_buffered = max_buffered
        self.retry_s = retry_s
        self.buffer: collections.deque[StoreOp] = collections.deque()
        self.failed = 0
        self.dropped = 0
        self._next_try = -math.inf
        self._flush_lock = asyncio.Lock()

    @property
    def degraded(self) -> bool:
        """True while writes wait in memory."""
        return bool(self.buffer)

    async def flush(self, *, force: bool = False) -> bool:
        """Retry buffered writes in order; True when none is left (single-flight, as
        :meth:`RedisJournal.flush`)."""
        if not self.buffer:
            return True
        async with self._flush_lock:
            return await self._flush(force)

    async def _flush(self, force: bool) -> bool:
        if not self.buffer:
            return True
        if not force and time.monotonic() < self._next_try:
            return False
        try:
            while self.buffer:
                chunk = list(self.buffer)[:200]
                await self.inner.apply(chunk)
                _pop_written(self.buffer, chunk)
        except StoreError as exc:
            log.warning("alert store: %d writes still buffered (%s)", len(self.buffer), exc)
            self._next_try = time.monotonic() + self.retry_s
            return False
        log.info("alert store: caught up")
        return True

    async def apply(self, ops: Sequence[StoreOp]) -> list[bool]:
        """Apply, or buffer when the backend fails (see the class doc)."""
        if self.buffer and not await self.flush():
            self._buffer(ops)
            return [True] * len(ops)
        try:
            return await self.inner.apply(ops)
        except StoreError as exc:
            log.warning("alert store: write failed (%s); buffering", exc)
            self._next_try = time.monotonic() + self.retry_s
            self._buffer(ops)
            return [True] * len(ops)

    def _buffer(self, ops: Sequence[StoreOp]) -> None:
        self.failed += len(ops)
        self.buffer.extend(ops)
        while len(self.buffer) > self.max_buffered:
            self.buffer.popleft()
            self.dropped += 1


# -- the journaled pipeline ----------------------------------------------------------------------


class _Clock(msgspec.Struct, gc=False):
    sent: float | None = None
    t: float | None = None


_CLOCK = msgspec.json.Decoder(_Clock)


def message_time(payload: bytes, previous: float) -> float:
    """Arrival clock of the ``message`` clock mode: the payload's ``sent`` (else ``t``),
    never going backwards; ``previous`` for payloads without one (as a replay file)."""
    try:
        c = _CLOCK.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return previous
    cand = c.sent if c.sent is not None else c.t
    if cand is None or not math.isfinite(cand):
        return previous
    return max(previous, cand)


@dataclass
class ServiceHealth:
    """Self-monitoring state: why the ``limes-service`` pseudo-device is in fault."""

    reasons: dict[str, str] = field(default_factory=dict)
    shed_rows: int = 0
    shed_batches: int = 0
    outbound_dropped: int = 0  # MQTT outbound overflow already reported
    redelivered: int = 0  # exact repeats of non-batch messages dropped


class Durable:
    """A :class:`Pipeline` whose every state-changing input is journaled first.

    ``message`` / ``step`` / ``health`` are used live and by :func:`recover` (with
    ``journal=None``: records are replayed, not written again); each journals and applies
    under :attr:`lock`, so the journal order is the apply order and a snapshot (taken
    under the same lock) never falls between a record's append and its application.
    Overload shedding is part
    of applying a record (deterministic, so replay sheds the same rows): when more than
    ``max_pending_rows`` measurement rows wait for the tracker, a batch's rows are dropped
    and counted, and the ``limes-service`` pseudo-device goes to ``fault``.
    """

    def __init__(
        self,
        pipe: Pipeline,
        journal: RedisJournal | None,
        *,
        max_pending_rows: int = 500_000,
    ) -> None:
        self.pipe = pipe
        self.journal = journal
        self.max_pending_rows = max_pending_rows
        self.health = ServiceHealth()
        self.now = -math.inf
        self.lock = asyncio.Lock()
        # digests of the latest messages (FIFO, insertion-ordered dict): QoS 1
        # redeliveries and retained statuses re-sent on every re-subscription repeat a
        # message byte for byte; statuses, patrols and acks have no seq, and a broker
        # restart can redeliver a backlog older than the ingest's seq windows judge
        self.recent: dict[bytes, None] = {}

    async def _do(self, rec: Record) -> None:
        if self.journal is not None:
            await self.journal.append(rec)
        await self.apply(rec)

    async def message(self, topic: str, payload: bytes, now: float) -> None:
        """One MQTT message that arrived at ``now``: journal, then apply."""
        async with self.lock:
            await self._do(Record("m", now, topic, payload))

    async def console(self, act: ConsoleAction) -> Outcome:
        """An operator action from the web console: journal, then apply (as an MQTT ack,
        whose message is journaled before its PUBACK); the console answers after this."""
        async with self.lock:
            rec = Record("c", act.t, payload=msgspec.json.encode(act))
            if self.journal is not None:
                await self.journal.append(rec)
            return await self._console(rec)

    async def _console(self, rec: Record) -> Outcome:
        try:
            act = ACTION_CODEC.decode(rec.payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:  # never written so
            log.error("journal: bad console record skipped (%s)", exc)
            return Outcome(False, reason=f"bad console record: {exc}")
        return await apply_action(self.pipe, act)

    async def step(self, now: float) -> None:
        """A tracker step at ``now``: journal, then apply."""
        async with self.lock:
            await self._do(Record("s", now))

    async def after_step(self) -> None:
        """Clear the overload fault once the tracker caught up (called after steps)."""
        if "overload" in self.health.reasons and self.pipe.core.pending_rows == 0:
            await self.set_fault("overload", None)

    async def set_fault(self, reason: str, detail: str | None) -> None:
        """Raise (``detail``) or clear (None) one reason of the service's own fault."""
        async with self.lock:
            await self._set_fault(reason, detail)

    async def _set_fault(self, reason: str, detail: str | None) -> None:
        before = dict(self.health.reasons)
        if detail is None:
            self.health.reasons.pop(reason, None)
        else:
            self.health.reasons[reason] = detail
        if self.health.reasons == before:
            return
        if self.health.reasons:
            state = "fault"
            text = "; ".join(f"{k}: {v}" for k, v in sorted(self.health.reasons.items()))
        elif before:
            state, text = "online", ""
        else:
            return
        t = self.now if math.isfinite(self.now) else time.time()
        await self._do(Record("e", t, state=state, detail=text))

    async def apply(self, rec: Record) -> None:
        """Apply one record to the pipeline (the same for live and replay)."""
        pipe = self.pipe
        if rec.kind == "c":  # console time is not the input clock: ``now`` stays
            await self._console(rec)
            return
        self.now = max(self.now, rec.t)
        if rec.kind == "s":
            await pipe.step(rec.t)
        elif rec.kind == "m":
            digest = hashlib.blake2b(
                rec.topic.encode("utf-8", "surrogateescape") + b"\0" + rec.payload,
                digest_size=16,
            ).digest()
            if digest in self.recent:
                self.health.redelivered += 1
                return
            self.recent[digest] = None
            if len(self.recent) > RECENT_MESSAGES:
                del self.recent[next(iter(self.recent))]
            res = pipe.core.ingest.handle(rec.topic, rec.payload, rec.t)
            if len(res.meas) and pipe.core.pending_rows + len(res.meas) > self.max_pending_rows:
                self.health.shed_rows += len(res.meas)
                self.health.shed_batches += 1
                res.meas = res.meas[:0]
                if "overload" not in self.health.reasons:
                    await self._set_fault(
                        "overload", f"tracker behind, shedding rows over {self.max_pending_rows}"
                    )
            await pipe.on_result(res)
        elif rec.kind == "e":
            state: Literal["fault", "online"] = "fault" if rec.state == "fault" else "online"
            ev = HealthEvent(t=rec.t, device=SERVICE_DEVICE, state=state, detail=rec.detail or None)
            await pipe.submit([ev])


class _RecoverySink:
    """During recovery: drop track updates and dead letters (already sent before the
    crash); pass alerts, taskings, CCP (published only for writes the store applies)."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.passed = 0

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        if topic.startswith(("limes/v1/tracks/", "limes/v1/deadletter")):
            return
        self.passed += 1
        await self.inner.publish(topic, payload, qos)


@dataclass
class Recovery:
    """What :func:`recover` did."""

    snapshot: bool
    position: str
    replayed: int
    published: int
    seconds: float


async def recover(durable: Durable, journal: RedisJournal) -> Recovery:
    """Restore the latest snapshot and replay the journal after it (see the module doc).

    With no snapshot the whole journal is replayed into the fresh pipeline (a journal is
    only trimmed by a snapshot, so it then starts at the service's first record).
    """
    t0 = time.monotonic()
    pipe = durable.pipe
    data = await journal.read_snapshot()
    position = "0-0"
    if data is not None:
        try:
            position, durable.now = snapshot.restore(pipe, data, durable)
        except snapshot.SnapshotError as exc:
            log.error("snapshot not usable (%s): replaying the whole journal", exc)
            data = None
    records = await journal.records(position)
    real, rsink = pipe.sink, _RecoverySink(pipe.sink)
    pipe.sink = rsink
    pipe.alerts.publish = rsink.publish
    saved, durable.journal = durable.journal, None
    try:
        for rid, rec in records:
            await durable.apply(rec)
            position = rid
    finally:
        pipe.sink = real
        pipe.alerts.publish = real.publish
        durable.journal = saved
    journal.last_id = position
    journal.counters.replayed = len(records)
    out = Recovery(data is not None, position, len(records), rsink.passed,
                   time.monotonic() - t0)  # fmt: skip
    log.info(
        "recovered: snapshot %s, %d records replayed, %d messages published, %.2f s",
        out.snapshot, out.replayed, out.published, out.seconds,
    )  # fmt: skip
    return out


async def take_snapshot(durable: Durable, journal: RedisJournal, store: ResilientStore) -> bool:
    """Snapshot now if everything is in Redis; False when skipped or failed (counted)."""
    if journal.degraded or store.degraded:
        return False
    data = snapshot.capture(
        durable.pipe,
        durable,
        position=journal.last_id,
        started=durable.pipe.core.ingest.health.started,
        now=durable.now,
    )
    try:
        await journal.write_snapshot(data, journal.last_id)
    except (RedisError, OSError) as exc:
        journal.counters.snapshot_failed += 1
        log.warning("snapshot failed: %s", exc)
        return False
    return True
