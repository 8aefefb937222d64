"""Ingest benchmark: decode+validate+dedup+normalize events/s, and MQTT end-to-end msgs/s.

Usage: ``python -m benchmarks.ingest_bench [--out FILE.json] [--seconds S] [--no-mqtt]
[--window W]``.

Figures are quoted against a baseline measured in the same run on the same bytes:
``json.loads`` (stdlib) of each payload, which only parses and builds dicts; the rounds
of the two alternate (best round of each), so load from other processes hits both. One
core, one process. The MQTT part starts its own Mosquitto (``mosquitto`` on PATH or in
sbin); the device publishes at QoS 0, or at QoS 1 with up to ``--window`` messages in
flight (waiting for each PUBACK before the next would measure the round trip, not the
throughput). The JSON records the machine, the versions and the command.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

import geo
from benchmarks.servers import ServerNotInstalledError, find_binary, free_port
from drivers import Ingest, IngestResult, MqttDriver, MqttSettings

NOW = 1_764_000_000.0


def _fibre_batches(n_batches: int, size: int, rng: random.Random) -> list[bytes]:
    classes = ["walking", "running", "digging", "vehicle"]
    out = []
    for seq in range(n_batches):
        evs = [
            {
                "t": NOW - rng.random(),
                "chainage_m": rng.random() * 30000.0,
                "class": rng.choice(classes),
                "confidence": rng.random(),
                "energy": rng.random() * 100.0,
            }
            for _ in range(size)
        ]
        out.append(
            json.dumps({"v": 1, "device": "FO-01", "seq": seq, "sent": NOW, "events": evs}).encode()
        )
    return out


def _thermal_batches(n_batches: int, size: int, rng: random.Random, cam: str) -> list[bytes]:
    out = []
    for seq in range(n_batches):
        evs = [
            {
                "t": NOW - rng.random(),
                "bearing_deg": rng.random() * 359.0,
                "range_m": 100 + rng.random() * 2000,
                "class": "person",
                "confidence": rng.random(),
            }
            for _ in range(size)
        ]
        out.append(json.dumps({"device": cam, "seq": seq, "events": evs}).encode())
    return out


def _time_pair(fa: Any, fb: Any, seconds: float, rounds: int = 5) -> tuple[float, float]:
    """Best seconds per call of ``fa()`` and ``fb()``, rounds alternating (each round at
    least ``seconds / rounds``)."""
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for k, fn in enumerate((fa, fb)):
            n, t0 = 0, time.perf_counter()
            while True:
                fn()
                n += 1
                el = time.perf_counter() - t0
                if el >= seconds / rounds:
                    break
            best[k] = min(best[k], el / n)
    return best[0], best[1]


def bench_decode(seconds: float) -> list[dict[str, Any]]:
    """Events/s of ``Ingest.handle`` vs ``json.loads`` on the same payloads."""
    site = geo.default_site()
    rng = random.Random(1)
    rows = []
    cam = site.thermal[0].id
    cases = [("fibre", 1), ("fibre", 10), ("fibre", 100), ("fibre", 1000), ("fibre", 5000)]
    cases += [("thermal", 1), ("thermal", 1000)]
    for kind, size in cases:
        n_batches = max(4, 20000 // size)
        if kind == "fibre":
            payloads, topic = (
                _fibre_batches(n_batches, size, rng),
                "limes/v1/sensors/fibre/FO-01/events",
            )
        else:
            payloads = _thermal_batches(n_batches, size, rng, cam)
            topic = f"limes/v1/sensors/thermal/{cam}/events"

        def run_json(p: list[bytes] = payloads) -> None:
            for b in p:
                json.loads(b)

        def run_ingest(p: list[bytes] = payloads, topic: str = topic, size: int = size) -> None:
            ing = Ingest(site, started=NOW)  # fresh windows: every batch is new
            for b in p:
                r = ing.handle(topic, b, NOW)
                assert r.meas.size == size

        events = n_batches * size
        run_ingest()  # warm (kernels loaded, caches filled)
        tj, ti = _time_pair(run_json, run_ingest, seconds)
        rows.append(
            {
                "kind": kind,
                "batch": size,
                "ingest_events_per_s": events / ti,
                "ingest_us_per_batch": ti / n_batches * 1e6,
                "json_loads_events_per_s": events / tj,
                "ratio_vs_json_loads": tj / ti,
            }
        )
    return rows


async def _mqtt_e2e(port: int, n_msgs: int, size: int, qos: int, window: int) -> dict[str, Any]:
    site = geo.default_site()
    payloads = _fibre_batches(n_msgs, size, random.Random(2))
    done = asyncio.Event()
    count = 0
    events = 0

    async def sink(res: IngestResult) -> None:
        nonlocal count, events
        count += 1
        events += res.meas.size
        if count == n_msgs:
            done.set()

    ingest = Ingest(site, started=time.time())
    cfg = MqttSettings(host="127.0.0.1", port=port, client_id=f"bench-service-{qos}-{size}")
    topic = "limes/v1/sensors/fibre/FO-01/events"
    # the devices' batches carry t near NOW: give the ingest that clock
    async with MqttDriver(ingest, cfg, sink, clock=lambda: NOW) as drv:
        await drv.wait_connected()
        async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=window) as dev:
            dev.pending_calls_threshold = window + 1  # the window is deliberate
            t0 = time.perf_counter()
            if qos == 0:
                for p in payloads:
                    await dev.publish(topic, p, qos=0)
            else:
                slots = asyncio.Semaphore(window)

                async def one(p: bytes) -> None:
                    try:
                        await dev.publish(topic, p, qos=1)
                    finally:
                        slots.release()

                async with asyncio.TaskGroup() as tg:
                    for p in payloads:
                        await slots.acquire()
                        tg.create_task(one(p))
            t_pub = time.perf_counter() - t0
            try:
                async with asyncio.timeout(60):
                    await done.wait()
            except TimeoutError:  # QoS 0 may lose messages: report what arrived
                pass
            el = time.perf_counter() - t0
    return {
        "qos": qos,
        "window": window if qos else None,
        "batch": size,
        "messages": n_msgs,
        "received": count,
        "messages_per_s": count / el,
        "events_per_s": events / el,
        "publish_s": t_pub,
        "elapsed_s": el,
    }


def bench_mqtt(n_msgs: int, window: int) -> list[dict[str, Any]]:
    """Device -> Mosquitto -> MqttDriver (manual ack) -> sink, for QoS 0 and 1."""
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        conf = Path(d) / "m.conf"
        lines = [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            "persistence false",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        argv = [find_binary("mosquitto"), "-c", str(conf)]
        proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)  # noqa: S603
        try:
            for _ in range(200):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.02)
            return [
                asyncio.run(
                    _mqtt_e2e(port, min(n_msgs, max(200, 300_000 // size)), size, q, window)
                )
                for size in (1, 100, 1000)
                for q in (0, 1)
            ]
        finally:
            proc.terminate()
            proc.wait(10)


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for pkg in ("numpy", "msgspec", "numba", "aiomqtt", "paho-mqtt", "prometheus-client"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "absent"
    try:
        first = subprocess.run(  # noqa: S603
            [find_binary("mosquitto"), "-h"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.splitlines()
        out["mosquitto"] = first[0] if first else "?"
    except (OSError, ServerNotInstalledError, subprocess.TimeoutExpired):
        out["mosquitto"] = "absent"
    return out


def _machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "node": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _git() -> dict[str, Any]:
    def run(*a: str) -> str:
        return subprocess.run(  # noqa: S603
            ["git", *a],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).parent,
        ).stdout.strip()

    return {
        "commit": run("rev-parse", "HEAD"),
        "dirty": bool(run("status", "--porcelain", "--", "drivers", "benchmarks")),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table and write JSON (``--out``)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-out/ingest_bench.json"))
    ap.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    ap.add_argument("--mqtt-messages", type=int, default=3000, help="at most, per case")
    ap.add_argument("--window", type=int, default=100, help="QoS 1 messages in flight")
    ap.add_argument("--no-mqtt", action="store_true")
    args = ap.parse_args(argv)
    result: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": [sys.executable, "-m", "benchmarks.ingest_bench", *(argv or sys.argv[1:])],
        "machine": _machine(),
        "versions": _versions(),
        "git": _git(),
        "baseline": "json.loads of the same payloads, same run, rounds alternating",
    }
    result["decode"] = bench_decode(args.seconds)
    print(
        f"{'kind':8} {'batch':>5} {'ingest ev/s':>13} {'us/batch':>9} "
        f"{'json.loads ev/s':>16} {'x json.loads':>12}"
    )
    for r in result["decode"]:
        print(
            f"{r['kind']:8} {r['batch']:5d} {r['ingest_events_per_s']:13,.0f} "
            f"{r['ingest_us_per_batch']:9.1f} {r['json_loads_events_per_s']:16,.0f} "
            f"{r['ratio_vs_json_loads']:12.2f}"
        )
    if not args.no_mqtt:
        base = {
            r["batch"]: r["json_loads_events_per_s"]
            for r in result["decode"]
            if r["kind"] == "fibre"
        }
        result["mqtt"] = bench_mqtt(args.mqtt_messages, args.window)
        for r in result["mqtt"]:
            r["events_ratio_vs_json_loads"] = r["events_per_s"] / base[r["batch"]]
            print(
                f"mqtt e2e qos {r['qos']} batch {r['batch']:4d}: {r['messages_per_s']:9,.0f} msg/s "
                f"{r['events_per_s']:11,.0f} events/s ({r['events_ratio_vs_json_loads']:.2f} x "
                f"json.loads) received {r['received']}/{r['messages']}"
            )
    result["loadavg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
