"""Start-up suite: time to ready, cold (JIT compile) and warm (on-disk Numba cache).

Each run is a fresh interpreter (``python -m benchmarks.bench_startup --child``) with
``NUMBA_CACHE_DIR`` pointing at a directory of its own: the first run on an empty directory
is cold (every kernel compiled), the next runs on the same directory are warm (kernels
loaded from the cache). Ready = imports + :func:`fusion.warm.warmup` + one batch of each
sensor kind through :class:`drivers.Ingest` (the ingest kernels). Reported: the child's
own phases and the wall time from spawn to its exit, as seen by the parent; the baseline
is a bare ``python -c pass`` spawned in the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the child must not import the bench machinery: it times the imports
    from benchmarks.bench_common import Context

T = 1_764_000_000.0


def _ingest_warm() -> None:
    import msgspec

    import geo
    from drivers import Ingest

    site = geo.default_site()
    ing = Ingest(site, started=T)
    enc = msgspec.json.encode
    fo, th, ms = site.fibre[0].id, site.thermal[0].id, site.msv[0].id
    ev_f = {"t": T, "chainage_m": 100.0, "class": "walking", "confidence": 0.9}
    ev_t = {"t": T, "bearing_deg": 10.0, "range_m": 500.0, "class": "person", "confidence": 0.9}
    ev_m = {"t": T, "range_m": 900.0, "azimuth_deg": 20.0, "class": "person", "confidence": 0.9}
    plat = {"lat": 45.8, "lon": 20.6, "heading_deg": 0.0}
    for topic, body in (
        (f"limes/v1/sensors/fibre/{fo}/events", {"device": fo, "seq": 1, "events": [ev_f]}),
        (f"limes/v1/sensors/thermal/{th}/events", {"device": th, "seq": 1, "events": [ev_t]}),
        (
            f"limes/v1/sensors/msv/{ms}/events",
            {"device": ms, "seq": 1, "platform": plat, "events": [ev_m]},
        ),
    ):
        ing.handle(topic, enc(body), T)


def _child() -> dict[str, float]:
    t0 = time.perf_counter()
    import fusion.warm

    t1 = time.perf_counter()
    fusion.warm.warmup()
    t2 = time.perf_counter()
    _ingest_warm()
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "fusion_warmup_s": t2 - t1, "ingest_warmup_s": t3 - t2}


def _spawn(cache: Path | None, *, child: bool = False) -> dict[str, Any]:
    """Time one interpreter: the child on ``cache`` (or the default cache when ``child``
    and no cache), else a bare ``python -c pass``."""
    env = dict(os.environ)
    child = child or cache is not None
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = str(cache)
    cmd = [sys.executable, "-m", "benchmarks.bench_startup", "--child"]
    if not child:
        cmd = [sys.executable, "-c", "pass"]
    w0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)  # noqa: S603
    wall = time.perf_counter() - w0
    out: dict[str, Any] = {"wall_s": round(wall, 3)}
    if child:
        phases = json.loads(proc.stdout.strip().splitlines()[-1])
        out.update({k: round(v, 3) for k, v in phases.items()})
    return out


def run(ctx: Context) -> dict[str, Any]:
    """Cold and warm time to ready (see the module doc)."""
    bare = _spawn(None)
    cold: list[dict[str, Any]] = []
    warm: list[dict[str, Any]] = []
    for _ in range(ctx.sizes.startup_runs):
        if not ctx.sizes.startup_cold:  # the project's own cache (a cold compile takes minutes)
            warm.append(_spawn(None, child=True))
            ctx.advance("startup: warm")
            continue
        with tempfile.TemporaryDirectory(prefix="numba-", dir=ctx.work) as d:
            cold.append(_spawn(Path(d)))
            ctx.advance("startup: cold")
            warm.append(_spawn(Path(d)))
            ctx.advance("startup: warm")

    def best(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return min(rows, key=lambda r: r["wall_s"])

    w = best(warm)
    res: dict[str, Any] = {"bare_python_s": bare["wall_s"], "warm": w, "warm_runs": warm}
    if cold:
        c = best(cold)
        res.update(cold=c, cold_runs=cold, cold_over_warm=round(c["wall_s"] / w["wall_s"], 2))
    else:
        res["cold"] = None
        res["cold_note"] = (
            "cold compile not timed at this size (minutes on this machine): run the full "
            "suite; warm = the project's own Numba cache"
        )
    return res


def steps(ctx: Context) -> int:
    """Progress units of :func:`run`."""
    return (2 if ctx.sizes.startup_cold else 1) * ctx.sizes.startup_runs


def main(argv: Sequence[str] | None = None) -> int:
    """``--child``: warm up and print the phase times as one JSON line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["--child"]:
        print("usage: python -m benchmarks.bench_startup --child", file=sys.stderr)
        return 2
    print(json.dumps(_child()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
