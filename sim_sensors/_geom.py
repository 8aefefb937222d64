"""Polyline motion helpers of the simulator."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def cumlen(xy: F64) -> F64:
    """Cumulative arc length at each vertex of a polyline ``(n, 2)``."""
    seg = np.hypot(np.diff(xy[:, 0]), np.diff(xy[:, 1]))
    return np.concatenate([[0.0], np.cumsum(seg)])


def along(xy: F64, s: npt.ArrayLike) -> tuple[F64, F64]:
    """Points at arc lengths ``s`` along a polyline (clamped to its ends)."""
    c = cumlen(xy)
    sa = np.asarray(s, np.float64)
    return np.interp(sa, c, xy[:, 0]), np.interp(sa, c, xy[:, 1])


def resample(xy: F64, step: float) -> F64:
    """The polyline resampled every ``step`` metres of arc length (ends kept)."""
    c = cumlen(xy)
    n = max(2, math.ceil(c[-1] / step) + 1)
    s = np.linspace(0.0, c[-1], n)
    x, y = along(xy, s)
    return np.column_stack([x, y])


def smooth_noise(rng: np.random.Generator, n: int, width: float) -> F64:
    """``n`` samples of a stationary Gaussian process, unit variance, correlation ``width``.

    White noise convolved with ``exp(-i^2 / (2 width^2))`` and normalised by the
    kernel's L2 norm, so each sample is N(0, 1) and neighbours ``width`` apart are
    correlated ~0.78.
    """
    w = max(width, 1e-6)
    half = max(1, math.ceil(3 * w))
    kern = np.exp(-0.5 * (np.arange(-half, half + 1) / w) ** 2)
    kern /= np.sqrt(np.sum(kern * kern))
    eps = rng.standard_normal(n + 2 * half)
    return np.convolve(eps, kern, mode="valid")[:n]


def wander(rng: np.random.Generator, xy: F64, sigma_m: float, corr_m: float) -> F64:
    """Polyline densified every 20 m and displaced sideways by smooth noise.

    The lateral offset is ``sigma_m * smooth_noise(corr_m / 20)`` along the local
    normal: people do not walk straight lines.
    """
    d = resample(xy, 20.0)
    if len(d) < 3 or sigma_m <= 0:
        return d
    tx = np.gradient(d[:, 0])
    ty = np.gradient(d[:, 1])
    norm = np.hypot(tx, ty)
    norm[norm == 0] = 1.0
    off = sigma_m * smooth_noise(rng, len(d), corr_m / 20.0)
    off[0] = off[-1] = 0.0
    return np.column_stack([d[:, 0] - off * ty / norm, d[:, 1] + off * tx / norm])
