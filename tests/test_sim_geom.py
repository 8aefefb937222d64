"""The simulator's polyline helpers."""

from __future__ import annotations

import numpy as np

from sim_sensors import _geom


def test_polyline_helpers() -> None:
    xy = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 50.0]])
    np.testing.assert_allclose(_geom.cumlen(xy), [0, 100, 150])
    x, y = _geom.along(xy, [0, 50, 125, 200])
    np.testing.assert_allclose(x, [0, 50, 100, 100])
    np.testing.assert_allclose(y, [0, 0, 25, 50])
    r = _geom.resample(xy, 10.0)
    assert len(r) == 16
    noise = _geom.smooth_noise(np.random.default_rng(1), 20000, 5.0)
    assert abs(noise.std() - 1.0) < 0.1
