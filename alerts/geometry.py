"""Small, fast geometry for the alert rules (no I/O).

* :class:`LineFrame` finds, for one point, the closest border segment ``k`` over
  precomputed segment arrays (``u = clip((p - v_k)·t_k, 0, L_k)``,
  ``d² = |p - v_k - u t_k|²``, ``k = argmin d²``) and returns the chainage
  ``cum_k + u_k`` and the home normal ``h_k``. It skips ``Border.project``'s
  vertex pseudo-normal refinement: the rules only need the direction of the line
  (velocity components), and the contract's ``side``/``border_dist_m`` give the side.
* :func:`haversine_m` is the great-circle distance on a sphere of radius
  :data:`EARTH_RADIUS_M` (Redis GEO's radius, so the memory store ranks like Redis).
* :func:`true_heading_deg` turns a grid velocity into a true heading:
  ``heading = degrees(atan2(vx, vy) - gamma) mod 360`` where ``gamma`` is the grid
  azimuth of true north at the point (meridian convergence).
"""

from __future__ import annotations

import math

import numpy as np

from geo import Site

#: Earth radius used by Redis GEO commands (metres)
EARTH_RADIUS_M = 6372797.560856


class LineFrame:
    """Closest-segment lookups on a site's border line (working CRS)."""

    def __init__(self, site: Site) -> None:
        b = site.border
        self._v0 = b.vertices[:-1].copy()
        self._t = b.tangent.copy()
        self._len = b.seg_len.copy()
        self._cum = b.cum[:-1].copy()
        self._n = b.home_normal.copy()

    def at(self, x: float, y: float) -> tuple[float, float, float]:
        """``(chain, nx, ny)``: chainage of the closest point and home normal there."""
        dx = x - self._v0[:, 0]
        dy = y - self._v0[:, 1]
        u = np.clip(dx * self._t[:, 0] + dy * self._t[:, 1], 0.0, self._len)
        ex = dx - u * self._t[:, 0]
        ey = dy - u * self._t[:, 1]
        k = int(np.argmin(ex * ex + ey * ey))
        return float(self._cum[k] + u[k]), float(self._n[k, 0]), float(self._n[k, 1])


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (m) on the Redis GEO sphere."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def true_heading_deg(site: Site, x: float, y: float, vx: float, vy: float) -> float | None:
    """True heading (degrees clockwise from true north, [0, 360)) of a grid velocity;
    ``None`` below 0.05 m/s, where a heading means nothing."""
    if math.hypot(vx, vy) < 0.05:
        return None
    gamma = float(site.proj.true_north_grid_az(x, y))
    h = math.degrees(math.atan2(vx, vy) - gamma) % 360.0
    return 0.0 if h >= 360.0 else h
