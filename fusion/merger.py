"""Track-track merging: duplicate suppression across overlapping sensors, and grouping.

At the end of each step every pair of live tracks closer than ``R = max(merge_max_m,
group_radius)`` in x and in y (found from buckets along x of width >= R over the predicted
positions, so cost is O(tracks + close pairs), and a long thin border strip costs no more
than a square) is tested at the step time ``t`` with predicted states ``(x_i, P_i)``, each
track's candidates in slot order:

* **duplicate**: ``dp^T (P_i + P_j)_pos^-1 dp < merge_gate`` and the same for velocity, unless
  both were last updated by the same sensor at the same instant (that sensor resolved them as
  two objects). The two estimates describe one object seen by different sensors.
* **group**: both are people (``p_person + p_group >= 0.5``), ``|dp| < group_radius`` and
  ``|dv| < v_tol + 2 sqrt((tr P_i,vel + tr P_j,vel) / 2)`` (co-moving, or velocities not yet
  known, as with fibre-only tracks). People walking together are one ``group`` track.

The survivor is the confirmed one, else the older (smaller id). For a duplicate the survivor
takes the estimate with the smaller position covariance trace and the class posteriors combine
as independent evidence, ``p ~ p_i p_j / prior``; for a group its class posterior receives
group evidence. Sensors, kinds and hit history are united. The absorbed track becomes DEAD
with ``merged_into`` = survivor id.
"""

from __future__ import annotations

import math

import numpy as np

from fusion._jit import F8, I4, I8, U1, U4, U8, borrow, inline_kernel, kernel
from fusion.classifier import _class_update
from fusion.config import (
    C_Q,
    G_EPS,
    G_GROUP_CONF,
    G_GROUP_R,
    G_MERGE_GATE,
    G_MERGE_MAX_M,
    G_VTOL,
)
from fusion.measurements import Cls
from fusion.predictor import _predict_one
from fusion.state import C_NLIVE, CONFIRMED, DEAD, TENTATIVE

PERSON = int(Cls.PERSON)
GROUP = int(Cls.GROUP)


@inline_kernel
def _d2_2x2(a0: float, a1: float, s00: float, s01: float, s11: float) -> float:
    det = s00 * s11 - s01 * s01
    if not (det > 0.0):
        return math.inf
    return (s11 * a0 * a0 - 2.0 * s01 * a0 * a1 + s00 * a1 * a1) / det


@inline_kernel
def _pair_kind(
    i: int, j: int, XP: F8, PP: F8, t_upd: F8, last_sensor: I4, class_p: F8, g: F8
) -> int:
    """0: keep apart, 1: duplicate, 2: group (see module docstring)."""
    dx = XP[i, 0] - XP[j, 0]
    dy = XP[i, 1] - XP[j, 1]
    dist = math.hypot(dx, dy)
    if not (dist < g[G_MERGE_MAX_M] or dist < g[G_GROUP_R]):
        return 0
    dvx = XP[i, 2] - XP[j, 2]
    dvy = XP[i, 3] - XP[j, 3]
    Pi = PP[i]
    Pj = PP[j]
    same_scan = last_sensor[i] == last_sensor[j] and t_upd[i] == t_upd[j]
    if not same_scan and dist < g[G_MERGE_MAX_M]:
        d2p = _d2_2x2(dx, dy, Pi[0, 0] + Pj[0, 0], Pi[0, 1] + Pj[0, 1], Pi[1, 1] + Pj[1, 1])
        d2v = _d2_2x2(dvx, dvy, Pi[2, 2] + Pj[2, 2], Pi[2, 3] + Pj[2, 3], Pi[3, 3] + Pj[3, 3])
        if d2p < g[G_MERGE_GATE] and d2v < g[G_MERGE_GATE]:
            return 1
    people_i = class_p[i, PERSON] + class_p[i, GROUP] >= 0.5
    people_j = class_p[j, PERSON] + class_p[j, GROUP] >= 0.5
    if people_i and people_j and dist < g[G_GROUP_R]:
        sv = math.sqrt(max(0.0, 0.5 * (Pi[2, 2] + Pi[3, 3] + Pj[2, 2] + Pj[3, 3])))
        if math.hypot(dvx, dvy) < g[G_VTOL] + 2.0 * sv:
            return 2
    return 0


