"""Global-nearest-neighbour assignment on gated clusters.

Input: sparse candidate pairs ``(track a, measurement b, cost c_ab)`` with ``c_ab < 0``
(the negative log-likelihood ratio of "b is a's detection" against "a missed, b is clutter";
see :mod:`fusion.tracker`). Leaving a track or a measurement unassigned costs 0, so the
assignment minimises ``sum c_ab`` over one-to-one matchings.

Pairs are split into connected components (union-find); each component is solved exactly
with the Hungarian algorithm (shortest augmenting paths with potentials, O(r^2 (r + c))) on
an ``r x (c + r)`` matrix: ``r`` tracks, ``c`` measurements plus one zero-cost "unassigned"
column per track. Components with more than ``max_exact`` tracks fall back to greedy
(ascending cost), which is counted.
"""

from __future__ import annotations

import numpy as np

from fusion._jit import B1, F8, I8, borrow, inline_kernel, keep, kernel

_BIG = 1e12


@inline_kernel
def _find(parent: I8, a: int) -> int:
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@kernel
def _hungarian(cost: F8, n: int, m: int, row_to_col: I8) -> None:
    """Min-cost assignment of every row of ``cost[:n, :m]`` (``n <= m``) to a distinct column.

    ``row_to_col[i]`` receives row i's column. Entries ``>= _BIG`` are forbidden but must leave
    a feasible solution (the caller's zero-cost dummy columns guarantee one).
    """
    fw = np.empty((3, m + 1))
    iw = np.empty((2, m + 1), dtype=np.int64)
    used = np.empty(m + 1, dtype=np.bool_)
    _hungarian_ws(cost, n, m, row_to_col, fw, iw, used)


@kernel
def _hungarian_ws(cost: F8, n: int, m: int, row_to_col: I8, fw: F8, iw: I8, used: B1) -> None:
    """:func:`_hungarian` with caller-owned scratch: ``fw`` (3, >= m + 1) floats, ``iw``
    (2, >= m + 1) ints, ``used`` (>= m + 1) (no allocation per cluster)."""
    cost = borrow(cost)  # arguments: borrowed aliases (no reference counting per view)
    row_to_col = borrow(row_to_col)
    fw = borrow(fw)
    iw = borrow(iw)
    used = borrow(used)
    u = fw[0]  # u[i], i = 0..n (n <= m)
    v = fw[1]
    minv = fw[2]
    p = iw[0]  # p[j]: row (1-based) matched to column j (1-based)
    way = iw[1]
    for j in range(m + 1):
        u[j] = 0.0
        v[j] = 0.0
        p[j] = 0
        way[j] = 0
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        for j in range(m + 1):
            minv[j] = np.inf
            used[j] = False
        while True:
            used[j0] = True
            i0 = p[j0]
            delta = np.inf
            j1 = 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1, j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    for j in range(1, m + 1):
        if p[j] > 0:
            row_to_col[p[j] - 1] = j - 1


