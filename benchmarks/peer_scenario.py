"""Peer-comparison scenario generator (issue 4).

A 2-D strip 20 km x 2 km; ``N`` targets alive on average: 60 % walkers (~1.5 m/s, crossing
the strip, i.e. heading mostly along +-y) and 40 % vehicles (~10 m/s along +-x). Each target
lives an exponential time (mean ``life_s``) or until it leaves the strip; births are Poisson
at rate ``N / life_s`` (the initial ``N`` are alive at t0), at uniform positions. Motion is
nearly constant velocity (white acceleration, q = 0.01 walkers, 0.05 vehicles, m^2/s^3).
Scans at 1 Hz for 600 s; each target detected with Pd = 0.9 and N(0, sigma^2 I) position
noise, sigma = 10 m; clutter Poisson(``clutter``) per scan, uniform over the strip.

Output, JSON lines: detections ``{"t", "x", "y", "sigma"}`` (truth and clutter shuffled
together per scan) and truth ``{"id", "t", "x", "y"}``.

    python -m benchmarks.peer_scenario --targets 50 --clutter 20 --seed 1 --out runs/
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STRIP_W = 20_000.0
STRIP_H = 2_000.0


@dataclass(frozen=True)
class Scenario:
    """Parameters of the peer scenario (defaults as in the issue)."""

    targets: int = 50
    clutter: float = 20.0
    seed: int = 1
    duration_s: int = 600
    dt: float = 1.0
    pd: float = 0.9
    sigma: float = 10.0
    life_s: float = 400.0
    t0: float = 1_764_000_000.0


def _new_targets(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` new targets as rows ``[x, y, vx, vy, q]``."""
    out = np.empty((n, 5))
    walker = rng.random(n) < 0.6
    out[:, 0] = rng.uniform(0, STRIP_W, n)
    out[:, 1] = rng.uniform(0, STRIP_H, n)
    speed = np.where(walker, rng.normal(1.5, 0.2, n), rng.normal(10.0, 1.5, n))
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    dev = rng.normal(0.0, np.radians(15.0), n)  # heading spread about the main axis
    # walkers: main axis y (crossing); vehicles: main axis x (along)
    out[:, 2] = np.where(walker, np.sin(dev), np.cos(dev)) * speed * sign
    out[:, 3] = np.where(walker, np.cos(dev), np.sin(dev)) * speed * sign
    out[:, 4] = np.where(walker, 0.01, 0.05)
    return out


def generate(sc: Scenario) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Return ``(detections, truth)`` rows for scenario ``sc`` (deterministic in ``seed``)."""
    rng = np.random.default_rng(sc.seed)
    tg = _new_targets(rng, sc.targets)
    ids = np.arange(sc.targets)
    next_id = sc.targets
    dets: list[dict[str, float]] = []
    truth: list[dict[str, float]] = []
    birth_rate = sc.targets / sc.life_s * sc.dt
    p_death = 1.0 - np.exp(-sc.dt / sc.life_s)
    for k in range(int(sc.duration_s / sc.dt)):
        t = sc.t0 + k * sc.dt
        if k > 0:
            # motion: nearly constant velocity, exact discretisation of white acceleration
            n = len(tg)
            q = tg[:, 4]
            dt = sc.dt
            for ax in (0, 1):
                cov = np.stack(
                    [q * dt**3 / 3, q * dt**2 / 2, q * dt**2 / 2, q * dt], axis=1
                ).reshape(n, 2, 2)
                chol = np.linalg.cholesky(cov)
                w = np.einsum("nij,nj->ni", chol, rng.standard_normal((n, 2)))
                tg[:, ax] += tg[:, 2 + ax] * dt + w[:, 0]
                tg[:, 2 + ax] += w[:, 1]
            inside = (tg[:, 0] >= 0) & (tg[:, 0] <= STRIP_W) & (tg[:, 1] >= 0)
            inside &= tg[:, 1] <= STRIP_H
            alive = inside & (rng.random(len(tg)) >= p_death)
            tg = tg[alive]
            ids = ids[alive]
            nb = rng.poisson(birth_rate)
            if nb:
                tg = np.vstack([tg, _new_targets(rng, nb)])
                ids = np.concatenate([ids, np.arange(next_id, next_id + nb)])
                next_id += nb
        for i in range(len(tg)):
            truth.append({"id": int(ids[i]), "t": t, "x": float(tg[i, 0]), "y": float(tg[i, 1])})
        det = rng.random(len(tg)) < sc.pd
        zx = tg[det, 0] + rng.normal(0, sc.sigma, int(det.sum()))
        zy = tg[det, 1] + rng.normal(0, sc.sigma, int(det.sum()))
        nc = rng.poisson(sc.clutter)
        zx = np.concatenate([zx, rng.uniform(0, STRIP_W, nc)])
        zy = np.concatenate([zy, rng.uniform(0, STRIP_H, nc)])
        order = rng.permutation(len(zx))
        dets.extend(
            {"t": t, "x": float(zx[j]), "y": float(zy[j]), "sigma": sc.sigma} for j in order
        )
    return dets, truth


def write(sc: Scenario, out: Path) -> tuple[Path, Path]:
    """Write ``det_N{targets}_C{clutter}_s{seed}.jsonl`` and ``truth_...`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    tag = f"N{sc.targets}_C{sc.clutter:g}_s{sc.seed}"
    dets, truth = generate(sc)
    dp = out / f"det_{tag}.jsonl"
    tp = out / f"truth_{tag}.jsonl"
    dp.write_text("".join(json.dumps(d) + "\n" for d in dets))
    tp.write_text("".join(json.dumps(d) + "\n" for d in truth))
    return dp, tp


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write one scenario's detection and truth files; prints their paths."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=50)
    ap.add_argument("--clutter", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=int, default=600)
    ap.add_argument("--out", type=Path, default=Path("runs/peer"))
    a = ap.parse_args(argv)
    sc = Scenario(targets=a.targets, clutter=a.clutter, seed=a.seed, duration_s=a.duration)
    dp, tp = write(sc, a.out)
    print(json.dumps({"detections": str(dp), "truth": str(tp)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
