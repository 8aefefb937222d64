"""Compiled geometry kernels of the geo package (Numba, ``cache=True``).

``project_points`` is the closest-point projection onto the border polyline behind
:meth:`geo.Border.project`; ``tests/naive.py::border_project`` is its numpy twin.
Kernels never raise; the wrappers in :mod:`geo.border` check shapes and dtypes.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

F64 = npt.NDArray[np.float64]


@njit(cache=True)
def project_points(
    px: F64,
    py: F64,
    v0: F64,
    tangent: F64,
    seg_len: F64,
    home_normal: F64,
    cum: F64,
    chain: F64,
    dist: F64,
) -> None:
    """For each point: chainage and signed distance of the closest line point (first
    segment on ties), side by the vertex pseudo-normal, chainage extrapolated beyond the
    ends (see :mod:`geo.border`); NaN in, NaN out."""
    nseg = seg_len.shape[0]
    for i in range(px.shape[0]):
        if not (math.isfinite(px[i]) and math.isfinite(py[i])):
            chain[i] = math.nan
            dist[i] = math.nan
            continue
        best = math.inf
        kb = 0
        ub = 0.0
        ucb = 0.0
        exb = 0.0
        eyb = 0.0
        for k in range(nseg):
            dx = px[i] - v0[k, 0]
            dy = py[i] - v0[k, 1]
            u = dx * tangent[k, 0] + dy * tangent[k, 1]
            uc = min(max(u, 0.0), seg_len[k])
            ex = dx - uc * tangent[k, 0]
            ey = dy - uc * tangent[k, 1]
            d2 = ex * ex + ey * ey
            if d2 < best:
                best = d2
                kb = k
                ub = u
                ucb = uc
                exb = ex
                eyb = ey
        nx = home_normal[kb, 0]
        ny = home_normal[kb, 1]
        if ucb <= 0.0 and kb > 0:
            nx += home_normal[kb - 1, 0]
            ny += home_normal[kb - 1, 1]
        if ucb >= seg_len[kb] and kb < nseg - 1:
            nx += home_normal[kb + 1, 0]
            ny += home_normal[kb + 1, 1]
        s = exb * nx + eyb * ny
        side = -1.0 if s < 0.0 else 1.0
        c = cum[kb] + ucb
        if kb == 0 and ub < 0.0:
            c = ub
        if kb == nseg - 1 and ub > seg_len[kb]:
            c = cum[kb] + ub
        chain[i] = c
        dist[i] = side * math.sqrt(best)
