"""Constant-velocity (CV) prediction.

State ``x = [x, y, vx, vy]`` in the working CRS (m, m/s). Over an interval ``dt``::

    F = [[1, 0, dt, 0], [0, 1, 0, dt], [0, 0, 1, 0], [0, 0, 0, 1]]
    Q = q * [[dt^3/3, 0, dt^2/2, 0], [0, dt^3/3, 0, dt^2/2],
             [dt^2/2, 0, dt, 0],     [0, dt^2/2, 0, dt]]
    x' = F x,  P' = F P F^T + Q

(continuous white-noise acceleration, ``q`` the acceleration spectral density in m^2/s^3).
``Q`` uses ``|dt|`` so a (rare) backwards step still inflates the covariance.
"""

from __future__ import annotations

import numpy as np

from fusion._jit import F8, inline_kernel, kernel


@inline_kernel
def _predict_one(x: F8, P: F8, dt: float, q: float, xo: F8, Po: F8) -> None:
    """Write ``F x`` into ``xo`` (4,) and ``F P F^T + Q`` into ``Po`` (4, 4). Never raises."""
    xo[0] = x[0] + dt * x[2]
    xo[1] = x[1] + dt * x[3]
    xo[2] = x[2]
    xo[3] = x[3]
    # A = F P  (rows 0, 1 gain dt * rows 2, 3)
    for j in range(4):
        Po[0, j] = P[0, j] + dt * P[2, j]
        Po[1, j] = P[1, j] + dt * P[3, j]
        Po[2, j] = P[2, j]
        Po[3, j] = P[3, j]
    # A F^T  (cols 0, 1 gain dt * cols 2, 3)
    for i in range(4):
        Po[i, 0] = Po[i, 0] + dt * Po[i, 2]
        Po[i, 1] = Po[i, 1] + dt * Po[i, 3]
    a = abs(dt)
    q3 = q * a * a * a / 3.0
    q2 = q * a * a / 2.0
    q1 = q * a
    Po[0, 0] += q3
    Po[1, 1] += q3
    Po[0, 2] += q2
    Po[2, 0] += q2
    Po[1, 3] += q2
    Po[3, 1] += q2
    Po[2, 2] += q1
    Po[3, 3] += q1


@kernel
def _predict_batch(x: F8, P: F8, dt: F8, q: F8, xo: F8, Po: F8) -> None:
    """Row-wise :func:`_predict_one` over ``x`` (n, 4), ``P`` (n, 4, 4), ``dt`` (n,), ``q`` (n,)."""
    for i in range(x.shape[0]):
        _predict_one(x[i], P[i], dt[i], q[i], xo[i], Po[i])


def predict(x: F8, P: F8, dt: F8 | float, q: F8 | float) -> tuple[F8, F8]:
    """Predict ``n`` CV states by ``dt`` seconds with process noise ``q``; returns new arrays.

    Raises ``ValueError`` on wrong shapes; NaN inputs propagate to NaN outputs.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    P = np.ascontiguousarray(P, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 4 or P.shape != (x.shape[0], 4, 4):
        msg = f"need x (n, 4) and P (n, 4, 4), got {x.shape} and {P.shape}"
        raise ValueError(msg)
    n = x.shape[0]
    dta = np.broadcast_to(np.asarray(dt, dtype=np.float64), (n,)).copy()
    qa = np.broadcast_to(np.asarray(q, dtype=np.float64), (n,)).copy()
    if np.any(qa < 0):
        msg = "process noise q must be >= 0"
        raise ValueError(msg)
    xo = np.empty_like(x)
    Po = np.empty_like(P)
    _predict_batch(x, P, dta, qa, xo, Po)
    return xo, Po
