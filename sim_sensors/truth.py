"""Ground truth: every moving or working object of a scenario, sampled at 1 Hz.

Truth is struct-of-arrays. Objects (one row each) have an id, a class (``person`` for
one person, ``group`` for 2-40 people moving together, ``vehicle``, ``animal``), a role
(why it is there) and, for groups, a size and a spread. Samples (one row per object per
second of simulation time ``t_k = start_t + k``) hold the position and velocity in the
site's working CRS and the *activity* that drives the fibre model.

Motion models (all seeded):

* people follow a path built from waypoints at border offsets, densified and displaced
  sideways by smooth noise (sigma 8 m, correlation 200 m). Speed along the path is
  ``v_walk ~ U(1.2, 1.5)`` m/s (groups of more than 10: 0.85x); with ``p_running``
  the group runs ``U(2.5, 3.5)`` m/s from 100-300 m before the border to 50-200 m
  after it; half the groups wait ``U(60, 300)`` s 100-600 m before the border.
  A *crossing* path runs from ``approach_start_m`` on the neighbour side to
  ``U(800, 2500)`` m on the home side and is kept only if its signed border distance
  changes sign exactly once (neighbour -> home); the crossing time is drawn in
  ``crossing_window`` of the duration. A *turn-back* path comes to ``U(20, 300)`` m
  of the border and returns; it never crosses.
* vehicles drive at constant speed on roads: offset curves of the border line (GEOS
  offset, round joins) at ``U(150, 1500)`` m either side, or, for the near-road
  fraction, 15-45 m from the cable on either side; roads that come closer than half
  their offset to the border are redrawn. Farm machines work lanes 6 m apart in a
  field next to the cable at 2-3.5 m/s.
* animals (deer, boar, dogs) walk with a smooth random velocity (each component
  ``sigma * smooth_noise(60 s)``, sigma 0.5 / 0.35 / 0.7 m/s) for 20-90 min, on both
  sides, 40 % of them starting within 200 m of the border; they cross it freely.
* a digger stands 1-4 m on the neighbour side of the line and digs in bursts of
  ``U(20, 60)`` s separated by ``U(10, 40)`` s pauses for 20-40 min.
* home patrols drive back and forth on their road (8-14 m/s, stops of 2-10 min);
  neighbour patrols stand still. MSVs stay parked, and in scenarios of 2 h or more
  relocate once by 3-6 km along their road at 8 m/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.ops import substring

from geo import Site
from sim_sensors import _geom
from sim_sensors.config import ScenarioConfig

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]

SIM_DT = 1.0

TRUTH_CLASSES: tuple[str, ...] = ("person", "group", "vehicle", "animal")
PERSON, GROUP, VEHICLE, ANIMAL = 0, 1, 2, 3
ROLES: tuple[str, ...] = (
    "crossing",
    "turnback",
    "road",
    "farm",
    "animal",
    "digging",
    "patrol",
    "msv",
)
(R_CROSSING, R_TURNBACK, R_ROAD, R_FARM, R_ANIMAL, R_DIGGING, R_PATROL, R_MSV) = range(8)
#: activities, the fibre's view of a sample
ACTS: tuple[str, ...] = ("idle", "walking", "running", "vehicle", "digging", "animal", "farm")
A_IDLE, A_WALK, A_RUN, A_VEHICLE, A_DIG, A_ANIMAL, A_FARM = range(7)

_RUN_SPEED = 2.2  # m/s above which a person's gait is running


@dataclass
class Truth:
    """Objects and their samples (struct of arrays), plus labelled truth events."""

    start_t: float
    n_steps: int
    chain_lo: float
    chain_hi: float
    ids: list[str]
    cls: I8
    role: I8
    group_size: npt.NDArray[np.int32]
    spread: F64
    species: list[str]
    obj: npt.NDArray[np.int32]
    k: I64
    x: F64
    y: F64
    vx: F64
    vy: F64
    act: I8
    chain: F64
    dist: F64
    events: list[dict[str, Any]] = field(default_factory=list)
    msv_obj: dict[str, int] = field(default_factory=dict)  # MSV id -> its object index
    patrol_obj: dict[str, int] = field(default_factory=dict)

    @property
    def t(self) -> F64:
        """Sample times (UNIX epoch)."""
        return self.start_t + self.k.astype(np.float64) * SIM_DT

    def object_samples(self, i: int) -> npt.NDArray[np.intp]:
        """Sample indices of object ``i`` (time order)."""
        lo, hi = np.searchsorted(self.obj, [i, i + 1])
        return np.arange(lo, hi)


class _Builder:
    """Collects objects with their per-step arrays, clipped to the scenario."""

    def __init__(self, n_steps: int) -> None:
        self.n_steps = n_steps
        self.ids: list[str] = []
        self.cls: list[int] = []
        self.role: list[int] = []
        self.size: list[int] = []
        self.spread: list[float] = []
        self.species: list[str] = []
        self.k: list[I64] = []
        self.x: list[F64] = []
        self.y: list[F64] = []
        self.act: list[I8] = []

    def add(
        self,
        oid: str,
        cls: int,
        role: int,
        k0: int,
        x: F64,
        y: F64,
        act: I8 | int,
        *,
        size: int = 1,
        spread: float = 0.0,
        species: str = "",
    ) -> int | None:
        """Add an object whose samples start at step ``k0``; None if none in the window."""
        k = np.arange(k0, k0 + len(x), dtype=np.int64)
        a = np.broadcast_to(np.asarray(act, np.int8), k.shape)
        keep = (k >= 0) & (k < self.n_steps)
        if keep.sum() < 2:
            return None
        self.ids.append(oid)
        self.cls.append(cls)
        self.role.append(role)
        self.size.append(size)
        self.spread.append(spread)
        self.species.append(species)
        self.k.append(k[keep])
        self.x.append(np.asarray(x, np.float64)[keep])
        self.y.append(np.asarray(y, np.float64)[keep])
        self.act.append(np.array(a[keep], np.int8))
        return len(self.ids) - 1


def _timed(s_nodes: F64, v_nodes: F64, pauses: list[tuple[float, float]]) -> tuple[F64, F64]:
    """Time at each arc-length node for speed ``v(s)``, with pauses ``(s, duration)``.

    ``t(s) = sum ds / v``; a pause inserts a repeated node with the time shifted.
    """
    ds = np.diff(s_nodes)
    t = np.concatenate([[0.0], np.cumsum(ds / np.maximum(v_nodes[:-1], 0.05))])
    s = s_nodes
    for sp, dur in sorted(pauses, reverse=True):
        j = int(np.searchsorted(s, sp))
        if 0 < j < len(s):
            s = np.insert(s, j, s[j - 1])
            t = np.insert(t, j, t[j - 1] + dur)
            t[j + 1 :] += dur
    return s, t


def _sample_path(
    wp: F64, s_nodes: F64, t_nodes: F64, t_anchor: float, s_anchor: float
) -> tuple[int, F64, F64]:
    """Sample a timed path on the 1 s grid; ``s_anchor`` is reached at ``t_anchor`` (s).

    Returns ``(k0, x, y)``: the first step index and positions at steps ``k0, k0+1, ...``.
    """
    shift = t_anchor - float(np.interp(s_anchor, s_nodes, t_nodes))
    t_abs = t_nodes + shift
    k0 = math.ceil(t_abs[0] / SIM_DT)
    k1 = math.floor(t_abs[-1] / SIM_DT)
    if k1 <= k0:
        return k0, np.zeros(0), np.zeros(0)
    tk = np.arange(k0, k1 + 1) * SIM_DT
    s = np.interp(tk, t_abs, s_nodes)
    x, y = _geom.along(wp, s)
    return k0, x, y


def _acts_from_speed(x: F64, y: F64) -> I8:
    v = np.hypot(np.gradient(x), np.gradient(y)) / SIM_DT if len(x) > 1 else np.zeros(len(x))
    return np.where(v < 0.2, A_IDLE, np.where(v > _RUN_SPEED, A_RUN, A_WALK)).astype(np.int8)


class _Generator:
    def __init__(self, site: Site, cfg: ScenarioConfig, rng: np.random.Generator) -> None:
        self.site = site
        self.cfg = cfg
        self.rng = rng
        self.border = site.border
        self.D = cfg.duration_s
        self.n_steps = math.floor(cfg.duration_s / SIM_DT) + 1
        L = site.border.length
        lo = 0.0 if cfg.chain_from_m is None else max(0.0, cfg.chain_from_m)
        hi = L if cfg.chain_to_m is None else min(L, cfg.chain_to_m)
        self.lo, self.hi = lo, hi
        self.b = _Builder(self.n_steps)
        self.line = shapely.LineString(site.border.vertices)
        self.home_sign = 1.0 if site.border.home_side == "left" else -1.0
        self.cable_offset = float(np.mean([f.offset_m for f in site.fibre])) if site.fibre else 0.0
        self.digging_span: tuple[float, float, int] | None = None

    # -- helpers -----------------------------------------------------------------------------

    def rand_chain(self, margin: float = 500.0) -> float:
        lo, hi = self.lo + margin, self.hi - margin
        if hi <= lo:
            lo, hi = self.lo, self.hi
        return float(self.rng.uniform(lo, hi))

    def offset_points(self, chain: F64, offset: F64) -> F64:
        x, y, _, _ = self.border.point_at(chain, offset)
        return np.column_stack([x, y])

    def road(self, c0: float, length: float, offset: float) -> F64 | None:
        """An offset curve of the border from chainage c0 over ``length`` at ``offset``."""
        a = max(0.0, c0)
        b = min(self.border.length, c0 + length)
        if b - a < 200:
            return None
        sub = substring(self.line, a, b)
        try:
            g = sub.offset_curve(self.home_sign * offset, quad_segs=8, join_style="round")
        except shapely.errors.GEOSException:
            return None
        if g.is_empty:
            return None
        parts = list(getattr(g, "geoms", [g]))
        best = max(parts, key=lambda p: p.length)
        xy = np.asarray(best.coords, np.float64)[:, :2]
        if len(xy) < 2:
            return None
        xy = _geom.resample(xy, 25.0)
        _, d = self.border.project(xy[:, 0], xy[:, 1])
        if np.any(np.sign(d) != np.sign(offset)) or np.any(np.abs(d) < 0.5 * abs(offset)):
            return None
        return xy

    # -- people ------------------------------------------------------------------------------

    def group_size(self) -> int:
        cfg = self.cfg
        if cfg.group_size_max == 1 or self.rng.random() < cfg.p_single:
            return 1
        # 2 + geometric with mean (group_size_mean - 2), capped
        p = 1.0 / max(1.0, cfg.group_size_mean - 1.0)
        return int(min(cfg.group_size_max, 1 + self.rng.geometric(p)))

    def person_path(self, kind: str) -> tuple[F64, float] | None:
        """Waypoints of a crossing or turn-back, and the arc length of the crossing/turn."""
        rng = self.rng
        a, b = self.cfg.approach_start_m
        d0 = float(rng.uniform(a, b))
        c = self.rand_chain(margin=min(1500.0, 0.2 * (self.hi - self.lo)))
        drift = float(rng.uniform(-400, 400))
        if kind == "crossing":
            d1 = float(rng.uniform(800, 2500))
            n = max(3, math.ceil((d0 + d1) / 100.0) + 1)
            off = np.linspace(-d0, d1, n)
            ch = c + drift * np.linspace(0, 1, n)
        else:
            dt = float(rng.uniform(20, 300))
            n1 = max(3, math.ceil((d0 - dt) / 100.0) + 1)
            off = np.concatenate([np.linspace(-d0, -dt, n1), np.linspace(-dt, -d0, n1)[1:]])
            back = float(rng.uniform(-300, 300))
            ch = np.concatenate(
                [c + drift * np.linspace(0, 1, n1), c + drift + back * np.linspace(0, 1, n1)[1:]]
            )
        wp = self.offset_points(ch, off)
        wp = _geom.wander(rng, wp, 8.0, 200.0)
        _, d = self.border.project(wp[:, 0], wp[:, 1])
        s = _geom.cumlen(wp)
        if kind == "crossing":
            sign = d >= 0
            changes = np.flatnonzero(sign[1:] != sign[:-1])
            if len(changes) != 1 or sign[0] or not sign[-1]:
                return None
            j = int(changes[0])
            s_c = s[j] + (s[j + 1] - s[j]) * d[j] / (d[j] - d[j + 1])
            return wp, float(s_c)
        if np.any(d >= -5.0):
            return None
        return wp, float(s[int(np.argmax(d))])

    def add_person(self, idx: int, kind: str) -> None:
        rng = self.rng
        for _ in range(30):
            got = self.person_path(kind)
            if got is not None:
                break
        else:
            return
        wp, s_c = got
        size = self.group_size() if kind == "crossing" else int(rng.choice([1, 1, 2, 3]))
        v_walk = float(rng.uniform(1.2, 1.5)) * (0.85 if size > 10 else 1.0)
        s_nodes = np.arange(0.0, _geom.cumlen(wp)[-1], 2.0)
        s_nodes = np.append(s_nodes, _geom.cumlen(wp)[-1])
        v = v_walk * (1.0 + 0.08 * _geom.smooth_noise(rng, len(s_nodes), 50.0))
        if kind == "crossing" and rng.random() < self.cfg.p_running:
            run = (s_nodes > s_c - rng.uniform(100, 300)) & (s_nodes < s_c + rng.uniform(50, 200))
            v = np.where(run, rng.uniform(2.5, 3.5) * (0.85 if size > 10 else 1.0), v)
        pauses: list[tuple[float, float]] = []
        if rng.random() < 0.5 and s_c > 150:
            sp = float(rng.uniform(max(0.0, s_c - 600), s_c - 100))
            pauses.append((sp, float(rng.uniform(60, 300))))
        s_n, t_n = _timed(s_nodes, v, pauses)
        lo, hi = self.cfg.crossing_window
        t_c = float(rng.uniform(lo, hi)) * self.D
        k0, x, y = _sample_path(wp, s_n, t_n, t_c, s_c)
        cls = PERSON if size == 1 else GROUP
        spread = 0.0 if size == 1 else min(20.0, 2.0 + 2.5 * math.sqrt(size - 1))
        role = R_CROSSING if kind == "crossing" else R_TURNBACK
        prefix = "X" if kind == "crossing" else "T"
        self.b.add(
            f"{prefix}{idx:03d}", cls, role, k0, x, y, _acts_from_speed(x, y),
            size=size, spread=spread,
        )  # fmt: skip

    # -- vehicles ----------------------------------------------------------------------------

    def add_vehicle(self, idx: int) -> None:
        rng = self.rng
        near = rng.random() < self.cfg.near_road_fraction and bool(self.site.fibre)
        for _ in range(10):
            side = 1.0 if rng.random() < 0.5 else -1.0
            if near:
                offset = self.cable_offset + side * float(rng.uniform(15, 45))
                if abs(offset) < 8:
                    continue
                speed = float(rng.uniform(5, 12))
            else:
                offset = side * float(rng.uniform(150, 1500))
                speed = float(rng.uniform(10, 22))
            length = float(rng.uniform(3000, 15000))
            c0 = float(rng.uniform(self.lo - length * 0.5, self.hi - length * 0.5))
            xy = self.road(c0, length, offset)
            if xy is not None:
                break
        else:
            return
        if rng.random() < 0.5:
            xy = xy[::-1].copy()
        s_nodes = _geom.cumlen(xy)
        v = np.full(len(s_nodes), speed)
        s_n, t_n = _timed(s_nodes, v, [])
        t_start = float(rng.uniform(-t_n[-1] * 0.8, self.D))
        k0, x, y = _sample_path(xy, s_n, t_n, t_start, 0.0)
        self.b.add(f"V{idx:03d}", VEHICLE, R_ROAD, k0, x, y, A_VEHICLE)

    def add_farm(self, idx: int) -> None:
        rng = self.rng
        for _ in range(10):
            c = self.rand_chain()
            side = 1.0 if rng.random() < 0.5 else -1.0
            near = float(rng.uniform(8, 20))
            n_lanes = int(rng.integers(10, 30))
            lf = float(rng.uniform(150, 400))
            offs = self.cable_offset + side * (near + 6.0 * np.arange(n_lanes))
            if np.any(np.abs(offs) < 5):
                continue
            ends = [(c, o, c + lf) if i % 2 == 0 else (c + lf, o, c) for i, o in enumerate(offs)]
            ch = np.array([e for a, _, b in ends for e in (a, b)])
            of = np.repeat(offs, 2)
            wp = self.offset_points(ch, of)
            dense = _geom.resample(wp, 5.0)
            _, d = self.border.project(dense[:, 0], dense[:, 1])
            if np.all(np.sign(d) == np.sign(offs[0])) and np.all(np.abs(d) > 2.0):
                break
        else:
            return
        s_nodes = np.append(np.arange(0.0, _geom.cumlen(wp)[-1], 5.0), _geom.cumlen(wp)[-1])
        v = np.full(len(s_nodes), float(rng.uniform(2.0, 3.5)))
        s_n, t_n = _timed(s_nodes, v, [])
        t_start = float(rng.uniform(-0.3 * t_n[-1], max(1.0, self.D - 0.5 * t_n[-1])))
        k0, x, y = _sample_path(wp, s_n, t_n, t_start, 0.0)
        self.b.add(f"F{idx:02d}", VEHICLE, R_FARM, k0, x, y, A_FARM)

    # -- animals -----------------------------------------------------------------------------

    def add_animal(self, idx: int) -> None:
        rng = self.rng
        species = str(rng.choice(["deer", "boar", "dog"], p=[0.45, 0.35, 0.2]))
        sigma = {"deer": 0.5, "boar": 0.35, "dog": 0.7}[species]
        life = int(rng.uniform(20, 90) * 60)
        k0 = int(rng.uniform(-0.5 * life, self.D))
        c = self.rand_chain(margin=0.0)
        off = rng.uniform(-200, 200) if rng.random() < 0.4 else rng.uniform(-1500, 1500)
        p0 = self.offset_points(np.array([c]), np.array([off]))[0]
        vx = sigma * _geom.smooth_noise(rng, life, 60.0)
        vy = sigma * _geom.smooth_noise(rng, life, 60.0)
        x = p0[0] + np.cumsum(vx) * SIM_DT
        y = p0[1] + np.cumsum(vy) * SIM_DT
        sp = np.hypot(vx, vy)
        act = np.where(sp > 0.05, A_ANIMAL, A_IDLE).astype(np.int8)
        self.b.add(f"A{idx:03d}", ANIMAL, R_ANIMAL, k0, x, y, act, species=species)

    # -- digging -----------------------------------------------------------------------------

    def add_digger(self) -> None:
        rng = self.rng
        c = self.rand_chain()
        off = -float(rng.uniform(1, 4))
        p = self.offset_points(np.array([c]), np.array([off]))[0]
        t0 = float(rng.uniform(0.2, 0.5)) * self.D
        dur = min(float(rng.uniform(20, 40)) * 60, self.D - t0 - 30)
        if dur < 60:
            t0, dur = 0.0, 0.9 * self.D
        k0 = math.floor(t0 / SIM_DT) - 60
        n = math.ceil(dur / SIM_DT) + 120
        act = np.full(n, A_IDLE, np.int8)
        j = 60
        bursts: list[tuple[int, int]] = []
        while j < n - 60:
            b = int(rng.uniform(20, 60))
            e = min(j + b, n - 60)
            act[j:e] = A_DIG
            bursts.append((j, e))
            j = e + int(rng.uniform(10, 40))
        x = np.full(n, p[0]) + rng.normal(0, 0.05, n)
        y = np.full(n, p[1]) + rng.normal(0, 0.05, n)
        i = self.b.add("D01", PERSON, R_DIGGING, k0, x, y, act)
        if i is not None and bursts:
            self.digging_span = (
                self.cfg.start_t + (k0 + bursts[0][0]) * SIM_DT,
                self.cfg.start_t + (k0 + bursts[-1][1]) * SIM_DT,
                len(bursts),
            )

    # -- patrols and MSVs --------------------------------------------------------------------

    def road_patrol(self, oid: str, x0: float, y0: float, moving: bool, role: int) -> int | None:
        rng = self.rng
        c, d = self.border.project([x0], [y0])
        c0, d0 = float(c[0]), float(d[0])
        if not moving:
            return self.b.add(
                oid, VEHICLE, role, 0, np.full(self.n_steps, x0), np.full(self.n_steps, y0),
                A_IDLE,
            )  # fmt: skip
        half = float(rng.uniform(3000, 8000))
        off = float(np.clip(abs(d0), 200, 3000)) * (1.0 if d0 >= 0 else -1.0)
        xy = self.road(c0 - half, 2 * half, off)
        if xy is None:
            return self.road_patrol(oid, x0, y0, False, role)
        i0 = int(np.argmin(np.hypot(xy[:, 0] - x0, xy[:, 1] - y0)))
        legs = [xy[i0:], xy[::-1], xy]
        loop = np.vstack(legs)
        speed = float(rng.uniform(8, 14))
        total = self.D * speed * 1.2
        reps = max(1, math.ceil(total / max(1.0, _geom.cumlen(loop)[-1])))
        path = np.vstack([xy[i0:]] + [xy[::-1], xy] * reps)
        s_nodes = _geom.cumlen(path)
        keep = np.concatenate([[True], np.diff(s_nodes) > 1e-6])
        path, s_nodes = path[keep], s_nodes[keep]
        v = np.full(len(s_nodes), speed)
        seg_ends = np.cumsum([len(xy) - i0] + [len(xy)] * (2 * reps))
        stops = [(float(s_nodes[min(j, len(s_nodes) - 1)]), float(rng.uniform(120, 600)))
                 for j in seg_ends[:-1]]  # fmt: skip
        s_n, t_n = _timed(s_nodes, v, stops)
        k0, x, y = _sample_path(path, s_n, t_n, 0.0, 0.0)
        act = np.where(np.hypot(np.gradient(x), np.gradient(y)) > 0.2, A_VEHICLE, A_IDLE)
        return self.b.add(oid, VEHICLE, role, k0, x, y, act.astype(np.int8))

    def msv_home(self, i: int) -> tuple[float, float]:
        m = self.site.msv[i]
        if m.lat is not None and m.lon is not None:
            x, y = self.site.proj.to_xy(m.lon, m.lat)
            return float(x), float(y)
        n = len(self.site.msv)
        c = self.site.border.length * (i + 0.5) / n
        p = self.offset_points(np.array([c]), np.array([1500.0]))[0]
        return float(p[0]), float(p[1])

    def add_msv(self, i: int) -> int | None:
        rng = self.rng
        oid = self.site.msv[i].id
        x0, y0 = self.msv_home(i)
        if self.D < 7200:
            return self.road_patrol(oid, x0, y0, False, R_MSV)
        c, d = self.border.project([x0], [y0])
        shift = float(rng.uniform(3000, 6000)) * (1 if rng.random() < 0.5 else -1)
        off = float(np.clip(abs(d[0]), 200, 3000)) * (1.0 if d[0] >= 0 else -1.0)
        a, b = sorted((float(c[0]), float(c[0]) + shift))
        xy = self.road(a, b - a, off)
        if xy is None:
            return self.road_patrol(oid, x0, y0, False, R_MSV)
        if shift < 0:
            xy = xy[::-1].copy()
        path = np.vstack([[x0, y0], xy])
        s_nodes = _geom.cumlen(path)
        keep = np.concatenate([[True], np.diff(s_nodes) > 1e-6])
        path, s_nodes = path[keep], s_nodes[keep]
        t_move = float(rng.uniform(0.3, 0.7)) * self.D
        s_n, t_n = _timed(s_nodes, np.full(len(s_nodes), 8.0), [])
        k0, x, y = _sample_path(path, s_n, t_n, t_move, 0.0)
        kb = max(0, k0)
        pre = np.arange(0, kb)
        xs = np.concatenate([np.full(len(pre), x0), x[kb - k0 :]])
        ys = np.concatenate([np.full(len(pre), y0), y[kb - k0 :]])
        n_tail = self.n_steps - len(xs)
        if n_tail > 0:
            xs = np.concatenate([xs, np.full(n_tail, xs[-1])])
            ys = np.concatenate([ys, np.full(n_tail, ys[-1])])
        act = np.where(np.hypot(np.gradient(xs), np.gradient(ys)) > 0.2, A_VEHICLE, A_IDLE)
        return self.b.add(oid, VEHICLE, R_MSV, 0, xs, ys, act.astype(np.int8))

    # -- all ---------------------------------------------------------------------------------

    def run(self) -> Truth:
        cfg = self.cfg
        for i in range(cfg.n_crossings):
            self.add_person(i + 1, "crossing")
        for i in range(cfg.n_turnbacks):
            self.add_person(i + 1, "turnback")
        for i in range(cfg.n_vehicles):
            self.add_vehicle(i + 1)
        for i in range(cfg.n_farm):
            self.add_farm(i + 1)
        for i in range(cfg.n_animals):
            self.add_animal(i + 1)
        if cfg.digging:
            self.add_digger()
        patrol_obj: dict[str, int] = {}
        for p in self.site.patrols:
            x, y = self.site.proj.to_xy(p.lon, p.lat)
            moving = cfg.patrols and p.team == self.site.home
            j = self.road_patrol(p.id, float(x), float(y), moving, R_PATROL)
            if j is not None:
                patrol_obj[p.id] = j
        msv_obj: dict[str, int] = {}
        for i in range(len(self.site.msv)):
            j = self.add_msv(i)
            if j is not None:
                msv_obj[self.site.msv[i].id] = j
        truth = self.finish()
        truth.patrol_obj = patrol_obj
        truth.msv_obj = msv_obj
        return truth

    def finish(self) -> Truth:
        b = self.b
        n = [len(k) for k in b.k]
        obj = np.repeat(np.arange(len(n), dtype=np.int32), n)
        k = np.concatenate(b.k) if n else np.zeros(0, np.int64)
        x = np.concatenate(b.x) if n else np.zeros(0)
        y = np.concatenate(b.y) if n else np.zeros(0)
        vx = np.concatenate([np.gradient(a) / SIM_DT for a in b.x]) if n else np.zeros(0)
        vy = np.concatenate([np.gradient(a) / SIM_DT for a in b.y]) if n else np.zeros(0)
        act = np.concatenate(b.act) if n else np.zeros(0, np.int8)
        chain, dist = self.border.project(x, y)
        truth = Truth(
            start_t=self.cfg.start_t,
            n_steps=self.n_steps,
            chain_lo=self.lo,
            chain_hi=self.hi,
            ids=b.ids,
            cls=np.array(b.cls, np.int8),
            role=np.array(b.role, np.int8),
            group_size=np.array(b.size, np.int32),
            spread=np.array(b.spread, np.float64),
            species=b.species,
            obj=obj,
            k=k,
            x=x,
            y=y,
            vx=vx,
            vy=vy,
            act=act,
            chain=chain,
            dist=dist,
        )
        truth.events = _truth_events(self.site, truth, self.digging_span)
        return truth


def _point_event(site: Site, truth: Truth, kind: str, i: int, t: float, x: float, y: float,
                 **extra: Any) -> dict[str, Any]:  # fmt: skip
    lon, lat = site.proj.to_lonlat(x, y)
    chain, _, sec = site.locate(x, y)
    ev: dict[str, Any] = {
        "type": kind,
        "id": truth.ids[i],
        "t": round(t, 3),
        "lat": round(float(lat), 7),
        "lon": round(float(lon), 7),
        "x": round(x, 2),
        "y": round(y, 2),
        "chain": round(float(chain), 1),
        "sector": site.sector_id(int(sec)),
        "group_size": int(truth.group_size[i]),
        "class": TRUTH_CLASSES[truth.cls[i]],
        "role": ROLES[truth.role[i]],
    }
    ev.update(extra)
    return ev


def _truth_events(
    site: Site, truth: Truth, digging: tuple[float, float, int] | None
) -> list[dict[str, Any]]:
    """Crossings (neighbour -> home sign changes), approaches, turn-backs, digging."""
    out: list[dict[str, Any]] = []
    d = truth.dist
    same = truth.obj[1:] == truth.obj[:-1]
    # neighbour -> home: d < 0 then d >= 0 (linear interpolation of the zero)
    up = np.flatnonzero(same & (d[:-1] < 0) & (d[1:] >= 0))
    t = truth.t
    for j in up.tolist():
        i = int(truth.obj[j])
        f = d[j] / (d[j] - d[j + 1])
        tc = t[j] + f * (t[j + 1] - t[j])
        xc = truth.x[j] + f * (truth.x[j + 1] - truth.x[j])
        yc = truth.y[j] + f * (truth.y[j + 1] - truth.y[j])
        kind = (
            "crossing"
            if truth.cls[i] in (PERSON, GROUP)
            else f"{TRUTH_CLASSES[truth.cls[i]]}_crossing"
        )
        if truth.role[i] in (R_PATROL, R_MSV):
            continue
        out.append(_point_event(site, truth, kind, i, float(tc), float(xc), float(yc)))
    # approach: first sample of a person/group within approach_m on the neighbour side
    band = (d < 0) & (d > -site.approach_m)
    people = np.isin(truth.cls[truth.obj], (PERSON, GROUP)) & np.isin(
        truth.role[truth.obj], (R_CROSSING, R_TURNBACK)
    )
    entering = np.flatnonzero(band & people & np.concatenate([[True], ~(band[:-1] & same)]))
    seen: set[int] = set()
    for j in entering.tolist():
        i = int(truth.obj[j])
        if i in seen or j == truth.object_samples(i)[0]:
            continue  # only a real entry into the band, once per object
        seen.add(i)
        out.append(_point_event(site, truth, "approach", i, float(t[j]), float(truth.x[j]),
                                float(truth.y[j])))  # fmt: skip
    for i in np.flatnonzero(truth.role == R_TURNBACK).tolist():
        idx = truth.object_samples(i)
        j = int(idx[np.argmax(d[idx])])
        if j in (idx[0], idx[-1]):
            continue
        out.append(_point_event(site, truth, "turnback", i, float(t[j]), float(truth.x[j]),
                                float(truth.y[j]), min_dist_m=round(float(-d[j]), 1)))  # fmt: skip
    if digging is not None:
        for i in np.flatnonzero(truth.role == R_DIGGING).tolist():
            idx = truth.object_samples(i)
            j = int(idx[0])
            out.append(
                _point_event(site, truth, "digging", i, digging[0], float(truth.x[j]),
                             float(truth.y[j]), t_end=round(digging[1], 3), bursts=digging[2])
            )  # fmt: skip
    return out


def generate_truth(site: Site, cfg: ScenarioConfig, rng: np.random.Generator) -> Truth:
    """Ground truth of a scenario (see the module docstring for the motion models)."""
    return _Generator(site, cfg, rng).run()
