"""Sensor measurements -> ground points with covariance (converted measurements).

Polar measurement from origin ``(ox, oy)``: range ``r`` (m) and grid azimuth ``a`` (rad,
clockwise from +y), with independent errors ``sr``, ``sa``::

    x = ox + r sin a        J = [[sin a,  r cos a],
    y = oy + r cos a             [cos a, -r sin a]]
    C = J diag(sr^2, sa^2) J^T

(first-order conversion; the tracker may use the native polar values instead).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def polar_to_xy(
    ox: npt.ArrayLike,
    oy: npt.ArrayLike,
    r: npt.ArrayLike,
    az: npt.ArrayLike,
    sr: npt.ArrayLike,
    saz: npt.ArrayLike,
) -> tuple[F64, F64, F64, F64, F64]:
    """Convert polar measurements to ``(x, y, cxx, cxy, cyy)`` in the working CRS."""
    r_ = np.asarray(r, np.float64)
    a = np.asarray(az, np.float64)
    vr = np.square(np.asarray(sr, np.float64))
    va = np.square(np.asarray(saz, np.float64))
    s, c = np.sin(a), np.cos(a)
    x = np.asarray(ox, np.float64) + r_ * s
    y = np.asarray(oy, np.float64) + r_ * c
    r2va = r_ * r_ * va
    cxx = s * s * vr + c * c * r2va
    cyy = c * c * vr + s * s * r2va
    cxy = s * c * (vr - r2va)
    return x, y, cxx, cxy, cyy


def slant_to_ground(slant: npt.ArrayLike, height: npt.ArrayLike) -> F64:
    """Horizontal range from a slant range measured by a sensor ``height`` m above ground.

    ``ground = sqrt(max(slant^2 - h^2, 0))``.
    """
    s = np.asarray(slant, np.float64)
    h = np.asarray(height, np.float64)
    return np.sqrt(np.maximum(s * s - h * h, 0.0))
