"""Normalized measurements: the one array format between the drivers and the fusion core.

A measurement batch is a numpy structured array of dtype :data:`MEAS_DTYPE`, one row per
sensor event, in the site's metric working CRS. Drivers build it column by column
(no Python object per event); the tracker reads it column by column.

Every row carries both

* a *converted* Cartesian estimate ``(x, y)`` with covariance ``[[cxx, cxy], [cxy, cyy]]``
  (what a linear Kalman update or a spatial gate needs), and
* the *native* parameters of its sensor (polar ``r``/``az`` from sensor origin ``(ox, oy)``,
  or border chainage for fibre), so a kernel may use the exact non-linear model instead.

Conventions (invariants every producer keeps):

* ``az`` is a **grid** azimuth in radians, clockwise from the working CRS's +y axis:
  ``az = radians(true_bearing) + gamma(ox, oy)`` where ``gamma`` is the grid azimuth of
  true north there (meridian convergence, ``geo.Projection.true_north_grid_az``); then a
  point at range ``r`` lies at ``(ox + r sin az, oy + r cos az)``.
* Missing optional values are NaN (``r`` for a bearing-only thermal event, ``vr`` without
  Doppler). For bearing-only events ``x, y`` is a placeholder point on the bearing ray at the
  camera's nominal range and the covariance is inflated along the ray accordingly.
* ``cls`` is a :class:`Cls` code (unified across sensor kinds); ``raw_cls`` keeps the
  sensor's own class code (e.g. fibre ``running`` vs ``walking``).
* ``chain`` is border chainage in metres for fibre events, NaN otherwise; ``tx, ty`` is the
  unit tangent of the border line there (so the fibre covariance is along ``(tx, ty)``).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import numpy.typing as npt


class Kind(IntEnum):
    """Sensor kind of a measurement (``kind`` column)."""

    FIBRE = 0
    THERMAL = 1
    MSV = 2
    POINT = 3  # generic Cartesian point detection (benchmarks, peer comparison)


class Cls(IntEnum):
    """Unified object class (``cls`` column; index into a track's ``class_p``)."""

    PERSON = 0
    GROUP = 1
    VEHICLE = 2
    ANIMAL = 3
    DIGGING = 4
    UNKNOWN = 5


CLASS_NAMES: tuple[str, ...] = ("person", "group", "vehicle", "animal", "digging", "unknown")
N_CLASSES = len(CLASS_NAMES)

# Sensor-native class vocabularies from the wire contract, in code order (``raw_cls``).
FIBRE_CLASSES: tuple[str, ...] = ("walking", "running", "digging", "vehicle", "climbing", "unknown")
TARGET_CLASSES: tuple[str, ...] = ("person", "group", "vehicle", "animal", "unknown")

#: fibre raw class code -> unified class code
FIBRE_TO_CLS = np.array(
    [Cls.PERSON, Cls.PERSON, Cls.DIGGING, Cls.VEHICLE, Cls.PERSON, Cls.UNKNOWN], dtype=np.uint8
)
#: thermal/msv raw class code -> unified class code
TARGET_TO_CLS = np.array(
    [Cls.PERSON, Cls.GROUP, Cls.VEHICLE, Cls.ANIMAL, Cls.UNKNOWN], dtype=np.uint8
)

MEAS_DTYPE = np.dtype(
    [
        ("t", "f8"),  # event time, UNIX epoch seconds (UTC)
        ("sensor", "i4"),  # sensor index in the site (Site.sensor_index)
        ("kind", "u1"),  # Kind
        ("cls", "u1"),  # Cls (unified)
        ("raw_cls", "u1"),  # sensor-native class code
        ("conf", "f4"),  # class confidence in [0, 1]
        ("x", "f8"),  # converted position, working CRS (m)
        ("y", "f8"),
        ("cxx", "f8"),  # converted position covariance (m^2)
        ("cxy", "f8"),
        ("cyy", "f8"),
        ("ox", "f8"),  # sensor origin (camera / platform position), NaN for fibre
        ("oy", "f8"),
        ("r", "f8"),  # range (m), NaN if absent
        ("az", "f8"),  # grid azimuth (rad), NaN for fibre
        ("sr", "f8"),  # 1-sigma range (m)
        ("saz", "f8"),  # 1-sigma azimuth (rad)
        ("vr", "f8"),  # radial velocity (m/s, + away), NaN if absent
        ("chain", "f8"),  # border chainage (m), fibre only
        ("tx", "f8"),  # unit border tangent at the event, fibre only
        ("ty", "f8"),
        ("extent", "f4"),  # fibre disturbed length (m)
        ("energy", "f4"),  # fibre signal energy, NaN if absent
        ("obj", "i8"),  # camera object id hash (0 if none)
        ("mid", "i8"),  # measurement id, unique per service run (provenance)
    ]
)

MeasArray = npt.NDArray[np.void]


def empty(n: int = 0) -> MeasArray:
    """Return ``n`` measurement rows with every float column NaN and integers zero."""
    out = np.zeros(n, dtype=MEAS_DTYPE)
    for name in MEAS_DTYPE.names or ():
        if MEAS_DTYPE.fields is not None and MEAS_DTYPE.fields[name][0].kind == "f":
            out[name] = np.nan
    return out
