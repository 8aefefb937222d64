"""Which sectors a measurement belongs to: its border chainage in ``[from_m - margin,
to_m + margin)`` of the sector (so a point near a boundary goes to both sectors)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fusion.measurements import MeasArray
from geo import Site


class Router:
    """Sector windows of a site with an overlap margin (m).

    Invariant: every chainage inside some sector is in that sector's window; a chainage
    within ``margin`` of a boundary is in both neighbours' windows.
    """

    def __init__(self, site: Site, margin_m: float) -> None:
        if margin_m < 0:
            msg = f"margin_m must be >= 0, got {margin_m}"
            raise ValueError(msg)
        self.site = site
        self.margin_m = margin_m
        self.ids = [s.id for s in site.sectors]
        self.lo = np.array([s.from_m for s in site.sectors], np.float64) - margin_m
        self.hi = np.array([s.to_m for s in site.sectors], np.float64) + margin_m
        # points beyond the ends of the sectored line go to the end sectors
        self.lo[0] = -np.inf
        self.hi[-1] = np.inf

    def chainage(self, meas: MeasArray) -> npt.NDArray[np.float64]:
        """Border chainage of each row: the fibre's own, else the projected position."""
        chain = np.asarray(meas["chain"], np.float64).copy()
        other = ~np.isfinite(chain)
        if other.any():
            c, _ = self.site.border.project(meas["x"][other], meas["y"][other])
            chain[other] = c
        return chain

    def windows(self, chain: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """(rows, sectors): row in the sector's window."""
        c = chain[:, None]
        return (c >= self.lo[None, :]) & (c < self.hi[None, :])

    def sectors_of(self, meas: MeasArray) -> list[str]:
        """Ids of the sectors whose window holds at least one row."""
        if not len(meas):
            return []
        hit = self.windows(self.chainage(meas)).any(axis=0)
        return [self.ids[i] for i in np.flatnonzero(hit)]

    def mask(self, meas: MeasArray, sector: str) -> npt.NDArray[np.bool_]:
        """Rows in ``sector``'s window."""
        i = self.ids.index(sector)
        chain = self.chainage(meas)
        out: npt.NDArray[np.bool_] = (chain >= self.lo[i]) & (chain < self.hi[i])
        return out

    def span(self, lo: float, hi: float) -> list[str]:
        """Ids of the sectors whose window meets the chainage interval ``[lo, hi]``."""
        hit = (self.lo <= hi) & (self.hi >= lo)
        return [self.ids[i] for i in np.flatnonzero(hit)]

    def coverage(self) -> dict[str, list[str]]:
        """Sectors that can receive each fixed sensor's measurements: a fibre unit's border
        interval, a camera's chainage +- its range. MSVs move: not listed (every sector)."""
        site = self.site
        out = {f.id: self.span(f.from_m, f.to_m) for f in site.fibre}
        if site.thermal:
            chain, _ = site.border.project(site.thermal_xy[:, 0], site.thermal_xy[:, 1])
            for cam, c in zip(site.thermal, chain, strict=True):
                out[cam.id] = self.span(float(c) - cam.range_m, float(c) + cam.range_m)
        return out

    def neighbours(self, sector: str) -> tuple[str | None, str | None]:
        """The sectors before and after ``sector`` along the line (None at the ends)."""
        i = self.ids.index(sector)
        prev = self.ids[i - 1] if i > 0 else None
        nxt = self.ids[i + 1] if i + 1 < len(self.ids) else None
        return prev, nxt
