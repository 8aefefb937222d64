"""Measurement models and the (extended) Kalman update.

One kernel, :func:`_model`, turns a measurement row and a predicted state ``xp`` into an
innovation ``nu`` (k,), Jacobian ``H`` (k, 4) and noise ``R`` (k, k), ``k <= 3``:

* ``POINT``: ``z = (x, y)``, ``H = [I2 0]``, ``R = [[cxx, cxy], [cxy, cyy]]``.
* ``FIBRE``: a *band* model in the cable frame (``t = (tx, ty)`` the border tangent,
  ``n = (-ty, tx)``): along the cable ``z_a = t . (z - x)`` with ``sa = max(5, extent / 2)``;
  across it the event says only "the source is within ``b = 1.5 extent`` of the cable" (a
  walker, extent ~10 m, is felt up to ~12 m away, a vehicle, extent ~25 m, up to ~45 m;
  the side is unknown). The across innovation is the part of the offset outside that band,
  ``nu_c = sign(c) max(|c| - b, 0)`` with ``c = n . (z - x)``, with noise ``across`` (10 m):
  a track inside the band gets no across pull (a road vehicle 38 m from the cable is not
  dragged onto the line: it was, by 25 m on average, when every event was a point on the
  cable with 10 m across), a track outside it is pulled back to the band's edge, and a
  fibre-only track stays within ~``across`` of the cable. Falls back to the row's ``cxx, cxy,
  cyy`` as a point when the tangent is missing. :func:`_fibre_cov` is the covariance that
  bounds this gate for the gater's search box.
* ``THERMAL`` / ``MSV``: polar EKF about the sensor origin ``(ox, oy)``. With
  ``dx = x - ox, dy = y - oy, rho = |(dx, dy)|``: range ``h_r = rho``
  (``H = [dx, dy, 0, 0] / rho``), grid azimuth ``h_az = atan2(dx, dy)``
  (``H = [dy, -dx, 0, 0] / rho^2``, innovation wrapped to (-pi, pi]) and, when present, Doppler
  ``h_vr = (dx vx + dy vy) / rho`` (platform assumed still during the scan). Missing range
  (bearing-only) just drops the row: the update is 1-D along the bearing, never a circle.
  Within 1 m of the origin the linearisation is meaningless and the converted point is used.

:func:`_innov_cov` forms ``S = H P H^T + R`` and its Cholesky factor, giving the squared
Mahalanobis distance ``d2 = nu^T S^-1 nu`` and ``log|S|``; :func:`_kf_update` applies
``K = P H^T S^-1``, ``x += K nu`` and the Joseph form ``P = (I - K H) P (I - K H)^T + K R K^T``.
"""

from __future__ import annotations

import math

import numpy as np

from fusion._jit import F8, borrow, inline_kernel, kernel
from fusion.measurements import Kind

POINT = int(Kind.POINT)
FIBRE = int(Kind.FIBRE)
THERMAL = int(Kind.THERMAL)
MSV = int(Kind.MSV)


@inline_kernel
def _wrap_pi(a: float) -> float:
    """Angle wrapped into (-pi, pi]."""
    return a - 2.0 * math.pi * math.floor((a + math.pi) / (2.0 * math.pi))


@inline_kernel
def _point_model(
    mx: float, my: float, rxx: float, rxy: float, ryy: float, xp: F8, nu: F8, H: F8, R: F8
) -> int:
    nu[0] = mx - xp[0]
    nu[1] = my - xp[1]
    for i in range(2):
        for j in range(4):
            H[i, j] = 0.0
    H[0, 0] = 1.0
    H[1, 1] = 1.0
    R[0, 0] = rxx
    R[0, 1] = rxy
    R[1, 0] = rxy
    R[1, 1] = ryy
    ok = (
        math.isfinite(nu[0])
        and math.isfinite(nu[1])
        and rxx > 0.0
        and ryy > 0.0
        and rxx * ryy - rxy * rxy > 0.0
    )
    return 2 if ok else 0


#: a fibre source is within ``FIBRE_REACH * extent`` of the cable (band half-width ``b``)
FIBRE_REACH = 1.5


