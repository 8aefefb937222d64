"""Track deletion: consecutive misses (scan sensors) and time since the last update.

A live track dies (status DEAD, reported once as ``lost`` if it was ever confirmed) when

* it is tentative and ``miss >= tentative_max_misses`` or ``t - t_upd > tentative_timeout``;
* it is confirmed and ``miss >= confirmed_max_misses`` or ``t - t_upd > timeout[c]``,
  where ``c = argmax class_p`` (per-class timeout: digging lasts longer than a vehicle).
"""

from __future__ import annotations

import numpy as np

from fusion._jit import B1, F8, I4, I8, U1, inline_kernel, kernel
from fusion.config import C_TIMEOUT, G_CONF_MISS, G_TENT_MISS, G_TENT_TIMEOUT
from fusion.state import C_NLIVE, CONFIRMED, DEAD, TENTATIVE


@inline_kernel
def _argmax(p: F8) -> int:
    b = 0
    for k in range(1, p.shape[0]):
        if p[k] > p[b]:
            b = k
    return b


@inline_kernel
def _is_expired(st: int, miss: int, age: float, p: F8, g: F8, cpar: F8) -> bool:
    """True if a track with status ``st``, ``miss`` consecutive misses and ``age`` seconds since
    its last update must end (``age`` NaN never expires by time)."""
    if st == TENTATIVE:
        return bool(miss >= g[G_TENT_MISS] or age > g[G_TENT_TIMEOUT])
    if st == CONFIRMED:
        return bool(miss >= g[G_CONF_MISS] or age > cpar[_argmax(p), C_TIMEOUT])
    return False


@kernel
def _expire(
    status: U1, miss: I4, t_upd: F8, class_p: F8, g: F8, cpar: F8, t: float, hw: int, ctr: I8
) -> int:
    """Mark DEAD every live slot below ``hw`` that :func:`_is_expired` at time ``t``."""
    n = 0
    for i in range(hw):
        st = status[i]
        if (st in (TENTATIVE, CONFIRMED)) and _is_expired(
            st, miss[i], t - t_upd[i], class_p[i], g, cpar
        ):
            status[i] = DEAD
            ctr[C_NLIVE] -= 1
            n += 1
    return n


def expired(status: U1, miss: I4, age: F8, class_p: F8, g: F8, cpar: F8) -> B1:
    """Vectorised :func:`_is_expired` (for tests): boolean per track."""
    out = np.zeros(len(status), dtype=np.bool_)
    for i in range(len(status)):
        out[i] = _is_expired(
            int(status[i]), int(miss[i]), float(age[i]), np.ascontiguousarray(class_p[i]), g, cpar
        )
    return out
