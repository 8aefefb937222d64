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
from scale.gateway import Fields, GatewayCore
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
    gateways: int = 1,
    lag_s: float = 0.0,
) -> LocalRun:
    """Feed ``(topic, payload)`` messages (arrival order, message clock) through the
    gateways and every sector pipeline; return the published messages and the shared store.

    With ``gateways > 1`` the messages are dealt round-robin (as a shared subscription
    may), every gateway announces itself with a beacon at ``started``, and the last
    gateway's records reach the streams ``lag_s`` seconds of message clock after the
    others' (a busy gateway; keep it under the watermark's grace, ``GRACE_S``)."""
    sink = MemorySink()
    store = MemoryAlertStore()
    router = Router(site, margin_m)
    gws = [
        GatewayCore(site, started=started, margin_m=margin_m, beacon_s=step_s, name=f"gw{i}")
        for i in range(gateways)
    ]
    gw = gws[0]
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
    clocks = [now] * gateways
    late: deque[tuple[float, str, Fields]] = deque()  # (due at, sector, fields)
    if gateways > 1:
        for s in router.ids:
            for g in gws:
                queues[s].append(_b({"k": "b", "t": repr(started), "g": g.name, "dev": ""}))

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

    for n, (topic, payload) in enumerate(messages):
        i = n % gateways
        gw = gws[i]
        now = clocks[i] = message_time(payload, clocks[i])
        t0 = time.perf_counter()
        r = gw.route(topic, payload, now)
        if r.key is not None:
            if r.key.encode() in seen:
                r.appends = []
            seen.add(r.key.encode())
        for s, fields in r.appends + gw.beacon(now):
            if i == gateways - 1 and lag_s > 0:
                late.append((now + lag_s, s, fields))
            else:
                queues[s].append(_b(fields))
        run.gateway_s += time.perf_counter() - t0
        while late and late[0][0] <= max(clocks):
            _, s, fields = late.popleft()
            queues[s].append(_b(fields))
        await drain()
    while late:
        _, s, fields = late.popleft()
        queues[s].append(_b(fields))
    end = max(clocks)
    for s in router.ids:  # flush: a final beacon past the hold
        for g in gws:
            queues[s].append(_b({"k": "b", "t": repr(end + 2.0), "g": g.name, "dev": ""}))
    await drain()
    return run