@inline_kernel
def _fibre_frame(tx: float, ty: float, extent: float) -> tuple[bool, float, float, float, float]:
    """``(ok, ux, uy, sa, b)``: unit tangent, along-cable sigma ``max(5, extent / 2)`` and band
    half-width ``b = FIBRE_REACH * extent``; ``ok`` is False when the tangent is unusable."""
    nrm = math.hypot(tx, ty)
    if not (nrm > 0.5 and nrm < 2.0):  # also False for NaN
        return False, math.nan, math.nan, math.nan, math.nan
    ext = extent if math.isfinite(extent) and extent > 0.0 else 10.0
    return True, tx / nrm, ty / nrm, max(5.0, 0.5 * ext), FIBRE_REACH * ext


@inline_kernel
def _fibre_cov(
    tx: float, ty: float, extent: float, across: float
) -> tuple[bool, float, float, float]:
    """Covariance ``(ok, rxx, rxy, ryy)`` bounding a fibre event's gate (the gater's search
    box): ``sa^2 t t^T + (across^2 + 4 b^2) n n^T``. It covers the band model's gate
    ``|nu_c| < b + sqrt(G (P_nn + across^2))`` while ``sqrt(P_nn + across^2) <= 7 b``."""
    ok, ux, uy, sa, b = _fibre_frame(tx, ty, extent)
    if not ok:
        return False, math.nan, math.nan, math.nan
    sa2 = sa * sa
    sc2 = across * across + 4.0 * b * b
    # t t^T sa^2 + n n^T sc^2 with n = (-uy, ux)
    return True, sa2 * ux * ux + sc2 * uy * uy, (sa2 - sc2) * ux * uy, sa2 * uy * uy + sc2 * ux * ux


@inline_kernel
def _band_model(
    dx: float, dy: float, ux: float, uy: float, sa: float, b: float, across: float,
    nu: F8, H: F8, R: F8,
) -> int:  # fmt: skip
    """The fibre band model (module docstring) for offset ``(dx, dy) = z - x``."""
    if not (math.isfinite(dx) and math.isfinite(dy) and across > 0.0):
        return 0
    nc = -uy * dx + ux * dy  # across the cable
    for j in range(4):
        H[0, j] = 0.0
        H[1, j] = 0.0
    nu[0] = ux * dx + uy * dy  # along the cable
    H[0, 0] = ux
    H[0, 1] = uy
    R[0, 0] = sa * sa
    nu[1] = math.copysign(max(abs(nc) - b, 0.0), nc)  # only what lies outside the band
    H[1, 0] = -uy
    H[1, 1] = ux
    R[1, 1] = across * across
    return 2


@inline_kernel
def _model(
    kind: int,
    mx: float,
    my: float,
    cxx: float,
    cxy: float,
    cyy: float,
    ox: float,
    oy: float,
    r: float,
    az: float,
    sr: float,
    saz: float,
    vr: float,
    tx: float,
    ty: float,
    extent: float,
    xp: F8,
    across: float,
    s_vr: float,
    nu: F8,
    H: F8,
    R: F8,
) -> int:
    """Fill ``nu``, ``H``, ``R`` (leading k rows) for one measurement; return k (0: unusable)."""
    for i in range(3):
        for j in range(3):
            R[i, j] = 0.0
    if kind == FIBRE:
        ok, ux, uy, sa, b = _fibre_frame(tx, ty, extent)
        if not ok:
            return _point_model(mx, my, cxx, cxy, cyy, xp, nu, H, R)
        return _band_model(mx - xp[0], my - xp[1], ux, uy, sa, b, across, nu, H, R)
    if kind in (THERMAL, MSV):
        dx = xp[0] - ox
        dy = xp[1] - oy
        rho2 = dx * dx + dy * dy
        if not (rho2 >= 1.0) or not math.isfinite(az):
            return _point_model(mx, my, cxx, cxy, cyy, xp, nu, H, R)
        rho = math.sqrt(rho2)
        k = 0
        if math.isfinite(r) and sr > 0.0:
            nu[k] = r - rho
            H[k, 0] = dx / rho
            H[k, 1] = dy / rho
            H[k, 2] = 0.0
            H[k, 3] = 0.0
            R[k, k] = sr * sr
            k += 1
        if not (saz > 0.0):
            return 0
        nu[k] = _wrap_pi(az - math.atan2(dx, dy))
        H[k, 0] = dy / rho2
        H[k, 1] = -dx / rho2
        H[k, 2] = 0.0
        H[k, 3] = 0.0
        R[k, k] = saz * saz
        k += 1
        if kind == MSV and math.isfinite(vr) and s_vr > 0.0:
            vp = (dx * xp[2] + dy * xp[3]) / rho
            nu[k] = vr - vp
            H[k, 0] = (xp[2] - vp * dx / rho) / rho
            H[k, 1] = (xp[3] - vp * dy / rho) / rho
            H[k, 2] = dx / rho
            H[k, 3] = dy / rho
            R[k, k] = s_vr * s_vr
            k += 1
        return k
    return _point_model(mx, my, cxx, cxy, cyy, xp, nu, H, R)


