"""Pure ingest path: validation, per-event rejects, dedup windows, health, normalization."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import geo
from drivers import Ingest, ReplaySource, SeqVerdict
from drivers._deadletter import excerpt
from drivers._dedup import SeqWindows
from fusion.measurements import Cls, Kind

SITE = geo.default_site()
NOW = 1_764_000_000.0
FT = "limes/v1/sensors/fibre/FO-01/events"


def fibre(seq: int, events: list[dict[str, Any]] | None = None, **kw: Any) -> bytes:
    evs = events or [{"t": NOW, "chainage_m": 100.0, "class": "walking", "confidence": 0.5}]
    return json.dumps({"v": 1, "device": "FO-01", "seq": seq, "events": evs, **kw}).encode()


def ing() -> Ingest:
    return Ingest(SITE, started=NOW)


@pytest.mark.parametrize(
    ("topic", "payload", "code"),
    [
        ("limes/v1/sensors/radar/X/events", b"{}", "unknown_kind"),
        ("limes/v2/whatever", b"{}", "bad_topic"),
        (FT, b"x" * (1024 * 1024 + 1), "oversize"),
        ("limes/v1/sensors/fibre/NOPE/events", b"{}", "unknown_device"),
        ("limes/v1/sensors/thermal/FO-01/events", b"{}", "kind_mismatch"),
        (FT, b"{", "invalid_json"),
        (FT, b"[]", "schema"),
        (FT, fibre(1, v=2), "unsupported_version"),
        (FT, fibre(1, device="FO-02"), "device_mismatch"),
        (FT, fibre(-1), "schema"),
        (FT, json.dumps({"device": "FO-01", "seq": 1, "events": []}).encode(), "empty_batch"),
        (
            FT,
            fibre(1, [{"t": NOW, "chainage_m": 1.0, "class": "x", "confidence": 0.5}] * 10001),
            "too_many_events",
        ),
        (
            FT,
            fibre(1, [{"t": NOW + 90000, "chainage_m": 1.0, "class": "walking", "confidence": 1}]),
            "no_valid_events",
        ),
        (
            FT,
            fibre(1, [{"t": NOW, "chainage_m": 1e300, "class": "walking", "confidence": 1}]),
            "no_valid_events",
        ),
        (
            "limes/v1/patrols/P1/position",
            json.dumps(
                {"unit": "P1", "t": NOW, "lat": 45.0, "lon": 21.0, "team": "XX", "available": True}
            ).encode(),
            "bad_team",
        ),
        ("limes/v1/sensors/fibre/FO-01/status", b'{"state": "online", "t": 1.0}', "time_skew"),
    ],
)
def test_rejects_have_specific_reasons(topic: str, payload: bytes, code: str) -> None:
    i = ing()
    res = i.handle(topic, payload, NOW)
    assert not res.accepted
    assert [d.code for d in res.dead_letters] == [code]
    assert len(res.dead_letters[0].payload_excerpt.encode()) <= 512
    assert i.metrics.value("rejected_total", reason=code) == 1.0


def test_bad_events_rejected_alone_with_index() -> None:
    evs = [
        {"t": NOW, "chainage_m": 10.0 * k, "class": "running", "confidence": 0.9} for k in range(6)
    ]
    evs[1]["confidence"] = 1.5
    evs[3]["t"] = NOW - 2 * 86400
    evs[4]["class"] = "dancing"
    res = ing().handle(FT, fibre(5, evs), NOW)
    assert res.accepted
    assert res.meas.size == 3
    assert res.rejected_events == 3
    (dl,) = res.dead_letters
    assert dl.code == "partial_batch"
    assert [i for i, _ in dl.events or []] == [1, 3, 4]
    assert [r.split(":")[0] for _, r in dl.events or []] == ["schema", "time_skew", "schema"]


def test_rejected_batch_does_not_use_up_seq() -> None:
    i = ing()
    bad = fibre(3, [{"t": 0.0, "chainage_m": 1.0, "class": "walking", "confidence": 1}])
    assert not i.handle(FT, bad, NOW).accepted
    res = i.handle(FT, fibre(3), NOW)
    assert res.accepted
    assert not res.duplicate


def test_dedup_gap_late_duplicate_and_online_reset() -> None:
    i = ing()
    assert i.handle(FT, fibre(10), NOW).verdict is SeqVerdict.NEW
    r = i.handle(FT, fibre(13), NOW)
    assert r.lost == 2
    assert i.handle(FT, fibre(11), NOW).verdict is SeqVerdict.LATE
    assert i.handle(FT, fibre(11), NOW).duplicate
    assert i.handle(FT, fibre(13), NOW).duplicate
    assert i.snapshot(NOW)["FO-01"].lost_batches == 1  # 12 still missing
    st = i.handle("limes/v1/sensors/fibre/FO-01/status", b'{"state": "online"}', NOW)
    assert st.accepted
    r = i.handle(FT, fibre(0), NOW)
    assert r.verdict is SeqVerdict.NEW
    assert r.lost == 0


def test_heartbeat_online_does_not_let_a_redelivered_batch_through() -> None:
    i = ing()
    status = "limes/v1/sensors/fibre/FO-01/status"
    for seq in (1, 2, 3):
        assert i.handle(FT, fibre(seq, sent=NOW + seq), NOW + seq).verdict is SeqVerdict.NEW
    # a periodic online status (no restart), then a QoS 1 redelivery of batch 2
    assert i.handle(
        status, json.dumps({"state": "online", "t": NOW + 10}).encode(), NOW + 10
    ).accepted
    again = i.handle(FT, fibre(2, sent=NOW + 2), NOW + 11)
    assert again.duplicate
    assert len(again.meas) == 0
    # the device goes on with its seq: accepted, no gap counted
    on = i.handle(FT, fibre(4, sent=NOW + 12), NOW + 12)
    assert on.verdict is SeqVerdict.NEW
    assert on.lost == 0
    assert i.snapshot(NOW + 12)["FO-01"].lost_batches == 0
    # more heartbeats and batches: an old redelivery is still caught, gaps still counted
    for k, seq in ((20, 5), (30, 7)):
        beat = json.dumps({"state": "online", "t": NOW + k}).encode()
        assert i.handle(status, beat, NOW + k).accepted
        assert i.handle(FT, fibre(seq, sent=NOW + k + 1), NOW + k + 1).verdict is SeqVerdict.NEW
    assert i.handle(
        status, json.dumps({"state": "online", "t": NOW + 40}).encode(), NOW + 40
    ).accepted
    assert i.handle(FT, fibre(2, sent=NOW + 2), NOW + 41).duplicate
    assert i.snapshot(NOW + 41)["FO-01"].lost_batches == 1  # seq 6


def test_restart_starts_seq_again_and_old_batches_still_dedup() -> None:
    i = ing()
    status = "limes/v1/sensors/fibre/FO-01/status"
    for seq in (500, 501):
        assert i.handle(FT, fibre(seq, sent=NOW + seq / 100), NOW + 6).accepted
    # restart: online at NOW + 20, seq starts again at 1 (inside the old window's range)
    i.handle(status, json.dumps({"state": "online", "t": NOW + 20}).encode(), NOW + 20)
    r1 = i.handle(FT, fibre(1, sent=NOW + 21), NOW + 21)
    assert r1.verdict is SeqVerdict.NEW
    assert len(r1.meas) == 1
    assert i.handle(FT, fibre(1, sent=NOW + 21), NOW + 22).duplicate
    # a batch sent before the restart, delayed: judged against the old epoch
    assert i.handle(FT, fibre(501, sent=NOW + 5.01), NOW + 23).duplicate
    late = i.handle(FT, fibre(499, sent=NOW + 4.99), NOW + 23)
    assert late.verdict is SeqVerdict.LATE
    assert len(late.meas) == 1


def test_seq_window_is_bounded() -> None:
    w = SeqWindows(window=8)
    for s in range(100):
        assert w.check("d", s)[0] is SeqVerdict.NEW
    assert w.check("d", 95)[0] is SeqVerdict.DUPLICATE
    assert w.check("d", 50)[0] is SeqVerdict.RESTART  # beyond the window: a restart


def test_fibre_normalization_matches_site_geometry() -> None:
    res = ing().handle(
        FT,
        fibre(
            1,
            [
                {
                    "t": NOW,
                    "chainage_m": 1000.0,
                    "class": "digging",
                    "confidence": 0.8,
                    "extent_m": 20,
                    "energy": 3.5,
                },
            ],
        ),
        NOW,
    )
    (row,) = res.meas
    x, y, chain, tx, ty = SITE.fibre_points("FO-01", np.array([1000.0]))
    assert row["kind"] == Kind.FIBRE
    assert row["cls"] == Cls.DIGGING
    assert row["sensor"] == SITE.sensor_index["FO-01"]
    assert (row["x"], row["y"], row["chain"]) == (x[0], y[0], chain[0])
    assert math.isnan(row["az"])
    assert row["energy"] == np.float32(3.5)
    # covariance is symmetric positive definite, widest along the border tangent
    c = np.array([[row["cxx"], row["cxy"]], [row["cxy"], row["cyy"]]])
    w, v = np.linalg.eigh(c)
    assert w[0] > 0
    assert abs(abs(v[:, 1] @ np.array([tx[0], ty[0]])) - 1.0) < 1e-9


def test_thermal_bearing_only_and_camera_moved_by_status() -> None:
    i = ing()
    cam = SITE.thermal[0]
    topic = f"limes/v1/sensors/thermal/{cam.id}/events"
    ev = {"t": NOW, "bearing_deg": 90.0, "class": "person", "confidence": 0.9, "object_id": "o1"}
    b = {"device": cam.id, "seq": 1, "events": [ev, {**ev, "range_m": 800.0}]}
    m = i.handle(topic, json.dumps(b).encode(), NOW).meas
    assert math.isnan(m["r"][0])
    assert m["sr"][0] == cam.range_m / 2
    assert m["obj"][0] != 0
    assert m["obj"][1] == m["obj"][0]
    assert m["r"][1] == pytest.approx(math.sqrt(800.0**2 - cam.height_m**2))
    ox0 = m["ox"][0]
    st = {"device": cam.id, "t": NOW, "state": "online", "lat": cam.lat + 0.01, "lon": cam.lon}
    assert i.handle(
        f"limes/v1/sensors/thermal/{cam.id}/status", json.dumps(st).encode(), NOW
    ).accepted
    b["seq"] = 2
    m2 = i.handle(topic, json.dumps(b).encode(), NOW).meas
    assert m2["oy"][0] > m["oy"][0]
    assert m2["oy"][0] - m["oy"][0] == pytest.approx(1112, rel=0.01)  # 0.01 deg of latitude
    assert m2["ox"][0] == pytest.approx(ox0, abs=200)


def test_msv_plot() -> None:
    b = {
        "device": "MSV-1",
        "seq": 1,
        "platform": {"lat": 45.5, "lon": 21.0, "heading_deg": 0},
        "events": [
            {
                "t": NOW,
                "range_m": 1000.0,
                "azimuth_deg": 0.0,
                "class": "vehicle",
                "confidence": 0.6,
                "radial_velocity_mps": -2.0,
            }
        ],
    }
    (row,) = ing().handle("limes/v1/sensors/msv/MSV-1/events", json.dumps(b).encode(), NOW).meas
    assert row["kind"] == Kind.MSV
    assert row["cls"] == Cls.VEHICLE
    assert row["vr"] == -2.0
    assert math.hypot(row["x"] - row["ox"], row["y"] - row["oy"]) == pytest.approx(1000.0)


def test_health_cut_heartbeat_and_last_will() -> None:
    i = ing()
    status = "limes/v1/sensors/fibre/FO-02/status"
    r = i.handle(status, b'{"state": "fault", "detail": "cut at 1020.0"}', NOW)
    (ev,) = r.health
    assert ev.state == "fault"
    cov = ev.coverage
    assert cov is not None
    fc = SITE.fibre_by_id["FO-02"]
    assert (cov.cable_from_m, cov.cable_to_m) == (1020.0, fc.cable_length_m)
    assert cov.border_from_m == pytest.approx(fc.from_m + 1000.0)
    assert i.metrics.value("coverage_loss_m") == pytest.approx(cov.border_to_m - cov.border_from_m)
    # events: alive, but the fault stays until a status online
    assert i.handle(FT, fibre(1), NOW).health[0].state == "online"
    hb = SITE.heartbeat_s
    evs = i.tick(NOW + hb + 1)
    assert {e.device for e in evs if e.state == "offline"} >= {"FO-01", "TH-01"}
    assert i.snapshot(NOW + hb + 1)["FO-02"].state == "fault"
    r = i.handle("limes/v1/sensors/fibre/FO-01/status", b'{"state": "offline"}', NOW + hb + 2)
    assert r.status is not None
    assert r.status.t == NOW + hb + 2
    assert i.snapshot(NOW + hb + 2)["FO-01"].state == "offline"


def test_patrol_and_ack() -> None:
    i = ing()
    p = {"unit": "RO-P01", "t": NOW, "lat": 45.0, "lon": 21.0, "team": "JOINT", "available": True}
    r = i.handle("limes/v1/patrols/RO-P01/position", json.dumps(p).encode(), NOW)
    assert r.patrol is not None
    assert r.patrol.team == "JOINT"
    a = i.handle("limes/v1/alerts/A-17/ack", b'{"operator": "ion", "t": 1764000000}', NOW)
    assert a.ack is not None
    assert a.ack.alert_id == "A-17"


def test_excerpt_is_bounded_utf8() -> None:
    s = excerpt(("é" * 600).encode())
    assert len(s.encode()) <= 512
    assert set(s) == {"é"}


async def test_replay_same_path_and_bad_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"topic": FT, "payload": json.loads(fibre(1))}),
        "this is not json",
        json.dumps({"topic": FT, "payload_raw": "{oops"}),
        json.dumps({"topic": FT}),
        json.dumps({"topic": FT, "payload": json.loads(fibre(1))}),
        json.dumps({"topic": FT, "payload": json.loads(fibre(2))}),
    ]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out: list[Any] = []

    async def sink(res: Any) -> None:
        out.append(res)

    n = await ReplaySource(path).run(ing(), sink)
    assert n == 6
    codes = [r.dead_letters[0].code if r.dead_letters else "" for r in out]
    assert codes == ["", "bad_replay_line", "invalid_json", "bad_replay_line", "", ""]
    assert [r.duplicate for r in out] == [False, False, False, False, True, False]
    assert out[0].meas.size == 1
