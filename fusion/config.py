"""Tracker configuration: one frozen dataclass, packed into flat arrays for the kernels."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fusion._jit import F8
from fusion.classifier import PRIOR, default_confusion
from fusion.measurements import N_CLASSES, Cls, Kind

# indices into the scalar vector ``g``
G_GATE, G_CELL, G_ACROSS, G_SVR, G_M, G_N, G_TENT_MISS, G_CONF_MISS = range(8)
G_TENT_TIMEOUT, G_EPS, G_GROUP_R, G_VTOL, G_MERGE_GATE, G_MAX_EXACT, G_GROUP_CONF = range(8, 15)
G_MERGE_MAX_M, G_CONF_SIGMA, G_DROP_SIGMA, G_CAM_MIN = 15, 16, 17, 18
N_G = 19
# columns of the per-kind table ``kpar`` (4, N_K)
K_PD, K_LAM, K_SCAN_MISS, K_ABSORB, K_WEIGHT, K_TIMEOUT = range(6)
N_K = 6
# columns of the per-class table ``cpar`` (6, N_C)
C_Q, C_TIMEOUT, C_SV0 = range(3)
N_C = 3


def _kind_defaults() -> dict[str, tuple[float, float, bool, bool, float]]:
    # kind: (Pd, clutter density per unit measurement volume, misses counted per frame,
    #        unassigned events inside an updated track's gate are absorbed, corroboration weight)
    return {
        "fibre": (0.8, 1e-6, False, True, 0.5),
        "thermal": (0.9, 1e-6, False, False, 0.7),
        "msv": (0.9, 1e-6, False, False, 0.8),
        "point": (0.9, 1e-5, True, False, 0.8),
    }


def _class_defaults() -> dict[str, tuple[float, float, float]]:
    # class: (process noise q m^2/s^3, delete after this long without update s,
    #         initial velocity sigma m/s)
    return {
        "person": (0.05, 60.0, 2.0),
        "group": (0.05, 60.0, 2.0),
        "vehicle": (1.0, 30.0, 12.0),
        "animal": (0.2, 30.0, 4.0),
        "digging": (0.001, 300.0, 0.5),
        "unknown": (0.3, 30.0, 8.0),
    }


@dataclass(frozen=True)
class TrackerConfig:
    """Every tunable of the tracker, with the defaults used on the RO-RS site.

    ``kinds`` maps a kind name (``fibre``, ``thermal``, ``msv``, ``point``) to
    ``(pd, clutter_density, scan_misses, absorb, corroboration_weight)``; ``classes`` maps a
    class name to ``(q, timeout_s, init_vel_sigma)``; ``sensor_pd`` / ``sensor_clutter``
    override Pd / clutter density per sensor index.
    """

    gate: float = 13.8  #: chi-square gate on d2 (13.8 = 99.9 % for 2 dof)
    cell_min_m: float = 25.0  #: smallest gating grid cell
    fibre_across_m: float = 10.0  #: 1-sigma across-cable ambiguity of a fibre event
    vr_sigma: float = 0.5  #: 1-sigma radar Doppler (m/s)
    confirm_m: int = 3  #: M of M-of-N confirmation
    confirm_n: int = 4  #: N of M-of-N (<= 32)
    tentative_max_misses: int = 2
    confirmed_max_misses: int = 5
    #: a tentative track is confirmed only once its position is observable: the largest
    #: 1-sigma of its position covariance is at most this (m). A camera's range is weak
    #: (25 % sigma), so a camera-only track is known only along its bearing until a second
    #: bearing, a range-capable sensor or a fibre event localises it. ``inf``: M-of-N only.
    confirm_sigma_m: float = 75.0
    #: a confirmed track whose position 1-sigma (at its last update) exceeds this is dropped
    #: (reported lost): it is no longer localised (e.g. a camera-only track after its fibre
    #: or radar left), and an estimate hundreds of metres off is a false and a missed object
    drop_sigma_m: float = 150.0
    #: a track fed only by thermal cameras is confirmed only once this many cameras saw it
    #: (a second bearing localises; one camera's 25 % range does not, and its converted
    #: sigma is over-confident: 93 % of single-camera confirmed tracks were > 100 m off)
    camera_alone_min_sensors: int = 2
    #: per kind: a track updated only by these kinds ends after this long without an update
    #: (s), however long its class would coast; a camera or radar that sees the object at
    #: 1 Hz and misses it for that long has lost it. Kinds not named never cap the timeout.
    kind_timeout_s: dict[str, float] = field(default_factory=lambda: {"thermal": 15.0, "msv": 15.0})
    tentative_timeout_s: float = 20.0
    class_forget: float = 0.02  #: per-update forgetting of class_p towards the prior
    group_radius_m: float = 20.0  #: people tracks closer than this and co-moving become a group
    group_vel_tol: float = 0.7  #: m/s, plus 2 sigma of the velocity difference
    merge_gate: float = 9.21  #: chi-square (2 dof, 99 %) for duplicate-track merging
    merge_max_m: float = 60.0  #: duplicates farther apart than this are never merged
    max_exact: int = 256  #: largest cluster solved exactly (tracks)
    group_evidence: float = 0.3  #: confidence of "several fibre events at once" as group
    horizon_s: float = 300.0  #: late measurements up to this old are replayed exactly (0: off)
    checkpoint_s: float = 1.0  #: minimum step-time spacing of rewind checkpoints
    #: rows later than this (behind what was processed) get an OOSM update instead of a
    #: rewind-and-replay (``inf``: always rewind within the horizon)
    oosm_after_s: float = 30.0
    kinds: dict[str, tuple[float, float, bool, bool, float]] = field(default_factory=_kind_defaults)
    classes: dict[str, tuple[float, float, float]] = field(default_factory=_class_defaults)
    sensor_pd: dict[int, float] = field(default_factory=dict)
    sensor_clutter: dict[int, float] = field(default_factory=dict)
    prior: tuple[float, ...] = tuple(float(v) for v in PRIOR)

    def __post_init__(self) -> None:
        """Validate ranges and cross-field rules; raises ``ValueError``."""
        if not 1 <= self.confirm_m <= self.confirm_n <= 32:
            msg = "need 1 <= confirm_m <= confirm_n <= 32"
            raise ValueError(msg)
        if not (self.confirm_sigma_m > 0 and self.drop_sigma_m > 0):
            msg = "confirm_sigma_m and drop_sigma_m must be > 0"
            raise ValueError(msg)
        if self.camera_alone_min_sensors < 1:
            msg = "camera_alone_min_sensors must be >= 1"
            raise ValueError(msg)
        names = {k.name.lower() for k in Kind}
        if not set(self.kind_timeout_s) <= names or not all(
            v > 0 for v in self.kind_timeout_s.values()
        ):
            msg = f"kind_timeout_s: kinds among {sorted(names)}, timeouts > 0"
            raise ValueError(msg)
        if self.gate <= 0 or self.merge_gate <= 0 or self.cell_min_m <= 0:
            msg = "gates and cell size must be > 0"
            raise ValueError(msg)
        if self.horizon_s < 0 or self.checkpoint_s < 0 or not self.oosm_after_s >= 0:
            msg = "horizon_s, checkpoint_s and oosm_after_s must be >= 0"
            raise ValueError(msg)
        if set(self.kinds) != {k.name.lower() for k in Kind}:
            msg = f"kinds must name exactly {[k.name.lower() for k in Kind]}"
            raise ValueError(msg)
        if set(self.classes) != {c.name.lower() for c in Cls}:
            msg = f"classes must name exactly {[c.name.lower() for c in Cls]}"
            raise ValueError(msg)
        for name, (pd, lam, *_rest) in self.kinds.items():
            if not (0 < pd < 1 and lam > 0):
                msg = f"kind {name}: need 0 < pd < 1 and clutter density > 0"
                raise ValueError(msg)
        if len(self.prior) != N_CLASSES or not math.isclose(sum(self.prior), 1.0, abs_tol=1e-6):
            msg = "prior must have 6 entries summing to 1"
            raise ValueError(msg)

    def pack(self) -> tuple[F8, F8, F8, F8]:
        """``(g, kpar, cpar, prior)`` arrays for the kernels."""
        g = np.zeros(N_G)
        g[G_GATE] = self.gate
        g[G_CELL] = self.cell_min_m
        g[G_ACROSS] = self.fibre_across_m
        g[G_SVR] = self.vr_sigma
        g[G_M] = self.confirm_m
        g[G_N] = self.confirm_n
        g[G_TENT_MISS] = self.tentative_max_misses
        g[G_CONF_MISS] = self.confirmed_max_misses
        g[G_TENT_TIMEOUT] = self.tentative_timeout_s
        g[G_EPS] = self.class_forget
        g[G_GROUP_R] = self.group_radius_m
        g[G_VTOL] = self.group_vel_tol
        g[G_MERGE_GATE] = self.merge_gate
        g[G_MAX_EXACT] = self.max_exact
        g[G_GROUP_CONF] = self.group_evidence
        g[G_MERGE_MAX_M] = self.merge_max_m
        g[G_CONF_SIGMA] = self.confirm_sigma_m
        g[G_DROP_SIGMA] = self.drop_sigma_m
        g[G_CAM_MIN] = self.camera_alone_min_sensors
        kpar = np.zeros((len(Kind), N_K))
        for k in Kind:
            pd, lam, scan_miss, absorb, w = self.kinds[k.name.lower()]
            tmo = self.kind_timeout_s.get(k.name.lower(), math.inf)
            kpar[int(k)] = (pd, lam, float(scan_miss), float(absorb), w, tmo)
        cpar = np.zeros((N_CLASSES, N_C))
        for c in Cls:
            cpar[int(c)] = self.classes[c.name.lower()]
        return g, kpar, cpar, np.array(self.prior, dtype=np.float64)

    def sensor_tables(self, n_sensors: int) -> tuple[F8, F8]:
        """Per-sensor ``(pd, clutter)`` override arrays (NaN: use the kind default)."""
        n = max(n_sensors, 1 + max([*self.sensor_pd, *self.sensor_clutter], default=-1), 1)
        spd = np.full(n, np.nan)
        slam = np.full(n, np.nan)
        for i, v in self.sensor_pd.items():
            spd[i] = v
        for i, v in self.sensor_clutter.items():
            slam[i] = v
        return spd, slam

    @staticmethod
    def confusion() -> F8:
        """Default confusion matrices (see :mod:`fusion.classifier`)."""
        return default_confusion()