@inline_kernel
def _pos_var_max(P: F8) -> float:
    """Largest eigenvalue of the position block ``P[:2, :2]`` (m^2; NaN if P is NaN)."""
    a = float(P[0, 0])
    b = float(P[0, 1])
    d = float(P[1, 1])
    return 0.5 * (a + d) + math.sqrt(0.25 * (a - d) * (a - d) + b * b)


@inline_kernel
def _innov_cov(P: F8, nu: F8, H: F8, R: F8, k: int, S: F8, L: F8, w: F8) -> tuple[float, float]:
    """``S = H P H^T + R``, its Cholesky ``L``; return ``(d2, log|S|)``, ``d2 = inf`` if not PD."""
    for a in range(k):
        for b in range(k):
            s = R[a, b]
            for i in range(4):
                hi = H[a, i]
                if hi != 0.0:
                    acc = 0.0
                    for j in range(4):
                        acc += P[i, j] * H[b, j]
                    s += hi * acc
            S[a, b] = s
    for a in range(k):  # symmetrise
        for b in range(a):
            m = 0.5 * (S[a, b] + S[b, a])
            S[a, b] = m
            S[b, a] = m
    logdet = 0.0
    for a in range(k):
        for b in range(a + 1):
            s = S[a, b]
            for c in range(b):
                s -= L[a, c] * L[b, c]
            if a == b:
                if not (s > 0.0):
                    return math.inf, math.inf
                L[a, a] = math.sqrt(s)
                logdet += 2.0 * math.log(L[a, a])
            else:
                L[a, b] = s / L[b, b]
    # d2 = |L^-1 nu|^2 by forward substitution
    d2 = 0.0
    for a in range(k):
        s = nu[a]
        for c in range(a):
            s -= L[a, c] * w[c]
        w[a] = s / L[a, a]
        d2 += w[a] * w[a]
    if not math.isfinite(d2):
        return math.inf, math.inf
    return d2, logdet


@kernel
def _kf_update(xp: F8, Pp: F8, nu: F8, H: F8, R: F8, k: int, xo: F8, Po: F8, ws: F8) -> float:
    """Kalman update of ``(xp, Pp)`` into ``(xo, Po)``; returns d2 (``inf``: left unchanged).

    ``ws`` is caller-owned scratch of shape (7, 4, 4) (no allocation per update)."""
    xp = borrow(xp)  # arguments: borrowed aliases (no reference counting per view)
    Pp = borrow(Pp)
    nu = borrow(nu)
    H = borrow(H)
    R = borrow(R)
    xo = borrow(xo)
    Po = borrow(Po)
    ws = borrow(ws)
    S = ws[0]
    L = ws[1]
    y = ws[2, 0]
    d2, _ = _innov_cov(Pp, nu, H, R, k, S, L, y)
    if not math.isfinite(d2):
        for i in range(4):
            xo[i] = xp[i]
            for j in range(4):
                Po[i, j] = Pp[i, j]
        return d2
    # PHt (4, k) = P H^T ; K = PHt S^-1 via the Cholesky factor (solve L L^T K^T = PHt^T)
    PHt = ws[3]
    for i in range(4):
        for a in range(k):
            acc = 0.0
            for j in range(4):
                acc += Pp[i, j] * H[a, j]
            PHt[i, a] = acc
    K = ws[4]
    for i in range(4):
        for a in range(k):  # forward
            s = PHt[i, a]
            for c in range(a):
                s -= L[a, c] * y[c]
            y[a] = s / L[a, a]
        for a in range(k - 1, -1, -1):  # backward
            s = y[a]
            for c in range(a + 1, k):
                s -= L[c, a] * K[i, c]
            K[i, a] = s / L[a, a]
    for i in range(4):
        acc = xp[i]
        for a in range(k):
            acc += K[i, a] * nu[a]
        xo[i] = acc
    # Joseph form: A = I - K H ; P = A Pp A^T + K R K^T
    A = ws[5]
    for i in range(4):
        for j in range(4):
            acc = 1.0 if i == j else 0.0
            for a in range(k):
                acc -= K[i, a] * H[a, j]
            A[i, j] = acc
    AP = ws[6]
    for i in range(4):
        for j in range(4):
            acc = 0.0
            for m in range(4):
                acc += A[i, m] * Pp[m, j]
            AP[i, j] = acc
    for i in range(4):
        for j in range(i, 4):
            acc = 0.0
            for m in range(4):
                acc += AP[i, m] * A[j, m]
            for a in range(k):
                ka = K[i, a]
                if ka != 0.0:
                    for b in range(k):
                        acc += ka * R[a, b] * K[j, b]
            Po[i, j] = acc
            Po[j, i] = acc
    return d2


