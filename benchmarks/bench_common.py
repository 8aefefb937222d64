"""Shared pieces of ``limes bench``: run context (machine, versions, seed, command), sizes,
percentiles, RSS, a throwaway Mosquitto, and py-spy profile summaries.

The machine, versions and git commit come from :mod:`benchmarks.ingest_bench` (one copy);
servers come from :mod:`benchmarks.servers` (plain classes that start a server on a free port).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ingest_bench import _git, _machine, _versions

#: progress callback: ``advance(label)`` moves the suite's bar by one unit
Advance = Callable[[str], None]


@dataclass(frozen=True)
class Sizes:
    """How big each suite runs: ``full`` (< 30 min), ``quick`` (< 3 min), ``tiny`` (tests)."""

    name: str
    fusion_tracks: tuple[int, ...]
    fusion_clutter: tuple[float, ...]
    fusion_scans: int
    peer_targets: int
    peer_duration_s: int
    peer_scans: int
    ingest_seconds: float
    ingest_mqtt_messages: int  # 0: no MQTT part
    latency_loads: tuple[int, ...]
    latency_ramp: tuple[int, ...]
    latency_seconds: float
    latency_small_step_s: float | None
    profile_seconds: float
    memory_tracks: tuple[int, ...]
    memory_presets: tuple[tuple[str, float | None], ...]  # (preset, duration_s), accelerated
    #: (preset, duration_s or None for the preset's own): scored; shared with memory_presets
    accuracy_presets: tuple[tuple[str, float | None], ...]
    startup_runs: int
    startup_cold: bool  # time a cold JIT compile (minutes on a loaded 2-core machine)


FULL = Sizes(
    name="full",
    fusion_tracks=(10, 30, 100, 300, 1000, 3000, 10000),
    fusion_clutter=(0.0, 20.0, 100.0, 500.0, 2000.0),
    fusion_scans=40,
    peer_targets=50,
    peer_duration_s=600,
    peer_scans=150,
    ingest_seconds=1.5,
    ingest_mqtt_messages=3000,
    latency_loads=(1000, 10000, 50000),
    latency_ramp=(20000, 100000, 200000),
    latency_seconds=12.0,
    latency_small_step_s=0.1,
    profile_seconds=10.0,
    memory_tracks=(10, 100, 1000, 3000, 10000),
    memory_presets=(("night-6h", 900.0),),
    accuracy_presets=(("crossing-10min", None), ("night-6h", 900.0)),
    startup_runs=1,
    startup_cold=True,
)

QUICK = Sizes(
    name="quick",
    fusion_tracks=(10, 100, 1000, 3000),
    fusion_clutter=(0.0, 100.0, 1000.0),
    fusion_scans=15,
    peer_targets=50,
    peer_duration_s=60,
    peer_scans=10,
    ingest_seconds=0.3,
    ingest_mqtt_messages=400,
    latency_loads=(1000, 10000, 50000),
    latency_ramp=(),
    latency_seconds=4.0,
    latency_small_step_s=None,
    profile_seconds=3.0,
    memory_tracks=(10, 1000),
    memory_presets=(("crossing-10min", 240.0),),
    accuracy_presets=(("crossing-10min", 240.0),),
    startup_runs=1,
    startup_cold=False,
)

TINY = Sizes(
    name="tiny",
    fusion_tracks=(10, 100),
    fusion_clutter=(0.0, 50.0),
    fusion_scans=8,
    peer_targets=10,
    peer_duration_s=12,
    peer_scans=3,
    ingest_seconds=0.05,
    ingest_mqtt_messages=0,
    latency_loads=(1000, 5000),
    latency_ramp=(),
    latency_seconds=1.5,
    latency_small_step_s=None,
    profile_seconds=0.0,
    memory_tracks=(10, 100),
    memory_presets=(("crossing-10min", 30.0),),
    accuracy_presets=(("crossing-10min", 30.0),),
    startup_runs=1,
    startup_cold=False,
)

SIZES = {s.name: s for s in (FULL, QUICK, TINY)}


@dataclass
class Context:
    """What every suite gets: sizes, seed, a work folder, the output folder, progress."""

    sizes: Sizes
    seed: int
    out: Path
    work: Path
    advance: Advance = field(default=lambda _label: None)
    profile: bool = True
    #: replays already run in this session, by (preset, duration_s) (shared by suites)
    replays: dict[tuple[str, float | None], dict[str, Any]] = field(default_factory=dict)


def run_info(argv: Sequence[str], seed: int, sizes: Sizes) -> dict[str, Any]:
    """Machine (CPU model, cores, load average), versions (incl. mosquitto and redis), git,
    seed and the command of this run."""
    versions = _versions()
    versions["redis-server"] = _redis_version()
    try:
        import redis

        versions["redis-py"] = redis.__version__
    except ImportError:  # pragma: no cover - a dependency
        versions["redis-py"] = "absent"
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": ["limes", "bench", *argv],
        "python_executable": sys.executable,
        "machine": _machine(),
        "versions": versions,
        "git": _git(),
        "seed": seed,
        "sizes": sizes.name,
    }


def _redis_version() -> str:
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    try:
        out = subprocess.run(  # noqa: S603
            [exe, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except OSError:
        return "absent"
    return out.strip() or "absent"


def loadavg() -> list[float] | None:
    """The 1/5/15-minute load averages (None where the OS has none)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def percentiles(xs: Sequence[float] | np.ndarray, scale: float = 1e3) -> dict[str, float | None]:
    """n, p50/p95/p99/max of ``xs`` times ``scale`` (default seconds -> ms), None when empty."""
    a = np.asarray(xs, dtype=np.float64) * scale
    if a.size == 0:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "n": int(a.size),
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(a.max()), 3),
    }


