"""Replay throughput: wall time, scenario/wall, re-processed rows, CPU per scenario minute.

``python -m benchmarks.replay_bench REPLAY.jsonl [...] --out runs/replay_bench.json
[--max-wall-s S] [--every-s 60] [--tracks-dir D]`` replays each file through the service path
as fast as possible (:func:`service.runtime.run_items` with a :class:`service.runtime.FileSink`,
what ``limes replay`` does) on the default site and prints one JSON line per file:

* ``wall_s``, ``cpu_s`` (process CPU time) and ``scenario_s`` (arrival-clock seconds replayed,
  up to the newest measurement processed);
  ``scenario_per_wall`` and ``scenario_per_cpu`` (x real time);
* ``tracker_cpu_s``: CPU time inside ``Tracker.step`` (the rest is ingest, reports, alerts);
* ``measurements`` (rows fed to the tracker) and ``replayed_rows`` (rows re-processed by the
  tracker's late-row rewinds) with their ratio ``replay_ratio``;
* ``series``: per ``--every-s`` of scenario time ``[scenario_s, cpu_s, replayed_rows,
  measurements, live_tracks]`` at that point, and ``cpu_per_scenario_min`` for each interval
  (does the cost grow over the run?).

``--max-wall-s`` stops a long replay after that much wall time (the figures are then for the
part replayed, ``complete: false``). With ``--tracks-dir`` the track updates and alerts are
written there (``<stem>.tracks.jsonl``, ``<stem>.alerts.jsonl``) for ``limes score``.
Timings are for comparison within one session on one machine (the development machine is
shared), so compare ratios between runs made side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


class _StopError(Exception):
    """Raised from the step hook when the wall-time budget is spent."""


def run(
    path: Path, *, max_wall_s: float | None, every_s: float, out_dir: Path | None
) -> dict[str, Any]:
    """Replay one file (see the module doc) and return its figures."""
    import geo
    from drivers import ReplayItem, ReplaySource
    from fusion.state import C_NLIVE
    from fusion.warm import warmup
    from service.runtime import FileSink, Pipeline, run_items, summary

    site = geo.default_site()
    warmup()
    series: list[list[float]] = []
    state: dict[str, Any] = {"t0": None, "next": None, "pipe": None, "last_at": None}
    w0 = time.perf_counter()
    c0 = time.process_time()

    def sample(pipe: Pipeline, t: float) -> None:
        c = pipe.core.counters
        series.append(
            [
                round(t - state["t0"], 3),
                round(time.process_time() - c0, 3),
                c.replayed_rows,
                c.rows,
                int(pipe.core.tracker.table.ctr[C_NLIVE]),
            ]
        )

    def on_step(pipe: Pipeline) -> None:
        state["pipe"] = pipe
        t = pipe.last_step.t if pipe.last_step is not None else None
        if t is None:
            return
        if state["t0"] is None:
            state["t0"] = t
            state["next"] = t + every_s
        if t >= state["next"]:
            sample(pipe, t)
            state["next"] += every_s * (1 + int((t - state["next"]) // every_s))
        if max_wall_s is not None and time.perf_counter() - w0 > max_wall_s:
            raise _StopError

    def items() -> Iterator[ReplayItem]:
        for it in ReplaySource(path).items():
            state["last_at"] = it.at
            yield it

    complete = True
    tracker_cpu = [0.0]  # CPU time inside Tracker.step
    with contextlib.ExitStack() as stack:
        f_tr = f_al = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            f_tr = stack.enter_context((out_dir / f"{path.stem}.tracks.jsonl").open("wb"))
            f_al = stack.enter_context((out_dir / f"{path.stem}.alerts.jsonl").open("wb"))
        sink = FileSink(f_tr, f_al)

        async def make(t: float) -> Pipeline:
            p = Pipeline(site, sink, started=t)
            state["pipe"] = p
            step = p.core.tracker.step

            def timed(t: float, meas: Any = None) -> Any:
                c = time.process_time()
                try:
                    return step(t, meas)
                finally:
                    tracker_cpu[0] += time.process_time() - c

            p.core.tracker.step = timed  # type: ignore[method-assign]
            return p

        try:
            asyncio.run(run_items(make, items(), on_step=on_step))
        except _StopError:
            complete = False
    wall = time.perf_counter() - w0
    cpu = time.process_time() - c0
    pipe = state["pipe"]
    assert pipe is not None
    last_t = pipe.last_step.t if pipe.last_step is not None else state["t0"]
    sample(pipe, last_t)
    # scenario time covered: up to the newest measurement the tracker processed (a replay
    # file can end with hours of status messages after the last device event)
    scen = min(series[-1][0], pipe.core.tracker.frontier - state["t0"])
    c = pipe.core.counters
    cpm = []
    for a, b in itertools.pairwise(series):
        if scen >= b[0] > a[0]:
            cpm.append([round(b[0], 1), round(60.0 * (b[1] - a[1]) / (b[0] - a[0]), 2)])
    summ = summary(pipe)
    return {
        "file": str(path),
        "complete": complete,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "scenario_s": round(scen, 1),
        "scenario_per_wall": round(scen / wall, 2) if wall > 0 else None,
        "scenario_per_cpu": round(scen / cpu, 2) if cpu > 0 else None,
        "tracker_cpu_s": round(tracker_cpu[0], 2),
        "tracker_cpu_share": round(tracker_cpu[0] / cpu, 3) if cpu > 0 else None,
        "measurements": c.rows,
        "replayed_rows": c.replayed_rows,
        "replay_ratio": round(c.replayed_rows / max(c.rows, 1), 3),
        "replays": pipe.core.tracker.counters.replays,
        "oosm_rows": getattr(pipe.core.tracker.counters, "oosm_rows", 0),  # 0: older trees
        "late_dropped": c.late_dropped,
        "track_updates": c.track_updates,
        "alerts": summ["alerts"],
        "cpu_per_scenario_min": cpm,
        "series": series,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: one JSON line per file; all results to ``--out``."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--max-wall-s", type=float, default=None)
    ap.add_argument("--every-s", type=float, default=60.0)
    ap.add_argument("--tracks-dir", type=Path, default=None)
    ap.add_argument("--label", default="")
    a = ap.parse_args(argv)
    results = []
    for f in a.files:
        r = run(f, max_wall_s=a.max_wall_s, every_s=a.every_s, out_dir=a.tracks_dir)
        r["label"] = a.label
        short = {k: v for k, v in r.items() if k != "series"}
        print(json.dumps(short), flush=True)
        results.append(r)
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
