"""The scenario generator against the wire contract and its own ground truth.

The contract check here is written from CONTRACT.md with ``json`` alone (no drivers
code), so the simulator and the ingest path are checked independently.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import pytest
from pyproj import Geod

from geo import Site, default_site
from sim_sensors import Scenario, generate, preset

TOPIC_RE = re.compile(
    r"^limes/v1/(?:sensors/(fibre|thermal|msv)/([A-Za-z0-9_-]{1,64})/(events|status)"
    r"|patrols/([A-Za-z0-9_-]{1,64})/position)$"
)
FIBRE_CLASSES = {"walking", "running", "digging", "vehicle", "climbing", "unknown"}
TARGET_CLASSES = {"person", "group", "vehicle", "animal", "unknown"}
GEOD = Geod(ellps="WGS84")


def _num(v: object) -> TypeGuard[float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def contract_problems(topic: str, raw: bytes) -> list[str]:
    """Everything wrong with one MQTT message per CONTRACT.md (empty list: valid)."""
    m = TOPIC_RE.match(topic)
    if not m:
        return [f"bad topic {topic}"]
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    if not isinstance(obj, dict):
        return ["not a JSON object"]
    kind, device, leaf, unit = m.groups()
    errs: list[str] = []
    if unit is not None:
        for k in ("t", "lat", "lon"):
            if not _num(obj.get(k)):
                errs.append(f"patrol {k}")
        if obj.get("unit") != unit or not isinstance(obj.get("available"), bool):
            errs.append("patrol unit/available")
        return errs
    if leaf == "status":
        if obj == {"state": "offline"}:
            return []  # the last will
        if obj.get("device") != device or obj.get("state") not in ("online", "offline", "fault"):
            errs.append("status device/state")
        if not _num(obj.get("t")):
            errs.append("status t")
        if obj.get("state") == "fault" and not re.fullmatch(
            r"cut at \d+(\.\d+)?", str(obj.get("detail"))
        ):
            errs.append("fault detail")
        return errs
    if obj.get("device") != device:
        errs.append("device differs from topic")
    if not isinstance(obj.get("seq"), int) or not _num(obj.get("sent")):
        errs.append("seq/sent")
    evs = obj.get("events")
    if not isinstance(evs, list) or not 1 <= len(evs) <= 10_000 or len(raw) > 1 << 20:
        return [*errs, "events list"]
    if kind == "msv":
        p = obj.get("platform")
        if not isinstance(p, dict) or not all(_num(p.get(k)) for k in ("lat", "lon")):
            errs.append("platform")
        elif not 0 <= p.get("heading_deg", 0) < 360:
            errs.append("platform heading")
    for ev in evs:
        if not isinstance(ev, dict) or not _num(ev.get("t")):
            errs.append("event t")
            continue
        c = ev.get("confidence")
        if not _num(c) or not 0 <= c <= 1:
            errs.append("confidence")
        if kind == "fibre":
            if not _num(ev.get("chainage_m")) or ev["class"] not in FIBRE_CLASSES:
                errs.append("fibre event")
            if not _num(ev.get("extent_m", 10)) or not _num(ev.get("energy", 0)):
                errs.append("fibre extent/energy")
        elif kind == "thermal":
            b = ev.get("bearing_deg")
            if not _num(b) or not 0 <= b < 360 or ev.get("class") not in TARGET_CLASSES:
                errs.append("thermal event")
            if "range_m" in ev and not (_num(ev["range_m"]) and ev["range_m"] > 0):
                errs.append("thermal range")
            if "object_id" in ev and not isinstance(ev["object_id"], str):
                errs.append("object_id")
        else:
            a = ev.get("azimuth_deg")
            if not _num(a) or not 0 <= a < 360 or not _num(ev.get("range_m")):
                errs.append("msv event")
            if ev.get("class") not in TARGET_CLASSES:
                errs.append("msv class")
    return errs


@pytest.fixture(scope="module")
def site() -> Site:
    return default_site()


@pytest.fixture(scope="module")
def scenario(site: Site) -> Scenario:
    cfg = preset(
        "crossing-10min",
        seed=7,
        label_events=True,
        digging=True,
        fibre_cut_at_s=420.0,
        camera_offline_at_s=450.0,
        camera_offline_device="TH-02",
        camera_offline_mode="status",
        malformed_count=8,
    )
    return generate(site, cfg)


def _truth_track(sc: Scenario, oid: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tr = sc.truth
    idx = tr.object_samples(tr.ids.index(oid))
    return tr.t[idx], tr.x[idx], tr.y[idx]


def _events(sc: Scenario, kind: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for m in sc.messages:
        if m.label.startswith("events") and f"/{kind}/" in m.topic:
            b = json.loads(m.payload)
            out.extend((b["device"], b, ev) for ev in b["events"])
    return out


def test_same_seed_same_bytes(site: Site, tmp_path: Path) -> None:
    cfg = preset("crossing-10min", seed=11, malformed_count=4)
    a, b = generate(site, cfg), generate(site, cfg)
    a.write_replay(tmp_path / "a.jsonl")
    b.write_replay(tmp_path / "b.jsonl")
    a.write_truth(tmp_path / "ta.jsonl")
    b.write_truth(tmp_path / "tb.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "ta.jsonl").read_bytes() == (tmp_path / "tb.jsonl").read_bytes()
    c = generate(site, preset("crossing-10min", seed=12, malformed_count=4))
    c.write_replay(tmp_path / "c.jsonl")
    assert (tmp_path / "c.jsonl").read_bytes() != (tmp_path / "a.jsonl").read_bytes()


def test_messages_follow_the_contract(scenario: Scenario, tmp_path: Path) -> None:
    n_bad = 0
    for m in scenario.messages:
        errs = contract_problems(m.topic, m.payload)
        if m.label.startswith("malformed:"):
            assert errs, f"malformed message passed the contract check: {m}"
            n_bad += 1
        else:
            assert not errs, (m.label, m.topic, m.payload[:300], errs)
    assert n_bad == 8
    # the replay file: one JSON object per line, payload verbatim or payload_raw
    path = tmp_path / "r.jsonl"
    scenario.write_replay(path)
    lines = path.read_bytes().splitlines()
    assert len(lines) == len(scenario.messages)
    for line, m in zip(lines, scenario.messages, strict=True):
        rec = json.loads(line)
        assert rec["topic"] == m.topic
        if "payload" in rec:
            assert rec["payload"] == json.loads(m.payload)
        else:
            assert rec["payload_raw"].encode() == m.payload
            assert m.label.startswith("malformed:")
    arrivals = [m.arrival for m in scenario.messages]
    assert arrivals == sorted(arrivals)


def test_seq_per_device_counts_up_by_one(scenario: Scenario) -> None:
    seqs: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for m in scenario.messages:
        if m.label in ("events", "events:late"):
            b = json.loads(m.payload)
            seqs[b["device"]].append((b["sent"], b["seq"]))
    assert seqs
    for dev, rows in seqs.items():
        got = [s for _, s in sorted(rows)]
        assert got == list(range(1, len(got) + 1)), dev


def test_status_online_first_and_faults(scenario: Scenario, site: Site) -> None:
    first: dict[str, bytes] = {}
    for m in scenario.messages:
        if m.topic.startswith("limes/v1/sensors/"):
            dev = m.topic.split("/")[4]
            first.setdefault(dev, m.payload)
    assert set(first) == set(site.sensor_ids)
    assert all(json.loads(p)["state"] == "online" for p in first.values())
    cut = next(e for e in scenario.events if e["type"] == "fibre_cut")
    faults = [
        json.loads(m.payload)
        for m in scenario.messages
        if m.topic.endswith(f"{cut['id']}/status") and b'"fault"' in m.payload
    ]
    assert faults
    assert faults[0]["detail"] == f"cut at {cut['chainage_m']:.1f}"
    for dev, _, ev in _events(scenario, "fibre"):
        if dev == cut["id"] and ev["t"] >= cut["t"]:
            assert ev["chainage_m"] <= cut["chainage_m"]
    off = next(e for e in scenario.events if e["type"] == "camera_offline")
    assert all(ev["t"] < off["t"] for dev, _, ev in _events(scenario, "thermal") if dev == "TH-02")
    for m in scenario.messages:  # nothing sent after going offline (late ones may arrive)
        if "/TH-02/" in m.topic and not m.label.startswith("malformed"):
            b = json.loads(m.payload)
            assert b.get("sent", b.get("t")) <= off["t"] + 1.5, m
    last = [m for m in scenario.messages if m.topic.endswith("TH-02/status")][-1]
    assert json.loads(last.payload)["state"] == "offline"


def test_crossings_cross_the_border(scenario: Scenario, site: Site) -> None:
    crossings = [e for e in scenario.events if e["type"] == "crossing"]
    assert len(crossings) == 2
    for ev in crossings:
        t, x, y = _truth_track(scenario, ev["id"])
        _, d = site.border.project(x, y)  # geo's own projection, not the simulator's
        assert d[0] < 0 < d[-1]
        k = int(np.searchsorted(t, ev["t"]))
        assert d[k - 1] < 0 <= d[k]
        assert abs(site.border.project(ev["x"], ev["y"])[1]) < 1.0
        assert ev["sector"] == site.sector_id(int(site.sector_of_chainage(ev["chain"])))
        # group members within ~20 m: the group's spread is at most 20 m
        i = scenario.truth.ids.index(ev["id"])
        assert scenario.truth.spread[i] <= 20.0
        assert scenario.truth.group_size[i] == ev["group_size"]


def test_turnbacks_never_cross(scenario: Scenario, site: Site) -> None:
    tb = [e for e in scenario.events if e["type"] == "turnback"]
    assert tb
    for ev in tb:
        _, x, y = _truth_track(scenario, ev["id"])
        assert (site.border.project(x, y)[1] < 0).all()


def test_fibre_events_land_on_the_truth(scenario: Scenario, site: Site) -> None:
    errs: list[float] = []
    for dev, _, ev in _events(scenario, "fibre"):
        oid = ev["truth_id"]
        if oid in ("wind", "rain"):
            continue
        t, x, y = _truth_track(scenario, oid)
        tx, ty = np.interp(ev["t"], t, x), np.interp(ev["t"], t, y)
        _, _, chain_ev, _, _ = site.fibre_points(dev, ev["chainage_m"])
        chain_truth, dist = site.border.project(tx, ty)
        fc = site.fibre_by_id[dev]
        assert abs(float(dist) - fc.offset_m) < 50.0  # within the sensing radius
        errs.append(float(chain_ev) - float(chain_truth))
    assert len(errs) >= 10
    e = np.abs(np.asarray(errs))
    assert np.median(e) < 8.0  # sigma 5 m along the cable
    assert np.percentile(e, 95) < 20.0
    assert e.max() < 40.0


def _angle_err(a: float, b: float) -> float:
    return (a - b + 180.0) % 360.0 - 180.0


def test_thermal_bearings_point_at_the_truth(scenario: Scenario, site: Site) -> None:
    cams = site.thermal_by_id
    z: list[float] = []
    rz: list[float] = []
    for dev, _, ev in _events(scenario, "thermal"):
        if ev["truth_id"] == "clutter":
            continue
        t, x, y = _truth_track(scenario, ev["truth_id"])
        lon, lat = site.proj.to_lonlat(np.interp(ev["t"], t, x), np.interp(ev["t"], t, y))
        cam = cams[dev]
        az, _, dist = GEOD.inv(cam.lon, cam.lat, float(lon), float(lat))  # true azimuth
        z.append(_angle_err(ev["bearing_deg"], az % 360.0) / ev["bearing_sigma_deg"])
        if "range_m" in ev:
            slant = math.hypot(dist, cam.height_m)
            rz.append((ev["range_m"] - slant) / (0.25 * slant))
    zs = np.asarray(z)
    assert len(zs) > 100
    assert np.abs(zs).max() < 6.0  # a few sigma (Geod vs the planar model: < 0.05 deg)
    assert abs(zs.mean()) < 0.2
    assert 0.8 < zs.std() < 1.2
    assert 0.75 < np.std(rz) < 1.25


def test_msv_plots_point_at_the_truth(scenario: Scenario, site: Site) -> None:
    za: list[float] = []
    zr: list[float] = []
    for _, batch, ev in _events(scenario, "msv"):
        if ev["truth_id"] == "clutter":
            continue
        t, x, y = _truth_track(scenario, ev["truth_id"])
        lon, lat = site.proj.to_lonlat(np.interp(ev["t"], t, x), np.interp(ev["t"], t, y))
        p = batch["platform"]
        az, _, dist = GEOD.inv(p["lon"], p["lat"], float(lon), float(lat))
        za.append(_angle_err(ev["azimuth_deg"], az % 360.0) / 1.0)
        zr.append((ev["range_m"] - dist) / 15.0)
    assert len(za) > 100
    assert abs(np.mean(za)) < 0.2
    assert 0.8 < np.std(za) < 1.25
    assert abs(np.mean(zr)) < 0.2
    assert 0.8 < np.std(zr) < 1.25


def test_network_fractions_as_configured(site: Site) -> None:
    cfg = preset(
        "crossing-10min", seed=3, late_fraction=0.1, duplicate_fraction=0.05, malformed_count=12
    )
    sc = generate(site, cfg)
    labels = Counter(m.label for m in sc.messages)
    batches = labels["events"] + labels["events:late"]
    p_late = labels["events:late"] / batches
    p_dup = labels["events:duplicate"] / batches
    assert abs(p_late - 0.1) < 4 * math.sqrt(0.1 * 0.9 / batches)
    assert abs(p_dup - 0.05) < 4 * math.sqrt(0.05 * 0.95 / batches)
    kinds = Counter(lab for lab in labels.elements() if lab.startswith("malformed:"))
    assert kinds == {
        "malformed:bad_json": 3,
        "malformed:wrong_device": 3,
        "malformed:nan": 3,
        "malformed:not_object": 3,
    }
    # duplicates are byte-identical redeliveries of a batch that also arrives normally
    payloads = Counter(m.payload for m in sc.messages if m.label.startswith("events"))
    for m in sc.messages:
        if m.label == "events:duplicate":
            assert payloads[m.payload] == 2
    # late batches arrive after batches sent later than them: out of order
    sent_order = [json.loads(m.payload)["sent"] for m in sc.messages if m.label == "events"]
    assert sent_order != sorted(sent_order) or labels["events:late"] > 0
    late_sent = [json.loads(m.payload)["sent"] for m in sc.messages if m.label == "events:late"]
    late_arr = [m.arrival for m in sc.messages if m.label == "events:late"]
    assert all(a - s >= 2.0 for a, s in zip(late_arr, late_sent, strict=True))


def test_night_preset_is_valid_config() -> None:
    cfg = preset("night-6h")
    assert cfg.duration_s == 6 * 3600
    assert cfg.chain_from_m is None