def rss_bytes() -> int:
    """Resident set size of this process now (``/proc/self/statm``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def mosquitto(work: Path) -> Iterator[Any]:
    """A throwaway Mosquitto on a free loopback port (``benchmarks.servers.MosquittoServer``),
    with no per-client queue or in-flight limits (a benchmark must not drop at the broker)."""
    from benchmarks.servers import MosquittoServer

    d = Path(tempfile.mkdtemp(prefix="mqtt-", dir=work))
    extra = ["max_queued_messages 0", "max_inflight_messages 0"]
    with MosquittoServer(d, extra_config=extra) as broker:
        yield broker


@contextlib.contextmanager
def py_spy(pid: int, seconds: float, out: Path) -> Iterator[dict[str, Any]]:
    """Sample ``pid`` with py-spy (raw collapsed stacks) while the block runs; the yielded
    dict gets ``summary`` (see :func:`summarize_stacks`) or ``error`` afterwards."""
    res: dict[str, Any] = {}
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if seconds <= 0 or not Path(exe).exists():
        res["error"] = "py-spy not run" if seconds <= 0 else "py-spy not installed"
        yield res
        return
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    cmd += ["--rate", "97", "--format", "raw", "--nonblocking", "--output", str(out)]
    proc = subprocess.Popen(  # noqa: S603
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        yield res
    finally:
        try:
            _, err = proc.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if out.exists() and out.stat().st_size:
            res["summary"] = summarize_stacks(out)
            res["file"] = out.name
        else:
            res["error"] = (err or "py-spy wrote nothing").strip().splitlines()[-1:]


def summarize_stacks(path: Path, top: int = 12) -> dict[str, Any]:
    """Self time (leaf frame) and inclusive time (any frame) shares of a py-spy raw file
    (``frame;frame;... count`` per line); idle event-loop waits are counted apart."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    idle = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        k = int(n)
        frames = [_frame_name(f) for f in stack.split(";")]
        total += k
        leaf = frames[-1]
        if "select" in leaf and ("selectors" in leaf or "epoll" in leaf):
            idle += k
        self_c[leaf] += k
        for f in set(frames):
            incl[f] += k
    if not total:
        return {"samples": 0}

    def share(c: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(v / total, 3)) for f, v in c.most_common(top)]

    return {
        "samples": total,
        "idle_share": round(idle / total, 3),
        "self": share(self_c),
        "inclusive": share(Counter({f: v for f, v in incl.items() if not f.endswith(_GENERIC)})),
    }


_GENERIC = (
    "(base_events.py)",
    "(runners.py)",
    "(events.py)",
    "(bench_latency.py)",
    "(suite.py)",
    "(<frozen runpy>)",
    "(threading.py)",
    "(cli.py)",
    "(<string>)",
    "(runpy.py)",
)


def _frame_name(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file})" if file else name
