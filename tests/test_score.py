"""``limes score`` on tiny hand-made truth / tracks / alerts files, numbers worked by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from geo import Site, default_site
from service.cli import main as limes
from sim_sensors.score import load_alerts, load_tracks, load_truth, score

# a point inside the site's CRS (EPSG:3844), near the border; every position is relative
X0, Y0 = 150000.0, 500000.0
T0 = 1000.0


@pytest.fixture(scope="module")
def site() -> Site:
    return default_site()


def _lines(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _latlon(site: Site, dx: float, dy: float) -> dict[str, float]:
    lon, lat = site.proj.to_lonlat(X0 + dx, Y0 + dy)
    return {"lat": float(lat), "lon": float(lon)}


@pytest.fixture
def files(tmp_path: Path, site: Site) -> tuple[Path, Path, Path]:
    header = {"type": "scenario", "name": "hand", "seed": 0, "start_t": T0, "duration_s": 10.0,
              "instrumented_km": 50.0, "chain_from_m": 0.0, "chain_to_m": 30000.0}  # fmt: skip
    truth: list[dict[str, Any]] = [header]
    for k in range(11):
        t = T0 + k
        # A at the origin, always covered; B 1 km east, covered from t0+5
        truth.append({"type": "truth", "id": "A", "t": t, "x": X0, "y": Y0, "role": "crossing",
                      "covered": True})  # fmt: skip
        truth.append({"type": "truth", "id": "B", "t": t, "x": X0 + 1000, "y": Y0,
                      "role": "road", "covered": k >= 5})  # fmt: skip
    cross = [(1002.0, 0.0), (1005.0, 10000.0), (1008.0, 20000.0)]
    for i, (t, dx) in enumerate(cross, 1):
        truth.append({"type": "crossing", "id": f"C{i}", "t": t, "x": X0 + dx, "y": Y0,
                      "group_size": 1})  # fmt: skip
    truth.append({"type": "approach", "id": "C3", "t": 1006.0, "x": X0 + 20000, "y": Y0 - 100})
    truth.append({"type": "network", "arrival": 1.0, "topic": "x", "label": "events:late"})
    tracks: list[dict[str, Any]] = []
    for k in range(11):
        t = T0 + k
        # T1 50 m from A (a 30-40-50 triangle), confirmed throughout
        tracks.append({"t": t, "track_id": "T1", "x": X0 + 30, "y": Y0 + 40, "vx": 0.0,
                       "vy": 0.0, "status": "confirmed"})  # fmt: skip
        # T2 far from everything, tentative then confirmed from t0+5
        tracks.append({"t": t, "track_id": "T2", "x": X0 + 5000, "y": Y0 + 5000, "vx": 0.0,
                       "vy": 0.0, "status": "confirmed" if k >= 5 else "tentative"})  # fmt: skip
    alerts = [
        # C1: two alerts (20 s and 60 s after), 100 m and 200 m away
        {"alert_id": "a1", "t": 1022.0, "kind": "crossing", "state": "open",
         **_latlon(site, 100, 0)},
        {"alert_id": "a1", "t": 1100.0, "kind": "crossing", "state": "acknowledged",
         **_latlon(site, 100, 0)},
        {"alert_id": "a2", "t": 1062.0, "kind": "crossing", "state": "open",
         **_latlon(site, 0, 200)},
        # C2: 40 s after, 250 m away
        {"alert_id": "a3", "t": 1045.0, "kind": "crossing", "state": "open",
         **_latlon(site, 10250, 0)},
        # false: C3 but 200 s late; C2 but 400 m away
        {"alert_id": "a4", "t": 1208.0, "kind": "crossing", "state": "open",
         **_latlon(site, 20000, 0)},
        {"alert_id": "a5", "t": 1015.0, "kind": "crossing", "state": "open",
         **_latlon(site, 10400, 0)},
        # an approach alert for C3's approach (not a crossing alert)
        {"alert_id": "a6", "t": 1010.0, "kind": "approach", "state": "open",
         **_latlon(site, 20000, -120)},
    ]  # fmt: skip
    return (
        _lines(tmp_path / "truth.jsonl", truth),
        _lines(tmp_path / "tracks.jsonl", tracks),
        _lines(tmp_path / "alerts.jsonl", alerts),
    )


def test_hand_computed_metrics(files: tuple[Path, Path, Path], site: Site) -> None:
    tp, trp, ap = files
    s = score(load_truth(tp), load_tracks(trp, site), load_alerts(ap, site))
    assert s.n_crossings == 3
    assert s.n_detected == 2
    assert s.recall == pytest.approx(2 / 3)
    assert s.n_crossing_alerts == 5
    assert s.n_false_crossing_alerts == 2
    # 2 false / (50 km / 100 km) / (10 s / 86400 s) = 34560 per 100 km per day
    assert s.false_per_100km_day == pytest.approx(2 / 0.5 / (10 / 86400))
    # TTA [20, 40]: p50 = 30, p95 = 20 + 0.95 * 20 = 39
    assert s.tta_p50_s == pytest.approx(30.0)
    assert s.tta_p95_s == pytest.approx(39.0)
    assert s.alerts_per_intrusion == pytest.approx(1.5)  # C1: a1 + a2, C2: a3
    assert s.approach_recall == 1.0
    # GOSPA (c 100, p 1): t0..t0+4 truth {A} vs {T1}: 50 (localisation);
    # t0+5..t0+10 truth {A, B} vs {T1, T2}: 50 + 50 (B missed) + 50 (T2 false) = 150
    assert s.gospa_times == 11
    assert s.gospa_mean == pytest.approx((5 * 50 + 6 * 150) / 11)
    assert s.gospa_localisation == pytest.approx(50.0)
    assert s.gospa_missed == pytest.approx(6 * 50 / 11)
    assert s.gospa_false == pytest.approx(6 * 50 / 11)
    assert s.alerts_by_kind == {"crossing": 5, "approach": 1}
    per = {r["id"]: r for r in s.per_crossing}
    assert per["C1"]["alerts"] == ["a1", "a2"]
    assert not per["C3"]["detected"]


def test_cli_writes_json_and_plot(files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    tp, trp, ap = files
    out = tmp_path / "score.json"
    png = tmp_path / "plot.png"
    rc = limes(["score", "--truth", str(tp), "--tracks", str(trp), "--alerts", str(ap),
                "--json", str(out), "--plot", str(png)])  # fmt: skip
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["n_detected"] == 2
    assert math.isclose(data["tta_p50_s"], 30.0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reports_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    rc = limes(["score", "--truth", str(bad), "--tracks", str(bad), "--alerts", str(bad)])
    assert rc == 2


def test_alerts_belong_to_the_nearest_crossing(tmp_path: Path, site: Site) -> None:
    # two parties cross 80 m and 9 s apart (crossing-10min seed 7); each gets its own alert
    # 10 m from its crossing point, the first 2 s before its truth crossing
    header = {"type": "scenario", "name": "hand", "seed": 0, "start_t": T0, "duration_s": 60.0,
              "instrumented_km": 10.0}  # fmt: skip
    truth: list[dict[str, Any]] = [header]
    truth.append({"type": "crossing", "id": "P", "t": 1010.0, "x": X0, "y": Y0, "group_size": 1})
    truth.append({"type": "crossing", "id": "G", "t": 1019.0, "x": X0 + 80, "y": Y0,
                  "group_size": 5})  # fmt: skip
    tracks = [{"t": T0, "track_id": "T1", "x": X0, "y": Y0, "vx": 0.0, "vy": 0.0,
               "status": "confirmed"}]  # fmt: skip
    alerts = [
        {"alert_id": "p", "t": 1008.0, "kind": "crossing", "state": "open", **_latlon(site, 10, 0)},
        {"alert_id": "g", "t": 1030.0, "kind": "crossing", "state": "open", **_latlon(site, 90, 0)},
    ]
    tp = _lines(tmp_path / "truth.jsonl", truth)
    trp = _lines(tmp_path / "tracks.jsonl", tracks)
    ap = _lines(tmp_path / "alerts.jsonl", alerts)
    s = score(load_truth(tp), load_tracks(trp, site), load_alerts(ap, site))
    assert s.recall == 1.0
    assert s.n_false_crossing_alerts == 0
    per = {r["id"]: r for r in s.per_crossing}
    # each crossing is timed by its own alert, not by the other party's earlier one
    assert per["P"]["alerts"] == ["p"]
    assert per["G"]["alerts"] == ["g"]
    assert per["P"]["tta_s"] == pytest.approx(-2.0)
    assert per["G"]["tta_s"] == pytest.approx(11.0)
    assert s.tta_p50_s == pytest.approx(4.5)
    assert s.alerts_per_intrusion == 1.0
    # one alert for both parties (joined): both detected, both timed by it
    ap1 = _lines(tmp_path / "alerts1.jsonl", alerts[:1])
    s1 = score(load_truth(tp), load_tracks(trp, site), load_alerts(ap1, site))
    assert s1.recall == 1.0
    per1 = {r["id"]: r for r in s1.per_crossing}
    assert per1["G"]["alerts"] == ["p"]
    assert per1["G"]["tta_s"] == pytest.approx(-11.0)
    assert s1.alerts_per_intrusion == 1.0
