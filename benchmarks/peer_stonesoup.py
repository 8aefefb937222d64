"""Stone Soup GNN tracker configured as the issue prescribes (the peer in the benchmark).

k-d tree pre-gate (:class:`DetectionKDTreeGNN2D`), 2-D assignment, CV with q = 0.05 per axis,
Mahalanobis gate 3 (``missed_distance``), confirmation after 3 hits
(:class:`MultiMeasurementInitiator` ``min_points=3``), tentative tracks dropped after 2 missed
steps, confirmed ones after 5 (:class:`UpdateTimeStepsDeleter`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

F8 = npt.NDArray[np.float64]


def run_stonesoup(
    scans: Sequence[tuple[float, F8, float]], on_scan: Any, *, q: float = 0.05
) -> float:
    """Track ``scans`` (``(t, xy (n, 2), sigma)``); call ``on_scan(i, xy_confirmed)`` after each
    scan (outside the timed region). Returns the tracker seconds."""
    from stonesoup.dataassociator.tree import DetectionKDTreeGNN2D
    from stonesoup.deleter.time import UpdateTimeStepsDeleter
    from stonesoup.hypothesiser.distance import DistanceHypothesiser
    from stonesoup.initiator.simple import MultiMeasurementInitiator
    from stonesoup.measures import Mahalanobis
    from stonesoup.models.measurement.linear import LinearGaussian
    from stonesoup.models.transition.linear import (
        CombinedLinearGaussianTransitionModel,
        ConstantVelocity,
    )
    from stonesoup.predictor.kalman import KalmanPredictor
    from stonesoup.tracker.simple import MultiTargetTracker
    from stonesoup.types.detection import Detection
    from stonesoup.types.state import GaussianState
    from stonesoup.updater.kalman import KalmanUpdater

    sigma = scans[0][2] if scans else 10.0
    trans = CombinedLinearGaussianTransitionModel([ConstantVelocity(q), ConstantVelocity(q)])
    mm = LinearGaussian(ndim_state=4, mapping=(0, 2), noise_covar=np.diag([sigma**2] * 2))
    predictor = KalmanPredictor(trans)
    updater = KalmanUpdater(mm)
    hyp = DistanceHypothesiser(predictor, updater, measure=Mahalanobis(), missed_distance=3)
    assoc = DetectionKDTreeGNN2D(
        hyp, predictor, updater, number_of_neighbours=None, max_distance_covariance_multiplier=3
    )
    prior = GaussianState([[0], [0], [0], [0]], np.diag([0, 10.0**2, 0, 10.0**2]))
    init = MultiMeasurementInitiator(
        prior_state=prior,
        measurement_model=mm,
        deleter=UpdateTimeStepsDeleter(2),
        data_associator=DetectionKDTreeGNN2D(
            hyp,
            predictor,
            updater,
            number_of_neighbours=None,
            max_distance_covariance_multiplier=3,
        ),
        updater=updater,
        min_points=3,
    )
    stamps = [datetime.fromtimestamp(t, tz=UTC).replace(tzinfo=None) for t, _, _ in scans]
    det_sets = [
        {Detection(np.array([[x], [y]]), timestamp=ts, measurement_model=mm) for x, y in xy}
        for ts, (_, xy, _) in zip(stamps, scans, strict=True)
    ]

    class _Feed:
        def __init__(self) -> None:
            self.i = 0

        def __iter__(self) -> Iterator[tuple[datetime, set[Any]]]:
            for i, ts in enumerate(stamps):
                self.i = i
                yield ts, det_sets[i]

    tracker = MultiTargetTracker(
        initiator=init,
        deleter=UpdateTimeStepsDeleter(5),
        detector=_Feed(),
        data_associator=assoc,
        updater=updater,
    )
    total = 0.0
    it = iter(tracker)
    for i in range(len(scans)):
        t0 = time.perf_counter()
        _, tracks = next(it)
        total += time.perf_counter() - t0
        xy = np.array(
            [[float(tr.state_vector[0, 0]), float(tr.state_vector[2, 0])] for tr in tracks]
        )
        on_scan(i, xy.reshape(-1, 2))
    return total
