"""One sector's fusion: a :class:`service.runtime.Pipeline` fed by the sector's stream.

Records of a sector stream (Redis Stream fields; ``t`` is the writer's clock, ``repr``)::

    k=m  t, g, topic, p       an MQTT message, as gateway ``g`` received it at ``t``
    k=b  t, g, dev            gateway beacon: devices seen since its last beacon
    k=h  t, gid, x, y, vx, vy a neighbour's track near the boundary (handover candidate)
    k=x  t, g                 gateway ``g`` stopped cleanly

Applying a record (:meth:`SectorDurable.apply_record`, the same live and on recovery, so
the sector's state is a deterministic function of its stream):

* the *watermark* is the minimum over the gateways of the latest ``t`` each wrote;
  gateways more than ``GRACE_S`` behind the newest, or that said goodbye, are left out (a
  dead gateway must not stop the clock). Every gateway appends in its own time order, so
  no record older than the watermark can still come from the gateways it counts;
* gateway records (``m``, ``b``) are *held* (:attr:`SectorDurable.held`, a heap on ``(t,
  arrival)``, part of the snapshot) and applied in that order once the watermark has
  passed their ``t``. The sector's state is then a function of what each gateway
  received and when, not of how the gateways' appends interleave in the stream: one
  gateway lagging another (a busy core, a JIT warm-up) within the grace changes nothing
  (``tests/test_scale_cluster.py::test_lagging_gateway_changes_nothing_in_process``).
  Applied in stream order instead, the leading gateway's messages were counted early
  (devices looked silent), and the trackers' input order varied with the interleaving;
* applying a held record: the sector clock ``now = max(now, t)`` (never going back; a
  record of a gateway left out by the grace is late, at ``now``), a tracker step at
  ``now`` when one is due, then
  ``m``: ingest (``drivers.Ingest``: validation, per-device de-duplication,
  normalisation), keep the rows in this sector's window (sector +- margin), buffer them.
  A device status older (payload ``sent``/``t``) than the newest one applied for that
  device is not applied (the newest status wins) but counts as a heartbeat at ``now``;
  ``b``: the devices are alive at ``now``;
* ``h`` (no gateway, no clock): remember the handover candidate, at once.

Ownership and ids (:class:`SectorPipeline`): a track is *owned* by the sector that holds
its position (the ``sector`` field of the track update; outside every sector: the first
sector, as the alert engine's fallback). Only the owner publishes a track and its alerts.
Track ids are namespaced by sector (``S02-T000007``), so ids of different workers never
collide. When a local track first becomes owned, it adopts the id of a neighbour's
handover candidate within ``gate_m`` of its position (candidate moved on with its
velocity) instead of making a new one: the track keeps its id across the boundary.

Alerts: every sector's engine sees every track of its window (so the engine keeps a
track's history across the boundary), but the sector's store writes only alerts whose
``sector`` is this sector (:class:`SectorStore`); a message is published only when its
write was applied, and alert ids are deterministic (:func:`alerts.alert_id_for`), so an
alert decided by two workers (a failover replay) is stored and published once.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from alerts import AlertStore, Input, StoreWrapper, Tick, TrackUpdate
from alerts.model import AlertWrite, StoreOp
from alerts.service import StagingStore
from drivers import IngestResult
from fusion.config import TrackerConfig
from geo import Site
from scale.routing import Router
from service.core import StepOutput, health_input, track_topic
from service.journal import Durable, Record, message_time
from service.runtime import Pipeline, Sink

_enc = msgspec.json.Encoder()


class _State(msgspec.Struct):
    state: str | None = None


_state_dec = msgspec.json.Decoder(_State)


def _status_state(payload: bytes) -> str | None:
    """The ``state`` of a status payload (None: unreadable; ingest judges it)."""
    try:
        return _state_dec.decode(payload).state
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


#: a handover candidate is usable this long after its time, and this long before it (s)
CANDIDATE_TTL_S = 30.0
CANDIDATE_EARLY_S = 10.0
#: a gateway whose clock is this far behind the newest one no longer holds the watermark
GRACE_S = 30.0


class SectorStore(StoreWrapper):
    """An :class:`AlertStore` view for one sector: writes of other sectors' alerts are not
    applied (reported as not applied, so they are not published either); patrol positions
    are written only by the ``patrol_writer`` sector (every sector receives them)."""

    def __init__(self, inner: AlertStore, sector: str, *, patrol_writer: bool) -> None:
        super().__init__(inner)
        self.sector = sector
        self.patrol_writer = patrol_writer

    def _mine(self, ops: Sequence[StoreOp]) -> list[int]:
        return [
            i
            for i, op in enumerate(ops)
            if (op.sector == self.sector if isinstance(op, AlertWrite) else self.patrol_writer)
        ]

    async def apply(self, ops: Sequence[StoreOp]) -> list[bool]:
        """Apply this sector's ops (in order); the others are reported as not applied."""
        mine = self._mine(ops)
        out = [not isinstance(op, AlertWrite) for op in ops]
        if mine:
            res = await self.inner.apply([ops[i] for i in mine])
            for i, ok in zip(mine, res, strict=True):
                out[i] = ok
        return out

    async def apply_staged(
        self, ops: Sequence[StoreOp], msgs: Sequence[Sequence[tuple[str, bytes, int]]]
    ) -> list[bool]:
        """:meth:`apply` with each op's messages staged by the inner
        :class:`alerts.service.StagingStore` (other sectors' writes: neither)."""
        inner = self.inner
        assert isinstance(inner, StagingStore)
        mine = self._mine(ops)
        out = [not isinstance(op, AlertWrite) for op in ops]
        if mine:
            res = await inner.apply_staged([ops[i] for i in mine], [msgs[i] for i in mine])
            for i, ok in zip(mine, res, strict=True):
                out[i] = ok
        return out


