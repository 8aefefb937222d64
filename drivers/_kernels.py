"""Numba kernels of the ingest hot path (fibre: validate + normalize in one pass).

Kernels here are ``numba.njit(cache=True, nogil=True)`` without fast-math (results must be
bit-identical to the numpy reference in :mod:`drivers._normalize`, and NaN/inf are tested
for). They never raise: the caller (:mod:`drivers._ingest`) builds the inputs with the
documented shapes and dtypes. Each kernel has a naive twin that the tests compare with:
:func:`fibre_rows` against :func:`drivers._normalize.fibre` (numpy, via
``geo.Site.fibre_points``) plus the column checks of ``Ingest._events``' general path.

The border lookup follows :meth:`geo.Border.point_at`: the segment ``k`` holding border
chainage ``s`` is ``searchsorted(cum, s, "right") - 1`` clipped to ``[0, n_segments - 1]``
(chainage beyond the ends extrapolates along the first/last segment), and the point is
``v_k + (s - cum_k) t_k + offset h_k``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

from fusion.measurements import MEAS_DTYPE

_F = TypeVar("_F", bound=Callable[..., Any])
_njit = numba.njit(cache=True, nogil=True)

F8 = npt.NDArray[np.float64]
U1 = npt.NDArray[np.uint8]

#: per-event reason codes written by :func:`fibre_rows` (0: accepted)
OK: Final = 0
NON_FINITE: Final = 1
TIME_SKEW: Final = 2
OUT_OF_CABLE: Final = 3

#: column order of the ``vals`` input of :func:`fibre_rows` (the class as its code)
FIBRE_FIELDS: Final = ("t", "chainage_m", "confidence", "extent_m", "energy", "class")

#: layout of the ``unit`` parameter array of :func:`fibre_rows`
U_FROM, U_TO, U_DIR, U_FACTOR, U_OFFSET, U_MAX_CHAIN, U_MAX_SKEW, U_LOC_VAR, U_CROSS_VAR = range(9)
#: rows of the ``geom`` array of :func:`fibre_rows` (border vertices, segments padded by 0)
G_CUM, G_VX, G_VY, G_TX, G_TY, G_HX, G_HY = range(7)


def kernel(fn: _F) -> _F:
    """Compile ``fn`` as a cached, GIL-free Numba kernel (no fast-math)."""
    return cast(_F, _njit(fn))


@kernel
def fibre_rows(
    vals: F8,
    reason: U1,
    now: float,
    late_after: float,
    sensor: int,
    mid0: int,
    unit: F8,
    geom: F8,
    cls_table: U1,
) -> tuple[npt.NDArray[np.void], int]:
    """Validate and normalize the fibre events of one unit; return ``(rows, late)``.

    ``vals`` is ``(6 n,)`` float64, each event's :data:`FIBRE_FIELDS` in turn, ``reason``
    ``(n,)`` uint8 (written here), ``unit`` the ``U_*`` constants of the unit, ``geom`` the ``G_*``
    rows of the border (``(7, n_vertices)``). Event ``i`` gets the first failing check
    in this order: a required number (``t``, chainage, confidence, extent) not finite ->
    :data:`NON_FINITE`; ``not |t - now| <= max_skew`` -> :data:`TIME_SKEW`;
    ``chainage > max_chainage`` -> :data:`OUT_OF_CABLE`; else :data:`OK`. ``rows`` is a
    fresh ``MEAS_DTYPE`` array of the accepted events in order (``mid = mid0 + j`` for
    the ``j``-th), ``late`` counts them where ``now - t > late_after``.
    """
    n = vals.shape[0] // 6
    max_skew = unit[U_MAX_SKEW]
    max_chainage = unit[U_MAX_CHAIN]
    kept = 0
    for i in range(n):
        t = vals[6 * i]
        if not (
            math.isfinite(t)
            and math.isfinite(vals[6 * i + 1])
            and math.isfinite(vals[6 * i + 2])
            and math.isfinite(vals[6 * i + 3])
        ):
            reason[i] = NON_FINITE
        elif not abs(t - now) <= max_skew:
            reason[i] = TIME_SKEW
        elif vals[6 * i + 1] > max_chainage:
            reason[i] = OUT_OF_CABLE
        else:
            reason[i] = OK
            kept += 1
    out = np.empty(kept, MEAS_DTYPE)
    from_m = unit[U_FROM]
    to_m = unit[U_TO]
    forward = unit[U_DIR] == 1.0
    factor = unit[U_FACTOR]
    offset = unit[U_OFFSET]
    loc_var = unit[U_LOC_VAR]
    cross_var = unit[U_CROSS_VAR]
    cum = geom[G_CUM]
    nv = cum.shape[0]
    nseg = nv - 1
    j = 0
    late = 0
    for i in range(n):
        if reason[i] != OK:
            continue
        t = vals[6 * i]
        if now - t > late_after:
            late += 1
        # border chainage (contract formula), then the segment holding it
        cc = vals[6 * i + 1] / factor
        s = from_m + cc if forward else to_m - cc
        lo = 0
        hi = nv
        while lo < hi:
            mid = (lo + hi) >> 1
            if cum[mid] <= s:
                lo = mid + 1
            else:
                hi = mid
        k = min(max(lo - 1, 0), nseg - 1)
        along = s - cum[k]
        tx = geom[G_TX, k]
        ty = geom[G_TY, k]
        ext = vals[6 * i + 3]
        e = ext / factor
        sa2 = e * e / 12.0 + loc_var
        code = np.uint8(vals[6 * i + 5])
        r = out[j]
        r["t"] = t
        r["sensor"] = sensor
        r["kind"] = 0
        r["raw_cls"] = code
        r["cls"] = cls_table[code]
        r["conf"] = vals[6 * i + 2]
        r["x"] = geom[G_VX, k] + along * tx + offset * geom[G_HX, k]
        r["y"] = geom[G_VY, k] + along * ty + offset * geom[G_HY, k]
        r["cxx"] = sa2 * tx * tx + cross_var * ty * ty
        r["cyy"] = sa2 * ty * ty + cross_var * tx * tx
        r["cxy"] = (sa2 - cross_var) * tx * ty
        r["ox"] = np.nan
        r["oy"] = np.nan
        r["r"] = np.nan
        r["az"] = np.nan
        r["sr"] = np.nan
        r["saz"] = np.nan
        r["vr"] = np.nan
        r["chain"] = s
        r["tx"] = tx
        r["ty"] = ty
        r["extent"] = ext
        r["energy"] = vals[6 * i + 4]
        r["obj"] = 0
        r["mid"] = mid0 + j
        j += 1
    return out, late
