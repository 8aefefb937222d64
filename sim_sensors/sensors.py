"""Sensor models: ground truth -> the events each device reports (contract fields).

Every model is vectorised over the truth samples (no Python object per event until the
final JSON text). Each event is labelled with the truth object it came from, or
``wind``/``rain``/``clutter`` (written only with ``label_events``).

**Fibre** (per interrogator unit, cable ``offset_m`` from the line towards home).
A sample of activity ``a`` at border chainage ``s`` and cable distance
``r = |dist - offset_m|`` inside the unit's interval disturbs the cable when
``r < R_a`` (walking 12 m, running 15, digging 8, animals 8 (dogs 6), vehicles 45, farm
machines 50); it is reported in that 1 s step with probability
``p_a (1 - (r/R_a)^2)`` (``p``: walking 0.7, running 0.8, digging 0.6, animal 0.35,
vehicle 0.6, farm 0.7; groups ``min(0.95, p (1 + 0.1 (n-1)))``), i.e. about one event
per 1-2 s. Event time ``t_k + u``, ``u ~ U(0, 1)``; reported border chainage
``s + v_along u + N(0, 5 m)`` converted to cable chainage with the inverse contract
formula (``FibreCfg.cable_chainage``). Class from a confusion matrix (rows: true
activity, columns: the contract's fibre classes, see ``FIBRE_CONFUSION``); confidence
``U(0.55, 0.95)`` when right, ``U(0.2, 0.6)`` when wrong; ``extent_m`` 10 m (groups
``10 + spread``, vehicles 25, digging 5, animals 8) x ``U(0.8, 1.2)``; ``energy``
``E_a exp(0.5 N(0,1)) (1 - 0.7 r/R_a)``. Wind gusts and rain add weak events
(see :class:`~sim_sensors.config.Weather`): class mostly ``unknown``, energy ~0.1-0.25.
After a cut at cable chainage ``X`` the unit reports nothing beyond ``X``.

**Thermal** (camera at its site position, mast ``height_m``, nominal ``range_m`` R,
all-round field of regard, line of sight ignored). A sample at ground range ``r < R``
is detected in a frame (1 Hz, per-camera phase) with probability
``Pd = pd0 (1 - (r/R)^2)`` (pd0: person 0.95, group 0.97, vehicle 0.98, animal 0.9).
Bearing = true bearing (grid azimuth minus the meridian convergence at the camera)
``+ N(0, 0.5 deg)``; slant range ``sqrt(r^2 + h^2) (1 + N(0, 0.25))`` present for 85 %
of objects and then 95 % of frames, with ``range_sigma_m = 0.25 range_m``; class from
``TARGET_CONFUSION`` (turned to ``unknown`` with probability ``0.5 (r/R)^2``);
``object_id`` stable per object while it is followed (a new id after 3 s unseen).
Clutter: ``camera_clutter_per_hour`` false objects per camera, each 1-8 frames.

**MSV** (radar on a mast, 1 Hz scans, platform pose from the MSV's truth path). Moving
samples (> 0.3 m/s: MTI) within ``range_m`` are detected with ``Pd = 0.9`` (single
persons ``0.9 (1 - 0.4 (r/R)^2)``); range ``+ N(0, 15 m)``, azimuth (true)
``+ N(0, 1 deg)``, ground-referenced radial velocity ``v . u + N(0, 0.3 m/s)`` (positive
away). Clutter: ``Poisson(msv_clutter_per_scan)`` plots per scan, uniform over the
coverage disc, class mostly ``unknown``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from geo import Site
from sim_sensors.config import ScenarioConfig
from sim_sensors.truth import (
    A_IDLE,
    GROUP,
    PERSON,
    R_MSV,
    SIM_DT,
    Truth,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

FIBRE_CLASSES = ("walking", "running", "digging", "vehicle", "climbing", "unknown")
TARGET_CLASSES = ("person", "group", "vehicle", "animal", "unknown")

# rows: idle, walking, running, vehicle, digging, animal, farm, wind, rain
# cols: walking, running, digging, vehicle, climbing, unknown
FIBRE_CONFUSION = np.array(
    [
        [0.00, 0.00, 0.00, 0.00, 0.00, 1.00],
        [0.75, 0.08, 0.03, 0.02, 0.04, 0.08],
        [0.20, 0.65, 0.02, 0.03, 0.02, 0.08],
        [0.05, 0.03, 0.02, 0.80, 0.00, 0.10],
        [0.10, 0.02, 0.75, 0.03, 0.02, 0.08],
        [0.45, 0.20, 0.05, 0.00, 0.02, 0.28],
        [0.05, 0.02, 0.15, 0.65, 0.00, 0.13],
        [0.12, 0.02, 0.04, 0.02, 0.05, 0.75],
        [0.05, 0.00, 0.03, 0.02, 0.00, 0.90],
    ]
)
A_WIND, A_RAIN = 7, 8
#: the fibre class that is "right" for each activity row (-1: none)
FIBRE_RIGHT = np.array([5, 0, 1, 3, 2, -1, 3, 5, 5])
FIBRE_RADIUS = np.array([0.0, 12.0, 15.0, 45.0, 8.0, 8.0, 50.0])
FIBRE_P = np.array([0.0, 0.7, 0.8, 0.6, 0.6, 0.35, 0.7])
FIBRE_EXTENT = np.array([10.0, 10.0, 10.0, 25.0, 5.0, 8.0, 25.0, 10.0, 10.0])
FIBRE_ENERGY = np.array([0.0, 1.0, 2.0, 6.0, 3.0, 0.6, 8.0, 0.25, 0.1])

# rows: person, group, vehicle, animal, clutter; cols: TARGET_CLASSES
TARGET_CONFUSION = np.array(
    [
        [0.82, 0.05, 0.01, 0.05, 0.07],
        [0.12, 0.78, 0.02, 0.01, 0.07],
        [0.01, 0.02, 0.90, 0.01, 0.06],
        [0.10, 0.03, 0.01, 0.74, 0.12],
        [0.15, 0.02, 0.03, 0.25, 0.55],
    ]
)
RADAR_CONFUSION = np.array(
    [
        [0.60, 0.10, 0.05, 0.10, 0.15],
        [0.15, 0.60, 0.05, 0.05, 0.15],
        [0.02, 0.03, 0.85, 0.02, 0.08],
        [0.20, 0.05, 0.02, 0.50, 0.23],
        [0.15, 0.02, 0.08, 0.15, 0.60],
    ]
)
THERMAL_PD0 = np.array([0.95, 0.97, 0.98, 0.90])


@dataclass
class DeviceStream:
    """The events of one device: times, batch keys and JSON text, in any order."""

    device: str
    kind: str
    t: F64
    key: I64
    json: list[str]
    platform: dict[int, str] = field(default_factory=dict)  # msv: scan key -> pose JSON


@dataclass(frozen=True)
class Faults:
    """Device faults: a fibre cut and a camera going offline (absolute times)."""

    cut_device: str | None = None
    cut_t: float = math.inf
    cut_cable_m: float = math.inf
    offline_device: str | None = None
    offline_t: float = math.inf


def _draw(rng: np.random.Generator, table: F64, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """One column index per row, drawn from the row's probabilities in ``table``."""
    cum = np.cumsum(table, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(len(rows))
    idx = np.minimum((u[:, None] > cum[rows]).sum(axis=1), table.shape[1] - 1)
    return np.asarray(idx, np.intp)


def _labels(truth: Truth, obj: npt.NDArray[np.int32] | None, n: int, other: str) -> list[str]:
    if obj is None:
        return [other] * n
    ids = np.array([*truth.ids, other], dtype=object)
    return list(ids[np.where(obj < 0, len(truth.ids), obj)])


def _label_suffix(labels: list[str] | None, n: int) -> list[str]:
    if labels is None:
        return [""] * n
    return [f',"truth_id":"{s}"' for s in labels]


# -- fibre -------------------------------------------------------------------------------------


def fibre_streams(
    site: Site, cfg: ScenarioConfig, truth: Truth, rng: np.random.Generator, faults: Faults
) -> list[DeviceStream]:
    """Events of every fibre unit (truth disturbances plus weather)."""
    out: list[DeviceStream] = []
    act = truth.act.astype(np.intp)
    cls_o = truth.cls[truth.obj]
    radius = FIBRE_RADIUS[act]
    is_dog = np.array([s == "dog" for s in truth.species], bool)[truth.obj]
    radius = np.where(is_dog, 6.0, radius)
    size = truth.group_size[truth.obj].astype(np.float64)
    for fc in site.fibre:
        lo = max(fc.from_m, truth.chain_lo)
        hi = min(fc.to_m, truth.chain_hi)
        r = np.abs(truth.dist - fc.offset_m)
        sel = np.flatnonzero(
            (truth.chain >= fc.from_m) & (truth.chain < fc.to_m) & (act != A_IDLE) & (r < radius)
        )
        rs = r[sel] / radius[sel]
        p = FIBRE_P[act[sel]] * (1.0 - rs * rs)
        p = np.where(cls_o[sel] == GROUP, np.minimum(0.95, p * (1 + 0.1 * (size[sel] - 1))), p)
        hit = sel[rng.random(len(sel)) < p]
        rs = np.abs(truth.dist[hit] - fc.offset_m) / radius[hit]
        n = len(hit)
        u = rng.random(n)
        t = truth.t[hit] + u * SIM_DT
        _, _, tx, ty = site.border.point_at(truth.chain[hit])
        v_along = truth.vx[hit] * tx + truth.vy[hit] * ty
        s_meas = truth.chain[hit] + v_along * u + rng.normal(0.0, 5.0, n)
        a = act[hit]
        extent = np.where(cls_o[hit] == GROUP, 10.0 + truth.spread[truth.obj[hit]], FIBRE_EXTENT[a])
        energy = FIBRE_ENERGY[a] * np.exp(0.5 * rng.standard_normal(n)) * (1 - 0.7 * rs)
        obj: npt.NDArray[np.int32] = truth.obj[hit]
        # weather: gusts (clustered along km of cable) and steady wind/rain
        wt, ws, wa = _weather(rng, cfg, lo, hi, truth.start_t)
        t = np.concatenate([t, wt])
        s_meas = np.concatenate([s_meas, ws])
        a = np.concatenate([a, wa])
        extent = np.concatenate([extent, np.full(len(wt), 10.0)])
        energy = np.concatenate(
            [energy, FIBRE_ENERGY[wa] * np.exp(0.6 * rng.standard_normal(len(wt)))]
        )
        obj = np.concatenate([obj, np.full(len(wt), -1, np.int32)])
        n = len(t)
        extent = extent * rng.uniform(0.8, 1.2, n)
        cable = fc.cable_chainage(s_meas)
        keep = (cable >= 0.0) & (cable <= fc.cable_length_m)
        if faults.cut_device == fc.id:
            keep &= ~((t >= faults.cut_t) & (cable > faults.cut_cable_m))
        idx = np.flatnonzero(keep)
        t, cable, a, extent, energy, obj = (
            t[idx], cable[idx], a[idx], extent[idx], energy[idx], obj[idx],
        )  # fmt: skip
        fcls = _draw(rng, FIBRE_CONFUSION, a)
        right = fcls == FIBRE_RIGHT[a]
        conf = np.where(right, rng.uniform(0.55, 0.95, len(t)), rng.uniform(0.2, 0.6, len(t)))
        conf = np.where(a >= A_WIND, rng.uniform(0.1, 0.5, len(t)), conf)
        names = np.array(FIBRE_CLASSES)[fcls]
        labels = None
        if cfg.label_events:
            wl = np.where(a == A_RAIN, "rain", "wind")
            lab = np.array(_labels(truth, obj, len(t), ""), dtype=object)
            labels = list(np.where(obj < 0, wl, lab))
        suffix = _label_suffix(labels, len(t))
        js = [
            f'{{"t":{ti:.3f},"chainage_m":{ci:.1f},"extent_m":{ei:.1f},"class":"{ki}",'
            f'"confidence":{qi:.2f},"energy":{gi:.3f}{li}}}'
            for ti, ci, ei, ki, qi, gi, li in zip(
                t.tolist(), cable.tolist(), extent.tolist(), names.tolist(), conf.tolist(),
                energy.tolist(), suffix, strict=True,
            )
        ]  # fmt: skip
        key = np.floor((t - truth.start_t) / cfg.fibre_batch_s).astype(np.int64)
        out.append(DeviceStream(fc.id, "fibre", t, key, js))
    return out


def _weather(
    rng: np.random.Generator, cfg: ScenarioConfig, lo: float, hi: float, start_t: float
) -> tuple[F64, F64, npt.NDArray[np.intp]]:
    """Wind and rain events on border chainage ``[lo, hi]``: ``(t, chain, activity)``."""
    km = max(0.0, hi - lo) / 1000.0
    dur = cfg.duration_s
    w, rain = cfg.weather.wind, cfg.weather.rain
    ts: list[F64] = []
    cs: list[F64] = []
    acts: list[npt.NDArray[np.intp]] = []
    if km <= 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, np.intp)
    # gusts
    n_g = rng.poisson(4.0 * w * km * dur / 3600.0)
    g_len = rng.uniform(300.0, 3000.0, n_g)
    g_c0 = rng.uniform(lo, hi, n_g) - 0.5 * g_len
    g_t0 = rng.uniform(0.0, dur, n_g)
    g_dur = rng.uniform(3.0, 20.0, n_g)
    n_e = rng.poisson(3.0 * w * (g_len / 1000.0) * g_dur)
    gi = np.repeat(np.arange(n_g), n_e)
    ts.append(g_t0[gi] + rng.random(len(gi)) * g_dur[gi])
    cs.append(g_c0[gi] + rng.random(len(gi)) * g_len[gi])
    acts.append(np.full(len(gi), A_WIND, np.intp))
    # steady wind and rain
    for rate, a in ((0.02 * w, A_WIND), (0.05 * rain, A_RAIN)):
        n = rng.poisson(rate * km * dur)
        ts.append(rng.uniform(0.0, dur, n))
        cs.append(rng.uniform(lo, hi, n))
        acts.append(np.full(n, a, np.intp))
    t = np.concatenate(ts)
    c = np.concatenate(cs)
    keep = (c >= lo) & (c < hi) & (t < dur)
    return start_t + t[keep], c[keep], np.concatenate(acts)[keep]


