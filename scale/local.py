"""The scaled data path in one process, without servers: one :class:`GatewayCore` and one
:class:`SectorPipeline` per sector, records handed over in memory in stream order.

Used by the tests (the scaled design against the single-process service on the same
input, with no Redis/MQTT timing in the way) and by ``benchmarks/scale_bench.py``
(the fusion cost of each sector, measured apart).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from alerts import AlertStore, MemoryAlertStore
from geo import Site
from scale.gateway import GatewayCore
from scale.routing import Router
from scale.sector import SectorDurable, SectorPipeline
from service.journal import message_time
from service.runtime import MemorySink


def _b(fields: dict[str, Any]) -> dict[bytes, bytes]:
    return {k.encode(): (v if isinstance(v, bytes) else str(v).encode()) for k, v in fields.items()}


@dataclass
class LocalRun:
    """Outcome of :func:`run_local`."""

    sink: MemorySink
    store: AlertStore
    sectors: dict[str, SectorDurable]
    records: dict[str, int] = field(default_factory=dict)  # records applied per sector
    seconds: dict[str, float] = field(default_factory=dict)  # apply time per sector
    gateway_s: float = 0.0


async def run_local(
    site: Site,
    messages: Iterable[tuple[str, bytes]],
    *,
    started: float,
    margin_m: float = 1500.0,
    step_s: float = 0.5,
) -> LocalRun:
    """Feed ``(topic, payload)`` messages (arrival order, message clock) through a gateway
    and every sector pipeline; return the published messages and the shared store."""
    sink = MemorySink()
    store = MemoryAlertStore()
    router = Router(site, margin_m)
    gw = GatewayCore(site, started=started, margin_m=margin_m, beacon_s=step_s)
    run = LocalRun(sink, store, {})
    queues: dict[str, deque[dict[bytes, bytes]]] = {}
    for s in router.ids:
        pipe = SectorPipeline(site, sink, s, router, started=started, store=store, step_s=step_s)
        run.sectors[s] = SectorDurable(pipe)
        queues[s] = deque()
        run.records[s] = 0
        run.seconds[s] = 0.0
    seen: set[bytes] = set()
    now = -float("inf")

    async def drain() -> None:
        for s, q in queues.items():
            d = run.sectors[s]
            t0 = time.perf_counter()
            while q:
                await d.apply_record(q.popleft())
                run.records[s] += 1
            run.seconds[s] += time.perf_counter() - t0
            pipe = d.pipe
            assert isinstance(pipe, SectorPipeline)
            for target, fields in pipe.handovers:
                queues[target].append(_b(fields))
            pipe.handovers.clear()

    for topic, payload in messages:
        now = message_time(payload, now)
        t0 = time.perf_counter()
        r = gw.route(topic, payload, now)
        if r.key is not None:
            if r.key.encode() in seen:
                r.appends = []
            seen.add(r.key.encode())
        for s, fields in r.appends + gw.beacon(now):
            queues[s].append(_b(fields))
        run.gateway_s += time.perf_counter() - t0
        await drain()
    for s in router.ids:  # flush: a final beacon past the hold
        queues[s].append(_b({"k": "b", "t": repr(now + 2.0), "g": gw.name, "dev": ""}))
    await drain()
    return run
