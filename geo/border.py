"""The border line in the working CRS: chainage, signed distance, side.

Border chainage is the planar length along the line from its first vertex (contract).
With vertices ``v_0..v_n``, segment ``k`` runs from ``v_k`` with unit tangent ``t_k`` and
length ``L_k``; ``cum_k = sum_{j<k} L_j``.

* ``point_at(s, o)`` = ``v_k + (s - cum_k) t_k + o h_k`` for the segment ``k`` holding ``s``,
  where ``h_k`` is the unit normal pointing to the home side (``o > 0``: towards home).
  Chainage outside ``[0, length]`` extrapolates along the first/last segment.
* ``project(x, y)`` = ``(s, d)``: the chainage of the closest point of the line and the
  distance to it, signed positive on the home side. At a vertex the side is decided by
  the vertex pseudo-normal ``h_{k-1} + h_k`` (correct for points in the wedge outside
  both adjacent segments, where a single segment's normal can give the wrong side).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from geo._errors import GeoError
from geo._kernels import project_points

F64 = npt.NDArray[np.float64]


class Border:
    """A polyline border in a metric CRS with a home side."""

    def __init__(self, xy: npt.ArrayLike, home_side: Literal["left", "right"]) -> None:
        v = np.asarray(xy, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 2:
            raise GeoError(f"border needs an (n >= 2, 2) vertex array, got shape {v.shape}")
        seg = np.diff(v, axis=0)
        length = np.hypot(seg[:, 0], seg[:, 1])
        keep = length > 1e-9  # drop repeated vertices
        if not keep.all():
            v = np.vstack([v[:1], v[1:][keep]])
            seg = seg[keep]
            length = length[keep]
        if len(length) == 0:
            raise GeoError("border line has zero length")
        self.vertices: F64 = v
        self.seg_len: F64 = length
        self.tangent: F64 = seg / length[:, None]
        # left normal of (tx, ty) is (-ty, tx); home normal flips it for a right home side
        sign = 1.0 if home_side == "left" else -1.0
        self.home_normal: F64 = sign * np.column_stack([-self.tangent[:, 1], self.tangent[:, 0]])
        self.cum: F64 = np.concatenate([[0.0], np.cumsum(length)])
        self._v0: F64 = np.ascontiguousarray(v[:-1])
        self.tangent = np.ascontiguousarray(self.tangent)
        self.home_normal = np.ascontiguousarray(self.home_normal)
        self.length = float(self.cum[-1])
        self.home_side = home_side

    @property
    def n_segments(self) -> int:
        """Number of segments of the line."""
        return len(self.seg_len)

    def segment_of(self, chain: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """Index of the segment holding each chainage (clamped to the first/last segment)."""
        s = np.asarray(chain, dtype=np.float64)
        k = np.searchsorted(self.cum, s, side="right") - 1
        return np.clip(k, 0, self.n_segments - 1)

    def point_at(
        self, chain: npt.ArrayLike, offset: npt.ArrayLike = 0.0
    ) -> tuple[F64, F64, F64, F64]:
        """Ground point at border chainage ``chain`` and ``offset`` metres towards home.

        Returns ``(x, y, tx, ty)``: the point and the unit tangent of the line there.
        """
        s = np.asarray(chain, dtype=np.float64)
        o = np.asarray(offset, dtype=np.float64)
        k = self.segment_of(s)
        along = s - self.cum[k]
        tx, ty = self.tangent[k, 0], self.tangent[k, 1]
        hx, hy = self.home_normal[k, 0], self.home_normal[k, 1]
        x = self.vertices[k, 0] + along * tx + o * hx
        y = self.vertices[k, 1] + along * ty + o * hy
        return x, y, np.asarray(tx), np.asarray(ty)

    def project(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[F64, F64]:
        """Chainage of the closest line point and signed distance (+ on the home side)."""
        px = np.atleast_1d(np.asarray(x, dtype=np.float64))
        py = np.atleast_1d(np.asarray(y, dtype=np.float64))
        shape = np.broadcast_shapes(px.shape, py.shape)
        px = np.ascontiguousarray(np.broadcast_to(px, shape).ravel())
        py = np.ascontiguousarray(np.broadcast_to(py, shape).ravel())
        chain = np.empty(px.size)
        dist = np.empty(px.size)
        project_points(
            px, py, self._v0, self.tangent, self.seg_len, self.home_normal, self.cum, chain, dist
        )
        if np.ndim(x) == 0 and np.ndim(y) == 0:
            return chain.reshape(()), dist.reshape(())
        return chain.reshape(shape), dist.reshape(shape)

    def signed_distance(self, x: npt.ArrayLike, y: npt.ArrayLike) -> F64:
        """Distance to the line, signed positive on the home side (m)."""
        return self.project(x, y)[1]