# -- thermal -----------------------------------------------------------------------------------


def _spells(obj: npt.NDArray[np.int32], k: I64, gap: int) -> I64:
    """Spell number of each (obj, k) row (rows sorted by obj then k): new after a gap."""
    if len(obj) == 0:
        return np.zeros(0, np.int64)
    new = np.concatenate([[True], (obj[1:] != obj[:-1]) | (k[1:] - k[:-1] > gap)])
    return np.cumsum(new) - 1


def thermal_streams(
    site: Site, cfg: ScenarioConfig, truth: Truth, rng: np.random.Generator, faults: Faults
) -> list[DeviceStream]:
    """Detections of every thermal camera (truth objects plus clutter)."""
    out: list[DeviceStream] = []
    cls_o = truth.cls[truth.obj].astype(np.intp)
    t_all = truth.t
    for ci, cam in enumerate(site.thermal):
        cx, cy = (float(v) for v in site.thermal_xy[ci])
        gamma = float(site.proj.true_north_grid_az(cx, cy))
        big_r = cam.range_m
        phase = float(rng.uniform(0.0, 1.0))
        t_off = faults.offline_t if faults.offline_device == cam.id else math.inf
        dx = truth.x - cx
        dy = truth.y - cy
        near = np.flatnonzero((np.abs(dx) < big_r) & (np.abs(dy) < big_r))
        r = np.hypot(dx[near], dy[near])
        c = cls_o[near]
        pd = THERMAL_PD0[c] * (1.0 - (r / big_r) ** 2)
        ok = (r < big_r) & (rng.random(len(near)) < pd) & (t_all[near] + phase < t_off)
        ok &= truth.role[truth.obj[near]] != R_MSV  # the cameras' own masts are not targets
        hit = near[ok]
        r = r[ok]
        c = c[ok]
        n = len(hit)
        x = truth.x[hit] + truth.vx[hit] * phase
        y = truth.y[hit] + truth.vy[hit] * phase
        r = np.hypot(x - cx, y - cy)
        brg = np.degrees(np.arctan2(x - cx, y - cy) - gamma) + rng.normal(0.0, 0.5, n)
        slant = np.sqrt(r * r + cam.height_m**2) * (1.0 + 0.25 * rng.standard_normal(n))
        has_obj = rng.random(len(truth.ids)) < 0.85
        has_r = has_obj[truth.obj[hit]] & (rng.random(n) < 0.95)
        kcls = _draw(rng, TARGET_CONFUSION, c)
        kcls = np.where(rng.random(n) < 0.5 * (r / big_r) ** 2, 4, kcls)
        right = kcls == c
        spell = _spells(truth.obj[hit], truth.k[hit], 3)
        oid = [f"{cam.id}-{s + 1}" for s in spell.tolist()]
        labels = _labels(truth, truth.obj[hit], n, "") if cfg.label_events else None
        k = truth.k[hit]
        # clutter objects
        n_cl = rng.poisson(cfg.camera_clutter_per_hour * cfg.duration_s / 3600.0)
        life = rng.integers(1, 9, n_cl)
        k0 = rng.integers(0, truth.n_steps, n_cl)
        ci_rep = np.repeat(np.arange(n_cl), life)
        kc = k0[ci_rep] + (np.arange(len(ci_rep)) - np.repeat(np.cumsum(life) - life, life))
        keep_c = (kc < truth.n_steps) & (truth.start_t + kc * SIM_DT + phase < t_off)
        ci_rep, kc = ci_rep[keep_c], kc[keep_c]
        m = len(kc)
        cb = rng.uniform(0.0, 360.0, n_cl)[ci_rep] + rng.normal(0.0, 0.5, m)
        cr = rng.uniform(50.0, big_r, n_cl)[ci_rep] * (1.0 + 0.1 * rng.standard_normal(m))
        c_has_r = (rng.random(n_cl) < 0.8)[ci_rep]
        ccls = _draw(rng, TARGET_CONFUSION, np.full(m, 4, np.intp))
        coid = [f"{cam.id}-c{j + 1}" for j in ci_rep.tolist()]
        # together
        k = np.concatenate([k, kc.astype(np.int64)])
        brg = np.concatenate([brg, cb])
        rng_m = np.concatenate([slant, cr])
        has = np.concatenate([has_r, c_has_r])
        kc_all = np.concatenate([kcls, ccls])
        conf = np.concatenate(
            [np.where(right, rng.uniform(0.6, 0.95, n), rng.uniform(0.3, 0.6, n)),
             rng.uniform(0.1, 0.5, m)]
        )  # fmt: skip
        oid += coid
        if labels is not None:
            labels += ["clutter"] * m
        t = np.asarray(truth.start_t + k * SIM_DT + phase, np.float64)
        brg = np.asarray(np.round(np.mod(brg, 360.0), 2), np.float64)
        brg[brg >= 360.0] -= 360.0
        rng_m = np.maximum(rng_m, 1.0)
        names = np.array(TARGET_CLASSES)[kc_all].tolist()
        suffix = _label_suffix(labels, len(t))
        js = [
            (
                f'{{"t":{ti:.3f},"bearing_deg":{bi:.2f},"bearing_sigma_deg":0.5,'
                + (f'"range_m":{ri:.1f},"range_sigma_m":{0.25 * ri:.1f},' if hi else "")
                + f'"class":"{ki}","confidence":{qi:.2f},"object_id":"{oi}"{li}}}'
            )
            for ti, bi, ri, hi, ki, qi, oi, li in zip(
                t.tolist(), brg.tolist(), rng_m.tolist(), has.tolist(), names, conf.tolist(),
                oid, suffix, strict=True,
            )
        ]  # fmt: skip
        out.append(DeviceStream(cam.id, "thermal", t, k, js))
    return out