@kernel
def _update_rows(
    kind: F8, z: F8, xp: F8, Pp: F8, across: float, s_vr: float, xo: F8, Po: F8, d2o: F8
) -> None:
    """Batch form for the wrapper: ``z`` (n, 15) holds the model's scalar inputs in order."""
    nu = np.empty(3)
    H = np.zeros((3, 4))
    R = np.zeros((3, 3))
    ws = np.zeros((7, 4, 4))
    for i in range(xp.shape[0]):
        zi = z[i]
        k = _model(
            int(kind[i]),
            zi[0],
            zi[1],
            zi[2],
            zi[3],
            zi[4],
            zi[5],
            zi[6],
            zi[7],
            zi[8],
            zi[9],
            zi[10],
            zi[11],
            zi[12],
            zi[13],
            zi[14],
            xp[i],
            across,
            s_vr,
            nu,
            H,
            R,
        )
        if k == 0:
            d2o[i] = math.inf
            for a in range(4):
                xo[i, a] = xp[i, a]
                for b in range(4):
                    Po[i, a, b] = Pp[i, a, b]
        else:
            d2o[i] = _kf_update(xp[i], Pp[i], nu, H, R, k, xo[i], Po[i], ws)


#: column order of ``z`` for :func:`update`
MODEL_FIELDS: tuple[str, ...] = (
    "x",
    "y",
    "cxx",
    "cxy",
    "cyy",
    "ox",
    "oy",
    "r",
    "az",
    "sr",
    "saz",
    "vr",
    "tx",
    "ty",
    "extent",
)


def update(
    meas: np.ndarray, xp: F8, Pp: F8, *, fibre_across_m: float = 10.0, vr_sigma: float = 0.5
) -> tuple[F8, F8, F8]:
    """Update predicted states ``xp`` (n, 4), ``Pp`` (n, 4, 4) each with measurement row i.

    ``meas`` is a :data:`fusion.measurements.MEAS_DTYPE` array of length n. Returns
    ``(x, P, d2)``; rows whose model is unusable (bad covariance, NaN position) come back
    unchanged with ``d2 = inf``.
    """
    n = len(meas)
    if xp.shape != (n, 4) or Pp.shape != (n, 4, 4):
        msg = f"need xp ({n}, 4), Pp ({n}, 4, 4); got {xp.shape}, {Pp.shape}"
        raise ValueError(msg)
    z = np.empty((n, len(MODEL_FIELDS)))
    for c, name in enumerate(MODEL_FIELDS):
        z[:, c] = meas[name]
    xo = np.empty((n, 4))
    Po = np.empty((n, 4, 4))
    d2 = np.empty(n)
    _update_rows(
        meas["kind"].astype(np.float64),
        z,
        np.ascontiguousarray(xp, dtype=np.float64),
        np.ascontiguousarray(Pp, dtype=np.float64),
        float(fibre_across_m),
        float(vr_sigma),
        xo,
        Po,
        d2,
    )
    return xo, Po, d2
