"""Spatial-grid gating: candidate (track, measurement) pairs inside Mahalanobis gates.

Per frame the measurements' converted positions are bucketed in a uniform grid (counting
sort, cell ``c = max(cell_min, sqrt(area / m))``, at most ``4 m + 64`` cells). Each predicted
track visits only the cells under the box ``|x - x_p| <= sqrt(G (P_xx + R_xx^max))`` (same in y),
the exact bound of its gate ellipse for the frame's largest measurement covariance, then
tests each candidate exactly: ``d2 = nu^T S^-1 nu < G`` with the measurement's own model
(:mod:`fusion.updater`); a point row outside the box is skipped before its model, as
``d2 >= nu_x^2 / S_xx`` cannot then be below ``G``. Cost is O(tracks + measurements +
local pairs), not tracks x measurements.

Invariant: the grid is exact for linear models (every pair with ``d2 < G`` is found). For
polar models the box uses the converted covariance, which drivers inflate to cover the
sensor's range, so recall is checked against exhaustive gating in the tests.
"""

from __future__ import annotations

import math

import numpy as np

from fusion._jit import F8, I8, Rec, borrow, keep, kernel
from fusion.updater import FIBRE, POINT, _fibre_cov, _innov_cov, _model


@kernel
def _grow_i(a: I8, n: int) -> I8:
    b = np.empty(max(2 * a.shape[0], n), dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@kernel
def _grow_f(a: F8, n: int) -> F8:
    b = np.empty(max(2 * a.shape[0], n), dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@kernel
def _meas_cov_diag(meas: Rec, j: int, across: float) -> tuple[float, float]:
    """Diagonal ``(R_xx, R_yy)`` of measurement j's Cartesian covariance (fibre model aware)."""
    m = meas[j]
    if m["kind"] == FIBRE:
        ok, rxx, _, ryy = _fibre_cov(m["tx"], m["ty"], m["extent"], across)
        if ok:
            return rxx, ryy
    return m["cxx"], m["cyy"]


@kernel
def _gate_frame(
    meas: Rec,
    s: int,
    e: int,
    XP: F8,
    PP: F8,
    live: I8,
    n_live: int,
    across: float,
    s_vr: float,
    gate: float,
    cell_min: float,
    pt: I8,
    pm: I8,
    pd2: F8,
    pld: F8,
    pk: I8,
) -> tuple[int, I8, I8, F8, F8, I8]:
    """Gate tracks ``live[:n_live]`` (predicted ``XP``, ``PP``) against rows ``s:e`` of ``meas``.

    Returns ``(n_pairs, pt, pm, pd2, pld, pk)``: local track index (into ``live``), measurement
    row, ``d2``, ``log|S|`` and measurement dimension per pair; buffers may be reallocated.
    """
    m = e - s
    n_pairs = 0
    if m <= 0 or n_live <= 0:
        return n_pairs, pt, pm, pd2, pld, pk
    # read-only inputs as borrowed aliases (no reference counting per view, fusion._jit);
    # the pair buffers may be reallocated and returned, so they stay owned
    meas = borrow(meas)
    XP = borrow(XP)
    PP = borrow(PP)
    live = borrow(live)
    x0 = math.inf
    y0 = math.inf
    x1 = -math.inf
    y1 = -math.inf
    rxx_max = 0.0
    ryy_max = 0.0
    for j in range(s, e):
        mx = meas[j]["x"]
        my = meas[j]["y"]
        if math.isfinite(mx) and math.isfinite(my):
            x0 = min(x0, mx)
            x1 = max(x1, mx)
            y0 = min(y0, my)
            y1 = max(y1, my)
            rxx, ryy = _meas_cov_diag(meas, j, across)
            if math.isfinite(rxx) and math.isfinite(ryy):
                rxx_max = max(rxx_max, rxx)
                ryy_max = max(ryy_max, ryy)
    if not (x1 >= x0):
        return n_pairs, pt, pm, pd2, pld, pk
    w = x1 - x0 + 1.0
    h = y1 - y0 + 1.0
    cell = max(cell_min, math.sqrt(w * h / m))
    max_cells = 4 * m + 64
    while (math.floor(w / cell) + 1.0) * (math.floor(h / cell) + 1.0) > max_cells:
        cell *= 1.5
    nx = int(w / cell) + 1
    ny = int(h / cell) + 1
    ncell = nx * ny
    start = np.zeros(ncell + 1, dtype=np.int64)
    cidx = np.empty(m, dtype=np.int64)
    for j in range(s, e):
        mx = meas[j]["x"]
        my = meas[j]["y"]
        if math.isfinite(mx) and math.isfinite(my):
            c = int((mx - x0) / cell) + nx * int((my - y0) / cell)
            cidx[j - s] = c
            start[c + 1] += 1
        else:
            cidx[j - s] = -1
    for c in range(ncell):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    items = np.empty(m, dtype=np.int64)
    for j in range(s, e):
        c = cidx[j - s]
        if c >= 0:
            items[fill[c]] = j
            fill[c] += 1
    n_pairs = 0
    li = 0
    while True:
        n_pairs, li = _gate_tracks(
            meas, XP, PP, live, li, n_live, across, s_vr, gate, m, rxx_max, ryy_max,
            x0, y0, w, h, cell, nx, ny, start, items, n_pairs, pt, pm, pd2, pld, pk,
        )  # fmt: skip
        if li >= n_live:
            return n_pairs, pt, pm, pd2, pld, pk
        # the next track's pairs might not fit: grow (outside the pair loop, where a
        # reallocated buffer would cost reference counting per pair) and resume
        pt = _grow_i(pt, n_pairs + m)
        pm = _grow_i(pm, n_pairs + m)
        pd2 = _grow_f(pd2, n_pairs + m)
        pld = _grow_f(pld, n_pairs + m)
        pk = _grow_i(pk, n_pairs + m)


@kernel
def _gate_tracks(
    meas: Rec,
    XP: F8,
    PP: F8,
    live: I8,
    li0: int,
    n_live: int,
    across: float,
    s_vr: float,
    gate: float,
    m: int,
    rxx_max: float,
    ryy_max: float,
    x0: float,
    y0: float,
    w: float,
    h: float,
    cell: float,
    nx: int,
    ny: int,
    start: I8,
    items: I8,
    n_pairs: int,
    pt: I8,
    pm: I8,
    pd2: F8,
    pld: F8,
    pk: I8,
) -> tuple[int, int]:
    """Gate tracks ``live[li0:n_live]`` against the frame's grid (:func:`_gate_frame`),
    appending pairs at ``n_pairs``. Stops before a track when fewer than ``m`` (the frame's
    measurements, the most one track can pair with) entries are free; returns ``(n_pairs,
    next track)`` (``n_live`` when done)."""
    meas = borrow(meas)  # borrowed aliases: no reference counting per view
    XP = borrow(XP)
    PP = borrow(PP)
    live = borrow(live)
    start = borrow(start)
    items = borrow(items)
    pt = borrow(pt)
    pm = borrow(pm)
    pd2 = borrow(pd2)
    pld = borrow(pld)
    pk = borrow(pk)
    cap = pt.shape[0]
    nu_o = np.empty(3)
    H_o = np.zeros((3, 4))
    R_o = np.zeros((3, 3))
    S_o = np.empty((3, 3))
    L_o = np.zeros((3, 3))
    wv_o = np.empty(3)
    nu = borrow(nu_o)
    H = borrow(H_o)
    R = borrow(R_o)
    S = borrow(S_o)
    L = borrow(L_o)
    wv = borrow(wv_o)
    li = li0
    while li < n_live:
        if cap - n_pairs < m:
            break
        i = live[li]
        xp = XP[i]
        P = PP[i]
        hx = math.sqrt(gate * (P[0, 0] + rxx_max))
        hy = math.sqrt(gate * (P[1, 1] + ryy_max))
        if not (math.isfinite(xp[0]) and math.isfinite(xp[1]) and hx < 1e12 and hy < 1e12):
            li += 1
            continue
        lo_x = xp[0] - hx - x0
        hi_x = xp[0] + hx - x0
        lo_y = xp[1] - hy - y0
        hi_y = xp[1] + hy - y0
        if hi_x < 0.0 or hi_y < 0.0 or lo_x > w or lo_y > h:
            li += 1
            continue
        ix0 = max(0, int(lo_x / cell))
        ix1 = min(nx - 1, int(hi_x / cell))
        iy0 = max(0, int(lo_y / cell))
        iy1 = min(ny - 1, int(hi_y / cell))
        for iy in range(iy0, iy1 + 1):
            for ix in range(ix0, ix1 + 1):
                c = ix + nx * iy
                for q in range(start[c], start[c + 1]):
                    j = items[q]
                    r = meas[j]
                    # a point row outside the track's box cannot pass: d2 = nu^T S^-1 nu
                    # >= nu_x^2 / S_xx, and S_xx <= P_xx + R_xx^max (same in y)
                    if r["kind"] == POINT and (
                        abs(r["x"] - xp[0]) > hx or abs(r["y"] - xp[1]) > hy
                    ):
                        continue
                    k = _model(
                        r["kind"],
                        r["x"],
                        r["y"],
                        r["cxx"],
                        r["cxy"],
                        r["cyy"],
                        r["ox"],
                        r["oy"],
                        r["r"],
                        r["az"],
                        r["sr"],
                        r["saz"],
                        r["vr"],
                        r["tx"],
                        r["ty"],
                        r["extent"],
                        xp,
                        across,
                        s_vr,
                        nu,
                        H,
                        R,
                    )
                    if k == 0:
                        continue
                    d2, ld = _innov_cov(P, nu, H, R, k, S, L, wv)
                    if d2 < gate:
                        pt[n_pairs] = li
                        pm[n_pairs] = j
                        pd2[n_pairs] = d2
                        pld[n_pairs] = ld
                        pk[n_pairs] = k
                        n_pairs += 1
        li += 1
    keep(nu_o)
    keep(H_o)
    keep(R_o)
    keep(S_o)
    keep(L_o)
    keep(wv_o)
    return n_pairs, li


def gate(
    xp: F8,
    Pp: F8,
    meas: Rec,
    *,
    gate: float = 13.8,
    cell_min: float = 25.0,
    fibre_across_m: float = 10.0,
    vr_sigma: float = 0.5,
) -> tuple[I8, I8, F8]:
    """All pairs ``(track i, measurement j, d2)`` with ``d2 < gate``, sorted by (i, j).

    ``xp`` (n, 4), ``Pp`` (n, 4, 4) are predicted states at the measurements' time; ``meas``
    is one frame of :data:`fusion.measurements.MEAS_DTYPE` rows.
    """
    xp = np.ascontiguousarray(xp, dtype=np.float64)
    Pp = np.ascontiguousarray(Pp, dtype=np.float64)
    if xp.ndim != 2 or xp.shape[1] != 4 or Pp.shape != (xp.shape[0], 4, 4):
        msg = f"need xp (n, 4), Pp (n, 4, 4); got {xp.shape}, {Pp.shape}"
        raise ValueError(msg)
    if not gate > 0:
        msg = "gate must be > 0"
        raise ValueError(msg)
    n = xp.shape[0]
    cap = 16
    _, pt, pm, pd2, _, _ = res = _gate_frame(
        np.ascontiguousarray(meas),
        0,
        len(meas),
        xp,
        Pp,
        np.arange(n, dtype=np.int64),
        n,
        float(fibre_across_m),
        float(vr_sigma),
        float(gate),
        float(cell_min),
        np.empty(cap, np.int64),
        np.empty(cap, np.int64),
        np.empty(cap),
        np.empty(cap),
        np.empty(cap, np.int64),
    )
    k = res[0]
    order = np.lexsort((pm[:k], pt[:k]))
    return pt[:k][order], pm[:k][order], pd2[:k][order]