# -- MSV ---------------------------------------------------------------------------------------


def msv_pose(site: Site, truth: Truth, msv_id: str) -> tuple[F64, F64, F64]:
    """Platform ``(x, y, grid heading rad)`` at every step (heading: travel, or to the line)."""
    i = truth.msv_obj[msv_id]
    idx = truth.object_samples(i)
    x = np.full(truth.n_steps, np.nan)
    y = np.full(truth.n_steps, np.nan)
    x[truth.k[idx]] = truth.x[idx]
    y[truth.k[idx]] = truth.y[idx]
    vx = np.gradient(x)
    vy = np.gradient(y)
    moving = np.hypot(vx, vy) > 0.5
    bx, by, _, _ = site.border.point_at(truth.chain[idx], 0.0)
    face = np.full(truth.n_steps, np.nan)
    face[truth.k[idx]] = np.arctan2(bx - truth.x[idx], by - truth.y[idx])
    head = np.where(moving, np.arctan2(vx, vy), face)
    # keep the last travel heading while parked after a move
    return x, y, head


def msv_streams(
    site: Site, cfg: ScenarioConfig, truth: Truth, rng: np.random.Generator
) -> list[DeviceStream]:
    """Plots of every MSV radar (moving truth objects plus clutter), one batch per scan."""
    out: list[DeviceStream] = []
    cls_o = truth.cls[truth.obj].astype(np.intp)
    speed = np.hypot(truth.vx, truth.vy)
    for m in site.msv:
        if m.id not in truth.msv_obj:
            continue
        me = truth.msv_obj[m.id]
        px, py, head = msv_pose(site, truth, m.id)
        phase = float(rng.uniform(0.0, 1.0))
        big_r = m.range_m
        ox = px[truth.k]
        oy = py[truth.k]
        dx = truth.x + truth.vx * phase - ox
        dy = truth.y + truth.vy * phase - oy
        near = np.flatnonzero(
            (np.abs(dx) < big_r) & (np.abs(dy) < big_r) & (speed > 0.3) & (truth.obj != me)
        )
        r = np.hypot(dx[near], dy[near])
        c = cls_o[near]
        pd = np.where(c == PERSON, 0.9 * (1 - 0.4 * (r / big_r) ** 2), 0.9)
        ok = (r < big_r) & (rng.random(len(near)) < pd)
        hit, r, c = near[ok], r[ok], c[ok]
        n = len(hit)
        k = truth.k[hit]
        ux, uy = dx[hit] / r, dy[hit] / r
        gam = site.proj.true_north_grid_az(px, py)
        az = np.degrees(np.arctan2(dx[hit], dy[hit]) - gam[k]) + rng.normal(0.0, 1.0, n)
        vr = truth.vx[hit] * ux + truth.vy[hit] * uy + rng.normal(0.0, 0.3, n)
        rm = r + rng.normal(0.0, 15.0, n)
        kcls = _draw(rng, RADAR_CONFUSION, c)
        right = kcls == c
        conf = np.where(right, rng.uniform(0.55, 0.9, n), rng.uniform(0.25, 0.6, n))
        labels = _labels(truth, truth.obj[hit], n, "") if cfg.label_events else None
        # clutter
        n_cl = rng.poisson(cfg.msv_clutter_per_scan * truth.n_steps)
        kc = rng.integers(0, truth.n_steps, n_cl).astype(np.int64)
        rc = big_r * np.sqrt(rng.uniform(0.0025, 1.0, n_cl))
        azc = rng.uniform(0.0, 360.0, n_cl)
        vrc = rng.normal(0.0, 1.0, n_cl)
        cc = _draw(rng, RADAR_CONFUSION, np.full(n_cl, 4, np.intp))
        k = np.concatenate([k, kc])
        az = np.mod(np.concatenate([az, azc]), 360.0)
        az = np.round(az, 2)
        az[az >= 360.0] -= 360.0
        rm = np.maximum(np.concatenate([rm, rc]), 1.0)
        vr = np.concatenate([vr, vrc])
        cls_all = np.concatenate([kcls, cc])
        conf = np.concatenate([conf, rng.uniform(0.1, 0.45, n_cl)])
        if labels is not None:
            labels += ["clutter"] * n_cl
        t = np.asarray(truth.start_t + k * SIM_DT + phase, np.float64)
        names = np.array(TARGET_CLASSES)[cls_all].tolist()
        suffix = _label_suffix(labels, len(t))
        js = [
            f'{{"t":{ti:.3f},"range_m":{ri:.1f},"azimuth_deg":{ai:.2f},"range_sigma_m":15,'
            f'"azimuth_sigma_deg":1.0,"radial_velocity_mps":{vi:.2f},"class":"{ki}",'
            f'"confidence":{qi:.2f}{li}}}'
            for ti, ri, ai, vi, ki, qi, li in zip(
                t.tolist(), rm.tolist(), az.tolist(), vr.tolist(), names, conf.tolist(), suffix,
                strict=True,
            )
        ]  # fmt: skip
        # platform pose per scan
        keys = np.unique(k)
        lon, lat = site.proj.to_lonlat(px[keys], py[keys])
        hdg = np.mod(np.degrees(head[keys] - gam[keys]), 360.0)
        hdg = np.round(hdg, 1)
        hdg[hdg >= 360.0] = 0.0
        plat = {
            kk: f'{{"lat":{la:.7f},"lon":{lo:.7f},"heading_deg":{hh:.1f}}}'
            for kk, la, lo, hh in zip(
                keys.tolist(), lat.tolist(), lon.tolist(), hdg.tolist(), strict=True
            )
        }
        out.append(DeviceStream(m.id, "msv", t, k, js, plat))
    return out


