"""The console's live state and its fan-out to browsers.

:class:`HubSink` wraps the pipeline's sink: every outbound message is published as
before, then shown to :meth:`ConsoleHub.on_message` (synchronous, never blocks, never
raises into the pipeline). The hub keeps the latest state — live tracks by id, alerts
by id, device health, patrols, dead letters per device — and sends changes to each
connected browser through a bounded queue of pre-encoded Server-Sent-Event frames:

* track updates are coalesced and flushed every ``flush_s`` (and before any alert, so a
  browser sees a track before the alert that names it);
* alerts, tasking and CCP messages go out at once;
* health and patrols are polled from the pipeline every ``refresh_s`` and sent on change.

A client whose queue is full is not waited for: its queue is emptied and it gets one
``snapshot`` of the whole state instead (drop and resync). The pipeline never waits on
a browser.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from console._geometry import line_lonlat

if TYPE_CHECKING:
    from console._actions import ConsoleAction, Outcome
    from service.runtime import Pipeline, Sink

log = logging.getLogger("limes.console")

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()

TRACKS = "limes/v1/tracks/"
ALERTS = "limes/v1/alerts/"
TASKING = "limes/v1/tasking/"
CCP = "limes/v1/ccp/outbox"
DEADLETTER = "limes/v1/deadletter"
#: dead letters whose topic names no site device are counted under this key
OTHER = "(other)"

_RESYNC = b"resync"  # queue marker: send a full snapshot
_CLOSE = b""  # queue marker: end the stream


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent-Events frame (``data`` JSON-encoded unless already bytes)."""
    body = data if isinstance(data, bytes) else _enc.encode(data)
    return b"event: " + event.encode() + b"\ndata: " + body + b"\n\n"


class Client:
    """One browser's stream: a bounded queue of frames, resynced when it overflows."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=size)
        self.resyncs = 0
        self.dropped = 0

    def push(self, frame: bytes) -> None:
        """Queue ``frame``; on overflow drop everything queued and ask for a snapshot."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
                self.dropped += 1
            self.resyncs += 1
            self.queue.put_nowait(_RESYNC)

    def close(self) -> None:
        """End the stream (after what is queued, or at once when the queue is full)."""
        try:
            self.queue.put_nowait(_CLOSE)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(_CLOSE)


