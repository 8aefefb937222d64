"""Multi-sensor accuracy rules of the tracker, on small deterministic scenarios.

Each test pins one fix from docs/scoring.md "Tracker problems found": camera-only tracks are
not confirmed before their position is observable; a fibre-localised track survives a merge
with a camera-only one; fibre events do not drag a well-localised track across the line;
camera and radar evidence do not make a track ``digging``.
"""

from __future__ import annotations

import math

import numpy as np

from fusion import Tracker, TrackerConfig, build
from fusion.measurements import Cls, Kind, MeasArray
from fusion.state import CONFIRMED, TENTATIVE

T0 = 1_764_000_000.0


def _cam(
    t: float,
    ox: float,
    oy: float,
    tx: float,
    ty: float,
    rng: np.random.Generator,
    *,
    sensor: int,
    mid: int,
    cls: Cls = Cls.PERSON,
    with_range: bool = True,
) -> MeasArray:
    """One thermal row of an object at ``(tx, ty)`` seen from ``(ox, oy)``: bearing sigma
    0.5 deg, range (if any) with 25 % sigma, as the simulator draws them."""
    dx, dy = tx - ox, ty - oy
    rho = math.hypot(dx, dy)
    az = math.atan2(dx, dy) + rng.normal(0.0, math.radians(0.5))
    r = rho * (1.0 + rng.normal(0.0, 0.25)) if with_range else np.nan
    return build.polar(
        Kind.THERMAL, [t], [ox], [oy], [az], r=[r], sensor=sensor, mid0=mid,
        cls=int(cls), conf=0.8,
    )  # fmt: skip


def test_single_camera_track_is_not_confirmed_while_only_its_bearing_is_known() -> None:
    """One camera 2 km away, range sigma 25 % (500 m): ten hits satisfy M-of-N, but the
    position is known only along the ray, so the track stays tentative."""
    rng = np.random.default_rng(3)
    trk = Tracker(n_sensors=1)
    res = None
    for k in range(10):
        t = T0 + k
        res = trk.step(t + 0.5, _cam(t, 0.0, -2000.0, 0.0, 0.0, rng, sensor=0, mid=k))
    assert res is not None
    s = res.snapshot
    assert s.status.tolist() == [TENTATIVE]
    assert int(s.hits[0]) == 10
    assert s.pos_sigma[0] > 75.0


def test_two_camera_bearings_localise_and_confirm() -> None:
    """The same object seen by a second camera at right angles: the bearings cross, the
    position is observable and the track is confirmed, within tens of metres of the truth."""
    rng = np.random.default_rng(4)
    trk = Tracker(n_sensors=2)
    res = None
    for k in range(6):
        t = T0 + k
        rows = np.concatenate(
            [
                _cam(t, 0.0, -2000.0, 0.0, 0.0, rng, sensor=0, mid=2 * k),
                _cam(t + 0.3, 2000.0, 0.0, 0.0, 0.0, rng, sensor=1, mid=2 * k + 1),
            ]
        )
        res = trk.step(t + 0.5, rows)
    assert res is not None
    s = res.snapshot
    assert s.status.tolist() == [CONFIRMED]
    assert s.pos_sigma[0] < 75.0
    assert math.hypot(s.x[0], s.y[0]) < 60.0


def test_confirm_sigma_inf_restores_plain_m_of_n() -> None:
    rng = np.random.default_rng(3)
    trk = Tracker(TrackerConfig(confirm_sigma_m=math.inf), n_sensors=1)
    res = None
    for k in range(4):
        t = T0 + k
        res = trk.step(t + 0.5, _cam(t, 0.0, -2000.0, 0.0, 0.0, rng, sensor=0, mid=k))
    assert res is not None
    assert res.snapshot.status.tolist() == [CONFIRMED]
