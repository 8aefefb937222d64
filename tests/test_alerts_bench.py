"""Smoke test of the alert latency benchmark (figures are not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.alerts_bench import main
from benchmarks.servers import RedisServer


def test_bench_runs_and_writes_json(tmp_path: Path, redis_server: RedisServer) -> None:
    out = tmp_path / "bench.json"
    # 12 updates: a track must be followed approach_min_age_s (10 s) before an approach alert
    result = main(["--tracks", "3", "--updates", "12", "--redis-url", redis_server.url,
                   "--out", str(out)])  # fmt: skip
    assert json.loads(out.read_text()) == result
    for store in ("memory", "redis"):
        # every crossing raised an approach and a crossing alert
        assert result[store]["alert_published"]["n"] == 6
        assert result[store]["track_update"]["n"] == 36