class ConsoleHub:
    """Latest state of the service for the console, fed by :class:`HubSink`.

    Args:
        site: the deployment (device list, fibre geometry for blind segments).
        clock: the console's "now" (health evaluation, operator action times). ``None``:
            the data clock — the latest ``t`` of any track or alert seen (embedded demo,
            whose scenario clock is not the wall clock).
        queue_size: frames one browser may have pending before it is resynced.
        keep_resolved: resolved alerts kept for the queue's history (newest).
        track_stale_s: a track not updated for this long (clock time) is dropped.
    """

    def __init__(
        self,
        site: Any,
        *,
        clock: Callable[[], float] | None = time.time,
        queue_size: int = 2000,
        flush_s: float = 0.25,
        refresh_s: float = 1.0,
        keep_resolved: int = 200,
        track_stale_s: float = 60.0,
    ) -> None:
        self.site = site
        self._clock = clock
        self.queue_size = queue_size
        self.flush_s = flush_s
        self.refresh_s = refresh_s
        self.keep_resolved = keep_resolved
        self.track_stale_s = track_stale_s
        self.pipeline: Pipeline | None = None
        #: how operator actions are applied: ``limes run`` sets the journaled path
        #: (``service.journal.Durable.console``); None: directly on :attr:`pipeline`
        self.act: Callable[[ConsoleAction], Awaitable[Outcome]] | None = None
        self.tracks: dict[str, dict[str, Any]] = {}
        self.alerts: dict[str, dict[str, Any]] = {}
        self.health: list[dict[str, Any]] = []
        self.patrols: list[dict[str, Any]] = []
        self.dead_letters: dict[str, int] = {}
        self.data_t = -math.inf
        self.clients: set[Client] = set()
        self._dirty: dict[str, bytes] = {}
        self._health_frame = b""
        self._patrol_frame = b""
        self.counters: dict[str, int] = {"messages": 0, "bad_messages": 0}

    # -- time ------------------------------------------------------------------------------

    def now(self) -> float:
        """The console's clock (see ``clock``)."""
        if self._clock is not None:
            return self._clock()
        return self.data_t if math.isfinite(self.data_t) else time.time()

    # -- inputs ----------------------------------------------------------------------------

    def attach(self, pipeline: Pipeline) -> None:
        """Watch ``pipeline``: seed the alerts from its engine (open alerts after a
        restart), then poll its health and patrols."""
        self.pipeline = pipeline
        for rec in pipeline.engine.alerts.values():
            view = msgspec.to_builtins(rec.to_alert())
            self.alerts[rec.alert_id] = self._with_ext(view)
        self.refresh()

    def on_message(self, topic: str, payload: bytes) -> None:
        """An outbound message of the pipeline (called by :class:`HubSink`); never raises."""
        self.counters["messages"] += 1
        try:
            if topic.startswith(TRACKS):
                self._on_track(payload)
            elif topic.startswith(TASKING) or topic == CCP:
                self._on_order(_dec.decode(payload))
            elif topic.startswith(ALERTS):
                self._on_alert(_dec.decode(payload))
            elif topic == DEADLETTER:
                self._on_dead_letter(_dec.decode(payload))
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            self.counters["bad_messages"] += 1
            log.warning("console: cannot show %s", topic, exc_info=True)

    def _on_track(self, payload: bytes) -> None:
        u = _dec.decode(payload)
        tid = str(u["track_id"])
        self.data_t = max(self.data_t, float(u["t"]))
        if u.get("status") == "lost":
            self.tracks.pop(tid, None)
        else:
            self.tracks[tid] = u
        self._dirty[tid] = payload

    def _on_alert(self, a: dict[str, Any]) -> None:
        self.data_t = max(self.data_t, float(a["t"]))
        prev = self.alerts.get(str(a["alert_id"]), {})
        view = self._with_ext({**{k: v for k, v in prev.items() if k.startswith("x_")}, **a})
        self.alerts[str(a["alert_id"])] = view
        self._prune_alerts()
        self.flush_tracks()
        self._broadcast(sse("alert", view))

    def _on_order(self, order: dict[str, Any]) -> None:
        aid = str(order.get("alert_id", ""))
        view = self.alerts.get(aid)
        if view is None:
            return
        if "request_id" in order:
            view["x_ccp_request_id"] = order["request_id"]
        if "unit" in order:
            view["x_assigned_unit"] = order["unit"]
            view["x_assigned_by"] = order.get("assigned_by")
        self._broadcast(sse("alert", self._with_ext(view)))

    def _on_dead_letter(self, dl: dict[str, Any]) -> None:
        self._count_dl(str(dl.get("topic", "")))

    def _count_dl(self, topic: str) -> None:
        parts = topic.split("/")
        device = OTHER
        if len(parts) >= 5 and parts[2] == "sensors" and parts[4] in self.site.sensor_kind:
            device = parts[4]
        self.dead_letters[device] = self.dead_letters.get(device, 0) + 1

    def _with_ext(self, view: dict[str, Any]) -> dict[str, Any]:
        """Add the engine record's extras (``x_*``: assignment, CCP, who acted)."""
        pipe = self.pipeline
        rec = pipe.engine.alerts.get(str(view["alert_id"])) if pipe is not None else None
        if rec is not None:
            view["x_opened_t"] = rec.opened_t
            view["x_assigned_unit"] = rec.assigned_unit
            view["x_assigned_by"] = rec.assigned_by
            view["x_ccp_request_id"] = rec.ccp_request_id
            view["x_acked_by"] = rec.acked_by
            view["x_group_size"] = rec.group_size
        return view

    def _prune_alerts(self) -> None:
        done = [a for a in self.alerts.values() if a.get("state") == "resolved"]
        if len(done) > self.keep_resolved:
            done.sort(key=lambda a: float(a["t"]))
            for a in done[: len(done) - self.keep_resolved]:
                del self.alerts[str(a["alert_id"])]

    # -- periodic work ---------------------------------------------------------------------

    def flush_tracks(self) -> None:
        """Send the coalesced track updates (latest per track) as one ``tracks`` frame."""
        if not self._dirty:
            return
        body = b"[" + b",".join(self._dirty.values()) + b"]"
        self._dirty.clear()
        self._broadcast(sse("tracks", body))

    def refresh(self) -> None:
        """Poll health and patrols from the pipeline; drop stale tracks; send changes."""
        now = self.now()
        stale = [tid for tid, u in self.tracks.items() if now - float(u["t"]) > self.track_stale_s]
        for tid in stale:
            u = self.tracks.pop(tid)
            self._dirty[tid] = _enc.encode({**u, "status": "lost"})
        pipe = self.pipeline
        if pipe is None:
            return
        self.health = self._health(pipe, now)
        frame = sse("health", {"devices": self.health, "dead_letters": self.dead_letters})
        if frame != self._health_frame:
            self._health_frame = frame
            self._broadcast(frame)
        self.patrols = self._patrols(pipe)
        frame = sse("patrols", self.patrols)
        if frame != self._patrol_frame:
            self._patrol_frame = frame
            self._broadcast(frame)

    def _health(self, pipe: Pipeline, now: float) -> list[dict[str, Any]]:
        out = []
        site = self.site
        for dev_id, h in pipe.core.ingest.snapshot(now).items():
            lat, lon = h.lat, h.lon
            if (lat is None or lon is None) and dev_id in site.msv_by_id:
                m = site.msv_by_id[dev_id]
                lat, lon = m.lat, m.lon
            cov = None
            if h.coverage_loss is not None:
                c = h.coverage_loss
                off = site.fibre_by_id[dev_id].offset_m if dev_id in site.fibre_by_id else 0.0
                cov = {
                    "border_from_m": c.border_from_m,
                    "border_to_m": c.border_to_m,
                    "since": c.since,
                    "lonlat": line_lonlat(site, c.border_from_m, c.border_to_m, off),
                }
            out.append(
                {
                    "device": dev_id,
                    "kind": h.kind,
                    "state": h.state,
                    "last_seen": h.last_seen,
                    "detail": h.detail,
                    "lat": lat,
                    "lon": lon,
                    "heading_deg": h.heading_deg,
                    "lost_batches": h.lost_batches,
                    "duplicate_batches": h.duplicate_batches,
                    "dead_letters": self.dead_letters.get(dev_id, 0),
                    "coverage_loss": cov,
                }
            )
        return out

    def _patrols(self, pipe: Pipeline) -> list[dict[str, Any]]:
        eng = pipe.engine
        return [
            {
                "unit": p.unit,
                "team": p.team,
                "lat": p.lat,
                "lon": p.lon,
                "t": p.t,
                "available": p.available,
                "tasked_to": eng.tasked.get(p.unit),
            }
            for p in sorted(eng.patrols.values(), key=lambda p: p.unit)
        ]

    async def run(self) -> None:
        """Flush tracks every ``flush_s`` and refresh health every ``refresh_s`` until
        cancelled; then end every browser stream."""
        next_refresh = 0.0
        try:
            while True:
                self.flush_tracks()
                mono = time.monotonic()
                if mono >= next_refresh:
                    self.refresh()
                    next_refresh = mono + self.refresh_s
                await asyncio.sleep(self.flush_s)
        finally:
            self.close()

    # -- browsers --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state (first frame of a stream, resyncs, ``GET /api/state``)."""
        return {
            "t": self.now(),
            "tracks": list(self.tracks.values()),
            "alerts": list(self.alerts.values()),
            "health": {"devices": self.health, "dead_letters": self.dead_letters},
            "patrols": self.patrols,
        }

    def subscribe(self) -> Client:
        """A new browser stream (its first frame is a snapshot)."""
        c = Client(self.queue_size)
        self.clients.add(c)
        return c

    def unsubscribe(self, client: Client) -> None:
        """Forget a browser stream."""
        self.clients.discard(client)

    async def frames(
        self, client: Client, *, alive: Callable[[], bool], keepalive_s: float = 15.0
    ) -> AsyncIterator[bytes]:
        """The SSE byte stream of ``client``: snapshot, then changes; a comment line every
        ``keepalive_s``; ends when ``alive()`` turns False (logout, expiry) or on close."""
        try:
            yield b"retry: 2000\n\n" + sse("snapshot", self.snapshot())
            while True:
                try:
                    frame = await asyncio.wait_for(client.queue.get(), keepalive_s)
                except TimeoutError:
                    if not alive():
                        return
                    yield b": keepalive\n\n"
                    continue
                if frame == _CLOSE:
                    return
                if frame == _RESYNC:
                    yield sse("snapshot", self.snapshot())
                    continue
                yield frame
        finally:
            self.unsubscribe(client)

    def close(self) -> None:
        """End every browser stream (service shutdown)."""
        for c in list(self.clients):
            c.close()

    def _broadcast(self, frame: bytes) -> None:
        for c in self.clients:
            c.push(frame)


class HubSink:
    """A sink that publishes through ``inner``, then shows the message to ``hub``."""

    def __init__(self, inner: Sink, hub: ConsoleHub) -> None:
        self.inner = inner
        self.hub = hub

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Publish via the wrapped sink; then update the console (cannot fail)."""
        await self.inner.publish(topic, payload, qos)
        try:
            self.hub.on_message(topic, payload)
        except Exception:  # the console must never break the pipeline
            log.exception("console: hub failed on %s", topic)
