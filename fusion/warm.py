"""JIT warm-up: compile (or load from the on-disk cache) every kernel on tiny inputs."""

from __future__ import annotations

import time

import numpy as np

from fusion import build
from fusion.measurements import Kind


def warmup() -> float:
    """Run every kernel once on tiny inputs (all measurement kinds, a late row, a merge);
    returns the seconds it took. Call once at service start-up."""
    from fusion.associator import assign
    from fusion.classifier import class_update
    from fusion.gater import gate
    from fusion.predictor import predict
    from fusion.tracker import Tracker
    from fusion.updater import update

    t0 = time.perf_counter()
    trk = Tracker(n_sensors=4)
    for k in range(4):
        t = 100.0 + k
        rows = np.concatenate(
            [
                build.point([t], [0.0 + k], [0.0], [10.0], sensor=3, mid0=10 * k),
                build.fibre([t], [50.0], [10.0 + k], [1.0], [0.0], sensor=0, mid0=10 * k + 1),
                build.polar(
                    Kind.THERMAL, [t], [0.0], [-500.0], [0.1], r=[500.0], sensor=1, mid0=10 * k + 2
                ),
                build.polar(Kind.THERMAL, [t], [0.0], [-500.0], [0.1], sensor=1, mid0=10 * k + 3),
                build.polar(
                    Kind.MSV,
                    [t],
                    [100.0],
                    [-800.0],
                    [0.0],
                    r=[800.0],
                    vr=[0.5],
                    sensor=2,
                    mid0=10 * k + 4,
                ),
            ]
        )
        trk.step(t + 0.5, rows)
    trk.step(104.0, build.point([101.5], [1.0], [0.0], [10.0], sensor=3, mid0=99))
    # checkpoint buffer reuse (first needed once the horizon is full)
    tb = trk.table
    tb.pack(into=tb.pack())
    xp = np.zeros((1, 4))
    Pp = np.eye(4)[None] * 100.0
    predict(xp, Pp, 1.0, 0.1)
    m = build.point([0.0], [1.0], [1.0], [5.0])
    update(m, xp, Pp)
    gate(xp, Pp, m)
    assign(np.zeros(1, np.int64), np.zeros(1, np.int64), np.array([-1.0]), 1, 1)
    class_update(np.full(6, 1 / 6), 0, 0, 0.5)
    return time.perf_counter() - t0
