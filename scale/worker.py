"""Fusion workers: own sectors by lease, consume their streams, snapshot, take over.

One worker process runs one asyncio task per owned sector (:meth:`Worker.run_sector`):

1. **take over**: load the sector snapshot (``limes:{S}:snap``: the pipeline state and
   the stream id it includes, :mod:`service.snapshot`), replay the stream entries after
   it up to the group's last-delivered id (``XRANGE``; track updates are not published
   again, alerts are re-decided and the fenced store applies and publishes only writes
   it does not hold yet), then ``XAUTOCLAIM`` what the previous owner read but never
   acknowledged and acknowledge it (those entries were just replayed);
2. **live**: ``XREADGROUP`` (``>``) on the sector stream, apply each entry in order
   (:meth:`scale.sector.SectorDurable.apply_record`), ``XACK`` (fenced), append the
   step's handover candidates to the neighbours' streams;
3. every ``snapshot_s``: snapshot + ``XTRIM MINID`` in one fenced script.

Sector ownership (leases, fair share, hand-back) is :class:`scale.membership.SectorOwner`'s
(shared with the alert publishers). A worker whose renewal did not succeed for
``0.8 lease_ms`` stops the sector before the lease can expire and pass to another owner;
a stale write is refused by the fencing token anyway.

Alert, tasking and CCP messages are not published by the worker: the fenced alert write
stages them in the sector outbox ``limes:{S}:out`` in the same script, and the publishers
(:mod:`scale.publisher`) send them. Track updates (QoS 0) are published by the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from drivers import MqttSettings, MqttSource
from fusion.config import TrackerConfig
from geo import Site
from scale.fencing import Fenced, FencedError, FencedStore, Lease
from scale.gateway import ensure_groups, redis_client
from scale.keys import GROUP, WORKERS, snapshot_key, stream_key
from scale.membership import SectorOwner
from scale.routing import Router
from scale.sector import SectorDurable, SectorPipeline
from service import snapshot
from service.live import MqttSink

log = logging.getLogger("limes.scale.worker")

#: records applied between two yields to the event loop (lease renewals must not starve)
YIELD_EVERY = 20
MAX_LATENCY_SAMPLES = 500_000


@dataclass(frozen=True)
class WorkerSettings:
    """Settings of one worker process."""

    mqtt: MqttSettings
    redis_url: str
    worker_id: str
    cluster: bool = False
    margin_m: float = 1500.0
    step_s: float = 0.5
    lease_ms: int = 10_000
    snapshot_s: float = 30.0
    started: float = 0.0
    settle_s: float = 1.0
    read_count: int = 200
    tracker: TrackerConfig | None = None


@dataclass
class WorkerCounters:
    """What a worker did (logged at the end, and by the benchmark)."""

    records: int = 0
    released: int = 0
    replayed: int = 0
    claimed: int = 0
    snapshots: int = 0
    fenced: int = 0
    snapshot_bytes: int = 0  # largest snapshot written
    latency_s: list[float] = field(default_factory=list)


class Worker(SectorOwner):
    """One fusion worker (see the module doc)."""

    role = "worker"

    def __init__(self, site: Site, settings: WorkerSettings) -> None:
        router = Router(site, settings.margin_m)
        super().__init__(router.ids, settings.worker_id, settings.lease_ms, WORKERS)
        self.settle_s = settings.settle_s
        self.site = site
        self.s = settings
        self.router = router
        self.sink = MqttSink()
        self.counters = WorkerCounters()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then snapshot and release every owned sector."""
        self.stop = stop
        self.client = redis_client(self.s.redis_url, cluster=self.s.cluster)
        self.lease = Lease(self.client, self.s.worker_id, self.s.lease_ms)
        await ensure_groups(self.client, self.router.ids)
        mqtt = dataclasses.replace(
            self.s.mqtt,
            subscriptions=(f"limes/v1/scale/{self.s.worker_id}/cmd",),
        )

        async def ignore(topic: str, payload: bytes) -> None:
            del topic, payload

        try:
            async with MqttSource(mqtt, ignore, name="worker") as driver:
                self.sink.publisher = driver.publisher
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(driver.wait_connected(), 10)
                log.info("worker %s connected", self.s.worker_id)
                await self.membership()
        finally:
            await self.release_all()
            await self.client.aclose()
            log.info("worker stopped: stats %s", json.dumps(self.stats()))

    # -- one sector ----------------------------------------------------------------------------

    async def run_sector(self, sector: str, token: int) -> None:
        """Fuse one owned sector until it is left (see the module doc)."""
        try:
            await self._run_sector(sector, token)
        except FencedError:
            self.counters.fenced += 1
            log.warning("worker %s: %s fenced off", self.s.worker_id, sector)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker %s: sector %s failed", self.s.worker_id, sector)
            raise

    async def _run_sector(self, sector: str, token: int) -> None:
        c = self.client
        fenced = Fenced(c, sector, token)
        pipe = SectorPipeline(
            self.site, self.sink, sector, self.router, started=self.s.started,
            store=FencedStore(c, fenced), tracker_config=self.s.tracker, step_s=self.s.step_s,
        )  # fmt: skip
        d = SectorDurable(pipe)
        stream = stream_key(sector)
        position = "0-0"
        data: Any = await c.get(snapshot_key(sector))
        if data is not None:
            try:
                position, d.now = snapshot.restore(pipe, bytes(data), d)
            except snapshot.SnapshotError as exc:
                log.error("%s: snapshot not usable (%s): replaying the stream", sector, exc)
        # replay what the previous owner applied after its snapshot (and what it read)
        groups: Any = await c.xinfo_groups(stream)
        last = next((_s(g["last-delivered-id"]) for g in groups if _s(g["name"]) == GROUP), "0-0")
        pipe.replaying = True
        replayed = 0
        start = "-" if position == "0-0" else f"({position}"
        while _id_lt(position, last):
            chunk: Any = await c.xrange(stream, min=start, max=last, count=1000)
            if not chunk:
                break
            for rid, f in chunk:
                await d.apply_record(f)
                position = _s(rid)
                replayed += 1
                if replayed % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            start = f"({position}"
        pipe.replaying = False
        pipe.handovers.clear()
        self.counters.replayed += replayed
        # entries the previous owner read but never acknowledged: claim and acknowledge
        cursor = "0-0"
        while True:
            res: Any = await c.xautoclaim(stream, GROUP, self.s.worker_id, 0, cursor, count=1000)
            cursor, claimed = _s(res[0]), [_s(rid) for rid, _f in res[1]]
            self.counters.claimed += len(claimed)
            await fenced.ack(claimed)
            if cursor == "0-0":
                break
        log.info("%s: restored (snapshot %s), %d entries replayed, position %s",
                 sector, data is not None, replayed, position)  # fmt: skip
        next_snapshot = time.monotonic() + self.s.snapshot_s
        while not self.leaving(sector):
            resp: Any = await c.xreadgroup(
                GROUP, self.s.worker_id, {stream: ">"}, count=self.s.read_count, block=100
            )
            ids: list[str] = []
            for _name, entries in resp or []:
                for rid, f in entries:
                    await d.apply_record(f)
                    position = _s(rid)
                    ids.append(position)
                    self._latency(position)
                    if len(ids) % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
            if ids:
                self.counters.records += len(ids)
                await fenced.ack(ids)
                await self._handovers(pipe)
            if time.monotonic() >= next_snapshot:
                await self._snapshot(d, fenced, position)
                next_snapshot = time.monotonic() + self.s.snapshot_s
        # leaving: snapshot (if still ours) so the next owner replays little, then release
        o = self.owned.get(sector)
        if o is not None and o.stopping and self.holds(sector):
            await self._snapshot(d, fenced, position)
            assert self.lease is not None
            await self.lease.release(sector, token)
            self.counters.released += 1
            log.info("worker %s released %s", self.s.worker_id, sector)
        self.owned.pop(sector, None)

    def _latency(self, rid: str) -> None:
        """Entry age at apply: wall now - the entry id's time (Redis clock, same host)."""
        lat = self.counters.latency_s
        if len(lat) < MAX_LATENCY_SAMPLES:
            lat.append(time.time() - int(rid.partition("-")[0]) / 1000.0)

    def stats(self) -> dict[str, Any]:
        """Counters and latency percentiles (ms) of the entries applied live."""
        c = self.counters
        lat = sorted(c.latency_s)

        def pct(q: float) -> float | None:
            return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None

        return {
            "worker": self.s.worker_id, "records": c.records, "acquired": self.acquired,
            "released": c.released, "replayed": c.replayed, "claimed": c.claimed,
            "snapshots": c.snapshots, "snapshot_bytes": c.snapshot_bytes,
            "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99)},
        }  # fmt: skip

    async def _snapshot(self, d: SectorDurable, fenced: Fenced, position: str) -> None:
        if position == "0-0":
            return
        data = snapshot.capture(
            d.pipe, d, position=position, started=d.pipe.core.ingest.health.started, now=d.now
        )
        await fenced.snapshot(data, position)
        self.counters.snapshots += 1
        self.counters.snapshot_bytes = max(self.counters.snapshot_bytes, len(data))

    async def _handovers(self, pipe: SectorPipeline) -> None:
        if not pipe.handovers:
            return
        async with self.client.pipeline(transaction=False) as p:
            for target, fields in pipe.handovers:
                p.xadd(stream_key(target), fields)
            await p.execute()
        pipe.handovers.clear()


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _id_lt(a: str, b: str) -> bool:
    """Stream id order: ``a < b``."""
    am, _, asq = a.partition("-")
    bm, _, bsq = b.partition("-")
    return (int(am), int(asq or 0)) < (int(bm), int(bsq or 0))
