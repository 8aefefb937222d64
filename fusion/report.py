"""Snapshot -> contract track-update dicts (``limes/v1/tracks/{sector}`` payloads).

:func:`track_updates` converts rows of a :class:`fusion.tracker.Snapshot`; :class:`Reporter`
adds the contract's cadence: a confirmed track is emitted when it was updated since its last
emission or ``track_report_s`` has passed (so at least every ``track_report_s`` while the
service steps at least that often), and exactly once with ``status: "lost"`` when it ends.

Fields: ``class`` is the arg-max of ``class_p``; ``class_p`` is that class's probability (the
full vector is in the extension field ``class_probs``); ``pos_sigma_m`` the 1-sigma of the
position along its worst axis; ``border_dist_m`` unsigned; ``side`` from the sign of the
distance (home side positive); ``sector`` the sector id, ``""`` outside every sector;
``sensors`` the device ids that ever updated the track. Extension fields (consumers ignore
unknown fields): ``confidence`` (corroboration, see ``Snapshot``) and ``merged_into``.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from fusion.measurements import CLASS_NAMES
from fusion.state import CONFIRMED, DEAD, TENTATIVE
from fusion.tracker import Snapshot

F64 = npt.NDArray[np.float64]
STATUS_NAMES = {TENTATIVE: "tentative", CONFIRMED: "confirmed", DEAD: "lost"}


class _Proj(Protocol):
    def to_lonlat(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[F64, F64]: ...


class SiteLike(Protocol):
    """What :func:`track_updates` needs from :class:`geo.Site`."""

    @property
    def proj(self) -> _Proj: ...
    @property
    def sensor_ids(self) -> list[str]: ...
    @property
    def track_report_s(self) -> float: ...

    def locate(
        self, x: npt.ArrayLike, y: npt.ArrayLike
    ) -> tuple[F64, F64, npt.NDArray[np.intp]]: ...
    def sector_id(self, index: int) -> str: ...
    def side_code(self, signed_dist: npt.ArrayLike) -> npt.NDArray[np.str_]: ...


def format_track_id(tid: int) -> str:
    """Stable contract track id for an internal integer id: ``T000123``."""
    return f"T{tid:06d}"


def track_updates(
    snap: Snapshot, site: SiteLike, rows: npt.ArrayLike | None = None
) -> list[dict[str, Any]]:
    """Contract track-update dicts for ``rows`` of ``snap`` (default: all rows)."""
    idx = np.arange(len(snap)) if rows is None else np.asarray(rows, dtype=np.intp)
    if idx.size == 0:
        return []
    x = snap.x[idx]
    y = snap.y[idx]
    lon, lat = site.proj.to_lonlat(x, y)
    _, sd, sec = site.locate(x, y)
    side = site.side_code(sd)
    ids = site.sensor_ids
    out: list[dict[str, Any]] = []
    for k, r in enumerate(idx.tolist()):
        cp = snap.class_p[r]
        c = int(np.argmax(cp))
        sens = [ids[i] if i < len(ids) else f"#{i}" for i in snap.sensor_indices(r)]
        upd: dict[str, Any] = {
            "t": float(snap.t),
            "track_id": format_track_id(int(snap.track_id[r])),
            "lat": float(lat[k]),
            "lon": float(lon[k]),
            "x": float(x[k]),
            "y": float(y[k]),
            "vx": float(snap.vx[r]),
            "vy": float(snap.vy[r]),
            "pos_sigma_m": float(snap.pos_sigma[r]),
            "class": CLASS_NAMES[c],
            "class_p": float(cp[c]),
            "status": STATUS_NAMES[int(snap.status[r])],
            "sector": site.sector_id(int(sec[k])),
            "side": str(side[k]),
            "border_dist_m": float(abs(sd[k])),
            "sensors": sens,
            "class_probs": {n: float(p) for n, p in zip(CLASS_NAMES, cp, strict=True)},
            "confidence": float(snap.confidence[r]),
        }
        if snap.merged_into[r] >= 0:
            upd["merged_into"] = format_track_id(int(snap.merged_into[r]))
        out.append(upd)
    return out


class Reporter:
    """Chooses which snapshot rows to emit (contract cadence) and formats them.

    Cadence: with ``dt`` the spacing of the last two snapshots, a live track is emitted when it
    was updated since its last emission, or when ``t - last + dt >= track_report_s`` (the next
    step would otherwise come too late). A track is reported ``lost`` at most once: its id is
    remembered for ``lost_memory_s`` and every later row with it (a rewind-and-replay can end
    or revive a track again) is suppressed.
    """

    def __init__(
        self, site: SiteLike, *, include_tentative: bool = False, lost_memory_s: float = 900.0
    ) -> None:
        self.site = site
        self.include_tentative = include_tentative
        self.lost_memory_s = lost_memory_s
        self._last: dict[int, float] = {}  # track id -> time of its last emission
        self._lost: dict[int, float] = {}  # track id -> time it was reported lost
        self._t_prev: float | None = None

    def __call__(self, snap: Snapshot) -> list[dict[str, Any]]:
        """Updates due for this snapshot (confirmed, optionally tentative, and lost once)."""
        period = float(self.site.track_report_s)
        t = float(snap.t)
        dt = t - self._t_prev if self._t_prev is not None and t > self._t_prev else 0.0
        self._t_prev = t
        if self._lost:
            old = [k for k, v in self._lost.items() if v < t - self.lost_memory_s]
            for k in old:
                del self._lost[k]
        rows: list[int] = []
        for r in range(len(snap)):
            tid = int(snap.track_id[r])
            if tid in self._lost:
                continue
            st = int(snap.status[r])
            if st == DEAD:
                if tid in self._last or self.include_tentative or snap.was_confirmed[r]:
                    rows.append(r)
                    self._lost[tid] = t
                self._last.pop(tid, None)
                continue
            if st == TENTATIVE and not self.include_tentative:
                continue
            last = self._last.get(tid)
            if last is None or t - last + dt >= period - 1e-9 or snap.t_update[r] > last:
                rows.append(r)
                self._last[tid] = t
        return track_updates(snap, self.site, rows)
