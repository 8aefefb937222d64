"""Pure alert engine: rules, keying, lifecycle, rate limits, tasking, CCP (no I/O)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import geo
from alerts import (
    Ack,
    Alert,
    AlertEngine,
    AlertWrite,
    CcpRequest,
    Decision,
    HealthEvent,
    Input,
    OperatorAction,
    PatrolPosition,
    TaskingOrder,
    Tick,
    TrackMerge,
    TrackUpdate,
    priority_for,
)
from alerts.scenario import approach_path, crossing_path, track_at
from geo.site import AlertSettings

T0 = 1_764_000_000.0
CH = 60_000.0  # S03


@pytest.fixture(scope="module")
def site() -> geo.Site:
    return geo.default_site()


def run(engine: AlertEngine, events: Iterable[Input]) -> list[Decision]:
    return [engine.handle(e) for e in events]


def alerts_of(ds: Iterable[Decision], kind: str | None = None) -> list[Alert]:
    out = [a for d in ds for a in d.alerts]
    return [a for a in out if kind is None or a.kind == kind]


def opened(ds: Iterable[Decision], kind: str | None = None) -> list[Alert]:
    return [a for a in alerts_of(ds, kind) if a.state == "open" and a.alert_id]


def ids(alerts: Iterable[Alert]) -> set[str]:
    return {a.alert_id for a in alerts}


def interleave(paths: list[list[TrackUpdate]]) -> list[TrackUpdate]:
    return sorted((u for p in paths for u in p), key=lambda u: (u.t, u.track_id))


# -- crossing ---------------------------------------------------------------------------------


def test_crossing_raises_exactly_one_alert(site: geo.Site) -> None:
    e = AlertEngine(site)
    ds = run(e, crossing_path(site, "T1", T0, CH))
    crossing = alerts_of(ds, "crossing")
    assert len(ids(crossing)) == 1
    assert [a.state for a in crossing] == ["open"]
    a = crossing[0]
    assert a.track_id == "T1"
    assert a.sector == "S03"
    assert a.priority == 2
    assert a.sensors == ["FO-01", "TH-01"]
    assert "crossed from RS into RO" in a.summary
    # the crossing is reported where the track is on the home side beyond the hysteresis
    assert a.t > T0
    x, y = site.proj.to_xy(a.lon, a.lat)
    _, sd, _ = site.locate(x, y)
    assert float(sd) >= site.cfg.alerts.crossing_hysteresis_m - 1e-6


def test_jitter_on_the_line_is_not_a_crossing(site: geo.Site) -> None:
    e = AlertEngine(site)
    ups = [track_at(site, "J", T0 + i, CH, (-1) ** i * 8.0) for i in range(200)]
    assert alerts_of(run(e, ups), "crossing") == []


def test_animals_raise_nothing(site: geo.Site) -> None:
    e = AlertEngine(site)
    assert alerts_of(run(e, crossing_path(site, "A", T0, CH, cls="animal"))) == []


def test_track_first_seen_on_home_side_is_not_a_crossing(site: geo.Site) -> None:
    e = AlertEngine(site)
    ups = crossing_path(site, "H", T0, CH, start_sd=30.0, end_sd=300.0)
    assert alerts_of(run(e, ups), "crossing") == []


def test_recrossing_needs_a_new_neighbour_side_sighting(site: geo.Site) -> None:
    s = msgspec.structs.replace(site.cfg.alerts, cooldown_s=0.0)
    e = AlertEngine(site, s)
    ds = run(e, crossing_path(site, "T", T0, CH))
    (a,) = opened(ds, "crossing")
    e.handle(OperatorAction(alert_id=a.alert_id, action="resolve", who="op", t=T0 + 400))
    # the track stays on the home side: no new crossing
    later = [track_at(site, "T", T0 + 500 + i, CH, 150.0) for i in range(30)]
    assert alerts_of(run(e, later), "crossing") == []
    # back to Serbia and across again: a second, distinct crossing
    again = crossing_path(site, "T", T0 + 1000, CH)
    second = opened(run(e, again), "crossing")
    assert len(second) == 1
    assert second[0].alert_id != a.alert_id


def test_fibre_only_crossing_low_priority_until_corroborated(site: geo.Site) -> None:
    # optional since the replay tuning (default: wait for corroboration)
    e = AlertEngine(site, msgspec.structs.replace(site.cfg.alerts, fibre_uncorroborated_alert=True))
    first = track_at(site, "F", T0, 40_000.0, 5.0, status="tentative", sensors=["FO-02"])
    (a,) = e.handle(first).alerts
    assert a.kind == "crossing"
    assert a.priority == 4
    assert "not corroborated" in a.summary
    # a second fibre event 3 s later at the same place corroborates it
    second = track_at(site, "F", T0 + 3, 40_000.0, 5.0, status="tentative", sensors=["FO-02"])
    (b,) = e.handle(second).alerts
    assert b.alert_id == a.alert_id
    assert b.priority == 2
    assert b.state == "open"


def test_fibre_only_crossing_corroborated_by_direction(site: geo.Site) -> None:
    e = AlertEngine(site)
    u = track_at(site, "F", T0, 40_000.0, 5.0, v_home=1.2, sensors=["FO-02"])
    (a,) = e.handle(u).alerts
    assert a.kind == "crossing"
    assert a.priority == 2


# -- fused fibre + camera track first seen at the line (issue 4) ------------------------------

FUSED = ("FO-01", "TH-01")  # a fibre unit and a thermal camera contributed


def line_path(
    site: geo.Site,
    track_id: str,
    *,
    v_home: float,
    v_along: float = 0.0,
    start_sd: float = 3.0,
    n: int = 60,
    **kw: object,
) -> list[TrackUpdate]:
    """A confirmed track first reported at ``start_sd`` (at the cable: the single camera's
    approach track was tentative, so never reported) moving ``v_home`` / ``v_along`` m/s."""
    return [
        track_at(
            site, track_id, T0 + i, CH + v_along * i, start_sd + v_home * i,
            v_home=v_home, v_along=v_along, **kw,  # type: ignore[arg-type]
        )
        for i in range(n)
    ]  # fmt: skip


def sd_of(site: geo.Site, a: Alert) -> float:
    x, y = site.proj.to_xy(a.lon, a.lat)
    return float(site.locate(x, y)[1])


@pytest.mark.parametrize("start_sd", [3.0, -12.0])
def test_fused_track_first_seen_at_the_line_heading_home_is_one_crossing(
    site: geo.Site, start_sd: float
) -> None:
    e = AlertEngine(site)
    ds = run(e, line_path(site, "L", v_home=1.2, start_sd=start_sd, sensors=FUSED))
    crossing = alerts_of(ds, "crossing")
    assert len(ids(crossing)) == 1
    (a,) = opened(ds, "crossing")
    assert a.track_id == "L"
    assert a.priority == 2
    assert a.sensors == list(FUSED)
    assert "crossed from RS into RO" in a.summary
    # raised at its first update home side (sd >= 0), without the 10 m hysteresis
    first_home = next(i for i in range(60) if start_sd + 1.2 * i >= 0.0)
    assert a.t == T0 + first_home
    assert -0.01 <= sd_of(site, a) < site.cfg.alerts.crossing_hysteresis_m
    # never seen on the neighbour side: no joint-patrol request
    assert all(not d.ccp for d in ds)


@pytest.mark.parametrize(
    ("why", "kw"),
    [
        ("along the line", {"v_home": 0.0, "v_along": 1.5}),
        ("along, drifting home", {"v_home": 0.3, "v_along": 1.5}),  # heading 0.2 < 0.3
        ("heading away", {"v_home": -1.2}),
        ("camera only", {"v_home": 1.2, "sensors": ("TH-01", "TH-02")}),
        ("position unknown", {"v_home": 1.2, "pos_sigma_m": 50.0}),
        ("vehicle", {"v_home": 1.2, "cls": "vehicle"}),
        ("faster than people", {"v_home": 6.0}),
        ("low class probability", {"v_home": 1.2, "class_p": 0.4}),
        ("first seen home side", {"v_home": 1.2, "start_sd": 25.0}),
    ],
)
def test_fused_track_at_the_line_not_crossing(
    site: geo.Site, why: str, kw: dict[str, object]
) -> None:
    e = AlertEngine(site)
    kw = {"sensors": FUSED, **kw}
    assert alerts_of(run(e, line_path(site, "N", **kw)), "crossing") == [], why  # type: ignore[arg-type]


def test_fused_track_coming_from_home_side_and_back_is_not_a_crossing(site: geo.Site) -> None:
    # a patrol on foot walks from the road to the cable and back home
    e = AlertEngine(site)
    out = [track_at(site, "P", T0 + i, CH, 60.0 - 1.2 * i, v_home=-1.2, sensors=FUSED)
           for i in range(48)]  # fmt: skip
    back = [track_at(site, "P", T0 + 48 + i, CH, 2.4 + 1.2 * i, v_home=1.2, sensors=FUSED)
            for i in range(48)]  # fmt: skip
    assert alerts_of(run(e, out + back), "crossing") == []


def test_fused_track_heading_home_only_past_the_line_band_is_not_a_line_crossing(
    site: geo.Site,
) -> None:
    # first seen at the cable, standing; next localised 25 m in, heading home (a ghost that
    # coasted across: night-6h seed 1, T047454)
    e = AlertEngine(site)
    stand = [track_at(site, "J", T0 + i, CH, 3.0, sensors=FUSED) for i in range(5)]
    jump = [track_at(site, "J", T0 + 5 + i, CH, 25.0 + 1.2 * i, v_home=1.2, sensors=FUSED)
            for i in range(30)]  # fmt: skip
    assert alerts_of(run(e, stand + jump), "crossing") == []


def test_line_crossing_is_consumed(site: geo.Site) -> None:
    # the track crosses at the line, is resolved, walks back to the line and home again:
    # no second crossing without a new neighbour-side sighting
    s = msgspec.structs.replace(site.cfg.alerts, cooldown_s=0.0)
    e = AlertEngine(site, s)
    ds = run(e, line_path(site, "C", v_home=1.2, sensors=FUSED))
    (a,) = opened(ds, "crossing")
    e.handle(OperatorAction(alert_id=a.alert_id, action="resolve", who="op", t=T0 + 100))
    again = [track_at(site, "C", T0 + 200 + i, CH, 5.0 + 1.2 * i, v_home=1.2, sensors=FUSED)
             for i in range(30)]  # fmt: skip
    assert opened(run(e, again), "crossing") == []


# -- one alert per intrusion ------------------------------------------------------------------


def test_group_of_twenty_tracks_raises_one_alert(site: geo.Site) -> None:
    e = AlertEngine(site)
    paths = [crossing_path(site, f"G{j:02d}", T0, CH + 2.0 * j) for j in range(20)]
    ds = run(e, interleave(paths))
    for kind in ("crossing", "approach"):
        assert len(ids(alerts_of(ds, kind))) == 1, kind
    crossing = alerts_of(ds, "crossing")
    # published on open and when the group got big enough to raise the priority
    assert crossing[0].priority == 2
    assert crossing[-1].priority == 1
    (aid,) = ids(crossing)
    assert e.alerts[aid].group_size == 20
    assert "group of 20" in e.alerts[aid].summary
    # one CCP request for the intrusion, not twenty
    assert sum(len(d.ccp) for d in ds) == 1


def test_group_track_raises_one_high_priority_alert(site: geo.Site) -> None:
    e = AlertEngine(site)
    ds = run(e, crossing_path(site, "G", T0, CH, cls="group", group_size=20))
    (a,) = opened(ds, "crossing")
    assert a.priority == 1
    assert "group of 20" in a.summary


def test_merge_rekeys_and_merges_alerts(site: geo.Site) -> None:
    e = AlertEngine(site)
    s = msgspec.structs.replace(site.cfg.alerts, group_radius_m=1.0)
    e = AlertEngine(site, s)
    ds = run(
        e, interleave([crossing_path(site, "A", T0, CH), crossing_path(site, "B", T0, CH + 300)])
    )
    a_id = e.by_key[("A", "crossing")]
    b_id = e.by_key[("B", "crossing")]
    assert a_id != b_id
    d = e.handle(TrackMerge(t=T0 + 400, old_track_id="B", new_track_id="A"))
    # the younger alert is resolved as merged; both keys now lead to the survivor
    keep, drop = sorted([e.alerts[a_id], e.alerts[b_id]], key=lambda r: (r.opened_t, r.alert_id))
    assert drop.state == "resolved"
    assert drop.resolved_why == f"merged into {keep.alert_id}"
    assert e.by_key[("A", "crossing")] == e.by_key[("B", "crossing")] == keep.alert_id
    resolved = [a.alert_id for a in d.alerts if a.state == "resolved" and a.kind == "crossing"]
    assert resolved == [drop.alert_id]
    # a lost update with merged_into re-keys too
    run(e, crossing_path(site, "C", T0 + 500, CH + 900))
    c_id = e.by_key[("C", "crossing")]
    e.handle(track_at(site, "C", T0 + 800, CH + 900, 150.0, status="lost", merged_into="D"))
    assert e.by_key[("D", "crossing")] == c_id
    assert e.alerts[c_id].track_id == "D"
    assert ds  # silence "unused"


def test_cooldown_before_reraise(site: geo.Site) -> None:
    e = AlertEngine(site)
    path = crossing_path(site, "V", T0, CH, cls="vehicle", start_sd=-600.0, speed=3.0)
    (v,) = opened(run(e, path[:50]), "vehicle")
    e.handle(OperatorAction(alert_id=v.alert_id, action="resolve", who="op", t=T0 + 60, why="ok"))
    # still a vehicle near the border: no re-raise within the cool-down ...
    assert opened(run(e, path[60:100]), "vehicle") == []
    assert e.counters["suppressed_cooldown"] == 1
    # ... and a new alert after it
    later = [track_at(site, "V", T0 + 400 + i, CH, -50.0, cls="vehicle") for i in range(3)]
    (again,) = opened(run(e, later), "vehicle")
    assert again.alert_id != v.alert_id


def test_rate_limit_overflow_is_counted_and_reported(site: geo.Site) -> None:
    s = msgspec.structs.replace(
        site.cfg.alerts, rate_limit=3, group_radius_m=1.0, fibre_uncorroborated_alert=True
    )
    e = AlertEngine(site, s)
    # 10 separate fibre-only disturbances 200 m apart along S03 (a noisy stretch)
    ups = [
        track_at(
            site, f"N{i}", T0 + i, 58_000.0 + 200 * i, 5.0, sensors=["FO-02"], status="tentative"
        )
        for i in range(10)
    ]
    ds = run(e, ups)
    new = opened(ds)
    normal = [a for a in new if a.track_id is not None]
    overflow = [a for a in new if a.track_id is None]
    assert len(normal) == 3
    assert len(overflow) == 1
    assert e.counters["suppressed_rate"] == 7
    rec = e.alerts[overflow[0].alert_id]
    assert rec.overflow == {"crossing": 7}
    assert "7 further alert(s)" in rec.summary
    # the overflow alert is written every time its count changes (visible in the store)
    writes = [
        op for d in ds for op in d.ops if isinstance(op, AlertWrite) and op.alert_id == rec.alert_id
    ]
    assert len(writes) == 7


# -- lifecycle --------------------------------------------------------------------------------


def test_unacked_alert_escalates_and_acked_one_does_not(site: geo.Site) -> None:
    e = AlertEngine(site)
    ds = run(e, crossing_path(site, "T", T0, CH))
    (cr,) = opened(ds, "crossing")
    (ap,) = opened(ds, "approach")
    # the approach (opened at T0) was escalated during the walk; ack the crossing
    assert e.alerts[ap.alert_id].state == "escalated"
    d = e.handle(Ack(alert_id=cr.alert_id, operator="ion.popescu", t=cr.t + 30, note="seen"))
    assert [a.state for a in d.alerts] == ["acknowledged"]
    d = e.handle(Tick(t=cr.t + 10_000))
    assert [a.alert_id for a in d.alerts] == []
    assert e.alerts[cr.alert_id].state == "acknowledged"


def test_escalation_time_and_audit(site: geo.Site) -> None:
    e = AlertEngine(site)
    d0 = e.handle(HealthEvent(t=T0, device="TH-01", state="offline"))
    (a,) = d0.alerts
    assert e.handle(Tick(t=T0 + 119)).alerts == []
    d = e.handle(Tick(t=T0 + 500))
    (esc,) = d.alerts
    assert esc.alert_id == a.alert_id
    assert esc.state == "escalated"
    assert esc.t == T0 + e.s.escalate_after_s
    (w,) = [op for op in d.ops if isinstance(op, AlertWrite)]
    assert w.audit["who"] == "system"
    assert w.audit["event"] == "escalate"
    assert "not acknowledged" in w.audit["why"]


def test_transitions_and_rejections(site: geo.Site) -> None:
    e = AlertEngine(site)
    (a,) = e.handle(HealthEvent(t=T0, device="TH-01", state="fault", detail="lens")).alerts
    aid = a.alert_id
    assert e.handle(Ack(alert_id="nope", operator="x", t=T0)).rejected == "unknown alert nope"
    d = e.handle(OperatorAction(alert_id=aid, action="escalate", who="sup", t=T0 + 1, why="big"))
    assert [x.state for x in d.alerts] == ["escalated"]
    d = e.handle(OperatorAction(alert_id=aid, action="escalate", who="sup", t=T0 + 2))
    assert d.rejected is not None
    assert d.alerts == []
    # an escalated alert never acknowledged can be acknowledged
    d = e.handle(Ack(alert_id=aid, operator="op", t=T0 + 3))
    assert [x.state for x in d.alerts] == ["acknowledged"]
    # a repeated ack is audited, not published
    d = e.handle(Ack(alert_id=aid, operator="op2", t=T0 + 4))
    assert d.alerts == []
    assert len(d.ops) == 1
    d = e.handle(OperatorAction(alert_id=aid, action="resolve", who="op", t=T0 + 5, why="fixed"))
    (r,) = d.alerts
    assert r.state == "resolved"
    assert r.recommended_units == []
    (w,) = d.ops
    assert isinstance(w, AlertWrite)
    assert (w.audit["who"], w.audit["why"], w.audit["t"]) == ("op", "fixed", repr(T0 + 5))
    assert not w.is_open
    assert e.handle(Ack(alert_id=aid, operator="op", t=T0 + 6)).rejected is not None
    assert e.handle(OperatorAction(alert_id=aid, action="resolve", who="o", t=T0 + 7)).rejected


# -- health -------------------------------------------------------------------------------------


def test_fibre_cut_names_the_blind_segment(site: geo.Site) -> None:
    e = AlertEngine(site)
    fc = site.fibre_by_id["FO-02"]  # direction +1 from 37438 m, cable factor 1.02
    d = e.handle(HealthEvent(t=T0, device="FO-02", state="fault", detail="cut at 12345.0"))
    (a,) = d.alerts
    lo = fc.from_m + 12345.0 / fc.cable_factor
    assert a.kind == "sensor_fault"
    assert a.sensors == ["FO-02"]
    assert a.priority == 2
    assert f"blind border chainage {lo:.0f}-{fc.to_m:.0f} m" in a.summary
    assert a.sector == site.sector_id(int(site.sector_of_chainage(lo)))
    # the same fault again, or heartbeat silence after it, is the same alert
    assert (
        e.handle(
            HealthEvent(t=T0 + 5, device="FO-02", state="fault", detail="cut at 12345.0")
        ).alerts
        == []
    )
    d = e.handle(HealthEvent(t=T0 + 50, device="FO-02", state="online"))
    assert [(x.alert_id, x.state) for x in d.alerts] == [(a.alert_id, "resolved")]


def test_fibre_cut_direction_minus_one(site: geo.Site) -> None:
    e = AlertEngine(site)
    fc = site.fibre_by_id["FO-01"]  # direction -1: cable 0 at to_m
    (a,) = e.handle(HealthEvent(t=T0, device="FO-01", state="fault", detail="cut at 1020")).alerts
    assert f"blind border chainage {fc.from_m:.0f}-{fc.to_m - 1000.0:.0f} m" in a.summary


def test_device_offline_raises_one_sensor_fault(site: geo.Site) -> None:
    e = AlertEngine(site)
    d1 = e.handle(HealthEvent(t=T0, device="TH-01", state="offline"))
    d2 = e.handle(HealthEvent(t=T0 + 1, device="TH-01", state="offline"))
    assert len(d1.alerts) == 1
    assert d2.alerts == []
    assert e.handle(HealthEvent(t=T0 + 2, device="TH-01", state="unknown")).alerts == []


# -- other rules --------------------------------------------------------------------------------


def test_approach_produces_ccp_request(site: geo.Site) -> None:
    e = AlertEngine(site)
    ds = run(e, approach_path(site, "P", T0, CH, cls="group", group_size=4))
    (a,) = opened(ds, "approach")
    (req,) = [r for d in ds for r in d.ccp]
    assert isinstance(req, CcpRequest)
    assert req.alert_id == a.alert_id
    assert req.group_size == 4
    assert req.cls == "group"
    assert req.proposed_unit is not None
    assert req.proposed_unit.startswith("RO-")
    assert req.heading_deg is not None
    assert 0.0 <= req.heading_deg < 360.0
    wire = msgspec.json.decode(msgspec.json.encode(req))
    assert set(wire) == {
        "v", "request_id", "alert_id", "t", "lat", "lon", "group_size", "class",
        "heading_deg", "proposed_unit",
    }  # fmt: skip
    assert "track_id" not in wire
    assert "sensors" not in wire


def test_ccp_heading_is_true_north(site: geo.Site) -> None:
    from alerts.geometry import true_heading_deg

    x, y = site.proj.to_xy(21.0, 45.5)
    gamma = math.degrees(float(site.proj.true_north_grid_az(x, y)))
    # a velocity along grid north has true heading -gamma
    h = true_heading_deg(site, float(x), float(y), 0.0, 1.0)
    assert h is not None
    assert math.isclose(h, (-gamma) % 360.0, abs_tol=1e-9)
    assert true_heading_deg(site, float(x), float(y), 0.0, 0.0) is None


def test_approach_moving_away_is_not_an_approach(site: geo.Site) -> None:
    e = AlertEngine(site)
    ups = crossing_path(site, "W", T0, CH, start_sd=-100.0, end_sd=-600.0, speed=-1.5)
    assert alerts_of(run(e, ups), "approach") == []


def test_digging_needs_repeated_events_at_one_chainage(site: geo.Site) -> None:
    e = AlertEngine(site)
    one = [track_at(site, "D1", T0, CH, 5.0, cls="digging", sensors=["FO-02"])]
    assert opened(run(e, one)) == []
    rep = [
        track_at(site, f"D{i}", T0 + 10 * i, CH + i, 5.0, cls="digging", sensors=["FO-02"])
        for i in range(1, 6)
    ]
    ds = run(e, rep)
    (a,) = opened(ds)
    assert a.kind == "digging"
    assert "tunnelling" in a.summary
    # digging 1 km away is a different place
    far = [
        track_at(site, f"E{i}", T0 + 100 + 10 * i, CH + 1000, 5.0, cls="digging", sensors=["FO-02"])
        for i in range(5)
    ]
    (b,) = opened(run(e, far))
    assert b.alert_id != a.alert_id


def test_vehicle_and_loitering(site: geo.Site) -> None:
    e = AlertEngine(site)
    ups = [track_at(site, "L", T0 + i, CH, -80.0 + (i % 3), cls="vehicle") for i in range(400)]
    ds = run(e, ups)
    assert len(ids(alerts_of(ds, "vehicle"))) == 1
    (lo,) = opened(ds, "loitering")
    assert lo.t >= T0 + e.s.loiter_s
    walker = [track_at(site, "M", T0 + i, CH + 2 * i, -80.0) for i in range(400)]
    assert alerts_of(run(e, walker), "loitering") == []


def test_priority_table() -> None:
    s = AlertSettings()
    assert priority_for("crossing", "person", 0.9, 1, s) == 2
    assert priority_for("crossing", "group", 0.9, 5, s) == 1
    assert priority_for("crossing", "person", 0.2, 1, s) == 3
    assert priority_for("crossing", "person", 0.9, 1, s, corroborated=False) == 4
    assert priority_for("approach", "vehicle", 0.9, 1, s) == 2
    assert priority_for("loitering", "person", 0.1, 1, s) == 4
    assert priority_for("sensor_fault", "unknown", 1.0, 1, s, fibre_cut=True) == 2
    assert priority_for("sensor_fault", "unknown", 1.0, 1, s) == 3


# -- tasking ----------------------------------------------------------------------------------


def test_nearest_unit_ranking_on_a_hand_made_layout(site: geo.Site) -> None:
    e = AlertEngine(site)
    e.patrols.clear()
    lat, lon = 45.70, 21.00
    deg = 1.0 / 111_195.0  # about one metre of latitude
    layout = [
        ("RO-A", "RO", 900, True),
        ("RO-B", "RO", 300, True),
        ("RO-C", "RO", 100, False),  # nearest, not available
        ("RS-D", "RS", 50, True),  # neighbour team: not recommended
        ("JT-E", "JOINT", 600, True),
        ("RO-F", "RO", 2000, True),
    ]
    for unit, team, dist, avail in layout:
        e.handle(
            PatrolPosition(
                unit=unit, t=T0, lat=lat + dist * deg, lon=lon, team=team, available=avail
            )
        )
    e.now = T0
    assert e.rank_units(lat, lon) == ["RO-B", "JT-E", "RO-A"]
    assert e.rank_units(lat, lon, count=10) == ["RO-B", "JT-E", "RO-A", "RO-F"]
    # stale positions are not recommended
    e.now = T0 + e.s.patrol_stale_s + 1
    assert e.rank_units(lat, lon) == []


def test_assign_sends_tasking_and_blocks_the_unit(site: geo.Site) -> None:
    e = AlertEngine(site)
    ds = run(e, crossing_path(site, "T", T0, CH))
    (a,) = opened(ds, "crossing")
    unit = a.recommended_units[0]
    d = e.handle(
        OperatorAction(alert_id=a.alert_id, action="assign", who="op", t=T0 + 300, unit=unit)
    )
    (order,) = d.tasking
    assert isinstance(order, TaskingOrder)
    assert order.unit == unit
    assert order.alert_id == a.alert_id
    assert order.assigned_by == "op"
    (pub,) = d.publishes
    assert pub.topic == f"limes/v1/tasking/{unit}"
    assert pub.qos == 1
    assert unit not in e.rank_units(a.lat, a.lon, count=20)
    e.handle(OperatorAction(alert_id=a.alert_id, action="resolve", who="op", t=T0 + 900))
    assert unit in e.rank_units(a.lat, a.lon, count=20)


def test_auto_dispatch(site: geo.Site) -> None:
    s = msgspec.structs.replace(site.cfg.alerts, auto_dispatch_priority=2)
    e = AlertEngine(site, s)
    ds = run(e, crossing_path(site, "T", T0, CH))
    orders = [o for d in ds for o in d.tasking]
    assert [o.assigned_by for o in orders] == ["auto"]
    assert orders[0].kind == "crossing"


# -- determinism and properties -----------------------------------------------------------------


def _scenario(site: geo.Site) -> list[Input]:
    ev: list[Input] = []
    ev += interleave([crossing_path(site, f"G{j}", T0, CH + 3 * j) for j in range(5)])
    ev.append(HealthEvent(t=T0 + 100, device="FO-02", state="fault", detail="cut at 500"))
    ev += approach_path(site, "P", T0 + 200, 90_000.0)
    ev.append(Tick(t=T0 + 2000))
    return ev


def test_replay_is_deterministic(site: geo.Site) -> None:
    a = run(AlertEngine(site), _scenario(site))
    b = run(AlertEngine(site), _scenario(site))
    enc = msgspec.json.encode
    assert [enc(x.alerts) for x in a] == [enc(x.alerts) for x in b]
    assert [enc(x.ops) for x in a] == [enc(x.ops) for x in b]
    assert [[p.payload for p in x.publishes] for x in a] == [
        [p.payload for p in x.publishes] for x in b
    ]


_ALLOWED = {
    ("open", "acknowledged"), ("open", "escalated"), ("open", "resolved"),
    ("acknowledged", "escalated"), ("acknowledged", "resolved"),
    ("escalated", "acknowledged"), ("escalated", "resolved"),
}  # fmt: skip

_ops = st.lists(
    st.tuples(
        st.sampled_from(["ack", "escalate", "resolve", "assign", "tick", "health", "track"]),
        st.integers(0, 3),
        st.floats(0, 400),
    ),
    max_size=40,
)


_PROPERTY_INPUTS: list[tuple[geo.Site, list[TrackUpdate], list[TrackUpdate]]] = []


def _property_inputs() -> tuple[geo.Site, list[TrackUpdate], list[TrackUpdate]]:
    if not _PROPERTY_INPUTS:
        site = geo.default_site()
        path = crossing_path(site, "T", T0, CH)[:50]
        probes = [
            track_at(site, f"X{k}", T0, CH + 50 * k, -100.0 + 60 * k, v_home=1.0) for k in range(4)
        ]
        _PROPERTY_INPUTS.append((site, path, probes))
    return _PROPERTY_INPUTS[0]


@settings(max_examples=40, deadline=None)
@given(_ops)
def test_lifecycle_property(ops: list[tuple[str, int, float]]) -> None:
    """Whatever operators do: the first message of an id is ``open``, states only move
    along allowed edges, ``resolved`` is final, and every write's ``rev`` grows by one."""
    site, path, probes = _property_inputs()
    e = AlertEngine(site)
    ds = run(e, path)
    devices = ["TH-01", "FO-02", "FO-03", "MSV-1"]
    t = T0 + 50
    for kind, k, dt in ops:
        t += dt
        known = sorted(e.alerts)
        aid = known[k % len(known)] if known else "none"
        if kind == "ack":
            ds.append(e.handle(Ack(alert_id=aid, operator="op", t=t)))
        elif kind == "tick":
            ds.append(e.handle(Tick(t=t)))
        elif kind == "health":
            state = ["offline", "fault", "online", "unknown"][k]
            ds.append(e.handle(HealthEvent(t=t, device=devices[k], state=state)))  # type: ignore[arg-type]
        elif kind == "track":
            ds.append(e.handle(msgspec.structs.replace(probes[k], t=t)))
        else:
            action = OperatorAction(alert_id=aid, action=kind, who="op", t=t, unit="RO-P03")  # type: ignore[arg-type]
            ds.append(e.handle(action))
    seen: dict[str, str] = {}
    revs: dict[str, int] = {}
    for d in ds:
        for op in d.ops:
            if isinstance(op, AlertWrite):
                assert op.rev == revs.get(op.alert_id, 0) + 1
                revs[op.alert_id] = op.rev
        for a in d.alerts:
            prev = seen.get(a.alert_id)
            if prev is None:
                assert a.state == "open"
            elif prev != a.state:
                assert (prev, a.state) in _ALLOWED
            else:
                assert prev != "resolved"
            seen[a.alert_id] = a.state
            assert 1 <= a.priority <= 4


