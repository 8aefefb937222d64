"""Memory suite: RSS vs live tracks, and RSS over hours of (accelerated) operation.

* vs live tracks: one fresh process per size (``python -m benchmarks.bench_memory --tracks
  N``) steps a :class:`fusion.Tracker` through a :mod:`benchmarks.peer_scenario` scenario
  with ``N`` targets (20 clutter/scan) and reports its RSS with the tracker alive, against
  the same process's RSS before the tracker existed (baseline: imports, JIT, scans loaded).
* vs hours: the RSS series of a simulated scenario replayed as fast as possible through the
  whole service path (:mod:`benchmarks.bench_replay`, a fresh process), sampled every 5
  simulated minutes; "flat" is judged on the slope over the second half of the run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_common import Context

MIB = 1024 * 1024


def _child_tracks(n: int, scans: int, seed: int, work: Path) -> dict[str, Any]:
    from benchmarks import peer_scenario, tracker_bench
    from benchmarks.bench_common import rss_bytes
    from fusion import Tracker, build
    from fusion.state import C_NLIVE
    from fusion.warm import warmup

    warmup()
    sc = peer_scenario.Scenario(targets=n, clutter=20.0, seed=seed, duration_s=scans)
    dp, _ = peer_scenario.write(sc, work)
    loaded = tracker_bench.load_scans(dp)
    meas = []
    mid = 0
    for t, xy, s in loaded:
        meas.append(
            build.point(np.full(len(xy), t), xy[:, 0], xy[:, 1], np.full(len(xy), s), mid0=mid)
        )
        mid += len(xy)
    rss0 = rss_bytes()
    trk = Tracker(tracker_bench.bench_config(), n_sensors=1)
    for (t, _, _), m in zip(loaded, meas, strict=True):
        trk.step(t, m)
    rss1 = rss_bytes()
    live = int(trk.table.ctr[C_NLIVE])
    return {
        "targets": n,
        "live_tracks": live,
        "rss_before_mib": round(rss0 / MIB, 1),
        "rss_mib": round(rss1 / MIB, 1),
        "tracker_mib": round((rss1 - rss0) / MIB, 2),
        "bytes_per_track": round((rss1 - rss0) / live) if live else None,
    }


def _replay_result(ctx: Context, preset: str, duration_s: float | None) -> dict[str, Any]:
    """Run (or reuse, within this run) :mod:`benchmarks.bench_replay` for ``preset``."""
    key = (preset, duration_s)
    if key in ctx.replays:
        return ctx.replays[key]
    d = ctx.work / f"replay-{preset}-{int(duration_s or 0)}"
    cmd = [sys.executable, "-m", "benchmarks.bench_replay", "--preset", preset]
    cmd += ["--seed", str(ctx.seed), "--dir", str(d)]
    if duration_s is not None:
        cmd += ["--duration-s", str(duration_s), "--rss-every-s", str(max(5.0, duration_s / 30))]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        msg = f"bench_replay failed: {proc.stderr.strip()[-2000:]}"
        raise RuntimeError(msg)
    res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    res["dir"] = str(d)
    res["command"] = ["python", "-m", "benchmarks.bench_replay", *cmd[3:]]
    ctx.replays[key] = res
    return res


def _flatness(series: list[list[float]]) -> dict[str, Any]:
    """RSS slope (MiB per simulated hour) over the second half, and first/last/peak."""
    if len(series) < 2:
        return {"points": len(series)}
    a = np.asarray(series, dtype=np.float64)
    half = a[len(a) // 2 :]
    slope = (
        float(np.polyfit(half[:, 0] / 3600.0, half[:, 1] / MIB, 1)[0]) if len(half) >= 2 else 0.0
    )
    return {
        "points": len(a),
        "rss_first_mib": round(float(a[0, 1]) / MIB, 1),
        "rss_last_mib": round(float(a[-1, 1]) / MIB, 1),
        "rss_peak_mib": round(float(a[:, 1].max()) / MIB, 1),
        "slope_second_half_mib_per_h": round(slope, 2),
        # a verdict needs hours: over minutes, start-up allocations dominate the slope
        "flat": bool(abs(slope) < 5.0) if a[-1, 0] >= 1800.0 else None,
    }


def run(ctx: Context) -> dict[str, Any]:
    """RSS vs live tracks and vs simulated hours (see the module doc)."""
    rows = []
    for n in ctx.sizes.memory_tracks:
        cmd = [sys.executable, "-m", "benchmarks.bench_memory", "--tracks", str(n)]
        cmd += ["--scans", str(max(8, ctx.sizes.fusion_scans)), "--seed", str(ctx.seed)]
        cmd += ["--work", str(ctx.work / "memory")]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)  # noqa: S603
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        ctx.advance(f"memory: {n} tracks")
    hours = []
    for preset, dur in ctx.sizes.memory_presets:
        r = _replay_result(ctx, preset, dur)
        hours.append(
            {
                "preset": preset,
                "simulated_h": round(r["duration_s"] / 3600.0, 2),
                "replay_wall_s": r["replay_wall_s"],
                "rss_series": r["rss_series"],
                **_flatness(r["rss_series"]),
            }
        )
        ctx.advance(f"memory: {preset} replay")
    return {"vs_tracks": rows, "vs_hours": hours}


def steps(ctx: Context) -> int:
    """Progress units of :func:`run`."""
    return len(ctx.sizes.memory_tracks) + len(ctx.sizes.memory_presets)


def plot(res: dict[str, Any], out: Path) -> list[str]:
    """``memory.png``: RSS vs live tracks and vs simulated hours."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=90)
    rows = res.get("vs_tracks") or []
    a1.plot([max(1, r["live_tracks"]) for r in rows], [r["rss_mib"] for r in rows], "o-")
    a1.set_xscale("log")
    a1.set_xlabel("live tracks")
    a1.set_ylabel("RSS (MiB)")
    a1.set_title("RSS vs live tracks")
    a1.grid(True, alpha=0.3)
    for h in res.get("vs_hours") or []:
        s = np.asarray(h["rss_series"], dtype=np.float64).reshape(-1, 3)
        a2.plot(s[:, 0] / 3600.0, s[:, 1] / MIB, ".-", label=h["preset"])
    a2.set_xlabel("simulated hours (accelerated replay)")
    a2.set_ylabel("RSS (MiB)")
    a2.set_title("RSS over operation")
    a2.grid(True, alpha=0.3)
    a2.legend()
    fig.tight_layout()
    fig.savefig(out / "memory.png")
    plt.close(fig)
    return ["memory.png"]


def main(argv: Sequence[str] | None = None) -> int:
    """Child process: one RSS-vs-tracks point, printed as a JSON line."""
    ap = argparse.ArgumentParser(description="one RSS vs live tracks point")
    ap.add_argument("--tracks", type=int, required=True)
    ap.add_argument("--scans", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, required=True)
    a = ap.parse_args(argv)
    print(json.dumps(_child_tracks(a.tracks, a.scans, a.seed, a.work)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
