"""Slow, obvious twins of the geo kernels (numpy, points x segments at once)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from geo import Border

F64 = npt.NDArray[np.float64]


def border_project(b: Border, px: F64, py: F64) -> tuple[F64, F64]:
    """Twin of ``geo._kernels.project_points``: closest segment by brute force over all
    segments, vertex pseudo-normal for the side, chainage extrapolated at the ends."""
    v0 = b.vertices[:-1]
    dx = px[:, None] - v0[None, :, 0]
    dy = py[:, None] - v0[None, :, 1]
    u = dx * b.tangent[None, :, 0] + dy * b.tangent[None, :, 1]
    uc = np.clip(u, 0.0, b.seg_len[None, :])
    ex = dx - uc * b.tangent[None, :, 0]
    ey = dy - uc * b.tangent[None, :, 1]
    d2 = ex * ex + ey * ey
    k = np.argmin(d2, axis=1)
    rows = np.arange(px.size)
    along = uc[rows, k]
    ek = np.column_stack([ex[rows, k], ey[rows, k]])
    n = b.home_normal[k].copy()
    # closest point at an interior vertex: use the vertex pseudo-normal
    at_start = (along <= 0.0) & (k > 0)
    at_end = (along >= b.seg_len[k]) & (k < b.n_segments - 1)
    n[at_start] += b.home_normal[k[at_start] - 1]
    n[at_end] += b.home_normal[k[at_end] + 1]
    side = np.sign(np.einsum("ij,ij->i", ek, n))
    side[side == 0] = 1.0
    # beyond the line's ends: extend the end segments (chainage < 0 or > length)
    u_k = u[rows, k]
    before = (k == 0) & (u_k < 0)
    after = (k == b.n_segments - 1) & (u_k > b.seg_len[k])
    chain = b.cum[k] + along
    chain[before] = u_k[before]
    chain[after] = b.cum[k[after]] + u_k[after]
    dist = side * np.sqrt(d2[rows, k])
    bad = ~(np.isfinite(px) & np.isfinite(py))
    chain[bad] = np.nan
    dist[bad] = np.nan
    return chain, dist
