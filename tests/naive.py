"""Slow, obvious twins of the fusion kernels (numpy + loops), for kernel-vs-twin tests."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import numpy.typing as npt

F8 = npt.NDArray[np.float64]
FIBRE, THERMAL, MSV, POINT = 0, 1, 2, 3


def predict(x: F8, P: F8, dt: float, q: float) -> tuple[F8, F8]:
    """CV prediction with the textbook F and continuous white-noise-acceleration Q."""
    F = np.eye(4)
    F[0, 2] = F[1, 3] = dt
    a = abs(dt)
    q1 = np.array([[a**3 / 3, a**2 / 2], [a**2 / 2, a]]) * q
    Q = np.zeros((4, 4))
    Q[np.ix_([0, 2], [0, 2])] = q1
    Q[np.ix_([1, 3], [1, 3])] = q1
    # x: explicit rows, so a NaN component only poisons what depends on it
    xo = np.array([x[0] + dt * x[2], x[1] + dt * x[3], x[2], x[3]])
    return xo, F @ P @ F.T + Q


def fibre_frame(tx: float, ty: float, extent: float) -> tuple[F8, F8, float, float] | None:
    """``(t, n, sa, b)``: unit tangent and normal, along sigma, band half-width 1.5 extent."""
    nrm = math.hypot(tx, ty)
    if not (0.5 < nrm < 2.0):
        return None
    t = np.array([tx, ty]) / nrm
    n = np.array([-t[1], t[0]])
    ext = extent if math.isfinite(extent) and extent > 0 else 10.0
    return t, n, max(5.0, ext / 2), 1.5 * ext


def fibre_init_R(tx: float, ty: float, extent: float, across: float) -> F8 | None:
    """Initial position covariance of a fibre track: ``sa^2 t t^T + (across^2 + b^2) n n^T``."""
    f = fibre_frame(tx, ty, extent)
    if f is None:
        return None
    t, n, sa, b = f
    return sa**2 * np.outer(t, t) + (across**2 + b**2) * np.outer(n, n)


def model(row: Any, xp: F8, across: float = 10.0, s_vr: float = 0.5) -> tuple[F8, F8, F8] | None:
    """``(nu, H, R)`` for one measurement row at predicted state ``xp``; None if unusable."""
    kind = int(row["kind"])

    def point(R: F8) -> tuple[F8, F8, F8] | None:
        nu = np.array([row["x"] - xp[0], row["y"] - xp[1]])
        H = np.zeros((2, 4))
        H[0, 0] = H[1, 1] = 1.0
        ok = np.all(np.isfinite(nu)) and R[0, 0] > 0 and R[1, 1] > 0 and np.linalg.det(R) > 0
        return (nu, H, R) if ok else None

    Rc = np.array([[row["cxx"], row["cxy"]], [row["cxy"], row["cyy"]]], dtype=np.float64)
    if kind == FIBRE:
        f = fibre_frame(float(row["tx"]), float(row["ty"]), float(row["extent"]))
        if f is None:
            return point(Rc)
        t, n, sa, b = f
        d = np.array([row["x"] - xp[0], row["y"] - xp[1]])
        if not np.all(np.isfinite(d)):
            return None
        c = float(n @ d)
        nu = np.array([float(t @ d), math.copysign(max(abs(c) - b, 0.0), c)])
        H = np.zeros((2, 4))
        H[0, :2] = t
        H[1, :2] = n
        return nu, H, np.diag([sa**2, across**2])
    if kind in (THERMAL, MSV):
        dx, dy = xp[0] - row["ox"], xp[1] - row["oy"]
        rho = math.hypot(dx, dy)
        if not (rho >= 1.0) or not math.isfinite(row["az"]):
            return point(Rc)
        nus: list[float] = []
        Hs: list[list[float]] = []
        rs: list[float] = []
        if math.isfinite(row["r"]) and row["sr"] > 0:
            nus.append(row["r"] - rho)
            Hs.append([dx / rho, dy / rho, 0, 0])
            rs.append(row["sr"] ** 2)
        if not row["saz"] > 0:
            return None
        d = row["az"] - math.atan2(dx, dy)
        nus.append(math.atan2(math.sin(d), math.cos(d)))
        Hs.append([dy / rho**2, -dx / rho**2, 0, 0])
        rs.append(row["saz"] ** 2)
        if kind == MSV and math.isfinite(row["vr"]):
            vp = (dx * xp[2] + dy * xp[3]) / rho
            nus.append(row["vr"] - vp)
            Hs.append(
                [
                    (xp[2] - vp * dx / rho) / rho,
                    (xp[3] - vp * dy / rho) / rho,
                    dx / rho,
                    dy / rho,
                ]
            )
            rs.append(s_vr**2)
        return np.array(nus), np.array(Hs, dtype=np.float64), np.diag(rs)
    return point(Rc)


def mahalanobis(P: F8, nu: F8, H: F8, R: F8) -> tuple[float, float]:
    """``(d2, log|S|)`` with ``S = H P H^T + R`` by explicit inverse."""
    S = H @ P @ H.T + R
    if np.any(np.linalg.eigvalsh(S) <= 0):
        return math.inf, math.inf
    return float(nu @ np.linalg.inv(S) @ nu), float(np.log(np.linalg.det(S)))


def update(row: Any, xp: F8, Pp: F8) -> tuple[F8, F8, float]:
    """EKF update in the plain (non-Joseph) form; unchanged with d2 = inf when unusable."""
    m = model(row, xp)
    if m is None:
        return xp, Pp, math.inf
    nu, H, R = m
    S = H @ Pp @ H.T + R
    if np.any(np.linalg.eigvalsh(S) <= 0):
        return xp, Pp, math.inf
    Si = np.linalg.inv(S)
    K = Pp @ H.T @ Si
    return xp + K @ nu, (np.eye(4) - K @ H) @ Pp, float(nu @ Si @ nu)


def gate(xp: F8, Pp: F8, meas: Any, gate: float) -> list[tuple[int, int, float]]:
    """Exhaustive gating: every (track, measurement) pair with d2 < gate."""
    out = []
    for i in range(len(xp)):
        for j in range(len(meas)):
            m = model(meas[j], xp[i])
            if m is None:
                continue
            d2, _ = mahalanobis(Pp[i], *m)
            if d2 < gate:
                out.append((i, j, d2))
    return out


def best_assignment(pairs: list[tuple[int, int, float]]) -> float:
    """Minimum total cost over one-to-one matchings using only negative-cost pairs
    (enumerates all subsets of tracks' choices; tiny inputs only)."""
    by_t: dict[int, list[tuple[int, float]]] = {}
    for a, b, c in pairs:
        if c < 0:
            by_t.setdefault(a, []).append((b, c))
    tracks = sorted(by_t)
    best = 0.0
    options = [[(-1, 0.0), *by_t[a]] for a in tracks]
    for choice in itertools.product(*options):
        used = [b for b, _ in choice if b >= 0]
        if len(used) == len(set(used)):
            best = min(best, sum(c for _, c in choice))
    return best


def class_update(p: F8, C: F8, cls: int, conf: float, prior: F8, eps: float) -> F8:
    """Bayes rule with the soft likelihood ``(1 - w) + w C[k, c] / max C[:, c]``."""
    if not (conf > 0) or not 0 <= cls < len(p):
        return p.copy()
    w = min(conf, 1.0)
    col = C[:, cls]
    if col.max() <= 0:
        return p.copy()
    post = ((1 - eps) * p + eps * prior) * ((1 - w) + w * col / col.max())
    out: F8 = post / post.sum()
    return out


def class_llr(p: F8, C: F8, cls: int, conf: float, prior: F8) -> float:
    """``log(p . L / prior . L)`` with ``L = (1 - w) + w C[:, c] / max C[:, c]``; 0 without
    class evidence (``conf`` not > 0, ``cls`` out of range or unknown = 5)."""
    if not (conf > 0) or not 0 <= cls < len(p) or cls == 5:
        return 0.0
    w = min(conf, 1.0)
    col = C[:, cls]
    if col.max() <= 0:
        return 0.0
    L = (1 - w) + w * col / col.max()
    num, den = float(p @ L), float(prior @ L)
    if not (num > 0 and den > 0):
        return 0.0
    return math.log(num / den)


def gospa(truth: F8, est: F8, c: float = 100.0, p: float = 1.0) -> float:
    """GOSPA (alpha = 2) by enumerating every partial assignment (tiny inputs only)."""
    n, m = len(truth), len(est)
    best = math.inf
    for k in range(min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                loc = sum(
                    min(float(np.hypot(*(truth[i] - est[j]))), c) ** p
                    for i, j in zip(rows, cols, strict=True)
                )
                best = min(best, loc + c**p / 2 * (n + m - 2 * k))
    return float(best ** (1 / p))


def confirmable(P: F8, kinds: int, sens: Any, conf_sigma: float, cam_min: int) -> bool:
    """Observability for confirmation: ``lambda_max(P_pos) <= conf_sigma^2`` and, for a
    thermal-only track (``kinds == 1 << THERMAL``), at least ``cam_min`` sensor bits set."""
    if not np.all(np.isfinite(P[:2, :2])):
        return False
    if not np.linalg.eigvalsh(P[:2, :2]).max() <= conf_sigma**2:
        return False
    if kinds == 1 << THERMAL:
        return sum(bin(int(w)).count("1") for w in sens) >= cam_min
    return True


def scan_rows(meas: Any) -> tuple[int, float, float]:
    """``(max kind, min t (NaN if any t is NaN), max t over the non-NaN t)`` with numpy."""
    t = meas["t"].astype(np.float64)
    fin = t[~np.isnan(t)]
    tmax = float(fin.max()) if len(fin) else -math.inf
    return int(meas["kind"].max()), float(t.min()), tmax


def records(meas: Any, tid: Any, act: Any, d2: Any, dtype: Any) -> tuple[Any, int]:
    """Association records by field assignment, and the count of action 3 (INVALID)."""
    rec = np.empty(len(meas), dtype=dtype)
    rec["mid"] = meas["mid"]
    rec["track_id"] = tid
    rec["action"] = act
    rec["d2"] = d2
    return rec, int(np.count_nonzero(rec["action"] == 3))


def compact_copy(cols: dict[str, Any], hw: int) -> dict[str, Any]:
    """A track table's checkpoint by numpy slices: rows ``< hw`` of each per-slot column, the
    whole free stack and the counters (``free``, ``ctr``) (twin of pack + unpacked)."""
    return {n: a.copy() if n in ("free", "ctr") else a[:hw].copy() for n, a in cols.items()}


def snapshot_rows(
    cols: dict[str, Any], hw: int, now: float, cq: F8, w: F8, XP: F8, PP: F8, pv: Any
) -> list[dict[str, Any]]:
    """One dict per non-free slot below ``hw``, in slot order: state and covariance
    predicted to ``now`` (``q = sum_k p_k cq_k``; taken from ``XP``/``PP`` where ``pv``),
    position sigma (sqrt of the largest eigenvalue of the position block), class posterior,
    confidence ``1 - prod (1 - w_k)`` over the kinds bits, and the copied columns."""
    out = []
    for i in range(hw):
        if cols["status"][i] == 0:  # FREE
            continue
        if pv[i]:
            xo, Po = XP[i].copy(), PP[i].copy()
        else:
            q = float(np.dot(cols["class_p"][i], cq))
            xo, Po = predict(cols["x"][i], cols["P"][i], now - cols["t"][i], q)
        ok = bool(np.all(np.isfinite(Po[:2, :2])))
        sig = math.sqrt(max(float(np.max(np.linalg.eigvalsh(Po[:2, :2]))), 0.0)) if ok else np.nan
        pm = 1.0
        for k in range(len(w)):
            if (int(cols["kinds"][i]) >> k) & 1:
                pm *= 1.0 - w[k]
        out.append(
            {
                "x": xo,
                "P": Po,
                "sig": sig,
                "class_p": cols["class_p"][i].copy(),
                "conf": 1.0 - pm,
                "t_upd": cols["t_upd"][i],
                "t_birth": cols["t_birth"][i],
                "ids": (cols["tid"][i], cols["merged_into"][i]),
                "flags": (cols["status"][i], cols["was_conf"][i], cols["kinds"][i]),
                "hits": cols["hits"][i],
                "sensors": cols["sensors"][i].copy(),
            }
        )
    return out


def merge(
    c: dict[str, Any],
    hw: int,
    now: float,
    prm: dict[str, float],
    cq: F8,
    prior: F8,
    C_fibre: F8,
) -> int:
    """Track-track merging, in place on the columns ``c`` (fusion.merger's rules, all pairs
    by brute force): live slots in slot order, each against every other live slot within
    ``R = max(merge_max, group_r)`` in x and in y at the predicted positions before any merge,
    in slot order; duplicate (both Mahalanobis tests, unless the same sensor at the same
    instant) or group (both people, close and co-moving). Returns merges done."""
    st = c["status"]
    live = [i for i in range(hw) if st[i] in (1, 2)]
    if len(live) < 2:
        return 0
    XP: dict[int, F8] = {}
    PP: dict[int, F8] = {}
    for i in live:
        XP[i], PP[i] = predict(c["x"][i], c["P"][i], now - c["t"][i], float(c["class_p"][i] @ cq))
    pos0 = {i: (XP[i][0], XP[i][1]) for i in live}
    R = max(prm["merge_max"], prm["group_r"])

    def d2(a: F8, S: F8) -> float:
        det = S[0, 0] * S[1, 1] - S[0, 1] ** 2
        return math.inf if not det > 0 else float(a @ np.linalg.inv(S) @ a)

    def kind(i: int, j: int) -> int:
        dp = XP[i][:2] - XP[j][:2]
        dv = XP[i][2:] - XP[j][2:]
        dist = math.hypot(*dp)
        if not (dist < prm["merge_max"] or dist < prm["group_r"]):
            return 0
        same = c["last_sensor"][i] == c["last_sensor"][j] and c["t_upd"][i] == c["t_upd"][j]
        S = PP[i] + PP[j]
        dup = d2(dp, S[:2, :2]) < prm["gate"] and d2(dv, S[2:, 2:]) < prm["gate"]
        if not same and dist < prm["merge_max"] and dup:
            return 1
        people = [c["class_p"][k][0] + c["class_p"][k][1] >= 0.5 for k in (i, j)]
        if all(people) and dist < prm["group_r"]:
            sv = math.sqrt(max(0.0, 0.5 * (S[2, 2] + S[3, 3])))
            if math.hypot(*dv) < prm["vtol"] + 2.0 * sv:
                return 2
        return 0

    n = 0
    for i in live:
        if st[i] == 3:
            continue
        near = [
            j for j in live
            if j != i and abs(pos0[j][0] - pos0[i][0]) < R and abs(pos0[j][1] - pos0[i][1]) < R
        ]  # fmt: skip
        for j in near:
            if st[j] == 3 or st[i] == 3:
                continue
            k = kind(i, j)
            if k == 0:
                continue
            s, d = i, j
            if st[j] > st[i] or (st[j] == st[i] and c["tid"][j] < c["tid"][i]):
                s, d = j, i
            if k == 1:
                if np.trace(PP[d][:2, :2]) < np.trace(PP[s][:2, :2]):
                    c["x"][s] = XP[s] = XP[d].copy()
                    c["P"][s] = PP[s] = PP[d].copy()
                    c["t"][s] = now
                p = c["class_p"][s] * c["class_p"][d] / np.maximum(prior, 1e-9)
                c["class_p"][s] = p / p.sum() if p.sum() > 0 else prior
            else:
                c["class_p"][s] = class_update(
                    c["class_p"][s], C_fibre, 1, prm["group_conf"], prior, prm["eps"]
                )
            if c["t_upd"][d] > c["t_upd"][s]:
                c["t_upd"][s] = c["t_upd"][d]
                c["last_sensor"][s] = c["last_sensor"][d]
            c["kinds"][s] |= c["kinds"][d]
            c["sensors"][s] |= c["sensors"][d]
            c["hist"][s] |= c["hist"][d]
            c["hits"][s] = max(c["hits"][s], c["hits"][d])
            c["miss"][s] = min(c["miss"][s], c["miss"][d])
            c["was_conf"][s] = max(c["was_conf"][s], c["was_conf"][d])
            st[d] = 3
            c["merged_into"][d] = c["tid"][s]
            n += 1
    return n