# -- coverage ----------------------------------------------------------------------------------


def coverage(site: Site, truth: Truth, faults: Faults) -> npt.NDArray[np.bool_]:
    """Per sample: inside some sensor's coverage (for scoring).

    Within 20 m of a working stretch of cable, inside a working camera's range, or inside
    an MSV's radar range and moving (> 0.3 m/s).
    """
    cov = np.zeros(len(truth.k), bool)
    t = truth.t
    for fc in site.fibre:
        ins = (truth.chain >= fc.from_m) & (truth.chain < fc.to_m)
        ins &= np.abs(truth.dist - fc.offset_m) < 20.0
        if faults.cut_device == fc.id:
            dark = (t >= faults.cut_t) & (fc.cable_chainage(truth.chain) > faults.cut_cable_m)
            ins &= ~dark
        cov |= ins
    for ci, cam in enumerate(site.thermal):
        cx, cy = site.thermal_xy[ci]
        ins = np.hypot(truth.x - cx, truth.y - cy) < cam.range_m
        if faults.offline_device == cam.id:
            ins &= t < faults.offline_t
        cov |= ins
    speed = np.hypot(truth.vx, truth.vy)
    for m in site.msv:
        if m.id not in truth.msv_obj:
            continue
        px, py, _ = msv_pose(site, truth, m.id)
        cov |= (np.hypot(truth.x - px[truth.k], truth.y - py[truth.k]) < m.range_m) & (speed > 0.3)
    cov &= truth.role[truth.obj] != R_MSV
    return cov
