"""The tracker: composes predictor, gater, associator, updater, initiator, deleter, merger.

``Tracker.step(t, meas) -> StepResult`` is pure and synchronous (no I/O, no clock): ``t`` is
the step time, ``meas`` a :data:`fusion.measurements.MEAS_DTYPE` array of whatever arrived
since the last step, in any order.

Processing (one Numba call for all frames of a step, :func:`_run`):

1. Rows are sorted by ``(t, sensor, mid)`` and split into *frames*: rows with equal ``t`` and
   ``sensor`` (one sensor's scan; a sensor sees an object at most once per frame).
2. Per frame at time ``t_f``: live tracks not updated for longer than their timeout die; the rest
   are predicted to ``t_f`` (CV, class-weighted process noise ``q = sum_k p_k q_k``).
3. Gating (:mod:`fusion.gater`) yields pairs with ``d2 < gate``; each pair costs the negative
   log-likelihood ratio ``c = d2/2 + log|2 pi S|/2 + (k/2) log(lambda) - log(Pd / (1 - Pd))``
   (``lambda`` clutter density, ``Pd`` detection probability of the sensor, ``k`` measurement
   dimension), plus the class term ``- log( sum_k p_k L_k / sum_k prior_k L_k )`` (the
   report's class likelihood under the track's posterior ``p`` relative to a new object drawn
   from the prior, ``L_k = (1 - w) + w C[kind][k, cls] / max_k' C[kind][k', cls]`` with
   ``w = conf``: with ``w = 1`` it is ``- log( sum_k p_k C[k, cls] / sum_k prior_k C[k, cls] )``;
   0 for an unknown class or zero confidence; :func:`fusion.classifier._class_llr`).
   Only ``c < 0`` pairs compete; GNN assignment per cluster (:mod:`fusion.associator`).
4. Assigned pairs update the track (EKF, :mod:`fusion.updater`), its class posterior
   (:mod:`fusion.classifier`), hit history (``hist = hist << 1 | 1``) and sensor sets; a
   tentative track with ``popcount(hist & (2^N - 1)) >= M`` is confirmed.
5. For sensors that scan their coverage (``scan_misses``), every other live track misses
   (``hist <<= 1``, ``miss += 1``) and may die (:mod:`fusion.deleter`).
6. An unassigned row inside the gate of a track updated in this frame is *absorbed* if its
   kind absorbs (fibre: one more event of the same walking group, which is group evidence);
   otherwise it starts a tentative track (:mod:`fusion.initiator`). Nothing is dropped
   silently: every row gets an association record.

After the frames: time-based expiry at ``t``, track-track merging (:mod:`fusion.merger`), and a
snapshot of every live track predicted to ``t`` plus the tracks that ended in this step.

**Late measurements.** With ``horizon_s > 0`` the tracker keeps the measurements of the last
``horizon_s`` seconds and a checkpoint of its table after each step (at most one per
``checkpoint_s``). A row older than what was already processed rewinds to the newest checkpoint
whose processed measurements are all older than it, and the logged rows plus the late ones are
replayed through the same recorded step times. Because replay buckets each row into the step
whose time first covers it, a late row yields the same state as on-time arrival (exactly, when
the on-time run saw each row in that step). The replay takes checkpoints too, so the next late
row rewinds only as far as its own lateness. Rows older than the horizon cannot be replayed:
they are counted (``late_dropped``) and recorded as ``LATE``, never applied out of order.

Rows later than ``oosm_after_s`` (default 30 s, behind what was processed) are not replayed
(a rewind replays every row since, which at 2 % late batches was most of the work); they go
through the frame kernel as *out-of-sequence* rows: tracks are predicted (retrodicted, for a
track updated since) to the row's time for gating and assignment; a track not updated since
gets the ordinary update (what in-order arrival does); a track updated since takes the row as
evidence only (hits, class posterior, sensor kinds and set; state unchanged: 30 s of newer
updates leave a row's in-order effect on the state negligible, 4e-6 m in the test, while a
one-lag OOSM gain overstated it by 0.5 m and 10 % of covariance); an unassigned one starts a
track at its time (which expires at once if older than the tentative timeout). A later rewind
that passes the step applies them again in that step, so its timeline stays the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

import numpy as np
import numpy.typing as npt

from fusion._jit import F8, I4, I8, U1, U4, U8, Rec, borrow, inline_kernel, keep, kernel
from fusion.associator import _assign
from fusion.classifier import _class_llr, _class_update
from fusion.config import (
    C_Q,
    C_SV0,
    G_ACROSS,
    G_CELL,
    G_EPS,
    G_GATE,
    G_GROUP_CONF,
    G_M,
    G_MAX_EXACT,
    G_N,
    G_SVR,
    K_ABSORB,
    K_LAM,
    K_PD,
    K_SCAN_MISS,
    K_WEIGHT,
    TrackerConfig,
)
from fusion.deleter import _expire, _is_expired
from fusion.gater import _gate_frame
from fusion.identity import heir, reconcile
from fusion.initiator import _confirmable, _init_state
from fusion.measurements import MEAS_DTYPE, N_CLASSES, Cls, Kind, MeasArray
from fusion.merger import _merge
from fusion.predictor import _predict_one
from fusion.state import (
    C_HW,
    C_NEXT_ID,
    C_NFREE,
    C_NLIVE,
    CONFIRMED,
    DEAD,
    FREE,
    SENSOR_WORDS,
    TENTATIVE,
    TrackTable,
    _pack,
    free_dead_rows,
    packed_words,
)
from fusion.updater import FIBRE, _innov_cov, _kf_update, _model, _pos_var_max

# association record actions
ASSIGNED, STARTED, ABSORBED, INVALID, LATE = 0, 1, 2, 3, 4
ACTION_NAMES = ("assigned", "started", "absorbed", "invalid", "late")

#: per-step association record: measurement ``mid`` -> track id and what happened
REC_DTYPE = np.dtype([("mid", "i8"), ("track_id", "i8"), ("action", "u1"), ("d2", "f4")])

_LOG2PI = math.log(2.0 * math.pi)
_GROUP = int(Cls.GROUP)


@inline_kernel
def _popcount(v: int) -> int:
    c = 0
    while v:
        v &= v - 1
        c += 1
    return c


@kernel
def _run(
    meas: Rec,
    fb: I8,
    nf: int,
    x: F8,
    P: F8,
    t: F8,
    t_upd: F8,
    t_birth: F8,
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
    free: I8,
    ctr: I8,
    g: F8,
    kpar: F8,
    cpar: F8,
    spd: F8,
    slam: F8,
    C: F8,
    prior: F8,
    rec_tid: I8,
    rec_act: U1,
    rec_d2: F8,
    oosm: bool,
    XP_o: F8,
    PP_o: F8,
    live: I8,
) -> int:
    """Process frames ``fb[f]:fb[f+1]`` of sorted ``meas``; returns greedy-solved clusters.

    The caller guarantees ``ctr[C_NFREE] >= len(meas)`` (every row may start a track).
    ``XP_o``, ``PP_o``, ``live``: workspace of the table's capacity (predicted states, live
    slots). ``oosm``: out-of-sequence rows (late beyond ``oosm_after_s``): every track is predicted
    (backwards for a track newer than the frame: retrodicted, ``P_r = F P F^T + Q(|dt|)``) to
    the frame time for gating and assignment; a track not updated since then gets the
    ordinary update (exactly as in order); a newer one takes the row as evidence only (hits,
    class, kinds, sensors; state, time and hit bits unchanged); no track counts a miss.
    """
    # borrowed aliases: no atomic reference counting per view (see fusion._jit.borrow)
    meas = borrow(meas)
    fb = borrow(fb)
    x = borrow(x)
    P = borrow(P)
    t = borrow(t)
    t_upd = borrow(t_upd)
    t_birth = borrow(t_birth)
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
    free = borrow(free)
    ctr = borrow(ctr)
    g = borrow(g)
    kpar = borrow(kpar)
    cpar = borrow(cpar)
    spd = borrow(spd)
    slam = borrow(slam)
    C = borrow(C)
    prior = borrow(prior)
    rec_tid = borrow(rec_tid)
    rec_act = borrow(rec_act)
    rec_d2 = borrow(rec_d2)
    XP = borrow(XP_o)
    PP = borrow(PP_o)
    live = borrow(live)
    nb = 64 + 4 * meas.shape[0]  # pair buffers (grown by the gater when a frame needs more)
    pt = np.empty(nb, dtype=np.int64)
    pm = np.empty(nb, dtype=np.int64)
    pd2 = np.empty(nb)
    pld = np.empty(nb)
    pk = np.empty(nb, dtype=np.int64)
    nu_o = np.empty(3)
    H_o = np.zeros((3, 4))
    R_o = np.zeros((3, 3))
    ws_o = np.zeros((7, 4, 4))
    nu = borrow(nu_o)
    H = borrow(H_o)
    R = borrow(R_o)
    ws = borrow(ws_o)
    gate = g[G_GATE]
    across = g[G_ACROSS]
    s_vr = g[G_SVR]
    mask_n = (1 << int(g[G_N])) - 1
    m_conf = int(g[G_M])
    n_greedy = 0
    for f in range(nf):
        s = fb[f]
        e = fb[f + 1]
        m = e - s
        tf = meas[s]["t"]
        sensor = meas[s]["sensor"]
        kind = meas[s]["kind"]
        pd = kpar[kind, K_PD]
        lam = kpar[kind, K_LAM]
        if 0 <= sensor < spd.shape[0]:
            if math.isfinite(spd[sensor]):
                pd = spd[sensor]
            if math.isfinite(slam[sensor]):
                lam = slam[sensor]
        llr0 = math.log(pd / (1.0 - pd))
        # 2. expire / predict live tracks
        hw = ctr[C_HW]
        n_live = 0
        for i in range(hw):
            st = status[i]
            if st not in (TENTATIVE, CONFIRMED):
                continue
            if _is_expired(
                st, 0, tf - t_upd[i], class_p[i], g, cpar, kinds[i], _pos_var_max(P[i]), kpar
            ):
                status[i] = DEAD
                ctr[C_NLIVE] -= 1
                continue
            q = 0.0
            for k in range(N_CLASSES):
                q += class_p[i, k] * cpar[k, C_Q]
            _predict_one(x[i], P[i], tf - t[i], q, XP[i], PP[i])
            live[n_live] = i
            n_live += 1
        # 3. gate and cost
        n_pairs, pt, pm, pd2, pld, pk = _gate_frame(
            meas,
            s,
            e,
            XP,
            PP,
            live,
            n_live,
            across,
            s_vr,
            gate,
            g[G_CELL],
            pt,
            pm,
            pd2,
            pld,
            pk,
        )
        ct = np.empty(n_pairs, dtype=np.int64)
        cm = np.empty(n_pairs, dtype=np.int64)
        cc = np.empty(n_pairs)
        nc = 0
        for q in range(n_pairs):
            k = pk[q]
            c = 0.5 * (pd2[q] + pld[q] + k * _LOG2PI + k * math.log(lam)) - llr0
            j = pm[q]
            c -= _class_llr(class_p[live[pt[q]]], prior, C[kind], meas[j]["cls"], meas[j]["conf"])
            if c < 0.0:
                ct[nc] = pt[q]
                cm[nc] = pm[q] - s
                cc[nc] = c
                nc += 1
        t_to_m = np.empty(n_live, dtype=np.int64)
        m_to_t = np.empty(m, dtype=np.int64)
        n_greedy += _assign(ct, cm, cc, nc, n_live, m, int(g[G_MAX_EXACT]), t_to_m, m_to_t)
        # 4. updates. The measurement model reads the predicted state through the owned XP_o
        # (a reference-counted view, once per assigned pair): through the borrowed alias the
        # fast-math optimiser reorders its arithmetic and radar tracks change in the last bit
        # (service replay no longer byte-identical; checked with PP_o in _innov_cov too).
        for a in range(n_live):
            b = t_to_m[a]
            if b < 0:
                continue
            i = live[a]
            j = s + b
            r = meas[j]
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
                XP_o[i],
                across,
                s_vr,
                nu,
                H,
                R,
            )
            if oosm and t[i] > tf:
                # updated since the row's time: evidence only (hits, class, sensors), no
                # state update, no hit bit (see the module docstring, late measurements)
                d2, _ = _innov_cov(PP_o[i], nu, H, R, k, ws[0], ws[1], ws[2, 0])
                hits[i] += 1
                _class_update(class_p[i], prior, C[kind], r["cls"], r["conf"], g[G_EPS])
                kinds[i] |= 1 << kind
                if 0 <= sensor < 64 * sensors.shape[1]:
                    sensors[i, sensor >> 6] |= np.uint64(1) << np.uint64(sensor & 63)
                rec_tid[j] = tid[i]
                rec_act[j] = ASSIGNED
                rec_d2[j] = d2
                continue
            d2 = _kf_update(XP[i], PP[i], nu, H, R, k, x[i], P[i], ws)
            t[i] = tf
            t_upd[i] = tf
            hits[i] += 1
            miss[i] = 0
            hist[i] = ((hist[i] << 1) | 1) & 0xFFFFFFFF
            _class_update(class_p[i], prior, C[kind], r["cls"], r["conf"], g[G_EPS])
            kinds[i] |= 1 << kind
            if 0 <= sensor < 64 * sensors.shape[1]:
                sensors[i, sensor >> 6] |= np.uint64(1) << np.uint64(sensor & 63)
            last_sensor[i] = sensor
            if (
                status[i] == TENTATIVE
                and _popcount(hist[i] & mask_n) >= m_conf
                and _confirmable(P[i], kinds[i], sensors[i], g)
            ):
                status[i] = CONFIRMED
                was_conf[i] = 1
            rec_tid[j] = tid[i]
            rec_act[j] = ASSIGNED
            rec_d2[j] = d2
        # 5. misses
        if kpar[kind, K_SCAN_MISS] > 0.0 and not oosm:
            for a in range(n_live):
                if t_to_m[a] >= 0:
                    continue
                i = live[a]
                miss[i] += 1
                hist[i] = (hist[i] << 1) & 0xFFFFFFFF
                if _is_expired(
                    status[i], miss[i], 0.0, class_p[i], g, cpar, kinds[i], math.nan, kpar
                ):
                    status[i] = DEAD
                    ctr[C_NLIVE] -= 1
        # 6. unassigned rows: absorb or start
        absorb = kpar[kind, K_ABSORB] > 0.0
        if absorb:
            best = np.full(m, np.inf)
            by = np.full(m, -1, dtype=np.int64)
            for q in range(n_pairs):
                b = pm[q] - s
                a = pt[q]
                if m_to_t[b] < 0 and t_to_m[a] >= 0 and pd2[q] < best[b]:
                    best[b] = pd2[q]
                    by[b] = live[a]
        for b in range(m):
            if m_to_t[b] >= 0:
                continue
            j = s + b
            r = meas[j]
            if absorb and by[b] >= 0:
                i = by[b]
                if kind == FIBRE:
                    _class_update(class_p[i], prior, C[kind], _GROUP, g[G_GROUP_CONF], g[G_EPS])
                rec_tid[j] = tid[i]
                rec_act[j] = ABSORBED
                rec_d2[j] = best[b]
                continue
            i = free[ctr[C_NFREE] - 1]
            pc = class_p[i]
            for k in range(N_CLASSES):
                pc[k] = prior[k]
            _class_update(pc, prior, C[kind], r["cls"], r["conf"], g[G_EPS])
            sv2 = 0.0
            for k in range(N_CLASSES):
                sv2 += pc[k] * cpar[k, C_SV0] * cpar[k, C_SV0]
            ok = _init_state(
                kind,
                r["x"],
                r["y"],
                r["cxx"],
                r["cxy"],
                r["cyy"],
                r["tx"],
                r["ty"],
                r["extent"],
                across,
                sv2,
                x[i],
                P[i],
            )
            if not ok:
                rec_tid[j] = -1
                rec_act[j] = INVALID
                rec_d2[j] = math.nan
                continue
            ctr[C_NFREE] -= 1
            ctr[C_NLIVE] += 1
            ctr[C_HW] = max(ctr[C_HW], i + 1)
            tid[i] = ctr[C_NEXT_ID]
            ctr[C_NEXT_ID] += 1
            t[i] = tf
            t_upd[i] = tf
            t_birth[i] = tf
            hist[i] = 1
            hits[i] = 1
            miss[i] = 0
            kinds[i] = 1 << kind
            for w in range(sensors.shape[1]):
                sensors[i, w] = 0
            if 0 <= sensor < 64 * sensors.shape[1]:
                sensors[i, sensor >> 6] |= np.uint64(1) << np.uint64(sensor & 63)
            last_sensor[i] = sensor
            if m_conf <= 1 and _confirmable(P[i], kinds[i], sensors[i], g):
                status[i] = CONFIRMED
                was_conf[i] = 1
            else:
                status[i] = TENTATIVE
                was_conf[i] = 0
            rec_tid[j] = tid[i]
            rec_act[j] = STARTED
            rec_d2[j] = math.nan
    keep(nu_o)
    keep(H_o)
    keep(R_o)
    keep(ws_o)
    return n_greedy


@kernel
def _frames(tt: F8, ss: I4, fb: I8) -> tuple[int, int]:
    """Frame starts of rows sorted by ``(t, sensor)``: ``fb[:nf + 1]`` (last = n), and the
    largest sensor index; ``nf = -1`` if the rows are not sorted."""
    n = tt.shape[0]
    nf = 0
    smax = ss[0]
    fb[0] = 0
    for j in range(1, n):
        smax = max(smax, ss[j])
        if tt[j] == tt[j - 1] and ss[j] == ss[j - 1]:
            continue
        if tt[j] < tt[j - 1] or (tt[j] == tt[j - 1] and ss[j] < ss[j - 1]):
            return -1, smax
        nf += 1
        fb[nf] = j
    fb[nf + 1] = n
    return nf + 1, smax


@kernel
def _scan_rows(meas: Rec) -> tuple[int, float, float]:
    """``(largest kind, smallest t, largest t)`` of non-empty ``meas``; the smallest ``t`` is
    NaN if any ``t`` is (as ``numpy.min``)."""
    kmax = 0
    tmin = math.inf
    tmax = -math.inf
    nan = False
    for j in range(meas.shape[0]):
        kmax = max(kmax, int(meas[j]["kind"]))
        tj = meas[j]["t"]
        if math.isnan(tj):
            nan = True
        else:
            tmin = min(tmin, tj)
            tmax = max(tmax, tj)
    return kmax, (math.nan if nan else tmin), tmax


@kernel
def _records(meas: Rec, rec_tid: I8, rec_act: U1, rec_d2: F8, rec: Rec) -> int:
    """Fill the association records ``rec`` (REC_DTYPE) of rows ``meas``; returns how many
    are INVALID."""
    n_invalid = 0
    for j in range(meas.shape[0]):
        r = rec[j]
        r["mid"] = meas[j]["mid"]
        r["track_id"] = rec_tid[j]
        r["action"] = rec_act[j]
        r["d2"] = rec_d2[j]
        if rec_act[j] == INVALID:
            n_invalid += 1
    return n_invalid


def _kernel_rows(meas: MeasArray) -> MeasArray:
    """``meas`` as the kernels take it: MEAS_DTYPE (else TypeError), contiguous and writable
    (a read-only array is copied, so one compiled specialisation serves every path)."""
    if meas.dtype != MEAS_DTYPE:
        msg = f"measurements must have MEAS_DTYPE, got {meas.dtype}"
        raise TypeError(msg)
    meas = np.ascontiguousarray(meas)
    return meas if meas.flags.writeable else _copy_meas(meas)


def _copy_meas(meas: MeasArray) -> MeasArray:
    """A writable copy of contiguous ``meas`` (one byte copy; ``ndarray.copy`` of the packed
    structured dtype goes field by field, 5 us for 20 rows)."""
    out: MeasArray = np.frombuffer(bytearray(meas.tobytes()), dtype=MEAS_DTYPE)
    return out


@kernel
def _free_dead(status: U1, tid: I8, merged_into: I8, free: I8, ctr: I8) -> None:
    """Return DEAD slots to the free stack (after they were reported) and lower ``hw``."""
    hw = ctr[C_HW]
    for i in range(hw):
        if status[i] == DEAD:
            status[i] = FREE
            tid[i] = -1
            merged_into[i] = -1
            free[ctr[C_NFREE]] = i
            ctr[C_NFREE] += 1
    while hw > 0 and status[hw - 1] == FREE:
        hw -= 1
    ctr[C_HW] = hw


#: snapshot float block columns (:func:`_snap_rows`): predicted state, covariance (row-major),
#: position sigma, class posterior, confidence, last update, birth
S_X, S_P, S_SIG, S_CP = 0, 4, 20, 21
S_CONF = S_CP + N_CLASSES
S_TU = S_CONF + 1
S_TB = S_TU + 1
S_NF = S_TB + 1

#: per-step outputs of :func:`_step_kernel` (columns of its float ``info``; one array, as
#: each array returned costs 0.2-0.5 us to box): greedy-solved clusters, INVALID records,
#: merges, expiries, then *ends* (exclusive) of the step's snapshot rows and ended ids in
#: the concatenated outputs, its checkpoint's words ``[lo, hi)`` in the checkpoint buffer
#: (``lo == hi``: none taken; counts and offsets are integers, exact below 2^53), the newest
#: row time of the step (-inf if none), and ``frontier`` and settled time after the step
I_GREEDY, I_INVALID, I_MERGED, I_EXPIRED, I_SNAP, I_ENDED, I_CKLO, I_CKHI = range(8)
F_TMAX, F_FRONT, F_SETTLED = 8, 9, 10
_N_INFO = 11


#: a snapshot row in int64 words: the float columns ``S_*`` (``[0, S_NF)``), track id
#: ``S_ID``, merged into ``S_MI``, the sensor mask ``[S_SENS, S_SENS + SENSOR_WORDS)``, and
#: word ``S_HF``: hits (int32, bytes 0-3) and the flags status, was confirmed, kinds (bytes
#: 4-6). A step's snapshot is one such buffer (one array to box per call: each costs 0.2-0.5 us,
#: most of it a Python call Numba makes to find the array type); :data:`SNAP_DTYPE` reads it.
S_ID = S_NF
S_MI = S_ID + 1
S_SENS = S_MI + 1
S_HF = S_SENS + SENSOR_WORDS
S_WORDS = S_HF + 1

#: the structured view of a snapshot buffer: one field per :class:`Snapshot` column
SNAP_DTYPE = np.dtype(
    {
        "names": [
            "x", "y", "vx", "vy", "cov", "pos_sigma", "class_p", "confidence", "t_update",
            "t_birth", "track_id", "merged_into", "sensors", "hits", "status",
            "was_confirmed", "kinds",
        ],
        "formats": [
            "<f8", "<f8", "<f8", "<f8", ("<f8", (4, 4)), "<f8", ("<f8", (N_CLASSES,)), "<f8",
            "<f8", "<f8", "<i8", "<i8", ("<u8", (SENSOR_WORDS,)), "<i4", "u1", "u1", "u1",
        ],
        "offsets": [
            8 * S_X, 8 * (S_X + 1), 8 * (S_X + 2), 8 * (S_X + 3), 8 * S_P, 8 * S_SIG,
            8 * S_CP, 8 * S_CONF, 8 * S_TU, 8 * S_TB, 8 * S_ID, 8 * S_MI, 8 * S_SENS,
            8 * S_HF, 8 * S_HF + 4, 8 * S_HF + 5, 8 * S_HF + 6,
        ],
        "itemsize": 8 * S_WORDS,
    }
)  # fmt: skip


@inline_kernel
def _snap_views(buf: I8) -> tuple[F8, I8, U1, I4, U8]:
    """The blocks that :func:`_snap_rows` writes, as views of the snapshot buffer ``buf``
    (``len(buf) // S_WORDS`` rows): floats ``(n, S_NF)``, ids ``(n, 2)`` (track id, merged
    into), flags ``(n, 3)`` (status, was confirmed, kinds), hits, sensors."""
    n = buf.shape[0] // S_WORDS
    w = buf[: n * S_WORDS]
    return (
        w.view(np.float64).reshape((n, S_WORDS))[:, :S_NF],
        w.reshape((n, S_WORDS))[:, S_ID : S_MI + 1],
        w.view(np.uint8).reshape((n, 8 * S_WORDS))[:, 8 * S_HF + 4 : 8 * S_HF + 7],
        w.view(np.int32).reshape((n, 2 * S_WORDS))[:, 2 * S_HF],
        w.view(np.uint64).reshape((n, S_WORDS))[:, S_SENS:S_HF],
    )


@kernel
def _finish(
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
    now: float,
    g: F8,
    kpar: F8,
    cpar: F8,
    prior: F8,
    C_fibre: F8,
    XP_o: F8,
    PP_o: F8,
    pv: U1,
) -> tuple[int, int, int]:
    """End of step at ``now``: expire, then merge (which leaves the live tracks' states
    predicted to ``now`` in the workspace ``XP_o``, ``PP_o``, ``pv``: :func:`_merge`).
    Returns ``(n_merged, n_expired, rows)``, ``rows`` the non-free slots (the snapshot's
    length)."""
    # borrowed aliases: no reference counting per view (fusion._jit.borrow)
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
    kpar = borrow(kpar)
    cpar = borrow(cpar)
    prior = borrow(prior)
    C_fibre = borrow(C_fibre)
    hw = ctr[C_HW]
    n_expired = _expire(status, miss, t_upd, class_p, kinds, P, g, cpar, kpar, now, hw, ctr)
    n_merged = _merge(
        x, P, t, t_upd, tid, status, was_conf, hist, hits, miss, class_p, kinds, sensors,
        last_sensor, merged_into, ctr, hw, now, g, cpar, prior, C_fibre, XP_o, PP_o, pv,
    )  # fmt: skip
    n = 0
    for i in range(hw):
        if status[i] != FREE:
            n += 1
    return n_merged, n_expired, n


@kernel
def _snap_rows(
    x: F8,
    P: F8,
    t: F8,
    t_upd: F8,
    t_birth: F8,
    tid: I8,
    status: U1,
    was_conf: U1,
    hits: I4,
    class_p: F8,
    kinds: U1,
    sensors: U8,
    merged_into: I8,
    hw: int,
    now: float,
    kpar: F8,
    cpar: F8,
    XP: F8,
    PP: F8,
    pv: U1,
    o_f: F8,
    o_id: I8,
    o_fl: U1,
    o_hits: I4,
    o_sens: U8,
    r0: int,
) -> None:
    """Snapshot rows ``r0, r0 + 1, ...`` of the blocks (:func:`_snap_views`): one per
    non-free slot ``< hw`` in slot order, floats ``[x (4) predicted to now, P (16),
    pos_sigma, class_p, confidence, t_upd, t_birth]`` (columns ``S_*``), ids ``[tid,
    merged_into]``, flags ``[status, was_conf, kinds]``, hits, sensors. Where ``pv[i]``,
    the prediction to ``now`` is ``XP[i]``, ``PP[i]`` (made by :func:`_merge`), else it is
    made here.
    ``pos_sigma = sqrt(largest eigenvalue of P[:2, :2])``; ``confidence = 1 - prod_k (1 -
    w_k)`` over the kinds that updated the track."""
    bF = borrow(o_f)
    bI = borrow(o_id)
    bU = borrow(o_fl)
    b_hits = borrow(o_hits)
    b_sens = borrow(o_sens)
    x = borrow(x)
    P = borrow(P)
    class_p = borrow(class_p)
    sensors = borrow(sensors)
    XP = borrow(XP)
    PP = borrow(PP)
    pv = borrow(pv)
    px_o = np.empty(4)
    pP_o = np.empty((4, 4))
    r = r0
    for i in range(hw):
        if status[i] == FREE:
            continue
        for k in range(class_p.shape[1]):
            bF[r, S_CP + k] = class_p[i, k]
        if pv[i]:
            px = XP[i]
            pP = PP[i]
        else:
            q = 0.0
            for k in range(class_p.shape[1]):
                q += class_p[i, k] * cpar[k, C_Q]
            px = borrow(px_o)
            pP = borrow(pP_o)
            _predict_one(x[i], P[i], now - t[i], q, px, pP)
        for u in range(4):
            bF[r, S_X + u] = px[u]
            for v in range(4):
                bF[r, S_P + 4 * u + v] = pP[u, v]
        a = pP[0, 0]
        b = pP[0, 1]
        d = pP[1, 1]
        bF[r, S_SIG] = math.sqrt(max(0.5 * (a + d) + math.sqrt(0.25 * (a - d) ** 2 + b * b), 0.0))
        pm = 1.0
        for k in range(kpar.shape[0]):
            if (kinds[i] >> k) & 1:
                pm *= 1.0 - kpar[k, K_WEIGHT]
        bF[r, S_CONF] = 1.0 - pm
        bF[r, S_TU] = t_upd[i]
        bF[r, S_TB] = t_birth[i]
        bI[r, 0] = tid[i]
        bI[r, 1] = merged_into[i]
        bU[r, 0] = status[i]
        bU[r, 1] = was_conf[i]
        bU[r, 2] = kinds[i]
        for w in range(sensors.shape[1]):
            b_sens[r, w] = sensors[i, w]
        b_hits[r] = hits[i]
        r += 1
    keep(px_o)
    keep(pP_o)


@inline_kernel
def _grown(a: Any, n: int, cap: int) -> Any:
    """A new array of ``cap`` rows (trailing shape and dtype of ``a``) whose first ``n`` rows
    are ``a``'s."""
    out = np.empty((cap,) + a.shape[1:], dtype=a.dtype)  # noqa: RUF005 (Numba)
    out[:n] = a[:n]
    return out


