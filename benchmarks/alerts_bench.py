"""Alert latency: track update in -> alert published, through engine + store + publisher.

For each alert published, latency = (time the publisher is called with it) - (time the
track update that raised it was submitted to :class:`alerts.AlertService`). It covers
the rules, the lifecycle, the store write (memory, or Redis over loopback) and the
publisher call; the publisher here is an in-process callable (no broker), so MQTT
network time is not included. Also reported: the per-update cost of every track update
(most raise nothing).

Scenario (deterministic): ``--tracks`` people cross the border at separate places
(1 km apart, so nothing groups), each reported ``--updates`` times at 1 s, from 300 m on
the Serbian side to 20 m on the Romanian side: an ``approach`` alert early (with a CCP
request) and a ``crossing`` alert at the end. The rate limit is lifted for the run.

    python -m benchmarks.alerts_bench [--redis-url redis://127.0.0.1:6379/0] [--out f.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

import geo
from alerts import AlertEngine, AlertService, AlertStore, MemoryAlertStore, RedisAlertStore
from alerts.model import TrackUpdate
from alerts.scenario import track_at

T0 = 1_764_000_000.0


def scenario(site: geo.Site, tracks: int, updates: int) -> list[TrackUpdate]:
    """Interleaved updates of ``tracks`` crossings (see the module doc)."""
    out: list[TrackUpdate] = []
    length = site.border.length
    for i in range(tracks):
        chain = 1000.0 + (i * 1000.0) % (length - 2000.0)
        for k in range(updates):
            sd = -300.0 + 320.0 * k / max(1, updates - 1)
            out.append(track_at(site, f"B{i:04d}", T0 + k, chain, sd, v_home=1.5))
    out.sort(key=lambda u: (u.t, u.track_id))
    return out


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    ys = sorted(xs)
    return ys[min(len(ys) - 1, round(q / 100.0 * (len(ys) - 1)))]


def _summary(xs: list[float]) -> dict[str, float]:
    ms = [x * 1e3 for x in xs]
    return {
        "n": float(len(ms)),
        "p50_ms": _pct(ms, 50),
        "p99_ms": _pct(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
    }


async def run_once(
    site: geo.Site, store: AlertStore, updates: list[TrackUpdate]
) -> dict[str, dict[str, float]]:
    """Feed ``updates`` through a service on ``store``; latency figures in ms."""
    settings = msgspec.structs.replace(site.cfg.alerts, rate_limit=10**9)
    submitted = 0.0
    alert_lat: list[float] = []

    async def publish(topic: str, payload: bytes, qos: int) -> None:
        if topic.startswith("limes/v1/alerts/"):
            alert_lat.append(time.perf_counter() - submitted)

    service = AlertService(AlertEngine(site, settings), store, publish)
    per_update: list[float] = []
    for u in updates:
        submitted = time.perf_counter()
        await service.submit(u)
        per_update.append(time.perf_counter() - submitted)
    return {"alert_published": _summary(alert_lat), "track_update": _summary(per_update)}


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    site = geo.default_site()
    updates = scenario(site, args.tracks, args.updates)
    result: dict[str, Any] = {
        "tracks": args.tracks,
        "updates_per_track": args.updates,
        "track_updates": len(updates),
    }
    mem = MemoryAlertStore()
    result["memory"] = await run_once(site, mem, updates)
    if args.redis_url:
        store = RedisAlertStore.from_url(args.redis_url)
        try:
            result["redis"] = await run_once(site, store, updates)
        finally:
            await store.aclose()
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the figures, write JSON to ``--out``; returns the result."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--tracks", type=int, default=200)
    p.add_argument("--updates", type=int, default=40)
    p.add_argument("--redis-url", default=None, help="also run on this (empty) Redis")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    result = asyncio.run(_main(args))
    for store in ("memory", "redis"):
        if store not in result:
            continue
        for name, fig in result[store].items():
            print(
                f"{store:6s} {name:16s} n={int(fig['n']):6d} p50={fig['p50_ms']:.3f} ms "
                f"p99={fig['p99_ms']:.3f} ms max={fig['max_ms']:.3f} ms"
            )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
