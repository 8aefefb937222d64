"""Fusion suite: tracker detections/s vs live tracks and vs clutter, and the Stone Soup ratio.

Scenarios come from :mod:`benchmarks.peer_scenario` (a 20 km x 2 km strip, 1 Hz scans,
Pd 0.9, sigma 10 m) with more targets or more clutter; the tracker is run by
:func:`benchmarks.tracker_bench.run_limes` (tracker time only, one ``Tracker.step`` per
scan). Steady state: the first ``WARM_SCANS`` scans (track initiation, first-call costs)
are left out of det/s. The baseline of each curve is its smallest point measured in the
same run, so the ratios survive the shared machine's drift. The Stone Soup comparison is
:func:`benchmarks.tracker_bench.main` itself (its JSON line), on the first ``peer_scans``
scans.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from benchmarks import peer_scenario, tracker_bench
from benchmarks.bench_common import Context

WARM_SCANS = 4


def _one(ctx: Context, targets: int, clutter: float) -> dict[str, Any]:
    sc = peer_scenario.Scenario(
        targets=targets,
        clutter=clutter,
        seed=ctx.seed,
        duration_s=ctx.sizes.fusion_scans,
    )
    dp, tp = peer_scenario.write(sc, ctx.work / "fusion")
    scans = tracker_bench.load_scans(dp)
    truth = tracker_bench.load_truth(tp)
    r = tracker_bench.run_limes(scans, truth)
    cum = r["cum_s"]
    k = min(WARM_SCANS, len(scans) - 1)
    n_all = [len(xy) for _, xy, _ in scans]
    n_steady = sum(n_all[k + 1 :]) if len(scans) > k + 1 else sum(n_all)
    t_steady = float(cum[-1] - cum[k]) if len(scans) > k + 1 else float(cum[-1])
    summary = r["score"].summary()
    return {
        "targets": targets,
        "clutter_per_scan": clutter,
        "scans": len(scans),
        "detections": r["n_det"],
        "truth_mean": round(sum(len(v) for v in truth.values()) / max(1, len(truth)), 1),
        "det_per_scan": round(r["n_det"] / max(1, len(scans)), 1),
        "det_per_s": round(n_steady / t_steady) if t_steady > 0 else None,
        "ms_per_scan": round(t_steady / max(1, len(scans) - k - 1) * 1e3, 3),
        **summary,
    }


def _peer(ctx: Context) -> dict[str, Any]:
    sc = peer_scenario.Scenario(
        targets=ctx.sizes.peer_targets,
        clutter=20.0,
        seed=ctx.seed,
        duration_s=ctx.sizes.peer_duration_s,
    )
    dp, tp = peer_scenario.write(sc, ctx.work / "peer")
    argv = ["--detections", str(dp), "--truth", str(tp)]
    argv += ["--peer", "stonesoup", "--peer-scans", str(ctx.sizes.peer_scans)]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        tracker_bench.main(argv)
    line = [ln for ln in buf.getvalue().splitlines() if ln.startswith("{")][-1]
    out: dict[str, Any] = json.loads(line)
    out["command"] = ["python", "-m", "benchmarks.tracker_bench", *argv]
    return out


def run(ctx: Context) -> dict[str, Any]:
    """Det/s vs live tracks, vs clutter, and the Stone Soup peer ratio (one run)."""
    from fusion.warm import warmup

    warmup()
    res: dict[str, Any] = {"warm_scans_skipped": WARM_SCANS, "baseline": "smallest point"}
    by_tracks = []
    for n in ctx.sizes.fusion_tracks:
        by_tracks.append(_one(ctx, n, 20.0))
        ctx.advance(f"fusion: {n} tracks")
    by_clutter = []
    for c in ctx.sizes.fusion_clutter:
        by_clutter.append(_one(ctx, 100, c))
        ctx.advance(f"fusion: clutter {c:g}")
    for rows in (by_tracks, by_clutter):
        base = rows[0]["det_per_s"] or 1
        for r in rows:
            r["ratio_vs_baseline"] = round((r["det_per_s"] or 0) / base, 3)
    res["vs_tracks"] = by_tracks
    res["vs_clutter"] = by_clutter
    try:
        res["peer"] = _peer(ctx)
    except ImportError as exc:  # the bench extra is missing
        res["peer"] = {"error": f"stonesoup not installed ({exc}); pip install -e .[bench]"}
    ctx.advance("fusion: Stone Soup peer")
    return res


def steps(ctx: Context) -> int:
    """Progress units of :func:`run`."""
    return len(ctx.sizes.fusion_tracks) + len(ctx.sizes.fusion_clutter) + 1


def plot(res: dict[str, Any], out: Path) -> list[str]:
    """``fusion_tracks.png`` and ``fusion_clutter.png``; returns the file names."""
    import matplotlib.pyplot as plt

    names = []
    for key, xkey, xlabel, name in (
        ("vs_tracks", "truth_mean", "live targets (mean truth per scan)", "fusion_tracks.png"),
        ("vs_clutter", "clutter_per_scan", "clutter detections per scan", "fusion_clutter.png"),
    ):
        rows = res.get(key) or []
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=90)
        xs = [max(r[xkey], 0.5) for r in rows]
        ax.plot(xs, [r["det_per_s"] or 0 for r in rows], "o-")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("detections / s (tracker only)")
        ax.set_title(f"Fusion core: det/s {key.replace('_', ' ')}")
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        names.append(name)
    return names
