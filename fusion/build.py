"""Vectorised builders of :data:`~fusion.measurements.MEAS_DTYPE` rows (tests, benchmarks,
warm-up, simulators). Drivers have their own; these follow the same invariants."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fusion._jit import F8
from fusion.measurements import Cls, Kind, MeasArray, empty

ArrayLike = npt.ArrayLike
_HALF_DEG = float(np.radians(0.5))


def _n(*vals: ArrayLike) -> int:
    return int(np.broadcast(*[np.asarray(v) for v in vals]).size)


def point(
    t: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    sigma: ArrayLike,
    *,
    sensor: int = 0,
    mid0: int = 0,
    cls: int = int(Cls.UNKNOWN),
    conf: float = 0.0,
) -> MeasArray:
    """POINT rows at ``(x, y)`` with isotropic 1-sigma ``sigma``."""
    n = _n(t, x, y, sigma)
    m = empty(n)
    m["t"] = t
    m["sensor"] = sensor
    m["kind"] = int(Kind.POINT)
    m["cls"] = cls
    m["raw_cls"] = cls
    m["conf"] = conf
    m["x"] = x
    m["y"] = y
    s2 = np.asarray(sigma, dtype=np.float64) ** 2
    m["cxx"] = s2
    m["cxy"] = 0.0
    m["cyy"] = s2
    m["mid"] = np.arange(mid0, mid0 + n)
    return m


def fibre(
    t: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    tx: ArrayLike,
    ty: ArrayLike,
    *,
    extent: ArrayLike = 10.0,
    cls: ArrayLike = int(Cls.PERSON),
    conf: ArrayLike = 0.7,
    sensor: int = 0,
    mid0: int = 0,
    chain: ArrayLike = np.nan,
    across_m: float = 10.0,
) -> MeasArray:
    """FIBRE rows on the cable at ``(x, y)`` with border tangent ``(tx, ty)``; ``cxx..cyy`` hold
    the same elongated covariance the tracker uses (along ``max(5, extent/2)``, across
    ``across_m``)."""
    n = _n(t, x, y, tx, ty)
    m = empty(n)
    m["t"] = t
    m["sensor"] = sensor
    m["kind"] = int(Kind.FIBRE)
    m["cls"] = cls
    m["raw_cls"] = cls
    m["conf"] = conf
    m["x"] = x
    m["y"] = y
    m["tx"] = tx
    m["ty"] = ty
    m["extent"] = extent
    m["chain"] = chain
    ux = np.asarray(m["tx"], dtype=np.float64)
    uy = np.asarray(m["ty"], dtype=np.float64)
    sa2 = np.maximum(5.0, 0.5 * m["extent"].astype(np.float64)) ** 2
    sc2 = across_m**2
    m["cxx"] = sa2 * ux * ux + sc2 * uy * uy
    m["cxy"] = (sa2 - sc2) * ux * uy
    m["cyy"] = sa2 * uy * uy + sc2 * ux * ux
    m["mid"] = np.arange(mid0, mid0 + n)
    return m


def polar(
    kind: Kind,
    t: ArrayLike,
    ox: ArrayLike,
    oy: ArrayLike,
    az: ArrayLike,
    *,
    r: ArrayLike = np.nan,
    saz: ArrayLike = _HALF_DEG,
    sr: ArrayLike = np.nan,
    vr: ArrayLike = np.nan,
    nominal_range: float = 1500.0,
    cls: ArrayLike = int(Cls.PERSON),
    conf: ArrayLike = 0.8,
    sensor: int = 0,
    mid0: int = 0,
) -> MeasArray:
    """THERMAL / MSV rows from origin ``(ox, oy)``, grid azimuth ``az`` (rad) and optional
    range ``r``. Converted ``x, y`` and covariance use the first-order polar Jacobian; a
    bearing-only row sits at ``nominal_range`` with along-ray sigma ``nominal_range`` (so its
    converted gate spans the camera's field)."""
    n = _n(t, ox, oy, az, r)
    m = empty(n)
    m["t"] = t
    m["sensor"] = sensor
    m["kind"] = int(kind)
    m["cls"] = cls
    m["raw_cls"] = cls
    m["conf"] = conf
    m["ox"] = ox
    m["oy"] = oy
    m["az"] = az
    m["saz"] = saz
    m["r"] = r
    m["vr"] = vr
    rr = np.asarray(m["r"], dtype=np.float64)
    has_r = np.isfinite(rr)
    sr_a = np.broadcast_to(np.asarray(sr, dtype=np.float64), (n,))
    m["sr"] = np.where(has_r, np.where(np.isfinite(sr_a), sr_a, 0.25 * rr), np.nan)
    reff = np.where(has_r, rr, nominal_range)
    sreff: F8 = np.where(has_r, m["sr"], nominal_range)
    a = m["az"].astype(np.float64)
    sa, ca = np.sin(a), np.cos(a)
    m["x"] = m["ox"] + reff * sa
    m["y"] = m["oy"] + reff * ca
    st2 = (reff * m["saz"]) ** 2  # across-ray variance
    sr2 = sreff**2  # along-ray variance
    # along-ray unit u = (sa, ca), across n = (ca, -sa)
    m["cxx"] = sr2 * sa * sa + st2 * ca * ca
    m["cxy"] = (sr2 - st2) * sa * ca
    m["cyy"] = sr2 * ca * ca + st2 * sa * sa
    m["mid"] = np.arange(mid0, mid0 + n)
    return m
