"""The alert-rule changes made from replay scoring (docs/scoring.md), one test per cause.

Each test feeds hand-made track updates (``alerts.scenario``) shaped like what the tracker
produced on ``crossing-10min`` replays, and checks the rule that now handles them.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

import geo
from alerts import AlertEngine, Decision, HealthEvent, Input
from alerts.model import Alert
from alerts.scenario import crossing_path, track_at

T0 = 1_764_000_000.0
CH = 60_000.0  # S03, FO-02 (37.4-74.9 km)


@pytest.fixture(scope="module")
def site() -> geo.Site:
    return geo.default_site()


def opened(ds: Iterable[Decision], kind: str) -> list[Alert]:
    return [a for d in ds for a in d.alerts if a.kind == kind and a.state == "open"]


def run(engine: AlertEngine, events: Iterable[Input]) -> list[Decision]:
    return [engine.handle(e) for e in events]


def test_camera_radar_crossing_needs_the_fibre_where_it_is_live(site: geo.Site) -> None:
    e = AlertEngine(site)
    ghost = crossing_path(site, "G", T0, CH, sensors=["MSV-1", "TH-02"])
    assert opened(run(e, ghost), "crossing") == []
    assert e.counters["rule_held:crossing_no_fibre"] > 0
    # the same track with FO-02's events in it is a crossing
    real = crossing_path(site, "R", T0 + 1000, CH, sensors=["FO-02", "MSV-1", "TH-02"])
    assert len(opened(run(e, real), "crossing")) == 1


def test_camera_radar_crossing_where_the_fibre_is_cut(site: geo.Site) -> None:
    e = AlertEngine(site)
    # FO-02 cut 5 km from its unit (direction 1: border km 42.4 onwards is blind)
    e.handle(HealthEvent(t=T0 - 60, device="FO-02", state="fault", detail="cut at 5000"))
    ghost = crossing_path(site, "G", T0, CH, sensors=["MSV-1", "TH-02"])
    assert len(opened(run(e, ghost), "crossing")) == 1


def test_vehicle_along_the_line_is_no_crossing(site: geo.Site) -> None:
    e = AlertEngine(site)
    # a vehicle on a road 30 m out, its track jittering 40 m across the line while it
    # drives along it at 10 m/s (fibre events pull it onto the cable)
    ups = [
        track_at(
            site,
            "V",
            T0 + i,
            CH + 10.0 * i,
            -30.0 if i % 2 else 12.0,
            v_along=10.0,
            v_home=2.0 if i % 2 else -2.0,
            cls="vehicle",
            sensors=["FO-02", "MSV-1"],
        )
        for i in range(40)
    ]
    assert opened(run(e, ups), "crossing") == []
    # a vehicle that does drive across, 60 m out to 60 m in, is one
    across = crossing_path(
        site,
        "W",
        T0 + 100,
        CH + 2000,
        start_sd=-120.0,
        end_sd=120.0,
        speed=8.0,
        cls="vehicle",
        sensors=["FO-02", "MSV-1"],
    )
    assert len(opened(run(e, across), "crossing")) == 1


def test_track_fragments_of_one_vehicle_raise_one_alert(site: geo.Site) -> None:
    e = AlertEngine(site)
    speed = 10.0
    # the tracker loses the vehicle at 40 s and starts a new track 30 m further on
    first = [
        track_at(
            site,
            "V1",
            T0 + i,
            CH + speed * i,
            -300.0,
            v_along=speed,
            cls="vehicle",
            sensors=["MSV-2", "TH-03"],
        )
        for i in range(40)
    ]
    second = [
        track_at(
            site,
            "V2",
            T0 + i,
            CH + speed * i + 30.0,
            -300.0,
            v_along=speed,
            cls="vehicle",
            sensors=["MSV-2", "TH-03"],
        )
        for i in range(45, 90)
    ]
    ds = run(e, first + second)
    (a,) = opened(ds, "vehicle")
    assert e.alerts[a.alert_id].members == ["V1", "V2"]
    assert e.alerts[a.alert_id].group_size == 1  # the same vehicle, not a group
    # a single camera's vehicle track raises nothing (range error: hundreds of metres)
    lone = [
        track_at(site, "L", T0 + i, CH + 5000, -300.0, cls="vehicle", sensors=["TH-03"])
        for i in range(40)
    ]
    assert opened(run(e, lone), "vehicle") == []


def test_approach_waits_for_a_settled_person_heading_in(site: geo.Site) -> None:
    e = AlertEngine(site)
    # an animal the tracker calls "person" for its first seconds
    animal = [
        track_at(
            site,
            "A",
            T0 + i,
            CH,
            -300.0,
            v_home=1.0,
            cls="person" if i < 3 else "animal",
            sensors=["MSV-2", "TH-03"],
        )
        for i in range(30)
    ]
    # a vehicle on a road parallel to the line
    road = [
        track_at(
            site,
            "R",
            T0 + i,
            CH + 3000 + 12.0 * i,
            -200.0,
            v_along=12.0,
            v_home=0.5,
            cls="vehicle",
            sensors=["MSV-2", "TH-03"],
        )
        for i in range(30)
    ]
    ds = run(e, animal + road)
    assert opened(ds, "approach") == []
    walker = [
        track_at(
            site,
            "P",
            T0 + 100 + i,
            CH + 6000,
            -400.0 + 1.4 * i,
            v_home=1.4,
            sensors=["MSV-2", "TH-03"],
        )
        for i in range(30)
    ]
    (a,) = opened(run(e, walker), "approach")
    assert a.t == pytest.approx(T0 + 110)  # after approach_min_age_s


def test_digging_only_from_fibre_tracks_at_the_line(site: geo.Site) -> None:
    e = AlertEngine(site)
    # a person standing 200 m out whose class drifts to "digging" (no fibre event)
    still = [
        track_at(site, "S", T0 + 2 * i, CH, -200.0, cls="digging", sensors=["MSV-2", "TH-03"])
        for i in range(30)
    ]
    assert opened(run(e, still), "digging") == []
    dig = [
        track_at(site, "D", T0 + 100 + 10 * i, CH + 3000, 2.0, cls="digging", sensors=["FO-02"])
        for i in range(5)
    ]
    assert len(opened(run(e, dig), "digging")) == 1