@kernel
def _assign(
    pt: I8,
    pm: I8,
    pc: F8,
    n_pairs: int,
    n_t: int,
    n_m: int,
    max_exact: int,
    t_to_m: I8,
    m_to_t: I8,
) -> int:
    """Solve the sparse assignment; fill ``t_to_m`` (n_t,) / ``m_to_t`` (n_m,) with -1 or the
    partner. Tracks are ``0..n_t-1``, measurements ``0..n_m-1``. Returns the number of
    components solved greedily (too large for the exact solver)."""
    for a in range(n_t):
        t_to_m[a] = -1
    for b in range(n_m):
        m_to_t[b] = -1
    if n_pairs == 0:
        return 0
    pt = borrow(pt)  # arguments: borrowed aliases (no reference counting per use)
    pm = borrow(pm)
    pc = borrow(pc)
    t_to_m = borrow(t_to_m)
    m_to_t = borrow(m_to_t)
    parent_o = np.arange(n_t + n_m)
    parent = borrow(parent_o)
    for q in range(n_pairs):
        ra = _find(parent, pt[q])
        rb = _find(parent, n_t + pm[q])
        if ra != rb:
            parent[ra] = rb
    # bucket pairs by component root (counting sort)
    nn = n_t + n_m
    cnt = np.zeros(nn + 1, dtype=np.int64)
    root = np.empty(n_pairs, dtype=np.int64)
    for q in range(n_pairs):
        r = _find(parent, pt[q])
        root[q] = r
        cnt[r + 1] += 1
    for r in range(nn):
        cnt[r + 1] += cnt[r]
    fill = cnt[:-1].copy()
    order = np.empty(n_pairs, dtype=np.int64)
    for q in range(n_pairs):
        order[fill[root[q]]] = q
        fill[root[q]] += 1
    tl = np.full(n_t, -1, dtype=np.int64)  # local index of a track inside its component
    ml = np.full(n_m, -1, dtype=np.int64)
    # per-cluster scratch, allocated once per call (a cluster has at most n_t tracks and
    # n_m measurements; the cost matrix buffer grows on demand)
    tracks_o = np.empty(n_t, dtype=np.int64)
    meass_o = np.empty(n_m, dtype=np.int64)
    rc_o = np.empty(n_t, dtype=np.int64)
    fw_o = np.empty((3, n_t + n_m + 1))
    iw_o = np.empty((2, n_t + n_m + 1), dtype=np.int64)
    used_o = np.empty(n_t + n_m + 1, dtype=np.bool_)
    cost_o = np.empty(256)
    tracks = borrow(tracks_o)
    meass = borrow(meass_o)
    rc = borrow(rc_o)
    cost_f = borrow(cost_o)
    n_greedy = 0
    for r in range(nn):
        a0 = cnt[r]
        a1 = cnt[r + 1]
        if a1 == a0:
            continue
        if a1 - a0 == 1:
            q = order[a0]
            t_to_m[pt[q]] = pm[q]
            m_to_t[pm[q]] = pt[q]
            continue
        # local numbering
        nr = 0
        nc = 0
        for z in range(a0, a1):
            q = order[z]
            if tl[pt[q]] < 0:
                tl[pt[q]] = nr
                nr += 1
            if ml[pm[q]] < 0:
                ml[pm[q]] = nc
                nc += 1
        for z in range(a0, a1):
            q = order[z]
            tracks[tl[pt[q]]] = pt[q]
            meass[ml[pm[q]]] = pm[q]
        if nr <= max_exact:
            cols = nc + nr
            if nr * cols > cost_o.shape[0]:
                cost_o = np.empty(max(2 * cost_o.shape[0], nr * cols))
                cost_f = borrow(cost_o)
            cost = cost_f[: nr * cols].reshape((nr, cols))
            for i in range(nr):
                for j in range(cols):
                    cost[i, j] = _BIG
                cost[i, nc + i] = 0.0
            for z in range(a0, a1):
                q = order[z]
                cost[tl[pt[q]], ml[pm[q]]] = min(cost[tl[pt[q]], ml[pm[q]]], pc[q])
            _hungarian_ws(cost, nr, cols, rc, fw_o, iw_o, used_o)
            for i in range(nr):
                j = rc[i]
                if j < nc and cost[i, j] < 0.0:
                    t_to_m[tracks[i]] = meass[j]
                    m_to_t[meass[j]] = tracks[i]
        else:
            n_greedy += 1
            sub = np.empty(a1 - a0, dtype=np.int64)
            for z in range(a0, a1):
                sub[z - a0] = order[z]
            cs = np.empty(a1 - a0)
            for z in range(a1 - a0):
                cs[z] = pc[sub[z]]
            for z in np.argsort(cs):
                q = sub[z]
                if pc[q] < 0.0 and t_to_m[pt[q]] < 0 and m_to_t[pm[q]] < 0:
                    t_to_m[pt[q]] = pm[q]
                    m_to_t[pm[q]] = pt[q]
        for i in range(nr):
            tl[tracks[i]] = -1
        for j in range(nc):
            ml[meass[j]] = -1
    keep(parent_o)
    keep(tracks_o)
    keep(meass_o)
    keep(rc_o)
    keep(cost_o)
    return n_greedy


def assign(
    pairs_t: I8, pairs_m: I8, cost: F8, n_tracks: int, n_meas: int, *, max_exact: int = 256
) -> tuple[I8, I8]:
    """Optimal one-to-one assignment over sparse negative-cost pairs.

    Returns ``(t_to_m, m_to_t)`` with -1 for unassigned. Pairs with ``cost >= 0`` are never
    chosen (leaving both unassigned is no worse); duplicate pairs keep their minimum cost.
    """
    pt = np.ascontiguousarray(pairs_t, dtype=np.int64)
    pm = np.ascontiguousarray(pairs_m, dtype=np.int64)
    pc = np.ascontiguousarray(cost, dtype=np.float64)
    if not (pt.shape == pm.shape == pc.shape) or pt.ndim != 1:
        msg = "pairs_t, pairs_m and cost must be 1-D of equal length"
        raise ValueError(msg)
    if len(pt) and (pt.min() < 0 or pt.max() >= n_tracks or pm.min() < 0 or pm.max() >= n_meas):
        msg = "pair index out of range"
        raise ValueError(msg)
    if np.isnan(pc).any():
        msg = "cost contains NaN"
        raise ValueError(msg)
    keep = pc < 0
    t_to_m = np.empty(n_tracks, dtype=np.int64)
    m_to_t = np.empty(n_meas, dtype=np.int64)
    _assign(
        pt[keep], pm[keep], pc[keep], int(keep.sum()), n_tracks, n_meas, max_exact, t_to_m, m_to_t
    )
    return t_to_m, m_to_t
