"""``limes bench`` at tiny sizes: the report's structure (files, JSON keys, every suite with
figures, plots), never its times."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import suite
from benchmarks.bench_common import summarize_stacks

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_tiny_run_writes_the_whole_report(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    rc = suite.main(["--tiny", "--out", str(out), "--no-progress", "--no-profile"])
    res = json.loads((out / "results.json").read_text())
    failed = {n: e.get("error") for n, e in res["suites"].items() if not e["ok"]}
    assert rc == 0, failed
    for key in ("machine", "versions", "seed", "command", "git", "started", "finished"):
        assert key in res
    assert {"cpu", "cpu_count", "loadavg_at_start"} <= set(res["machine"])
    assert {"python", "numpy", "numba", "msgspec", "mosquitto", "redis-server"} <= set(
        res["versions"]
    )
    assert res["command"][:2] == ["limes", "bench"]
    assert set(res["suites"]) == set(suite.SUITES)
    f = {n: e["figures"] for n, e in res["suites"].items()}
    assert f["fusion"]["vs_tracks"][0]["det_per_s"] > 0
    assert f["fusion"]["vs_clutter"]
    assert "speed_ratio" in f["fusion"]["peer"]
    assert f["ingest"]["decode"][0]["ingest_events_per_s"] > 0
    lv = f["latency"]["levels"]
    assert lv
    assert {"track_ms", "alert_ms", "ingest_lag_ms", "sustained", "step_s"} <= set(lv[0])
    assert lv[0]["track_ms"]["n"] > 0
    assert "sustained_max_events_per_s" in f["latency"]
    assert f["memory"]["vs_tracks"][0]["rss_mib"] > 0
    assert f["memory"]["vs_hours"][0]["rss_series"]
    assert f["startup"]["warm"]["wall_s"] > 0
    score = f["accuracy"]["presets"][0]["score"]
    assert {"recall", "gospa_mean", "false_per_100km_day"} <= set(score)
    report = (out / "report.md").read_text()
    assert "## Headline" in report
    for name in suite.SUITES:
        assert f"## {name}" in report
    assert res["plots"]
    for p in res["plots"]:
        assert (out / p).stat().st_size > 1000
        assert f"]({p})" in report


def test_profile_summary_counts_self_and_inclusive(tmp_path: Path) -> None:
    raw = tmp_path / "p.raw"
    raw.write_text(
        "main (a.py:1);step (core.py:5);_process (tracker.py:9) 3\n"
        "main (a.py:1);select (selectors.py:2) 1\n"
    )
    s = summarize_stacks(raw)
    assert s["samples"] == 4
    assert s["idle_share"] == 0.25
    assert s["self"][0] == ("_process (tracker.py)", 0.75)
    assert ("step (core.py)", 0.75) in s["inclusive"]
