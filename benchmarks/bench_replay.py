"""One accelerated replay of a simulated scenario in a fresh process, for two suites.

``python -m benchmarks.bench_replay --preset P --seed S --dir D [--duration-s X]`` generates
the scenario (``sim_sensors``), replays it through the service path as fast as possible
(:func:`service.runtime.run_items` with a :class:`service.runtime.FileSink`, exactly what
:func:`service.runtime.replay_file` does, plus a per-step hook), writes ``tracks.jsonl``,
``alerts.jsonl`` and ``truth.jsonl`` under ``D`` and prints one JSON line: replay wall time,
events/s, and the RSS of the process sampled every simulated ``--rss-every-s`` seconds.
The memory suite reads the RSS series (flat or not over hours of operation); the accuracy
suite scores the files with :mod:`sim_sensors.score`. A fresh process keeps the RSS free
of what other suites allocated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def replay(
    preset: str, seed: int, out: Path, duration_s: float | None, rss_every_s: float
) -> dict[str, Any]:
    """Generate, replay (timed) and write the files; see the module doc."""
    import geo
    from benchmarks.bench_common import rss_bytes
    from drivers import ReplaySource
    from fusion.warm import warmup
    from service.runtime import FileSink, Pipeline, run_items, summary
    from sim_sensors.config import preset as make_preset
    from sim_sensors.scenario import generate

    site = geo.default_site()
    over: dict[str, Any] = {"seed": seed}
    if duration_s is not None:
        over["duration_s"] = duration_s
    cfg = make_preset(preset, **over)
    t0 = time.perf_counter()
    sc = generate(site, cfg)
    out.mkdir(parents=True, exist_ok=True)
    src = out / "replay.jsonl"
    sc.write_replay(src)
    sc.write_truth(out / "truth.jsonl")
    gen_s = time.perf_counter() - t0
    warmup()
    rss0 = rss_bytes()
    series: list[tuple[float, int, int]] = []  # (simulated s since start, rss, live tracks)
    start = float(cfg.start_t)
    next_at = [start]

    def on_step(pipe: Pipeline) -> None:
        t = pipe.last_step.t if pipe.last_step is not None else start
        if t >= next_at[0]:
            from fusion.state import C_NLIVE

            series.append((t - start, rss_bytes(), int(pipe.core.tracker.table.ctr[C_NLIVE])))
            next_at[0] = t + rss_every_s

    with contextlib.ExitStack() as stack:
        f_tr = stack.enter_context((out / "tracks.jsonl").open("wb"))
        f_al = stack.enter_context((out / "alerts.jsonl").open("wb"))
        sink = FileSink(f_tr, f_al)

        async def make(t: float) -> Pipeline:
            return Pipeline(site, sink, started=t)

        w0 = time.perf_counter()
        pipe = asyncio.run(run_items(make, ReplaySource(src).items(), on_step=on_step))
        wall = time.perf_counter() - w0
    summ = summary(pipe, sink.counts)
    events = int(sum(sc.n_events.values()))
    return {
        "preset": preset,
        "seed": seed,
        "duration_s": cfg.duration_s,
        "generate_s": round(gen_s, 2),
        "replay_wall_s": round(wall, 2),
        "speedup_vs_real_time": round(cfg.duration_s / wall, 1) if wall > 0 else None,
        "messages": len(sc.messages),
        "device_events": events,
        "events_per_s": round(events / wall) if wall > 0 else None,
        "rss_after_warmup": rss0,
        "rss_series": series,
        "summary": {k: summ[k] for k in ("steps", "measurements", "track_updates", "alerts")},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI (used by the memory and accuracy suites in a subprocess)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--preset", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--duration-s", type=float, default=None)
    ap.add_argument("--rss-every-s", type=float, default=300.0)
    a = ap.parse_args(argv)
    res = replay(a.preset, a.seed, a.dir, a.duration_s, a.rss_every_s)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
