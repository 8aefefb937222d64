"""Track deletion: consecutive misses, time since the last update, lost localisation.

With ``c = argmax class_p`` and ``T_kind = max_{k in kinds} kind_timeout[k]`` over the sensor
kinds that updated the track (``inf`` if any of them has no kind timeout, e.g. fibre), a live
track dies (status DEAD, reported once as ``lost`` if it was ever confirmed) when

* it is tentative and ``miss >= tentative_max_misses`` or
  ``t - t_upd > min(tentative_timeout, T_kind)``;
* it is confirmed and ``miss >= confirmed_max_misses`` or ``t - t_upd > min(timeout[c],
  T_kind)`` (per-class timeout: digging lasts longer than a vehicle; a camera/radar-only
  track ends soon after its 1 Hz sensor stops seeing it), or its position variance along the
  worst axis ``lambda_max(P_pos) > drop_sigma^2`` (it is no longer localised).
"""

from __future__ import annotations

import math

import numpy as np

from fusion._jit import B1, F8, I4, I8, U1, borrow, inline_kernel, kernel
from fusion.config import (
    C_TIMEOUT,
    G_CONF_MISS,
    G_DROP_SIGMA,
    G_TENT_MISS,
    G_TENT_TIMEOUT,
    K_TIMEOUT,
)
from fusion.state import C_NLIVE, CONFIRMED, DEAD, TENTATIVE
from fusion.updater import _pos_var_max


@inline_kernel
def _argmax(p: F8) -> int:
    b = 0
    for k in range(1, p.shape[0]):
        if p[k] > p[b]:
            b = k
    return b


@inline_kernel
def _kind_timeout(kinds: int, kpar: F8) -> float:
    """``max`` of the kind timeouts over the kinds set in ``kinds`` (``inf`` if none set)."""
    tmo = -math.inf
    for k in range(kpar.shape[0]):
        if (kinds >> k) & 1:
            tmo = max(tmo, kpar[k, K_TIMEOUT])
    return tmo if tmo > -math.inf else math.inf


@inline_kernel
def _is_expired(
    st: int, miss: int, age: float, p: F8, g: F8, cpar: F8, kinds: int, pvar: float, kpar: F8
) -> bool:
    """True if a track with status ``st``, ``miss`` consecutive misses, ``age`` seconds since
    its last update, kinds bitmask ``kinds`` and position variance ``pvar`` (largest
    eigenvalue) must end (``age`` / ``pvar`` NaN never expire by time / localisation)."""
    tk = _kind_timeout(kinds, kpar)
    if st == TENTATIVE:
        return bool(miss >= g[G_TENT_MISS] or age > min(g[G_TENT_TIMEOUT], tk))
    if st == CONFIRMED:
        return bool(
            miss >= g[G_CONF_MISS]
            or age > min(cpar[_argmax(p), C_TIMEOUT], tk)
            or pvar > g[G_DROP_SIGMA] * g[G_DROP_SIGMA]
        )
    return False


@kernel
def _expire(
    status: U1,
    miss: I4,
    t_upd: F8,
    class_p: F8,
    kinds: U1,
    P: F8,
    g: F8,
    cpar: F8,
    kpar: F8,
    t: float,
    hw: int,
    ctr: I8,
) -> int:
    """Mark DEAD every live slot below ``hw`` that :func:`_is_expired` at time ``t``."""
    status = borrow(status)  # borrowed aliases: no reference counting per view
    miss = borrow(miss)
    t_upd = borrow(t_upd)
    class_p = borrow(class_p)
    kinds = borrow(kinds)
    P = borrow(P)
    g = borrow(g)
    cpar = borrow(cpar)
    kpar = borrow(kpar)
    ctr = borrow(ctr)
    n = 0
    for i in range(hw):
        st = status[i]
        if (st in (TENTATIVE, CONFIRMED)) and _is_expired(
            st, miss[i], t - t_upd[i], class_p[i], g, cpar, kinds[i], _pos_var_max(P[i]), kpar
        ):
            status[i] = DEAD
            ctr[C_NLIVE] -= 1
            n += 1
    return n


def expired(
    status: U1,
    miss: I4,
    age: F8,
    class_p: F8,
    g: F8,
    cpar: F8,
    kinds: U1 | None = None,
    pvar: F8 | None = None,
    kpar: F8 | None = None,
) -> B1:
    """Vectorised :func:`_is_expired` (for tests): boolean per track. Without ``kinds`` /
    ``pvar`` / ``kpar`` no kind timeout and no localisation limit apply."""
    n = len(status)
    kinds = np.zeros(n, np.uint8) if kinds is None else kinds
    pvar = np.full(n, np.nan) if pvar is None else pvar
    kpar = np.zeros((0, 6)) if kpar is None else np.ascontiguousarray(kpar, dtype=np.float64)
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        out[i] = _is_expired(
            int(status[i]),
            int(miss[i]),
            float(age[i]),
            np.ascontiguousarray(class_p[i]),
            g,
            cpar,
            int(kinds[i]),
            float(pvar[i]),
            kpar,
        )
    return out