class SectorPipeline(Pipeline):
    """The pipeline of one sector (see the module doc). ``handovers`` collects, per step,
    ``(neighbour sector, record fields)`` for the owned tracks within ``margin`` of a
    boundary; the worker appends them to the neighbour's stream.

    With a ``store`` that stages messages (:class:`alerts.service.StagingStore`: the
    worker's fenced store), the alert, tasking and CCP messages go into the sector outbox
    atomically with their write and the publishers send them (:mod:`scale.publisher`);
    otherwise (in process, :mod:`scale.local`) the pipeline publishes them itself."""

    def __init__(
        self,
        site: Site,
        sink: Sink,
        sector: str,
        router: Router,
        *,
        started: float,
        store: AlertStore,
        tracker_config: TrackerConfig | None = None,
        step_s: float = 0.5,
        gate_m: float = 300.0,
        handover_every_s: float = 1.0,
    ) -> None:
        patrol_writer = sector == router.ids[0]
        super().__init__(
            site,
            sink,
            started=started,
            store=SectorStore(store, sector, patrol_writer=patrol_writer),
            tracker_config=tracker_config,
            step_s=step_s,
        )
        if isinstance(store, StagingStore):
            assert isinstance(self.store, SectorStore)
            self.alerts.staging = self.store
        self.sector = sector
        self.router = router
        self.index = router.ids.index(sector)
        self.fallback = self.engine.fallback_sector
        self.gate_m = gate_m
        self.handover_every_s = handover_every_s
        self.replaying = False
        self.handovers: list[tuple[str, dict[str, str]]] = []
        self._sent_handover: dict[str, float] = {}
        self.state: SectorDurable | None = None  # set by SectorDurable

    def owns(self, u: dict[str, Any]) -> bool:
        """Whether this sector owns (publishes) the track update ``u``."""
        s = u["sector"]
        return bool(s == self.sector or (s == "" and self.sector == self.fallback))

    async def on_result(self, res: IngestResult) -> None:
        """Keep the rows in this sector's window; dead letters are the gateway's job."""
        if len(res.meas):
            res.meas = res.meas[self.router.mask(res.meas, self.sector)]
        await self.accept(res)

    async def step(self, now: float) -> StepOutput:
        """Tracker step; rename tracks (namespace / handover); publish the owned ones;
        all of them feed this sector's alert engine (its store writes only its own)."""
        assert self.state is not None
        out = self.core.step(now)
        owned: list[dict[str, Any]] = []
        for u in out.tracks:
            mine = self.owns(u)
            u["track_id"] = self.state.global_id(u, owned=mine)
            merged = u.get("merged_into")
            if merged is not None:
                u["merged_into"] = self.state.ids.get(merged, f"{self.sector}-{merged}")
            if mine:
                owned.append(u)
        if not self.replaying:
            for u in owned:
                await self.sink.publish(track_topic(u), _enc.encode(u), 0)
            self._collect_handovers(owned)
        for u in out.tracks:
            if u["status"] == "lost":
                self.state.forget(u)
        inputs: list[Input] = [msgspec.convert(u, TrackUpdate) for u in out.tracks]
        inputs.append(Tick(t=out.t))
        out.alert_inputs = inputs
        await self.submit(self.core.tick(now))
        await self.submit(inputs)
        self.last_step = out
        return out

    def _collect_handovers(self, owned: list[dict[str, Any]]) -> None:
        live = [u for u in owned if u["status"] == "confirmed"]
        if not live:
            return
        xs = np.array([u["x"] for u in live])
        ys = np.array([u["y"] for u in live])
        chain, _ = self.site.border.project(xs, ys)
        prev, nxt = self.router.neighbours(self.sector)
        sec = self.site.sectors[self.index]
        m = self.router.margin_m
        for u, c in zip(live, chain, strict=True):
            target = (
                nxt
                if nxt is not None and c >= sec.to_m - m
                else prev
                if prev is not None and c < sec.from_m + m
                else None
            )
            if target is None:
                continue
            gid = u["track_id"]
            if u["t"] - self._sent_handover.get(gid, -math.inf) < self.handover_every_s:
                continue
            self._sent_handover[gid] = u["t"]
            fields = {"k": "h", "t": repr(float(u["t"])), "gid": gid, "src": self.sector}
            for f in ("x", "y", "vx", "vy"):
                fields[f] = repr(float(u[f]))
            self.handovers.append((target, fields))
        if len(self._sent_handover) > 4096:
            self._sent_handover.clear()


