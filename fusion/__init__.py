"""Limes fusion core: a Numba multi-sensor multi-target tracker.

Public surface::

    from fusion import Tracker, TrackerConfig, warmup
    trk = Tracker(TrackerConfig(), n_sensors=len(site.sensor_ids))
    res = trk.step(t, meas)          # meas: fusion.measurements.MEAS_DTYPE array
    res.snapshot                     # fusion.tracker.Snapshot (struct of arrays)
    res.records                      # REC_DTYPE: mid -> track_id, action
    fusion.report.track_updates(res.snapshot, site)   # contract track-update dicts
"""

from fusion.config import TrackerConfig
from fusion.tracker import ACTION_NAMES, REC_DTYPE, Snapshot, StepResult, Tracker
from fusion.warm import warmup

__all__ = [
    "ACTION_NAMES",
    "REC_DTYPE",
    "Snapshot",
    "StepResult",
    "Tracker",
    "TrackerConfig",
    "warmup",
]
