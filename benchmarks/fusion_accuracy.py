"""Multi-sensor accuracy: does fusing fibre, thermal and MSV radar help? (issue 4)

    python -m benchmarks.fusion_accuracy [--seeds 1 2 3] [--preset crossing-10min]
        [--duration S] [--variants fibre fibre+thermal all] [--keep DIR]
        [--out runs/fusion_accuracy.json]

For each seed the simulator generates one RO-RS scenario (``sim_sensors.generate``). Its
messages are replayed through the whole service (``service.runtime.replay_file``: ingest,
tracker, reporter, alert rules) three times, keeping the ``events`` messages of

* ``fibre``: the fibre cables only,
* ``fibre+thermal``: plus the thermal cameras,
* ``all``: plus the MSV radars,

(status, heartbeat and patrol messages are always kept, so no variant raises sensor faults
for the sensors it leaves out). Each run is scored against the truth with
``sim_sensors.score.score``: GOSPA (c = 100 m, p = 1, alpha = 2; mean over report times, with
its localisation / missed / false parts, over the objects inside some sensor's coverage),
crossing recall and time to alert. Prints a table and writes the JSON (per seed and mean).
``--variants`` runs a subset; ``--keep DIR`` keeps the replay inputs, tracks and alerts
(``tracks_<seed>_<variant>.jsonl`` ...) there for inspection instead of a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geo import Site, default_site
from service.runtime import replay_file
from sim_sensors import generate, preset
from sim_sensors.scenario import Scenario, replay_line
from sim_sensors.score import load_alerts, load_tracks, load_truth, score

VARIANTS: dict[str, frozenset[str]] = {
    "fibre": frozenset({"fibre"}),
    "fibre+thermal": frozenset({"fibre", "thermal"}),
    "all": frozenset({"fibre", "thermal", "msv"}),
}
METRICS = (
    "gospa_mean",
    "gospa_localisation",
    "gospa_missed",
    "gospa_false",
    "recall",
    "tta_p50_s",
    "n_false_crossing_alerts",
)


def _keep(topic: str, kinds: frozenset[str]) -> bool:
    """Events of sensor kinds not in ``kinds`` are left out; everything else is kept."""
    parts = topic.split("/")
    is_events = len(parts) == 6 and parts[2] == "sensors" and parts[5] == "events"
    return not is_events or parts[3] in kinds


def write_variant(sc: Scenario, kinds: frozenset[str], path: Path) -> int:
    """Write the replay file of ``sc`` restricted to ``kinds``; returns lines written."""
    n = 0
    with path.open("wb") as f:
        for m in sc.messages:
            if _keep(m.topic, kinds):
                f.write(replay_line(m.topic, m.payload))
                n += 1
    return n


def run_seed(
    site: Site,
    seed: int,
    preset_name: str,
    duration: float | None,
    work: Path,
    variants: Sequence[str] = tuple(VARIANTS),
) -> dict[str, dict[str, Any]]:
    """Score every variant on one seed; returns ``{variant: metrics}``."""
    over: dict[str, Any] = {} if duration is None else {"duration_s": duration}
    sc = generate(site, preset(preset_name, seed=seed, **over))
    truth_path = work / f"truth_{seed}.jsonl"
    sc.write_truth(truth_path)
    truth = load_truth(truth_path)
    out: dict[str, dict[str, Any]] = {}
    for name in variants:
        kinds = VARIANTS[name]
        tag = f"{seed}_{name.replace('+', '_')}"
        src = work / f"in_{tag}.jsonl"
        write_variant(sc, kinds, src)
        tracks, alerts = work / f"tracks_{tag}.jsonl", work / f"alerts_{tag}.jsonl"
        asyncio.run(replay_file(site, src, tracks=tracks, alerts=alerts))
        s = score(
            truth,
            load_tracks(tracks, site),
            load_alerts(alerts, site),
            report_s=site.track_report_s,
        ).as_dict()
        out[name] = {k: s.get(k) for k in (*METRICS, "n_crossings", "n_detected")}
    return out


def _mean(vals: list[Any]) -> float | None:
    v = [float(x) for x in vals if x is not None]
    return round(float(np.mean(v)), 3) if v else None


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; prints the table and writes the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--preset", default="crossing-10min")
    ap.add_argument("--duration", type=float, default=None, help="override duration_s")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--keep", type=Path, default=None, help="keep the work files in this folder")
    ap.add_argument("--out", type=Path, default=Path("runs/fusion_accuracy.json"))
    a = ap.parse_args(argv)
    site = default_site()
    per_seed: dict[int, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="limes-acc-") as tmp:
        work = Path(tmp) if a.keep is None else a.keep
        work.mkdir(parents=True, exist_ok=True)
        for seed in a.seeds:
            per_seed[seed] = run_seed(site, seed, a.preset, a.duration, work, a.variants)
    mean = {
        v: {k: _mean([per_seed[s][v][k] for s in a.seeds]) for k in METRICS} for v in a.variants
    }
    res = {"preset": a.preset, "seeds": a.seeds, "per_seed": per_seed, "mean": mean}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1))
    print(f"{'sensors':<14} " + " ".join(f"{k:>22}" for k in METRICS))
    for v in a.variants:
        print(f"{v:<14} " + " ".join(f"{mean[v][k]!s:>22}" for k in METRICS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