class SectorDurable(Durable):
    """The state beside the pipeline that a sector snapshot must carry (every attribute
    here is snapshotted by :mod:`service.snapshot` as part of the ``durable`` root):
    ``ids`` local track id -> published id, ``cands`` handover candidates
    ``gid -> (t, x, y, vx, vy)``, ``marks`` the gateways' latest times, ``held`` the
    gateway records the watermark has not passed yet."""

    def __init__(self, pipe: SectorPipeline) -> None:
        super().__init__(pipe, None)
        self.ids: dict[str, str] = {}
        self.cands: dict[str, tuple[float, float, float, float, float]] = {}
        self.marks: dict[str, float] = {}  # gateway -> latest t it wrote
        self.status_t: dict[str, float] = {}  # device -> t of the newest status applied
        self.stale_statuses = 0
        #: gateway records not applied yet: a heap of (t, arrival number, fields)
        self.held: list[tuple[float, int, dict[bytes, bytes]]] = []
        self.seq = 0
        pipe.state = self

    def global_id(self, u: dict[str, Any], *, owned: bool) -> str:
        """The published id of update ``u`` (see the module doc); fixed once owned."""
        local = str(u["track_id"])
        gid = self.ids.get(local)
        if gid is not None:
            return gid
        pipe = self.pipe
        assert isinstance(pipe, SectorPipeline)
        own = f"{pipe.sector}-{local}"
        if not owned:
            return own
        gid = self._adopt(u, pipe.gate_m) or own
        self.ids[local] = gid
        return gid

    def _adopt(self, u: dict[str, Any], gate_m: float) -> str | None:
        t, x, y = float(u["t"]), float(u["x"]), float(u["y"])
        taken = set(self.ids.values())
        best: tuple[float, str] | None = None
        for gid, (ct, cx, cy, cvx, cvy) in self.cands.items():
            dt = t - ct
            if gid in taken or not -CANDIDATE_EARLY_S <= dt <= CANDIDATE_TTL_S:
                continue
            d = math.hypot(cx + cvx * dt - x, cy + cvy * dt - y)
            if d <= gate_m and (best is None or d < best[0]):
                best = (d, gid)
        if best is None:
            return None
        del self.cands[best[1]]
        return best[1]

    def forget(self, u: dict[str, Any]) -> None:
        """A lost track's id mapping is dropped (its id is never reused)."""
        gid = u["track_id"]
        for local in [k for k, v in self.ids.items() if v == gid]:
            del self.ids[local]

    async def apply_record(self, f: dict[bytes, bytes]) -> None:
        """Take one stream record (see the module doc): handover candidates at once,
        gateway records into the time-ordered hold, then apply what the watermark passed."""
        kind = f[b"k"]
        if kind == b"h":
            vals = tuple(float(f[k]) for k in (b"t", b"x", b"y", b"vx", b"vy"))
            self.cands[f[b"gid"].decode()] = vals  # type: ignore[assignment]
            return
        t = float(f[b"t"])
        g = f.get(b"g")
        if kind == b"x":  # a gateway's goodbye (clean stop): it no longer holds the clock
            self.marks.pop(f[b"g"].decode(), None)
        else:
            if g is not None:
                self._mark(g.decode(), t)
            heapq.heappush(self.held, (t, self.seq, f))
            self.seq += 1
        await self._release()

    async def _release(self) -> None:
        """Apply the held records with ``t <= watermark``, in ``(t, arrival)`` order."""
        w = self._watermark()
        while self.held and self.held[0][0] <= w:
            t, _, f = heapq.heappop(self.held)
            await self._apply(t, f)

    async def _apply(self, t: float, f: dict[bytes, bytes]) -> None:
        """Apply one gateway record at ``now = max(now, t)``: a step first when due."""
        self.now = max(self.now, t)
        pipe = self.pipe
        if pipe.core.due(self.now):
            await pipe.step(self.now)
            self._expire()
        kind = f[b"k"]
        if kind == b"m":
            topic = f[b"topic"].decode("utf-8", "surrogateescape")
            payload = f.get(b"p", b"")
            if topic.endswith("/status") and await self._stale_status(topic, payload):
                return
            await self.apply(Record("m", self.now, topic, payload))
        elif kind == b"b":
            devs = f.get(b"dev", b"").decode()
            inputs: list[Input] = []
            for dev in filter(None, devs.split(",")):
                if dev in pipe.site.sensor_index:
                    seen = pipe.core.ingest.health.seen(dev, self.now)
                    inputs += [health_input(h) for h in seen]
            await pipe.submit(inputs)

    async def _stale_status(self, topic: str, payload: bytes) -> bool:
        """A device status older (payload ``t``) than one already applied (a gateway past
        the grace delivers late): the newest status must win, so it is counted and not
        applied; its arrival still shows the device alive at ``now``, as any message does
        (contract), unless it says ``offline`` (a last will)."""
        t = message_time(payload, -math.inf)
        if not math.isfinite(t):
            return False
        device = topic.split("/")[-2]
        if t >= self.status_t.get(device, -math.inf):
            self.status_t[device] = t
            return False
        self.stale_statuses += 1
        pipe = self.pipe
        if device in pipe.site.sensor_index and _status_state(payload) != "offline":
            health = pipe.core.ingest.health
            await pipe.submit([health_input(h) for h in health.alive(device, self.now)])
        return True

    def _mark(self, gateway: str, t: float) -> None:
        marks = self.marks
        marks[gateway] = max(marks.get(gateway, -math.inf), t)
        top = max(marks.values())
        for k in [k for k, v in marks.items() if v < top - 4 * GRACE_S]:
            del marks[k]  # long gone: forget it

    def _watermark(self) -> float:
        """``min`` of the gateways' latest times within ``GRACE_S`` of the newest (every
        gateway appends in its own time order, so no record older than this can still
        come from them); ``inf`` when no gateway is known (all said goodbye)."""
        if not self.marks:
            return math.inf
        top = max(self.marks.values())
        return min(v for v in self.marks.values() if v >= top - GRACE_S)

    def _expire(self) -> None:
        old = [g for g, c in self.cands.items() if self.now - c[0] > 2 * CANDIDATE_TTL_S]
        for g in old:
            del self.cands[g]