def test_alert_wire_format_is_exactly_the_contract(site: geo.Site) -> None:
    e = AlertEngine(site)
    (a, *_) = e.handle(HealthEvent(t=T0, device="TH-01", state="offline")).alerts
    wire = msgspec.json.decode(msgspec.json.encode(a))
    assert list(wire) == [
        "alert_id", "t", "kind", "priority", "state", "track_id", "lat", "lon", "sector",
        "summary", "sensors", "recommended_units",
    ]  # fmt: skip
    assert wire["track_id"] is None


def test_track_update_decodes_contract_json_ignoring_unknown_fields(site: geo.Site) -> None:
    from alerts import decode_track

    raw = (
        b'{"t": 1.5, "track_id": "T9", "lat": 45.7, "lon": 21.0, "x": 1, "y": 2, "vx": 0,'
        b' "vy": 0, "pos_sigma_m": 5, "class": "group", "class_p": 0.7, "status": "confirmed",'
        b' "sector": "S03", "side": "RS", "border_dist_m": 40, "sensors": ["TH-01"], "new": 1}'
    )
    u = decode_track(raw)
    assert u.cls == "group"
    assert u.side == "RS"
    assert u.merged_into is None


def test_late_updates_are_ignored(site: geo.Site) -> None:
    e = AlertEngine(site)
    e.handle(track_at(site, "T", T0 + 10, CH, -100.0))
    d = e.handle(track_at(site, "T", T0 + 5, CH, 100.0))
    assert d.alerts == []
    assert e.counters["late_track_updates"] == 1
