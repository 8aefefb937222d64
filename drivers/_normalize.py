"""Events (as columns) -> normalized measurement rows (:data:`fusion.measurements.MEAS_DTYPE`).

Everything is column-wise numpy: no Python object per event. Inputs are validated
columns of equal length ``n`` (finite, in range); outputs have ``n`` rows.

Error models (1-sigma), stated here once:

* **fibre**: along the border, the disturbed length as a uniform distribution plus the
  interrogator's localisation error,
  ``s_along^2 = (extent/cable_factor)^2/12 + FIBRE_LOC_SIGMA_M^2``;
  across the line ``FIBRE_CROSS_SIGMA_M`` (a buried cable senses a few metres either side).
  With the border tangent ``(tx, ty)``::

      cxx = s_a^2 tx^2 + s_c^2 ty^2,  cyy = s_a^2 ty^2 + s_c^2 tx^2,  cxy = (s_a^2 - s_c^2) tx ty

* **thermal**: grid azimuth ``az = radians(bearing) + gamma(camera)``; the camera's range is a
  slant range from ``height_m`` and becomes ground range ``sqrt(r^2 - h^2)``; default range
  sigma 25 % of the range (at least ``MIN_RANGE_SIGMA_M``). Bearing-only events (no range)
  are put at half the camera's nominal range with ``sr`` = half that range, ``r`` NaN.
* **msv**: ground range as given, ``az = radians(azimuth) + gamma(platform)``.

Polar rows use :func:`geo.polar_to_xy` (first-order converted covariance).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from fusion.measurements import FIBRE_TO_CLS, MEAS_DTYPE, TARGET_TO_CLS, Kind, MeasArray
from geo import polar_to_xy, slant_to_ground

if TYPE_CHECKING:
    from geo import Site

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

FIBRE_LOC_SIGMA_M = 5.0
FIBRE_CROSS_SIGMA_M = 5.0
MIN_RANGE_SIGMA_M = 1.0

_NAN_FIBRE = ("ox", "oy", "r", "az", "sr", "saz", "vr")
_NAN_POLAR = ("chain", "tx", "ty", "extent", "energy")


def _common(
    n: int, t: F64, sensor: int, kind: Kind, raw: U8, table: U8, conf: F64, mid0: int
) -> MeasArray:
    out = np.empty(n, MEAS_DTYPE)
    out["t"] = t
    out["sensor"] = sensor
    out["kind"] = kind
    out["raw_cls"] = raw
    out["cls"] = table[raw]
    out["conf"] = conf
    out["mid"] = np.arange(mid0, mid0 + n, dtype=np.int64)
    return out


def fibre(
    site: Site,
    device: str,
    sensor: int,
    t: F64,
    chainage: F64,
    raw: U8,
    conf: F64,
    extent: F64,
    energy: F64,
    mid0: int,
) -> MeasArray:
    """Fibre events of one interrogator -> rows (``kind`` FIBRE, ``chain``/``tx``/``ty`` set)."""
    n = t.shape[0]
    out = _common(n, t, sensor, Kind.FIBRE, raw, FIBRE_TO_CLS, conf, mid0)
    x, y, chain, tx, ty = site.fibre_points(device, chainage)
    f = site.fibre_by_id[device].cable_factor
    e = extent / f
    sa2 = e * e / 12.0 + FIBRE_LOC_SIGMA_M**2
    sc2 = FIBRE_CROSS_SIGMA_M**2
    out["x"] = x
    out["y"] = y
    out["cxx"] = sa2 * tx * tx + sc2 * ty * ty
    out["cyy"] = sa2 * ty * ty + sc2 * tx * tx
    out["cxy"] = (sa2 - sc2) * tx * ty
    for name in _NAN_FIBRE:
        out[name] = np.nan
    out["chain"] = chain
    out["tx"] = tx
    out["ty"] = ty
    out["extent"] = extent
    out["energy"] = energy
    out["obj"] = 0
    return out


def _polar(
    out: MeasArray,
    ox: float,
    oy: float,
    r: F64,
    az: F64,
    sr: F64,
    saz: F64,
    r_used: F64,
    sr_used: F64,
) -> None:
    x, y, cxx, cxy, cyy = polar_to_xy(ox, oy, r_used, az, sr_used, saz)
    out["x"] = x
    out["y"] = y
    out["cxx"] = cxx
    out["cxy"] = cxy
    out["cyy"] = cyy
    out["ox"] = ox
    out["oy"] = oy
    out["r"] = r
    out["az"] = az
    out["sr"] = sr_used
    out["saz"] = saz
    for name in _NAN_POLAR:
        out[name] = np.nan


def thermal(
    site: Site,
    device: str,
    sensor: int,
    origin: tuple[float, float, float],
    t: F64,
    bearing: F64,
    bearing_sigma: F64,
    rng: F64,
    rng_sigma: F64,
    raw: U8,
    conf: F64,
    obj: npt.NDArray[np.int64],
    mid0: int,
) -> MeasArray:
    """Thermal events of one camera at ``origin = (ox, oy, gamma)`` -> rows (``vr`` NaN)."""
    n = t.shape[0]
    cam = site.thermal_by_id[device]
    out = _common(n, t, sensor, Kind.THERMAL, raw, TARGET_TO_CLS, conf, mid0)
    ox, oy, gamma = origin
    az = np.radians(bearing) + gamma
    saz = np.radians(bearing_sigma)
    no_r = np.isnan(rng)
    ground = slant_to_ground(np.where(no_r, 0.0, rng), cam.height_m)
    ground[no_r] = np.nan
    sr = np.where(np.isnan(rng_sigma), np.maximum(0.25 * rng, MIN_RANGE_SIGMA_M), rng_sigma)
    ph = cam.range_m / 2.0
    r_used = np.where(no_r, ph, ground)
    sr_used = np.where(no_r, ph, sr)
    _polar(out, ox, oy, ground, az, sr, saz, r_used, sr_used)
    out["vr"] = np.nan
    out["obj"] = obj
    return out


def msv(
    site: Site,
    sensor: int,
    lat: float,
    lon: float,
    t: F64,
    rng: F64,
    azimuth: F64,
    rng_sigma: F64,
    az_sigma: F64,
    vr: F64,
    raw: U8,
    conf: F64,
    mid0: int,
) -> MeasArray:
    """Radar plots of one MSV at platform ``(lat, lon)`` -> rows."""
    n = t.shape[0]
    out = _common(n, t, sensor, Kind.MSV, raw, TARGET_TO_CLS, conf, mid0)
    ox_a, oy_a = site.proj.to_xy(lon, lat)
    ox, oy = float(ox_a), float(oy_a)
    gamma = float(site.proj.true_north_grid_az(ox, oy))
    az = np.radians(azimuth) + gamma
    saz = np.radians(az_sigma)
    _polar(out, ox, oy, rng, az, rng_sigma, saz, rng, rng_sigma)
    out["vr"] = vr
    out["obj"] = 0
    return out


def object_hash(object_id: str | None) -> int:
    """Stable non-zero signed 64-bit hash of a camera object id (0 for none)."""
    if not object_id:
        return 0
    h = int.from_bytes(
        hashlib.blake2b(object_id.encode(), digest_size=8).digest(), "little", signed=True
    )
    return h or 1
