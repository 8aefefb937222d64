"""Scale-out benchmark: events/s and latency of the fusion workers vs their number.

Set-up per point (``--workers 1,2,4``): a fresh 3-master Redis Cluster and Mosquitto
(:mod:`benchmarks.servers`), ``N`` worker processes (``limes worker``). The scenario
(``limes sim`` preset, seeded) is turned into sector-stream records exactly as the
gateways do (:class:`scale.gateway.GatewayCore`, message clock), then appended to the
streams by this process in two phases, each with fresh workers and empty streams:

* **throughput**: every record at once (a backlog); events/s = event rows of the
  scenario / (last acknowledgement - first append);
* **latency**: records paced at ``--speed`` x the scenario's arrival clock; latency =
  wall time at apply - the entry's id time (Redis clock, same host), per entry, in the
  workers (p50/p95/p99 over all entries).

Also measured in process, without servers (:func:`scale.local.run_local`): the fusion
CPU time of each sector over the scenario (the per-sector cost of docs/scaling.md).

On a small machine every worker, both servers and this feeder share the same cores: the
figures say how the design behaves there, not what N machines would give (see the
printed ``cores``).

    python -m benchmarks.scale_bench --workers 1,2,4 --json bench-out/scale.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.servers import MosquittoServer, RedisCluster, RedisServer
from geo import default_site
from scale.gateway import GatewayCore
from scale.keys import GROUP, lease_key, stream_key
from scale.local import run_local
from service.journal import Durable, message_time
from service.runtime import MemorySink, Pipeline
from sim_sensors import generate, preset

ROOT = Path(__file__).parent.parent
_STATS = re.compile(r"stats (\{)")


def _records(site: Any, messages: list[Any], t0: float, margin_m: float) -> tuple[
    list[tuple[float, str, dict[str, Any]]], int
]:  # fmt: skip
    """``(arrival, sector, fields)`` as the gateways would append them, and event rows."""
    gw = GatewayCore(site, started=t0, margin_m=margin_m, beacon_s=0.5)
    out: list[tuple[float, str, dict[str, Any]]] = []
    now = -float("inf")
    for m in messages:
        now = message_time(m.payload, now)
        r = gw.route(m.topic, m.payload, now)
        out += [(m.arrival, s, f) for s, f in r.appends + gw.beacon(now)]
    return out, gw.counts["rows"]


async def _single(site: Any, messages: list[Any], t0: float) -> float:
    """Seconds (perf_counter, as :mod:`scale.local`) of the single-process pipeline
    (``limes run``'s path, message clock) over the same messages: the baseline of the
    partitioning overhead."""
    pipe = Pipeline(site, MemorySink(), started=t0)
    d = Durable(pipe, None)
    c0 = time.perf_counter()
    for m in messages:
        now = message_time(m.payload, d.now)
        if pipe.core.due(now):
            await d.step(now)
        await d.message(m.topic, m.payload, now)
    return time.perf_counter() - c0


def lease_owners(
    cluster: RedisCluster | RedisServer, sectors: list[str], key: Callable[[str], str] = lease_key
) -> dict[str, str]:
    """``sector -> owner`` for the sectors whose lease (``owner:token``, key ``key(sector)``:
    the workers' by default, :func:`scale.keys.pub_lease_key` for the publishers') is
    held now."""
    with cluster.client(decode_responses=True) as r:
        out = {}
        for s in sectors:
            v = r.get(key(s))
            if v is not None:
                out[s] = str(v).rsplit(":", 1)[0]
        return out


def _drained(cluster: RedisCluster, sectors: list[str]) -> bool:
    with cluster.client(decode_responses=True) as r:
        for s in sectors:
            for g in r.xinfo_groups(stream_key(s)):
                if g["name"] == GROUP and (g["pending"] or g.get("lag")):
                    return False
    return True


def _phase(
    n: int,
    work: Path,
    cluster: RedisCluster,
    broker: MosquittoServer,
    records: list[tuple[float, str, dict[str, Any]]],
    sectors: list[str],
    t0: float,
    speed: float | None,
    snapshot_s: float,
) -> dict[str, Any]:
    """One phase with ``n`` fresh workers; ``speed`` None: backlog, else paced."""
    for node in cluster.nodes:
        with node.client() as c:
            c.flushall()
    procs = []
    for i in range(n):
        log = (work / f"w{n}-{i}-{'paced' if speed else 'backlog'}.log").open("wb")
        cmd = [sys.executable, "-m", "service.cli", "worker", "--mqtt", broker.url,
               "--redis", cluster.url, "--redis-cluster", "--worker-id", f"b{i}",
               "--started", repr(t0), "--lease-ms", "10000",
               "--snapshot-s", repr(snapshot_s)]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
    try:
        deadline = time.monotonic() + 300
        while True:
            own = lease_owners(cluster, sectors)
            per = [list(own.values()).count(w) for w in set(own.values())]
            share = -(-len(sectors) // n)
            if len(own) == len(sectors) and len(per) == min(n, len(sectors)) and max(per) <= share:
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"workers did not take the sectors (logs in {work})")
            time.sleep(0.2)
        with cluster.client() as r:
            start = time.monotonic()
            a0 = records[0][0]
            i = 0
            while i < len(records):
                if speed:
                    due = start + (records[i][0] - a0) / speed
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(min(delay, 0.05))
                        continue
                j = i + 1
                if speed:
                    while j < len(records) and records[j][0] <= records[i][0] + 0.05 * speed:
                        j += 1
                else:
                    j = min(len(records), i + 500)
                p = r.pipeline(transaction=False)
                for _, s, f in records[i:j]:
                    p.xadd(stream_key(s), f)
                p.execute()
                i = j
            fed = time.monotonic() - start
        while not _drained(cluster, sectors):
            time.sleep(0.05)
        done = time.monotonic() - start
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
    stats = []
    for path in sorted(work.glob(f"w{n}-*-{'paced' if speed else 'backlog'}.log")):
        text = path.read_text(errors="replace")
        m = _STATS.search(text)
        if m:
            stats.append(json.JSONDecoder().raw_decode(text, m.start(1))[0])
    return {"fed_s": round(fed, 2), "drained_s": round(done, 2), "workers": stats}


def _pct_of(stats: list[dict[str, Any]], q: str) -> float | None:
    vals = [s["latency_ms"][q] for s in stats if s["latency_ms"][q] is not None]
    return max(vals) if vals else None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print figures; write JSON."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--workers", default="1,2,4", help="worker counts (comma separated)")
    ap.add_argument("--preset", default="crossing-10min")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--duration", type=float, default=300.0, help="scenario seconds")
    ap.add_argument("--speed", type=float, default=10.0, help="paced phase: x arrival clock")
    ap.add_argument("--margin-m", type=float, default=1500.0)
    ap.add_argument("--snapshot-s", type=float, default=30.0, help="workers' snapshot period")
    ap.add_argument("--json", type=Path, default=Path("bench-out/scale.json"))
    args = ap.parse_args(argv)
    site = default_site()
    sc = generate(site, preset(args.preset, seed=args.seed, duration_s=args.duration))
    t0 = sc.messages[0].arrival
    sectors = [s.id for s in site.sectors]
    records, rows = _records(site, sc.messages, t0, args.margin_m)
    span = sc.messages[-1].arrival - t0
    print(f"scenario {args.preset} seed {args.seed}: {len(sc.messages)} messages, {rows} event "
          f"rows over {span:.0f} s ({rows / span:.1f} events/s), {len(records)} stream records; "
          f"{os.cpu_count()} cores")  # fmt: skip
    local = asyncio.run(run_local(site, [(m.topic, m.payload) for m in sc.messages], started=t0))
    per_sector = {
        s: {"records": local.records[s], "cpu_s": round(local.seconds[s], 3),
            "cpu_per_scenario_s": round(local.seconds[s] / span, 5)}
        for s in sectors
    }  # fmt: skip
    single = asyncio.run(_single(site, sc.messages, t0))
    total = sum(local.seconds.values()) + local.gateway_s
    print(f"single process: {single:.2f} CPU s; scaled path in process: {total:.2f} s "
          f"(sectors {sum(local.seconds.values()):.2f} + gateway {local.gateway_s:.2f}), "
          f"x{total / single:.2f}")  # fmt: skip
    print("per-sector fusion CPU (in process): " + ", ".join(
        f"{s} {v['cpu_s']:.2f} s" for s, v in per_sector.items()
    ) + f"; gateway {local.gateway_s:.2f} s")  # fmt: skip
    out: dict[str, Any] = {
        "scenario": {"preset": args.preset, "seed": args.seed, "messages": len(sc.messages),
                     "event_rows": rows, "span_s": round(span, 1),
                     "records": len(records)},
        "cores": os.cpu_count(),
        "snapshot_s": args.snapshot_s,
        "per_sector": per_sector,
        "gateway_cpu_s": round(local.gateway_s, 3),
        "single_process_cpu_s": round(single, 3),
        "points": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="limes-scale-bench-") as tmp:
        work = Path(tmp)
        cluster = RedisCluster(work / "cluster", 3)
        broker = MosquittoServer(work / "mqtt")
        cluster.start()
        broker.start()
        try:
            for n in [int(x) for x in args.workers.split(",")]:
                snap = args.snapshot_s
                backlog = _phase(n, work, cluster, broker, records, sectors, t0, None, snap)
                paced = _phase(n, work, cluster, broker, records, sectors, t0, args.speed, snap)
                point = {
                    "workers": n,
                    "events_per_s": round(rows / backlog["drained_s"], 1),
                    "records_per_s": round(len(records) / backlog["drained_s"], 1),
                    "backlog": backlog,
                    "paced_speed": args.speed,
                    "paced_latency_ms": {q: _pct_of(paced["workers"], q)
                                         for q in ("p50", "p95", "p99")},
                    "paced": paced,
                }  # fmt: skip
                out["points"].append(point)
                lat = point["paced_latency_ms"]
                print(f"workers {n}: {point['events_per_s']:.0f} events/s "
                      f"({point['records_per_s']:.0f} records/s, backlog drained in "
                      f"{backlog['drained_s']:.1f} s); paced {args.speed:g}x "
                      f"({rows / span * args.speed:.0f} events/s offered): latency p50 "
                      f"{lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms")  # fmt: skip
        finally:
            broker.stop()
            cluster.stop()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
