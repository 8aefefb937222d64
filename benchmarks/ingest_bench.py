"""Ingest benchmark: decode+validate+dedup+normalize events/s, and MQTT end-to-end msgs/s.

Usage: ``python -m benchmarks.ingest_bench [--out FILE.json] [--seconds S] [--no-mqtt]``.

Figures are quoted against a baseline measured in the same run on the same bytes:
``json.loads`` (stdlib) of each payload, which only parses and builds dicts. One core,
one process; the MQTT part starts its own Mosquitto (``mosquitto`` on PATH or in sbin).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

import geo
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


def _time(fn: Any, seconds: float) -> float:
    """Best-of-3 seconds per call of ``fn()`` (each round at least ``seconds / 3``)."""
    best = float("inf")
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= seconds / 3:
                break
        best = min(best, dt / n)
    return best


def bench_decode(seconds: float) -> list[dict[str, Any]]:
    """Events/s of ``Ingest.handle`` vs ``json.loads`` on the same payloads."""
    site = geo.default_site()
    rng = random.Random(1)
    rows = []
    cam = site.thermal[0].id
    for kind, size in [("fibre", 1), ("fibre", 100), ("fibre", 1000), ("thermal", 1000)]:
        n_batches = max(8, 20000 // size)
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
        tj = _time(run_json, seconds)
        ti = _time(run_ingest, seconds)
        rows.append(
            {
                "kind": kind,
                "batch": size,
                "ingest_events_per_s": events / ti,
                "json_loads_events_per_s": events / tj,
                "ratio_vs_json_loads": tj / ti,
            }
        )
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mosquitto() -> str:
    for d in ("", "/usr/sbin/", "/usr/local/sbin/"):
        p = shutil.which(f"{d}mosquitto") if not d else (d + "mosquitto")
        if p and os.path.exists(p):
            return p
    msg = "mosquitto not found (apt-get install -y mosquitto)"
    raise SystemExit(msg)


async def _mqtt_e2e(port: int, n_msgs: int, size: int) -> dict[str, Any]:
    site = geo.default_site()
    payloads = _fibre_batches(n_msgs, size, random.Random(2))
    done = asyncio.Event()
    count = 0

    async def sink(res: IngestResult) -> None:
        nonlocal count
        count += 1
        if count == n_msgs:
            done.set()

    ingest = Ingest(site, started=time.time())
    cfg = MqttSettings(host="127.0.0.1", port=port, client_id="bench-service")
    # the devices' batches carry t near NOW: give the ingest that clock
    async with MqttDriver(ingest, cfg, sink, clock=lambda: NOW) as drv:
        await drv.wait_connected()
        t0 = time.perf_counter()
        async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=100) as dev:
            for p in payloads:
                await dev.publish("limes/v1/sensors/fibre/FO-01/events", p, qos=1)
        async with asyncio.timeout(120):
            await done.wait()
        dt = time.perf_counter() - t0
    return {
        "batch": size,
        "messages": n_msgs,
        "messages_per_s": n_msgs / dt,
        "events_per_s": n_msgs * size / dt,
    }


def bench_mqtt(n_msgs: int) -> list[dict[str, Any]]:
    """Device -> Mosquitto -> MqttDriver (QoS 1, manual ack) -> sink, messages/s."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as d:
        conf = Path(d) / "m.conf"
        lines = [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            "max_queued_messages 0",
            "persistence false",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        proc = subprocess.Popen([_mosquitto(), "-c", str(conf)], stderr=subprocess.DEVNULL)  # noqa: S603
        try:
            for _ in range(200):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.02)
            return [asyncio.run(_mqtt_e2e(port, n_msgs, size)) for size in (1, 100)]
        finally:
            proc.terminate()
            proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table and write JSON (``--out``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-out/ingest_bench.json"))
    ap.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    ap.add_argument("--mqtt-messages", type=int, default=3000)
    ap.add_argument("--no-mqtt", action="store_true")
    args = ap.parse_args(argv)
    result: dict[str, Any] = {"python": sys.version.split()[0], "cpu_count": os.cpu_count()}
    result["decode"] = bench_decode(args.seconds)
    print(f"{'kind':8} {'batch':>5} {'ingest ev/s':>13} {'json.loads ev/s':>16} {'ratio':>6}")
    for r in result["decode"]:
        print(
            f"{r['kind']:8} {r['batch']:5d} {r['ingest_events_per_s']:13,.0f} "
            f"{r['json_loads_events_per_s']:16,.0f} {r['ratio_vs_json_loads']:6.2f}"
        )
    if not args.no_mqtt:
        result["mqtt"] = bench_mqtt(args.mqtt_messages)
        for r in result["mqtt"]:
            print(
                f"mqtt e2e batch {r['batch']:4d}: {r['messages_per_s']:9,.0f} msg/s "
                f"({r['events_per_s']:,.0f} events/s)"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