@kernel
def _step_kernel(
    meas: Rec,
    offs: I8,
    nows: F8,
    oosm: bool,
    front: float,
    settled: float,
    replay: bool,
    finish: bool,
    emit: bool,
    ckpt: bool,
    h: float,
    cks: float,
    last_ck: float,
    n_kinds: int,
    rec: Rec,
    ck: I8,
    x: F8,
    P: F8,
    t: F8,
    t_upd: F8,
    t_birth: F8,
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
    free: I8,
    ctr: I8,
    g: F8,
    kpar: F8,
    cpar: F8,
    spd: F8,
    slam: F8,
    C: F8,
    prior: F8,
    C_fibre: F8,
) -> tuple[Any, ...]:
    """The tracker's one compiled entry point: steps ``k`` at ``nows[k]`` with rows
    ``meas[offs[k]:offs[k + 1]]``, each rows, then end of step, then checkpoint.

    Per step, in order: the frames of its rows through :func:`_run` (``oosm`` as there)
    with their association records into ``rec`` (same rows as ``meas``; :func:`_records`);
    if ``finish``, :func:`_finish` at ``nows[k]`` and (``emit``) the snapshot
    (:func:`_snap_rows`) and freeing of DEAD slots; if ``ckpt``, the checkpoint
    (:func:`fusion.state._pack`) when due (``nows[k] - last >= cks``, ``last`` the previous
    due step time, starting at ``last_ck``). A live step is one call with one step; the
    general path (late rows, replays) calls it for rows only or for the end of step only;
    :meth:`Tracker.run` passes many steps. Every path runs this same compiled code, so a
    replayed or batched step computes bit for bit what the live step did (separately
    compiled copies of :func:`_run` and :func:`_finish` differed in the last bit:
    fast-math).

    Steps run while they are in-order live steps: rows newer than ``thr = max(frontier,
    settled) if replay else frontier`` (for steps after the first, ``settled`` is bounded
    by the largest earlier step time: checked before anything runs), known kinds, sorted
    by ``(t, sensor)``, known sensors, non-decreasing step times, and (checked as each
    step starts) at least as many free slots as rows. Checkpoints that the end of this
    call's steps would prune (``Tracker._prune``: all but the newest due one at or before
    ``max step time - h``, and those after it) are not taken.

    Returns ``(code, done, j, last, info, ended, ckbuf, snapshot)``: ``done`` steps ran
    (the first ``done`` rows of ``info``, columns ``I_*`` and ``F_*``); ``j`` the
    step of the oldest checkpoint kept by that rule (-1: none is at or before ``max step
    time - h``); ``last`` the last due step time; ``ended`` the ids each step reported DEAD
    and ``snapshot`` the snapshot rows (``S_WORDS`` words each, :data:`SNAP_DTYPE`),
    concatenated over steps;
    ``ckbuf`` the checkpoints (``ck`` itself when large enough). ``code`` why step
    ``done`` did not run (0: all ran): 1 a row not newer than ``thr`` (late), a NaN time or
    an unknown kind, or a step time earlier than the previous; 2 rows not sorted; 3 a
    sensor index beyond the per-sensor tables; 4 fewer free slots than rows.
    """
    S = nows.shape[0]
    # steps that can run, from what is known before running them
    code = 0
    lim = S
    fr = front
    hi = settled
    nmax = 0
    ff = np.zeros((S, _N_INFO))
    # frame starts of step k: fb[a + k : a + k + nfr[k] + 1] (a = offs[k]), found here once
    fb = np.empty(meas.shape[0] + S, dtype=np.int64)
    nfr = np.zeros(S, dtype=np.int64)
    for k in range(S):
        a = offs[k]
        b = offs[k + 1]
        c = 0
        if k and nows[k] < nows[k - 1]:
            c = 1
        elif b > a:
            kmax, tmin, tmax = _scan_rows(meas[a:b])
            thr = max(fr, hi) if replay else fr
            if kmax >= n_kinds or not tmin > thr:
                c = 1
            else:
                nf, smax = _frames(meas[a:b]["t"], meas[a:b]["sensor"], fb[a + k : b + k + 1])
                nfr[k] = nf
                ff[k, F_TMAX] = tmax
                if nf < 0:
                    c = 2
                elif smax >= spd.shape[0]:
                    c = 3
                else:
                    fr = max(fr, tmax)
                    nmax = max(nmax, b - a)
        if c:
            code = c
            lim = k
            break
        hi = max(hi, nows[k])
    # checkpoints the end would keep: due steps from the newest due one <= tmax - h
    j = -1
    n_due = 0  # due checkpoints from step j on (what the buffer is sized for)
    if ckpt and lim:
        last = last_ck
        t_cut = nows[lim - 1] - h
        for k in range(lim):
            if nows[k] - last >= cks:
                last = nows[k]
                n_due += 1
                if nows[k] <= t_cut:
                    j = k
                    n_due = 1
    snap = np.empty(0, dtype=np.int64)
    ended = np.empty(0, dtype=np.int64)
    cap = x.shape[0]  # workspace for _run, _finish, _snap_rows (the table cannot grow here)
    XP_o = np.empty((cap, 4))
    PP_o = np.empty((cap, 4, 4))
    live = np.empty(cap, dtype=np.int64)
    pv = np.zeros(cap, dtype=np.uint8)
    rec_tid = np.empty(nmax, dtype=np.int64)
    rec_act = np.empty(nmax, dtype=np.uint8)
    rec_d2 = np.empty(nmax)
    fr = front
    st = settled
    last = last_ck
    r0 = 0  # snapshot rows written
    e0 = 0  # ended ids written
    c0 = 0  # checkpoint words written
    done = 0
    for k in range(lim):
        a = offs[k]
        b = offs[k + 1]
        n = b - a
        if n and ctr[C_NFREE] < n:
            code = 4
            break
        now = nows[k]
        if n:
            m = meas[a:b]
            ff[k, I_GREEDY] = _run(
                m, fb[a + k : b + k + 1], nfr[k], x, P, t, t_upd, t_birth, tid, status,
                was_conf, hist, hits, miss, class_p, kinds, sensors, last_sensor, free, ctr, g,
                kpar, cpar, spd, slam, C, prior, rec_tid, rec_act, rec_d2, oosm, XP_o, PP_o,
                live,
            )  # fmt: skip
            ff[k, I_INVALID] = _records(m, rec_tid, rec_act, rec_d2, rec[a:b])
            fr = max(fr, ff[k, F_TMAX])
        else:
            ff[k, F_TMAX] = -math.inf
        if finish:
            n_merged, n_expired, nrow = _finish(
                x, P, t, t_upd, tid, status, was_conf, hist, hits, miss, class_p, kinds,
                sensors, last_sensor, merged_into, ctr, now, g, kpar, cpar, prior, C_fibre,
                XP_o, PP_o, pv,
            )  # fmt: skip
            ff[k, I_MERGED] = n_merged
            ff[k, I_EXPIRED] = n_expired
            if n_merged or n_expired:
                st = now
            if emit:
                if r0 == 0 and nrow:  # one step: exact; many: room for the rest
                    snap = np.empty(nrow * (lim - k) * S_WORDS, dtype=np.int64)
                elif (r0 + nrow) * S_WORDS > snap.shape[0]:
                    rows = max(2 * (snap.shape[0] // S_WORDS), r0 + nrow * (lim - k))
                    snap = _grown(snap, r0 * S_WORDS, rows * S_WORDS)
                o_f, o_id, o_fl, o_hits, o_sens = _snap_views(snap)
                _snap_rows(
                    x, P, t, t_upd, t_birth, tid, status, was_conf, hits, class_p, kinds,
                    sensors, merged_into, ctr[C_HW], now, kpar, cpar, XP_o, PP_o, pv, o_f, o_id,
                    o_fl, o_hits, o_sens, r0,
                )  # fmt: skip
                nd = 0
                for r in range(r0, r0 + nrow):
                    if o_fl[r, 0] == DEAD:
                        nd += 1
                if e0 + nd > ended.shape[0]:
                    ended = _grown(ended, e0, max(2 * e0, e0 + nd * (lim - k)))
                for r in range(r0, r0 + nrow):
                    if o_fl[r, 0] == DEAD:
                        ended[e0] = o_id[r, 0]
                        e0 += 1
                r0 += nrow
                _free_dead(status, tid, merged_into, free, ctr)
        ff[k, I_SNAP] = r0
        ff[k, I_ENDED] = e0
        ff[k, I_CKLO] = c0
        if ckpt and now - last >= cks:
            last = now
            if k >= j:
                need = packed_words(ctr[C_HW], free.shape[0])
                if c0 + need > ck.shape[0]:  # room for the rest at this size + 1/4, or 2x
                    words = c0 + need + (need * (n_due - 1) * 5) // 4
                    ck = _grown(ck, c0, words if c0 == 0 else max(words, 2 * ck.shape[0]))
                n_due -= 1
                _pack(
                    ctr[C_HW], x, P, t, t_upd, t_birth, tid, status, was_conf, hist, hits,
                    miss, class_p, kinds, sensors, last_sensor, merged_into, free, ctr,
                    ck[c0 : c0 + need],
                )  # fmt: skip
                c0 += need
        ff[k, I_CKHI] = c0
        ff[k, F_FRONT] = fr
        ff[k, F_SETTLED] = st
        done = k + 1
    return (
        code, done, j, last, ff, ended[:e0], ck, snap[: r0 * S_WORDS],
    )  # fmt: skip


_A = TypeVar("_A", bound=np.ndarray)


class _Column(Generic[_A]):
    """A :class:`Snapshot` column: the field of the same name of the snapshot's rows
    (:data:`SNAP_DTYPE`), a view made on first use and then kept in the instance (a
    non-data descriptor: the instance's own attribute shadows it), so a consumer pays only
    for the columns it reads."""

    __slots__ = ("name",)

    def __init__(self) -> None:
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Column[_A]: ...
    @overload
    def __get__(self, obj: Snapshot, owner: type) -> _A: ...
    def __get__(self, obj: Snapshot | None, owner: type) -> _Column[_A] | _A:
        if obj is None:
            return self
        # a Snapshot built from columns has every one of them: _rows is never None here
        v: Any = obj._rows[self.name]  # type: ignore[index]
        obj.__dict__[self.name] = v
        return v  # type: ignore[no-any-return]


class Snapshot:
    """Struct-of-arrays view of the tracks after a step, predicted to ``t``.

    One row per track that is live after the step or ended during it. ``status`` is
    TENTATIVE (1), CONFIRMED (2) or DEAD (3 = lost/ended; ``merged_into`` >= 0 if merged).
    ``cov`` is the full 4x4 state covariance; ``pos_sigma`` the square root of the largest
    eigenvalue of its position block. ``confidence = 1 - prod_k (1 - w_k)`` over the sensor
    kinds that updated the track (corroboration by a second kind raises it). ``sensors`` is a
    (n, 4) uint64 bitmask over sensor indices.

    A step's snapshot holds the kernel's rows (one buffer, :data:`SNAP_DTYPE`); each column
    is a view of its field, made when first read (:class:`_Column`). ``Snapshot(t,
    **columns)`` builds one from whole columns (``COLUMNS``, all of them); :meth:`replace`
    copies one with some changed.
    """

    COLUMNS: tuple[str, ...] = tuple(SNAP_DTYPE.names or ())

    track_id = _Column[I8]()
    status = _Column[U1]()
    was_confirmed = _Column[U1]()
    x = _Column[F8]()
    y = _Column[F8]()
    vx = _Column[F8]()
    vy = _Column[F8]()
    cov = _Column[F8]()
    pos_sigma = _Column[F8]()
    class_p = _Column[F8]()
    confidence = _Column[F8]()
    kinds = _Column[U1]()
    sensors = _Column[U8]()
    t_update = _Column[F8]()
    t_birth = _Column[F8]()
    hits = _Column[I4]()
    merged_into = _Column[I8]()

    def __init__(self, t: float, **columns: np.ndarray) -> None:
        if set(columns) != set(self.COLUMNS):
            msg = f"Snapshot needs exactly the columns {self.COLUMNS}"
            raise TypeError(msg)
        self.t = t
        self._rows: np.ndarray | None = None
        self.__dict__.update(columns)

    @classmethod
    def _of_rows(cls, t: float, rows: np.ndarray) -> Snapshot:
        """The snapshot whose columns are the fields of ``rows`` (:data:`SNAP_DTYPE`)."""
        obj = object.__new__(cls)
        obj.t = t
        obj._rows = rows
        return obj

    def replace(self, **changes: Any) -> Snapshot:
        """A copy with ``changes`` (``t`` or columns) applied."""
        cols = {c: changes.pop(c) if c in changes else getattr(self, c) for c in self.COLUMNS}
        return Snapshot(changes.pop("t", self.t), **changes, **cols)

    def __len__(self) -> int:
        """Number of rows."""
        return len(self.track_id)

    def sensor_indices(self, row: int) -> list[int]:
        """Sensor indices set in row ``row``'s bitmask."""
        out: list[int] = []
        for w in range(self.sensors.shape[1]):
            v = int(self.sensors[row, w])
            b = 0
            while v:
                if v & 1:
                    out.append(64 * w + b)
                v >>= 1
                b += 1
        return out


@dataclass
class StepResult:
    """What one :meth:`Tracker.step` returns: the snapshot and the association record."""

    snapshot: Snapshot
    records: np.ndarray  #: REC_DTYPE, one row per input row (and per replayed row)
    replayed: int = 0  #: rows re-processed because of a rewind
    late_dropped: int = 0  #: rows older than the horizon (recorded as LATE)
    invalid: int = 0
    oosm: int = 0  #: rows later than ``oosm_after_s``, applied with the OOSM update


@dataclass
class _Run:
    """Steps ``k0, k0 + 1, ...`` that :meth:`Tracker.run` ran in one kernel call: their row
    offsets (from 0), records, per-step outputs (``I_*``, ``F_*``) and snapshot rows
    (:data:`SNAP_DTYPE`)."""

    k0: int
    offs: I8
    rec: np.ndarray
    info: F8
    rows: np.ndarray

    def result(self, k: int, t: float) -> StepResult:
        """Step ``k0 + k``'s :class:`StepResult` (its columns are views of the rows)."""
        lo = int(self.info[k - 1, I_SNAP]) if k else 0
        hi = int(self.info[k, I_SNAP])
        snap = Snapshot._of_rows(t, self.rows[lo:hi])
        rec = self.rec[int(self.offs[k]) : int(self.offs[k + 1])]
        return StepResult(snap, rec, 0, 0, int(self.info[k, I_INVALID]), 0)


@dataclass
class BatchResult:
    """What :meth:`Tracker.run` returns: per step, the :class:`StepResult` that
    :meth:`Tracker.step` would have returned (built when asked for)."""

    times: F8
    parts: list[_Run | StepResult]

    def __len__(self) -> int:
        """Number of steps."""
        return len(self.times)

    def __getitem__(self, k: int) -> StepResult:
        """Step ``k``'s result."""
        if not 0 <= k < len(self.times):
            raise IndexError(k)
        first = 0
        for p in self.parts:
            n = len(p.info) if isinstance(p, _Run) else 1
            if k < first + n:
                if isinstance(p, _Run):
                    return p.result(k - first, float(self.times[k]))
                return p
            first += n
        raise IndexError(k)  # pragma: no cover (parts cover every step)


@dataclass
class _Checkpoint:
    step_t: float  # step time this checkpoint was taken at
    frontier: float  # newest measurement time processed (all rows <= frontier are in)
    packed: I8  # the table, TrackTable.pack (one buffer: one compiled copy per checkpoint)
    settled: float = -math.inf  # Tracker._settled_t then

    def table(self) -> TrackTable:
        """The checkpointed (compact) table; its columns are views of :attr:`packed`."""
        return TrackTable.unpacked(self.packed)


@dataclass
class _Counters:
    steps: int = 0
    rows: int = 0
    late_dropped: int = 0
    replays: int = 0
    replayed_rows: int = 0
    oosm_rows: int = 0
    greedy_clusters: int = 0
    merges: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Tracker:
    """Multi-sensor multi-target GNN tracker (see the module docstring).

    ``Tracker(config=None, n_sensors=0)``; ``step(t, meas) -> StepResult``. State lives in
    :attr:`table` (a :class:`fusion.state.TrackTable`).
    """

    def __init__(self, config: TrackerConfig | None = None, n_sensors: int = 0) -> None:
        self.config = config or TrackerConfig()
        self._g, self._kpar, self._cpar, self._prior = self.config.pack()
        self._spd, self._slam = self.config.sensor_tables(n_sensors)
        self._C = np.ascontiguousarray(self.config.confusion())
        self._C_fibre = np.ascontiguousarray(self._C[int(Kind.FIBRE)])
        self.table = TrackTable(64)
        self.frontier = -math.inf  # newest measurement time processed
        self._settled_t = -math.inf  # last step time whose end-of-step work ended tracks
        self.counters = _Counters()
        # chunks of rows, one per step, for replay: MEAS_DTYPE bytes (a bytes copy is ~6x
        # cheaper than a structured array copy; read back with np.frombuffer)
        self._log: list[bytes] = []
        self._log_tmax: list[float] = []  # newest row time of each chunk
        self._own: list[tuple[I8, I8]] = []  # (mid, track id) of each chunk's rows, current
        self._ended: list[tuple[float, I8]] = []  # (step t, ids reported DEAD then)
        self._oosm_log: list[tuple[float, MeasArray]] = []  # (step t, rows OOSM-applied then)
        # ids that a replay started and ended (never published) -> when; they can be live in
        # the replay's checkpoints until those are pruned
        self._unpublished: dict[int, float] = {}
        # the empty table before the first step is a checkpoint too (late rows at start-up)
        self._ckpts: list[_Checkpoint] = [_Checkpoint(-math.inf, -math.inf, self.table.pack())]
        self._step_times: list[float] = []  # step times since the oldest checkpoint
        self._n_invalid = 0  # INVALID records made in the current step
        self._spare: list[I8] = []  # pruned checkpoints' buffers, for reuse
        self._pruned_for = math.nan  # oldest checkpoint's step time at the last full prune
        # _step_kernel's array arguments (see _kernel_args; not state: never snapshotted)
        self._kargs: tuple[np.ndarray, ...] = ()
        self._kargs_tb: TrackTable | None = None
        # the live step's offsets and step time, as _step_kernel's arrays (not state)
        self._one: tuple[I8, F8] = (np.zeros(2, dtype=np.int64), np.zeros(1))
        self._pruned_t = math.inf  # step time of the last full prune

    # ------------------------------------------------------------------ public
    def step(self, t: float, meas: MeasArray | None = None) -> StepResult:
        """Advance to time ``t`` with the rows that arrived since the last step."""
        if not math.isfinite(t):
            msg = "step time must be finite"
            raise ValueError(msg)
        meas = _kernel_rows(np.empty(0, dtype=MEAS_DTYPE) if meas is None else meas)
        fast = self._step_fast(t, meas)
        if fast is not None:
            return fast
        tmin = math.inf
        tmax = -math.inf
        if len(meas):
            kmax, tmin, tmax = _scan_rows(meas)
            if kmax >= len(Kind):
                msg = "unknown measurement kind"
                raise ValueError(msg)
        self.counters.steps += 1
        self.counters.rows += len(meas)
        recs: list[np.ndarray] = []
        tm = meas["t"]
        replay = self.config.horizon_s > 0
        # a row is old if a newer one was processed, or if a step's expiry/merge that it
        # precedes already happened (on time it would have been processed before them)
        thr = max(self.frontier, self._settled_t) if replay else self.frontier
        n_late = 0
        any_old = False
        self._n_invalid = 0
        late_meas = _NO_MEAS
        if not tmin > thr:  # some row is old, or NaN (the common in-order case skips this)
            bad = ~np.isfinite(tm)
            old = (tm <= thr) if replay else (tm < thr)
            # replayable: some checkpoint precedes the row in step time and in processed rows
            floor = max(self._ckpts[0].frontier, self._ckpts[0].step_t) if replay else math.inf
            late = old & (tm <= floor) & ~bad
            drop = bad | late
            n_late = int(late.sum())
            if drop.any():
                r = np.zeros(int(drop.sum()), dtype=REC_DTYPE)
                r["mid"] = meas["mid"][drop]
                r["track_id"] = -1
                r["action"] = np.where(late[drop], LATE, INVALID)
                r["d2"] = np.nan
                recs.append(r)
                self._n_invalid += int(np.count_nonzero(r["action"] == INVALID))
                self.counters.late_dropped += n_late
                meas = meas[~drop]
                old = old[~drop]
            if replay:  # too late to replay cheaply: OOSM update (applied again by rewinds)
                oo = old & (meas["t"] < thr - self.config.oosm_after_s)
                if oo.any():
                    late_meas = np.ascontiguousarray(meas[oo])
                    self._oosm_log.append((t, late_meas))
                    meas = meas[~oo]
                    old = old[~oo]
            any_old = bool(old.any())
        replayed = 0
        logged = replay and len(meas) > 0
        if logged:
            self._log.append(meas.tobytes())
            # tmax of the input unless rows were taken out above (then they were old/bad)
            self._log_tmax.append(tmax if len(meas) == len(tm) else float(meas["t"].max()))
        if replay and any_old:
            self._own.append((_NO_I8, _NO_I8))  # rewritten by the rewind
            replayed = self._rewind(float(meas["t"][old].min()), recs)
        else:
            rec = self._process(meas)
            recs.append(rec)
            if logged:
                self._own.append((rec["mid"], rec["track_id"]))
        n_oosm = len(late_meas)
        if n_oosm:
            recs.append(self._process(late_meas, oosm=True))
            self.counters.oosm_rows += n_oosm
        snap = self._end_step(t, emit=True)
        assert snap is not None
        if replay:
            ended = snap.track_id[snap.status == DEAD]
            if len(ended):
                self._ended.append((t, ended))
            self._step_times.append(t)  # pruned by _checkpoint (with the horizon on only)
        self._checkpoint(t)
        rec = np.concatenate(recs) if len(recs) > 1 else recs[0]
        return StepResult(snap, rec, replayed, n_late, self._n_invalid, n_oosm)

    # ----------------------------------------------------------------- internals
    def _step_fast(self, t: float, meas: MeasArray) -> StepResult | None:
        """The common step (every row newer than what was processed, sorted, known sensors)
        in one kernel call (:meth:`_advance`); ``None`` (nothing changed) otherwise. Same
        kernel, same order of work as the general path, so the same state and output."""
        n = len(meas)
        offs, nows = self._one
        offs[1] = n
        nows[0] = t
        rec = np.empty(n, dtype=REC_DTYPE)
        last = self._last_ck()
        r = self._advance(meas, offs, nows, rec, last)
        if r[0] == 4:  # not enough free slots: grow the table, then the same call
            self.table.reserve(n)
            r = self._advance(meas, offs, nows, rec, last)
        if not r[1]:
            return None
        snap = Snapshot._of_rows(t, np.frombuffer(r[7], SNAP_DTYPE))
        return StepResult(snap, rec, 0, 0, int(r[4][0, I_INVALID]), 0)

    def _advance(self, meas: MeasArray, offs: I8, nows: F8, rec: np.ndarray, last_ck: float) -> Any:
        """Run in-order live steps ``nows[k]`` (rows ``meas[offs[k]:offs[k + 1]]``,
        ``offs[0] == 0``) in one :func:`_step_kernel` call, as many as it takes, and do
        their bookkeeping: counters, frontier, and (rewind horizon on) the replay log,
        ended ids, step times and checkpoints that the end of these steps keeps, then the
        prune. ``last_ck``: the last step time a checkpoint was due at. Returns the kernel's
        tuple (``done = r[1]`` steps ran; ``r[0]`` why the next did not)."""
        cfg = self.config
        replay = cfg.horizon_s > 0
        spare = self._spare
        ck = spare[-1] if replay and spare else _NO_I8
        r = _step_kernel(
            meas, offs, nows, False, self.frontier, self._settled_t, replay, True, True,
            replay, cfg.horizon_s, cfg.checkpoint_s, last_ck, _N_KINDS, rec, ck,
            *self._kernel_args(),
        )  # fmt: skip
        d = r[1]
        if not d:
            return r
        j = r[2]
        ff = r[4]
        c = self.counters
        c.steps += d
        c.rows += int(offs[d])
        if d == 1:
            greedy, _, merges, _, _, _, _, hi, tmax, front, settled = ff[0].tolist()
        else:
            greedy, _, merges = ff[:d, :3].sum(axis=0).tolist()
            hi, tmax, front, settled = ff[d - 1, I_CKHI:].tolist()
        c.greedy_clusters += int(greedy)
        c.merges += int(merges)
        self.frontier = front
        self._settled_t = settled
        if not replay:
            return r
        # what a step-by-step run would still hold after its prune at the last step: the
        # oldest kept checkpoint is step j's (or an earlier call's, j = -1), so the log,
        # ended ids and step times from step j + 1 on
        s0 = j + 1
        ended = r[5]
        ckbuf = r[6]
        if d == 1 and s0 == 0:  # the live step
            t = float(nows[0])
            n = int(offs[1])
            if n:
                self._log.append((meas if len(meas) == n else meas[:n]).tobytes())
                self._log_tmax.append(tmax)
                rn = rec if len(rec) == n else rec[:n]
                self._own.append((rn["mid"], rn["track_id"]))
            if len(ended):
                self._ended.append((t, ended))
            self._step_times.append(t)
            if hi:  # lo == 0: the whole buffer (its header says how much of it is the table)
                self._ckpts.append(_Checkpoint(t, front, ckbuf, settled))
        elif s0 < d:
            a = int(offs[s0])
            b = int(offs[d])
            if b > a:
                self._log.append(meas[a:b].tobytes())
                self._log_tmax.append(float(ff[s0:d, F_TMAX].max()))
                rn = rec[a:b]
                self._own.append((rn["mid"], rn["track_id"]))
            if len(ended):
                e = ff[:d, I_ENDED].astype(np.int64).tolist()
                prev = e[s0 - 1] if s0 else 0
                for k in range(s0, d):
                    if e[k] > prev:
                        self._ended.append((float(nows[k]), ended[prev : e[k]]))
                        prev = e[k]
            self._step_times.extend(nows[s0:d].tolist())
        if hi and d > 1:
            fl = ff[:d, I_CKLO:].tolist()
            tl = nows[:d].tolist()
            for k in range(max(j, 0), d):
                lo, hi, _, fk, sk = fl[k]
                if hi > lo:
                    self._ckpts.append(_Checkpoint(tl[k], fk, ckbuf[int(lo) : int(hi)], sk))
        if hi and spare and ckbuf is spare[-1]:
            spare.pop()
        self._prune(float(nows[d - 1]))
        return r

    def run(self, times: npt.ArrayLike, meas: MeasArray, offsets: npt.ArrayLike) -> BatchResult:
        """Steps at ``times[k]`` with the rows ``meas[offsets[k]:offsets[k + 1]]`` (a
        recorded file, a replay, a benchmark): the same state, snapshots and records, bit for
        bit, as ``step(times[k], rows)`` for each ``k`` in turn, with runs of in-order live
        steps in one compiled call (:meth:`_advance`; no Python per step) and any other step
        (late rows, unsorted rows, a new sensor) through :meth:`step`."""
        tt = np.ascontiguousarray(times, dtype=np.float64).reshape(-1)
        offs = np.ascontiguousarray(offsets, dtype=np.int64).reshape(-1)
        S = len(tt)
        meas = _kernel_rows(meas)
        if (
            len(offs) != S + 1
            or offs[0] != 0
            or offs[-1] != len(meas)
            or bool((np.diff(offs) < 0).any())
        ):
            msg = "offsets must rise from 0 to len(meas), one more than the steps"
            raise ValueError(msg)
        if not bool(np.isfinite(tt).all()):
            msg = "step times must be finite"
            raise ValueError(msg)
        rec = np.empty(len(meas), dtype=REC_DTYPE)
        parts: list[_Run | StepResult] = []
        last = self._last_ck()
        k = 0
        while k < S:
            a = int(offs[k])
            sub = offs[k:] - a
            r = self._advance(meas[a:], sub, tt[k:], rec[a:], last)
            d = r[1]
            if d:
                b = int(offs[k + d])
                parts.append(
                    _Run(k, sub[: d + 1], rec[a:b], r[4][:d], np.frombuffer(r[7], SNAP_DTYPE))
                )
                last = r[3]
                k += d
            if k == S:
                break
            if r[0] == 4:
                self.table.reserve(int(offs[k + 1] - offs[k]))
                continue
            parts.append(self.step(float(tt[k]), meas[int(offs[k]) : int(offs[k + 1])]))
            last = self._last_ck()
            k += 1
        return BatchResult(tt, parts)

    def _process(self, meas: MeasArray, *, oosm: bool = False) -> np.ndarray:
        """Run the frame kernel on ``meas`` (any order); return its association records.
        ``oosm``: rows older than the tracks, applied with the OOSM update."""
        n = len(meas)
        rec = np.empty(n, dtype=REC_DTYPE)
        if n == 0:
            return rec
        srt = meas
        offs = np.array((0, n), dtype=np.int64)
        while True:
            r = _step_kernel(
                srt, offs, _NAN1, oosm, -math.inf, -math.inf, False, False, False, False, 0.0,
                math.inf, -math.inf, _N_KINDS, rec, _NO_I8, *self._kernel_args(),
            )  # fmt: skip
            code = r[0]
            if code == 0:
                break
            if code == 2:  # not sorted by (t, sensor)
                srt = srt[np.lexsort((srt["mid"], srt["sensor"], srt["t"]))]
            elif code == 3:
                self._grow_sensors(int(srt["sensor"].max()) + 1)
            elif code == 4:
                self.table.reserve(n)
            else:  # step() drops NaN times and refuses unknown kinds before this
                msg = f"rows the tracker cannot process (code {code})"
                raise RuntimeError(msg)
        greedy, invalid = r[4][0, :2].tolist()
        self.counters.greedy_clusters += int(greedy)
        self.frontier = max(self.frontier, float(srt["t"][n - 1]))
        self._n_invalid += int(invalid)
        return rec

    def _end_step(self, t: float, *, emit: bool) -> Snapshot | None:
        r = _step_kernel(
            _NO_MEAS, _OFFS0, np.array((t,)), False, -math.inf, -math.inf, False, True, emit,
            False, 0.0, math.inf, -math.inf, _N_KINDS, _NO_REC, _NO_I8, *self._kernel_args(),
        )  # fmt: skip
        merged, expired = r[4][0, I_MERGED : I_EXPIRED + 1].tolist()
        self.counters.merges += int(merged)
        if merged or expired:
            self._settled_t = t  # rows older than this would have changed these decisions
        if not emit:
            return None
        return Snapshot._of_rows(t, np.frombuffer(r[7], SNAP_DTYPE))

    def _kernel_args(self) -> tuple[np.ndarray, ...]:
        """The table's columns and the packed parameters, in :func:`_step_kernel`'s order;
        cached (27 attribute loads per step otherwise) while the table and its arrays and
        the per-sensor tables are the same objects (a reserve, rewind or restore replaces
        them)."""
        tb = self.table
        a = self._kargs
        if (
            a
            and self._kargs_tb is tb
            and a[0] is tb.x
            and a[16] is tb.free
            and a[17] is tb.ctr
            and a[21] is self._spd
        ):
            return a
        self._kargs_tb = tb
        self._kargs = (
            tb.x, tb.P, tb.t, tb.t_upd, tb.t_birth, tb.tid, tb.status, tb.was_conf, tb.hist,
            tb.hits, tb.miss, tb.class_p, tb.kinds, tb.sensors, tb.last_sensor,
            tb.merged_into, tb.free, tb.ctr, self._g, self._kpar, self._cpar, self._spd,
            self._slam, self._C, self._prior, self._C_fibre,
        )  # fmt: skip
        return self._kargs

    def _grow_sensors(self, n: int) -> None:
        if n > len(self._spd):
            self._spd, self._slam = self.config.sensor_tables(n)

    # ---------------------------------------------------------- late handling
    def _checkpoint_due(self, t: float) -> bool:
        """A checkpoint is taken after the step at ``t`` (at most one per ``checkpoint_s``)."""
        return self.config.horizon_s > 0 and t - self._last_ck() >= self.config.checkpoint_s

    def _last_ck(self) -> float:
        """Step time of the newest checkpoint (-inf if none): the last step one was due at
        (a run that skipped due checkpoints always keeps its last due one)."""
        return self._ckpts[-1].step_t if self._ckpts else -math.inf

    def _checkpoint(self, t: float) -> None:
        """Take the checkpoint due after the general path's step at ``t`` and prune."""
        if self.config.horizon_s <= 0:
            return
        if self._checkpoint_due(t):
            spare = self._spare
            packed = self.table.pack(spare.pop() if spare else None)
            self._ckpts.append(_Checkpoint(t, self.frontier, packed, self._settled_t))
        self._prune(t)

    def _prune(self, t: float) -> None:
        """Drop what a late row at step time ``t`` can no longer need (horizon ``h``)."""
        h = self.config.horizon_s
        # keep the newest checkpoint at or before t - h, and everything after it; prune the
        # step times and log chunks it no longer needs from the front (O(pruned) per step)
        cut = 0
        while cut + 1 < len(self._ckpts) and self._ckpts[cut + 1].step_t <= t - h:
            cut += 1
        if not cut and self._ckpts[0].step_t == self._pruned_for and t >= self._pruned_t:
            # same oldest checkpoint as at the last prune, no rewind since, time not gone
            # back: what it keeps is what was kept then plus what was appended since, all
            # newer than it (in-order rows and later steps)
            return
        if cut:
            # a pruned checkpoint's buffer is referenced nowhere else: reuse its memory
            for c in self._ckpts[:cut]:
                if len(self._spare) < 2:
                    self._spare.append(c.packed)
            del self._ckpts[:cut]
        first = self._ckpts[0]
        k = 0
        while k < len(self._step_times) and self._step_times[k] <= first.step_t:
            k += 1
        del self._step_times[:k]
        k = 0
        while k < len(self._log_tmax) and self._log_tmax[k] <= first.frontier:
            k += 1
        del self._log[:k]
        del self._log_tmax[:k]
        del self._own[:k]
        k = 0
        while k < len(self._ended) and self._ended[k][0] <= first.step_t:
            k += 1
        del self._ended[:k]
        k = 0
        while k < len(self._oosm_log) and self._oosm_log[k][0] <= first.step_t:
            k += 1
        del self._oosm_log[:k]
        if self._unpublished and len(self._unpublished) > 64:
            self._unpublished = {i: w for i, w in self._unpublished.items() if w > first.step_t}
        self._pruned_for = first.step_t
        self._pruned_t = t

    def _rewind(self, t_late: float, recs: list[np.ndarray]) -> int:
        """Restore the newest checkpoint taken before ``t_late`` (its step time and its
        ``frontier`` both ``< t_late``, so the late row lands in the step that would have
        covered it on time) and replay the logged rows
        (which include this step's) through the recorded step times, the last window being
        the current step (whose end-of-step work the caller does); then reconcile track ids
        (:meth:`_reconcile`). Returns rows replayed."""
        k = 0
        for i, c in enumerate(self._ckpts):
            if c.frontier < t_late and c.step_t < t_late:
                k = i
        ck = self._ckpts[k]
        del self._ckpts[k + 1 :]
        self._pruned_for = math.nan  # the replay rewrites the buffers: prune them fully next
        before = self.table
        ck_table = ck.table()
        self.table = ck_table.expanded()
        self.frontier = ck.frontier
        self._settled_t = ck.settled
        steps = [s for s in self._step_times if s > ck.step_t]
        self._step_times = [s for s in self._step_times if s <= ck.step_t]
        # only chunks holding rows newer than the checkpoint (O(replayed), not O(horizon))
        sel = [i for i, tmax in enumerate(self._log_tmax) if tmax > ck.frontier]
        log = (
            np.concatenate([np.frombuffer(self._log[i], dtype=MEAS_DTYPE) for i in sel])
            if sel
            else _NO_MEAS
        )
        log = log[log["t"] > ck.frontier]
        # canonical (t, sensor, mid) order: each step's window is one slice
        log = log[np.lexsort((log["mid"], log["sensor"], log["t"]))]
        self.counters.replays += 1
        self.counters.replayed_rows += len(log)
        out: list[np.ndarray] = []
        mid: list[_Checkpoint] = []  # checkpoints taken during the replay (ids relabelled below)
        last = ck.step_t
        tl = log["t"]
        cut = np.searchsorted(tl, np.asarray(steps, dtype=np.float64), side="right").tolist()
        oosm = {s: m for s, m in self._oosm_log if s > ck.step_t}
        oo_recs: list[np.ndarray] = []
        a = 0
        for s, b in zip(steps, cut, strict=True):
            # earlier steps: dead tracks stay DEAD so the final snapshot reports them
            out.append(self._process(log[a:b]))
            a = b
            if s in oosm:  # the OOSM rows applied in that step, again
                oo_recs.append(self._process(oosm[s], oosm=True))
            self._end_step(s, emit=False)
            self._step_times.append(s)
            if s - last >= self.config.checkpoint_s:
                # as on time: the step's ended tracks would have been reported and freed
                c = _Checkpoint(s, self.frontier, self.table.pack(), self._settled_t)
                free_dead_rows(c.table())
                mid.append(c)
                last = s
        out.append(self._process(log[a:]))
        rec = np.concatenate(out)
        hw0 = int(ck_table.ctr[C_HW])
        restored = ck_table.tid[:hw0][ck_table.status[:hw0] != FREE]
        keys, vals, id_next = self._reconcile(
            before, int(ck_table.ctr[C_NEXT_ID]), rec, sel, restored
        )
        for c in mid:  # the replayed timeline's checkpoints carry the reconciled ids
            ct = c.table()  # views: the writes below go to the packed buffer
            hw = int(ct.ctr[C_HW])
            if len(keys):
                _relabel(ct.tid[:hw], keys, vals)
                _relabel(ct.merged_into[:hw], keys, vals)
            ct.ctr[C_NEXT_ID] = id_next
        self._ckpts.extend(mid)
        recs.append(rec)
        for r in oo_recs:
            if len(keys):
                _relabel(r["track_id"], keys, vals)
            recs.append(r)
        return len(log)

    def _reconcile(
        self, before: TrackTable, n0: int, rec: np.ndarray, sel: list[int], restored: I8
    ) -> tuple[I8, I8, int]:
        """Give the replayed tracks stable ids (:mod:`fusion.identity`); ``rec`` (the replay's
        records) and the log's ownership are relabelled in place. ``sel``: the log chunks that
        hold replayed rows (only their ownership can change, and only they vote).

        * a replayed track (kernel id ``>= n0``) takes the previous live id it shares most
          rows with, else a fresh id (ids are never reused); one that ended during the replay
          with a fresh id was never published and is freed silently;
        * a restored track whose id was already reported ended but lives again in the
          replayed timeline continues under a fresh id (a reported ``lost`` is final); if it
          ended again it is freed silently;
        * a previously live id that no replayed track took ends now (DEAD, copied from the
          table before the rewind, ``merged_into`` the track that took most of its rows), so
          a published track never goes silent;
        * a previously confirmed id stays confirmed.

        Returns the id mapping ``(keys, vals)`` (sorted kernel ids -> final ids) and the
        next free id.
        """
        tb = self.table
        hw_b = int(before.ctr[C_HW])
        st_b = before.status[:hw_b]
        live_b = np.flatnonzero((st_b == TENTATIVE) | (st_b == CONFIRMED))
        ids_b = before.tid[live_b]
        id_next = int(before.ctr[C_NEXT_ID])
        if sel:
            old_mid = np.concatenate([self._own[i][0] for i in sel])
            old_tid = np.concatenate([self._own[i][1] for i in sel])
        else:
            old_mid = old_tid = _NO_I8
        new_mid = rec["mid"].astype(np.int64)
        new_tid = rec["track_id"].astype(np.int64)
        match = reconcile(old_mid, old_tid, new_mid, new_tid, n0, ids_b, restored)
        ended = set(np.concatenate([e[1] for e in self._ended]).tolist()) if self._ended else set()
        hw = int(tb.ctr[C_HW])
        slots = np.flatnonzero(tb.status[:hw] != FREE)
        slots = slots[np.argsort(tb.tid[slots], kind="stable")]
        mapping: dict[int, int] = {}
        drop: list[int] = []
        for i in slots.tolist():
            a = int(tb.tid[i])
            dead = tb.status[i] == DEAD
            if a >= n0 and a in match:
                mapping[a] = match[a]
                continue
            if a < n0 and a not in ended:
                if a in self._unpublished:  # restored from a replay's checkpoint
                    if dead:
                        drop.append(i)  # ended again, still never published: silently
                    else:
                        del self._unpublished[a]  # live now: published at this step
                continue
            mapping[a] = id_next
            if dead:
                drop.append(i)
                # never published, but live in this replay's checkpoints: a later rewind
                # that restores it and ends it again must not report it either
                self._unpublished[id_next] = self.frontier
            id_next += 1
        tb.ctr[C_NEXT_ID] = id_next
        keys = vals = _NO_I8
        if mapping:
            keys = np.array(sorted(mapping), dtype=np.int64)
            vals = np.array([mapping[k] for k in keys.tolist()], dtype=np.int64)
            for arr in (tb.tid[:hw], tb.merged_into[:hw], rec["track_id"]):
                _relabel(arr, keys, vals)
            new_tid = rec["track_id"].astype(np.int64)
        for i in drop:
            tb.status[i] = FREE
            tb.tid[i] = -1
            tb.merged_into[i] = -1
            tb.free[tb.ctr[C_NFREE]] = i
            tb.ctr[C_NFREE] += 1
        # a previously confirmed id stays confirmed
        conf_b = set(before.tid[live_b[st_b[live_b] == CONFIRMED]].tolist())
        for i in np.flatnonzero(tb.status[:hw] == TENTATIVE).tolist():
            if int(tb.tid[i]) in conf_b:
                tb.status[i] = CONFIRMED
                tb.was_conf[i] = 1
        # previously live ids that nobody took end now
        present = set(tb.tid[:hw][tb.status[:hw] != FREE].tolist())
        gone = [int(j) for j in live_b.tolist() if int(before.tid[j]) not in present]
        if gone:
            tb.reserve(len(gone))
            for j in gone:
                i = int(tb.free[tb.ctr[C_NFREE] - 1])
                tb.ctr[C_NFREE] -= 1
                tb.ctr[C_HW] = max(int(tb.ctr[C_HW]), i + 1)
                for name in TrackTable.__slots__:
                    if name not in {"ctr", "free"}:
                        getattr(tb, name)[i] = getattr(before, name)[j]
                tb.status[i] = DEAD
                tb.merged_into[i] = heir(old_mid, old_tid, new_mid, new_tid, int(before.tid[j]))
        # ownership of the logged rows is now the replayed one
        if len(new_mid):
            o = np.argsort(new_mid, kind="stable")
            nm, nt = new_mid[o], new_tid[o]
            for i in sel:  # other chunks hold no replayed row: their owners stay
                mids, tids = self._own[i]
                m = np.frombuffer(self._log[i], dtype=MEAS_DTYPE)["mid"].astype(np.int64)
                t2 = np.full(len(m), -1, dtype=np.int64)
                if len(tids) == len(m):
                    # previous owners by mid (chunk order and record order may differ)
                    t2 = _lookup(mids.astype(np.int64), tids.astype(np.int64), m, t2)
                self._own[i] = (m, _lookup(nm, nt, m, t2, presorted=True))
        return keys, vals, id_next


_NO_I8: I8 = np.empty(0, dtype=np.int64)
_NO_MEAS: MeasArray = np.empty(0, dtype=MEAS_DTYPE)
_NO_REC: np.ndarray = np.empty(0, dtype=REC_DTYPE)
_OFFS0: I8 = np.zeros(2, dtype=np.int64)  # one step without rows
_NAN1: F8 = np.full(1, np.nan)  # the step time of a rows-only call (unused)
_N_KINDS = len(Kind)


def _relabel(arr: I8, keys: I8, vals: I8) -> None:
    """In place: ``arr[k] = vals[j]`` where ``arr[k] == keys[j]`` (``keys`` sorted, unique)."""
    if len(arr) == 0:
        return
    pos = np.minimum(np.searchsorted(keys, arr), len(keys) - 1)
    hit = keys[pos] == arr
    arr[hit] = vals[pos[hit]]


def _lookup(mids: I8, tids: I8, query: I8, default: I8, *, presorted: bool = False) -> I8:
    """``tids`` of ``query`` mids (``default`` where absent); ``mids`` sorted if presorted."""
    if len(mids) == 0:
        return default
    if not presorted:
        o = np.argsort(mids, kind="stable")
        mids, tids = mids[o], tids[o]
    pos = np.minimum(np.searchsorted(mids, query), len(mids) - 1)
    hit = mids[pos] == query
    out = default.copy()
    out[hit] = tids[pos[hit]]
    return out
