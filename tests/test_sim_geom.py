"""The simulator's compiled border projection equals geo's (its slow, obvious twin)."""

from __future__ import annotations

import numpy as np

from geo import default_site
from sim_sensors import _geom


def test_project_matches_geo_border_project() -> None:
    site = default_site()
    v = site.border.vertices
    rng = np.random.default_rng(0)
    # points everywhere around the line, and points very close to it and to vertices
    x = rng.uniform(v[:, 0].min() - 5000, v[:, 0].max() + 5000, 20000)
    y = rng.uniform(v[:, 1].min() - 5000, v[:, 1].max() + 5000, 20000)
    k = rng.integers(0, len(v), 5000)
    x = np.concatenate([x, v[k, 0] + rng.normal(0, 3, 5000)])
    y = np.concatenate([y, v[k, 1] + rng.normal(0, 3, 5000)])
    c1, d1 = site.border.project(x, y)
    c2, d2 = _geom.project(site.border, x, y)
    np.testing.assert_allclose(c2, c1, atol=1e-6)
    np.testing.assert_allclose(d2, d1, atol=1e-6)


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