@kernel
def _merge(
    x: F8,
    P: F8,
    t: F8,
    t_upd: F8,
    tid: I8,
    status: U1,
    was_conf: U1,
    hist: U4,
    hits: I4,
    miss: I4,
    class_p: F8,
    kinds: U1,
    sensors: U8,
    last_sensor: I4,
    merged_into: I8,
    ctr: I8,
    hw: int,
    now: float,
    g: F8,
    cpar: F8,
    prior: F8,
    C_fibre: F8,
    XP_o: F8,
    PP_o: F8,
    pv: U1,
) -> int:
    """Merge duplicate / grouped live tracks among slots ``< hw``; returns merges done.

    Workspace (``>= hw`` rows): ``XP_o``, ``PP_o`` receive each live track's state predicted
    to ``now`` (:func:`fusion.predictor._predict_one`); ``pv[i] = 1`` where that prediction
    is still the track's (live and not a merge survivor, whose class posterior, hence
    process noise, changed; an absorbed track keeps its own), else 0."""
    # arguments as borrowed aliases: no reference counting per view (fusion._jit.borrow)
    x = borrow(x)
    P = borrow(P)
    t = borrow(t)
    t_upd = borrow(t_upd)
    tid = borrow(tid)
    status = borrow(status)
    was_conf = borrow(was_conf)
    hist = borrow(hist)
    hits = borrow(hits)
    miss = borrow(miss)
    class_p = borrow(class_p)
    kinds = borrow(kinds)
    sensors = borrow(sensors)
    last_sensor = borrow(last_sensor)
    merged_into = borrow(merged_into)
    ctr = borrow(ctr)
    g = borrow(g)
    cpar = borrow(cpar)
    prior = borrow(prior)
    C_fibre = borrow(C_fibre)
    pv = borrow(pv)
    live = np.empty(hw, dtype=np.int64)
    n = 0
    for i in range(hw):
        pv[i] = 0
        if status[i] == TENTATIVE or status[i] == CONFIRMED:
            live[n] = i
            n += 1
    if n < 2:
        return 0
    XP = borrow(XP_o)
    PP = borrow(PP_o)
    x0 = math.inf
    y0 = math.inf
    x1 = -math.inf
    y1 = -math.inf
    for a in range(n):
        i = live[a]
        q = 0.0
        for k in range(class_p.shape[1]):
            q += class_p[i, k] * cpar[k, C_Q]
        _predict_one(x[i], P[i], now - t[i], q, XP[i], PP[i])
        pv[i] = 1
        x0 = min(x0, XP[i, 0])
        x1 = max(x1, XP[i, 0])
        y0 = min(y0, XP[i, 1])
        y1 = max(y1, XP[i, 1])
    if not (math.isfinite(x0) and math.isfinite(x1) and math.isfinite(y0) and math.isfinite(y1)):
        return 0
    # candidates: for track a, the live tracks within R of it in x and in y (predicted
    # positions before any merge of this step), from x-buckets of width cw >= R (a counting
    # sort: O(tracks + buckets), at most 4 n + 64 buckets), tested in live order
    R = max(g[G_MERGE_MAX_M], g[G_GROUP_R])
    span = x1 - x0
    cw = R
    if span / cw + 1.0 > 4 * n + 64:
        cw = span / (4 * n + 63)
    nb = int(span / cw) + 1
    xs = np.empty(n)
    ys = np.empty(n)
    cid = np.empty(n, dtype=np.int64)
    start = np.zeros(nb + 1, dtype=np.int64)
    for a in range(n):
        xs[a] = XP[live[a], 0]
        ys[a] = XP[live[a], 1]
        c = min(int((xs[a] - x0) / cw), nb - 1)
        cid[a] = c
        start[c + 1] += 1
    for c in range(nb):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    items = np.empty(n, dtype=np.int64)
    for a in range(n):
        items[fill[cid[a]]] = a
        fill[cid[a]] += 1
    cand = np.empty(n, dtype=np.int64)
    n_merged = 0
    for a in range(n):
        i = live[a]
        if status[i] == DEAD:
            continue
        xa = xs[a]
        ya = ys[a]
        nc = 0
        for c in range(max(0, cid[a] - 1), min(nb, cid[a] + 2)):
            for z in range(start[c], start[c + 1]):
                e = items[z]
                if e != a and abs(xs[e] - xa) < R and abs(ys[e] - ya) < R:
                    cand[nc] = e
                    nc += 1
        for u in range(1, nc):  # live order (insertion sort: a handful of candidates)
            v = cand[u]
            w = u - 1
            while w >= 0 and cand[w] > v:
                cand[w + 1] = cand[w]
                w -= 1
            cand[w + 1] = v
        for z in range(nc):
            j = live[cand[z]]
            if status[j] == DEAD or status[i] == DEAD:
                continue
            kind = _pair_kind(i, j, XP, PP, t_upd, last_sensor, class_p, g)
            if kind == 0:
                continue
            # survivor s, absorbed d
            s = i
            d = j
            if status[j] > status[i] or (status[j] == status[i] and tid[j] < tid[i]):
                s = j
                d = i
            if kind == 1:
                if PP[d, 0, 0] + PP[d, 1, 1] < PP[s, 0, 0] + PP[s, 1, 1]:
                    for u in range(4):
                        x[s, u] = XP[d, u]
                        XP[s, u] = XP[d, u]
                        for v in range(4):
                            P[s, u, v] = PP[d, u, v]
                            PP[s, u, v] = PP[d, u, v]
                    t[s] = now
                tot = 0.0
                for k in range(class_p.shape[1]):
                    pk = class_p[s, k] * class_p[d, k] / max(prior[k], 1e-9)
                    class_p[s, k] = pk
                    tot += pk
                for k in range(class_p.shape[1]):
                    class_p[s, k] = class_p[s, k] / tot if tot > 0.0 else prior[k]
            else:
                _class_update(class_p[s], prior, C_fibre, GROUP, g[G_GROUP_CONF], g[G_EPS])
            if t_upd[d] > t_upd[s]:
                t_upd[s] = t_upd[d]
                last_sensor[s] = last_sensor[d]
            kinds[s] |= kinds[d]
            for u in range(sensors.shape[1]):
                sensors[s, u] |= sensors[d, u]
            hist[s] |= hist[d]
            hits[s] = max(hits[s], hits[d])
            miss[s] = min(miss[s], miss[d])
            was_conf[s] = max(was_conf[s], was_conf[d])
            status[d] = DEAD
            merged_into[d] = tid[s]
            pv[s] = 0
            ctr[C_NLIVE] -= 1
            n_merged += 1
    return n_merged
