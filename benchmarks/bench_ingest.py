"""Ingest suite: :mod:`benchmarks.ingest_bench` as it is (decode+validate+dedup+normalize
events/s by batch size against ``json.loads`` of the same bytes; MQTT end-to-end msgs/s and
events/s through its own Mosquitto at QoS 0 and QoS 1 with a window of 100 in flight)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import ingest_bench
from benchmarks.bench_common import Context


def run(ctx: Context) -> dict[str, Any]:
    """Decode table and MQTT table (ratios against ``json.loads`` in the same run)."""
    decode = ingest_bench.bench_decode(ctx.sizes.ingest_seconds)
    ctx.advance("ingest: decode")
    base = {r["batch"]: r["json_loads_events_per_s"] for r in decode if r["kind"] == "fibre"}
    n = ctx.sizes.ingest_mqtt_messages
    mqtt = ingest_bench.bench_mqtt(n, 100) if n else []
    for r in mqtt:
        r["events_ratio_vs_json_loads"] = round(r["events_per_s"] / base[r["batch"]], 3)
    ctx.advance("ingest: mqtt")
    return {
        "baseline": "json.loads of the same payloads, same run, rounds alternating",
        "decode": decode,
        "mqtt": mqtt,
    }


def steps(ctx: Context) -> int:
    """Progress units of :func:`run`."""
    del ctx
    return 2


def plot(res: dict[str, Any], out: Path) -> list[str]:
    """``ingest.png``: events/s by batch size (ingest vs json.loads, and MQTT e2e)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=90)
    fib = [r for r in res.get("decode") or [] if r["kind"] == "fibre"]
    xs = [r["batch"] for r in fib]
    ax.plot(xs, [r["ingest_events_per_s"] for r in fib], "o-", label="Ingest.handle (fibre)")
    ax.plot(xs, [r["json_loads_events_per_s"] for r in fib], "o:", label="json.loads baseline")
    for q, style in ((0, "s--"), (1, "^--")):
        rows = [r for r in res.get("mqtt") or [] if r["qos"] == q]
        ax.plot(
            [r["batch"] for r in rows],
            [r["events_per_s"] for r in rows],
            style,
            label=f"MQTT e2e QoS {q}",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("events per batch")
    ax.set_ylabel("events / s (one process)")
    ax.set_title("Ingest throughput by batch size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "ingest.png")
    plt.close(fig)
    return ["ingest.png"]
