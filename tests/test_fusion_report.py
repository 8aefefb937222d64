"""Snapshot -> contract track updates, on the real RO-RS site."""

from __future__ import annotations

import numpy as np
import pytest

import geo
from fusion import Tracker, build
from fusion.measurements import Cls
from fusion.report import Reporter, format_track_id, track_updates

T0 = 1_764_000_000.0
KEYS = {
    "t",
    "track_id",
    "lat",
    "lon",
    "x",
    "y",
    "vx",
    "vy",
    "pos_sigma_m",
    "class",
    "class_p",
    "status",
    "sector",
    "side",
    "border_dist_m",
    "sensors",
}


@pytest.fixture(scope="module")
def site() -> geo.Site:
    return geo.default_site()


def _near_border(site: geo.Site) -> tuple[float, float]:
    b = site.border_lonlat
    x, y = site.proj.to_xy(b[len(b) // 2 : len(b) // 2 + 1, 0], b[len(b) // 2 : len(b) // 2 + 1, 1])
    return float(x[0]), float(y[0])


def test_updates_have_contract_fields_and_cadence(site: geo.Site) -> None:
    x0, y0 = _near_border(site)
    trk = Tracker(n_sensors=len(site.sensor_ids))
    rep = Reporter(site)
    emitted: list[list[dict[str, object]]] = []
    for k in range(8):
        rows = (
            build.point(
                [T0 + k],
                [x0 + 1.5 * k],
                [y0 + 30.0],
                [5.0],
                sensor=1,
                mid0=k,
                cls=int(Cls.PERSON),
                conf=0.9,
            )
            if k < 4
            else None
        )
        emitted.append(rep(trk.step(T0 + k + 0.5, rows).snapshot))
    assert emitted[0] == []  # tentative tracks are not published by default
    conf = emitted[2][0]
    assert set(conf) >= KEYS
    assert conf["status"] == "confirmed"
    assert conf["track_id"] == format_track_id(1) == "T000001"
    assert conf["sensors"] == [site.sensor_ids[1]]
    assert conf["class"] == "person"
    lat, lon, dist = conf["lat"], conf["lon"], conf["border_dist_m"]
    assert isinstance(lat, float)
    assert isinstance(lon, float)
    assert isinstance(dist, float)
    assert 40 < lat < 50
    assert 18 < lon < 25
    assert conf["side"] in (site.home, site.neighbour)
    assert dist == pytest.approx(30.0, abs=15.0)
    # no new data, but confirmed tracks are still emitted every track_report_s (1 s here)
    assert all(len(e) == 1 for e in emitted[2:])


def test_lost_track_is_emitted_once(site: geo.Site) -> None:
    x0, y0 = _near_border(site)
    trk = Tracker(n_sensors=len(site.sensor_ids))
    rep = Reporter(site)
    out: list[dict[str, object]] = []
    for k in range(14):
        x = x0 if k < 4 else x0 + 20_000.0 + 100 * k  # the target vanishes, clutter goes on
        out += rep(trk.step(T0 + k, build.point([T0 + k], [x], [y0], [5.0], mid0=k)).snapshot)
    lost = [u for u in out if u["status"] == "lost"]
    assert len(lost) == 1
    assert lost[0]["track_id"] == "T000001"


def test_track_updates_of_no_rows_is_empty(site: geo.Site) -> None:
    snap = Tracker().step(T0).snapshot
    assert track_updates(snap, site) == []
    assert np.asarray(snap.track_id).size == 0


def test_cadence_holds_with_irregular_steps(site: geo.Site) -> None:
    """Steps 0.6-0.9 s apart: no confirmed track goes longer than track_report_s unreported."""
    x0, y0 = _near_border(site)
    trk = Tracker(n_sensors=len(site.sensor_ids))
    rep = Reporter(site)
    rng = np.random.default_rng(0)
    t = T0
    seen: dict[str, list[float]] = {}
    for k in range(40):
        t += float(rng.uniform(0.6, 0.9))
        rows = build.point([t], [x0], [y0 + 30.0], [5.0], mid0=k) if k < 6 else None
        for u in rep(trk.step(t, rows).snapshot):
            if u["status"] == "confirmed":
                seen.setdefault(str(u["track_id"]), []).append(float(u["t"]))
    times = seen["T000001"]
    assert len(times) > 10  # a coasting confirmed track keeps reporting
    assert max(np.diff(times)) <= site.track_report_s + 1e-9


def test_lost_is_never_repeated_for_the_same_id(site: geo.Site) -> None:
    rep = Reporter(site)
    trk = Tracker()
    snap = trk.step(T0, build.point([T0], [0.0], [0.0], [5.0])).snapshot
    dead = snap.replace(status=np.array([3], np.uint8), was_confirmed=np.array([1], np.uint8))
    assert [u["status"] for u in rep(dead)] == ["lost"]
    later = dead.replace(t=T0 + 5)
    assert rep(later) == []  # e.g. ended again after a rewind-and-replay
    revived = dead.replace(t=T0 + 6, status=np.array([2], np.uint8))
    assert rep(revived) == []  # no updates for an id after its 'lost'
