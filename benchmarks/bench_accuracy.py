"""Accuracy suite: :mod:`sim_sensors.score` metrics of simulated RO-RS scenarios, next to
the speed of the same replay.

Each preset is generated with the run's seed and replayed as fast as possible through the
service path (:mod:`benchmarks.bench_replay`, the same replay the memory suite reads), then
scored exactly as ``limes score`` does. The replay's events/s sits next to the scores, so a
speed change that costs accuracy shows up in one table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.bench_common import Context
from benchmarks.bench_memory import _replay_result

KEYS = (
    "recall",
    "n_crossings",
    "n_detected",
    "false_per_100km_day",
    "tta_p50_s",
    "tta_p95_s",
    "alerts_per_intrusion",
    "approach_recall",
    "digging_detected",
    "faults_detected",
    "gospa_mean",
    "gospa_localisation",
    "gospa_missed",
    "gospa_false",
)


def run(ctx: Context) -> dict[str, Any]:
    """Scores per preset (see the module doc)."""
    import geo
    from sim_sensors.score import load_alerts, load_tracks, load_truth, score

    site = geo.default_site()
    rows = []
    for preset, dur in ctx.sizes.accuracy_presets:
        r = _replay_result(ctx, preset, dur)
        d = Path(r["dir"])
        s = score(
            load_truth(d / "truth.jsonl"),
            load_tracks(d / "tracks.jsonl", site),
            load_alerts(d / "alerts.jsonl", site),
            report_s=site.track_report_s,
        ).as_dict()
        rows.append(
            {
                "preset": preset,
                "seed": ctx.seed,
                "duration_s": r["duration_s"],
                "replay_wall_s": r["replay_wall_s"],
                "events_per_s": r["events_per_s"],
                "speedup_vs_real_time": r["speedup_vs_real_time"],
                "score": {k: s.get(k) for k in KEYS},
                "command": r["command"],
            }
        )
        ctx.advance(f"accuracy: {preset}")
    return {"presets": rows}


def steps(ctx: Context) -> int:
    """Progress units of :func:`run`."""
    return len(ctx.sizes.accuracy_presets)
