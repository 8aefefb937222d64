"""Track initiation from a single unassigned measurement, and the confirmation test.

A new track starts at the measurement's Cartesian position with velocity 0:
``x = [mx, my, 0, 0]``, ``P = blockdiag(R_xy, s_v^2 I)`` where ``R_xy`` is the measurement's
Cartesian covariance (for fibre events ``sa^2 t t^T + (across^2 + b^2) n n^T``: anywhere in
the band, see :mod:`fusion.updater`; for the others the drivers' converted
covariance for polar events, ray-inflated for bearing-only ones) and
``s_v^2 = sum_k p_k s_v0[k]^2`` over the class posterior after this first report.
"""

from __future__ import annotations

import math

import numpy as np

from fusion._jit import F8, U8, borrow, inline_kernel, kernel
from fusion.config import G_CAM_MIN, G_CONF_SIGMA
from fusion.measurements import Kind
from fusion.updater import FIBRE, _fibre_frame, _pos_var_max

THERMAL_ONLY = 1 << int(Kind.THERMAL)


@inline_kernel
def _confirmable(P: F8, kinds: int, sens: U8, g: F8) -> bool:
    """The position is observable enough to confirm (see the module docstring); ``sens`` is
    the track's sensor bitmask row (uint64 words)."""
    if not (_pos_var_max(P) <= g[G_CONF_SIGMA] * g[G_CONF_SIGMA]):
        return False
    if kinds == THERMAL_ONLY:
        need = int(g[G_CAM_MIN])
        n = 0
        one = np.uint64(1)
        for w in range(sens.shape[0]):
            v = sens[w]
            while v != 0 and n < need:
                v = v & (v - one)
                n += 1
        return n >= need
    return True


@kernel
def _init_state(
    kind: int,
    mx: float,
    my: float,
    cxx: float,
    cxy: float,
    cyy: float,
    tx: float,
    ty: float,
    extent: float,
    across: float,
    sv2: float,
    x: F8,
    P: F8,
) -> bool:
    """Write the initial ``x`` (4,), ``P`` (4, 4); False if the position/covariance is unusable."""
    x = borrow(x)  # borrowed aliases: no reference counting per use
    P = borrow(P)
    rxx = cxx
    rxy = cxy
    ryy = cyy
    if kind == FIBRE:
        ok, ux, uy, sa, b = _fibre_frame(tx, ty, extent)
        if ok:
            sa2 = sa * sa
            sc2 = across * across + b * b  # anywhere in the band, side unknown
            rxx = sa2 * ux * ux + sc2 * uy * uy
            rxy = (sa2 - sc2) * ux * uy
            ryy = sa2 * uy * uy + sc2 * ux * ux
    if not (
        math.isfinite(mx)
        and math.isfinite(my)
        and rxx > 0.0
        and ryy > 0.0
        and rxx * ryy - rxy * rxy > 0.0
        and math.isfinite(rxx * ryy)
        and sv2 > 0.0
    ):
        return False
    x[0] = mx
    x[1] = my
    x[2] = 0.0
    x[3] = 0.0
    for i in range(4):
        for j in range(4):
            P[i, j] = 0.0
    P[0, 0] = rxx
    P[0, 1] = rxy
    P[1, 0] = rxy
    P[1, 1] = ryy
    P[2, 2] = sv2
    P[3, 3] = sv2
    return True


def init_state(meas: np.ndarray, sv: float, *, fibre_across_m: float = 10.0) -> tuple[F8, F8, F8]:
    """Initial ``(x (n, 4), P (n, 4, 4), ok (n,) as 0/1)`` for each measurement row."""
    if not sv > 0:
        msg = "velocity sigma must be > 0"
        raise ValueError(msg)
    n = len(meas)
    x = np.full((n, 4), np.nan)
    P = np.full((n, 4, 4), np.nan)
    ok = np.zeros(n)
    for i in range(n):
        r = meas[i]
        ok[i] = _init_state(
            int(r["kind"]),
            float(r["x"]),
            float(r["y"]),
            float(r["cxx"]),
            float(r["cxy"]),
            float(r["cyy"]),
            float(r["tx"]),
            float(r["ty"]),
            float(r["extent"]),
            float(fibre_across_m),
            float(sv) ** 2,
            x[i],
            P[i],
        )
    return x, P, ok
