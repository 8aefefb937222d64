"""WGS84 <-> working CRS transforms and meridian convergence.

All transforms go through two :class:`pyproj.Transformer` objects built once per site
(``always_xy=True``: longitude first, as in GeoJSON and the wire contract's lon/lat pairs).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer

from geo._errors import GeoError

F64 = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

#: latitude step (degrees) used to measure the grid direction of true north
_NORTH_STEP_DEG = 1e-4


class Projection:
    """A metric working CRS with vectorised transforms to and from WGS84.

    Invariants: ``to_lonlat(*to_xy(lon, lat)) == (lon, lat)`` to < 1e-9 degrees; the
    working CRS is projected and its axis unit is the metre.
    """

    def __init__(self, crs: str) -> None:
        try:
            self.crs = CRS.from_user_input(crs)
        except Exception as exc:  # pyproj raises CRSError and others
            raise GeoError(f"unknown CRS {crs!r}: {exc}") from exc
        if not self.crs.is_projected:
            raise GeoError(f"CRS {crs!r} is not a projected (metric) CRS")
        units = {ax.unit_name for ax in self.crs.axis_info}
        if units - {"metre", "meter"}:
            raise GeoError(f"CRS {crs!r} has axis units {sorted(units)}, not metres")
        self.name = crs
        self._fwd = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
        self._inv = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)

    def to_xy(self, lon: ArrayLike, lat: ArrayLike) -> tuple[F64, F64]:
        """WGS84 (lon, lat) in degrees -> working CRS (x, y) in metres."""
        x, y = self._fwd.transform(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        return np.asarray(x, np.float64), np.asarray(y, np.float64)

    def to_lonlat(self, x: ArrayLike, y: ArrayLike) -> tuple[F64, F64]:
        """Working CRS (x, y) in metres -> WGS84 (lon, lat) in degrees."""
        lon, lat = self._inv.transform(np.asarray(x, np.float64), np.asarray(y, np.float64))
        return np.asarray(lon, np.float64), np.asarray(lat, np.float64)

    def true_north_grid_az(self, x: ArrayLike, y: ArrayLike) -> F64:
        """Grid azimuth ``gamma`` (rad, clockwise from +y) of true north at (x, y).

        A true bearing ``beta`` (clockwise from geodetic north) is the grid azimuth
        ``beta + gamma``. Measured as the grid direction of a small northward step:
        ``gamma = atan2(dx, dy)`` for ``(dx, dy) = to_xy(lon, lat + d) - (x, y)``.
        """
        xa = np.asarray(x, np.float64)
        ya = np.asarray(y, np.float64)
        lon, lat = self.to_lonlat(xa, ya)
        xn, yn = self.to_xy(lon, lat + _NORTH_STEP_DEG)
        return np.asarray(np.arctan2(xn - xa, yn - ya), np.float64)
