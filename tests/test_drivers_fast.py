"""The fibre fast path (one Numba kernel: validate + normalize) against its naive twins:
the general column-wise path of ``Ingest`` (numpy, ``geo.Site.fibre_points``) on the same
decoded batch, and the numpy masks and ``_normalize.fibre`` on raw columns (NaN/inf too)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

import geo
from drivers import Ingest, IngestResult, _kernels, _normalize
from drivers import _ingest as ingest_mod
from fusion.measurements import FIBRE_CLASSES, FIBRE_TO_CLS, MEAS_DTYPE, MeasArray

SITE = geo.default_site()
NOW = 1_764_000_000.0


def _rows_equal(a: MeasArray, b: MeasArray) -> None:
    assert a.dtype == b.dtype == MEAS_DTYPE
    assert a.shape == b.shape
    for name in MEAS_DTYPE.names or ():
        x, y = a[name], b[name]
        if x.dtype.kind == "f":
            # bit-identical, NaN where NaN
            assert np.array_equal(x, y, equal_nan=True), name
            assert np.array_equal(np.signbit(x), np.signbit(y)), name
        else:
            assert np.array_equal(x, y), name


def _random_events(rng: np.random.Generator, dev: str, n: int, bad: float) -> list[dict[str, Any]]:
    length = SITE.fibre_by_id[dev].cable_length_m
    evs: list[dict[str, Any]] = []
    for _ in range(n):
        ev: dict[str, Any] = {
            "t": NOW - float(rng.uniform(-3.0, 30.0)),
            # the whole cable, its ends and a little beyond (extrapolation, out_of_cable)
            "chainage_m": float(
                rng.choice([rng.uniform(0, length), 0.0, length, length + rng.uniform(0, 3)])
            ),
            "class": str(rng.choice(FIBRE_CLASSES)),
            "confidence": float(rng.uniform(0, 1)),
        }
        if rng.random() < 0.5:
            ev["extent_m"] = float(rng.uniform(0, 200))
        if rng.random() < 0.5:
            ev["energy"] = float(rng.normal(0, 1e3))
        if rng.random() < bad:
            ev["t"] = NOW + float(rng.choice([-1, 1])) * (86400 + float(rng.uniform(0, 1e5)))
        if rng.random() < bad:
            ev["chainage_m"] = length + 1.0 + float(rng.uniform(1e-6, 1e4))
        evs.append(ev)
    return evs


def _general(ing: Ingest, dev: str, payload: bytes, now: float) -> IngestResult:
    """The general path on the same decoded batch (what ``handle`` did before the fast path)."""
    topic = f"limes/v1/sensors/fibre/{dev}/events"
    res = IngestResult(topic=topic)
    batch = ingest_mod._FAST["fibre"].decode(payload)
    try:
        ing._events_cols(
            "fibre", dev, topic, payload, now, res, batch.events, None, [], batch.seq, None
        )
    except ingest_mod._Reject as r:
        return ing._reject(res, r.reason, payload, now)
    res.accepted = True
    return res


@pytest.mark.parametrize("seed", range(12))
def test_fast_path_equals_general_path_on_random_batches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    fast, slow = Ingest(SITE, started=NOW), Ingest(SITE, started=NOW)
    for k in range(25):
        dev = str(rng.choice([f.id for f in SITE.fibre]))
        n = int(rng.choice([1, 2, 3, 8, 9, 50, 400]))
        bad = float(rng.choice([0.0, 0.0, 0.05, 0.5, 1.0]))
        # seq: new, repeated (duplicate), gap or late
        seq = int(rng.choice([k, k, max(k - 1, 0), k + 3]))
        payload = json.dumps(
            {"device": dev, "seq": seq, "events": _random_events(rng, dev, n, bad)}
        ).encode()
        now = NOW + float(rng.uniform(-1, 1))
        a = fast.handle(f"limes/v1/sensors/fibre/{dev}/events", payload, now)
        b = _general(slow, dev, payload, now)
        assert a.accepted == b.accepted
        assert a.dead_letters == b.dead_letters
        for f in ("device", "seq", "verdict", "duplicate", "lost", "late", "rejected_events"):
            assert getattr(a, f) == getattr(b, f), f
        assert a.health == b.health
        _rows_equal(a.meas, b.meas)
    assert fast._next_mid == slow._next_mid
    for name, labels in [
        ("events_normalized_total", {"kind": "fibre"}),
        ("late_events_total", {"kind": "fibre"}),
        ("events_rejected_total", {"reason": "time_skew"}),
        ("events_rejected_total", {"reason": "out_of_cable"}),
        ("rejected_total", {"reason": "no_valid_events"}),
    ]:
        assert fast.metrics.value(name, **labels) == slow.metrics.value(name, **labels), name


def _params(dev: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], float, int]:
    u = ingest_mod._FibreUnit(SITE, dev)
    return u.params, u.geom, float(u.params[_kernels.U_MAX_CHAIN]), u.sensor


@pytest.mark.parametrize("dev", [f.id for f in SITE.fibre])
def test_kernel_equals_numpy_reference_with_nan_and_inf(dev: str) -> None:
    rng = np.random.default_rng(7)
    n = 500
    length = SITE.fibre_by_id[dev].cable_length_m
    cols = {
        "t": NOW + rng.uniform(-100, 10, n),
        "chainage_m": rng.uniform(-0.5, length + 5, n),
        "confidence": rng.uniform(0, 1, n),
        "extent_m": rng.uniform(0, 100, n),
        "energy": rng.normal(0, 100, n),
    }
    for col in cols.values():  # sprinkle NaN / inf / far times over every column
        hit = rng.random(n) < 0.03
        col[hit] = rng.choice([math.nan, math.inf, -math.inf], hit.sum())
    cols["t"][rng.random(n) < 0.05] = NOW + 1e6
    raw = rng.integers(0, len(FIBRE_CLASSES), n).astype(np.uint8)
    vals = np.column_stack([*cols.values(), raw.astype(np.float64)]).ravel()
    params, geom, max_chain, sensor = _params(dev)
    reason = np.empty(n, np.uint8)
    rows, late = _kernels.fibre_rows(
        vals, reason, NOW, 5.0, sensor, 100, params, geom, FIBRE_TO_CLS
    )
    # naive twin: the general path's masks, first reason wins, then _normalize.fibre
    finite = np.ones(n, np.bool_)
    for name in ("t", "chainage_m", "confidence", "extent_m"):
        finite &= np.isfinite(cols[name])
    skew = ~(np.abs(cols["t"] - NOW) <= ingest_mod.MAX_SKEW_S)
    off = cols["chainage_m"] > max_chain
    want = np.where(~finite, 1, np.where(skew, 2, np.where(off, 3, 0)))
    assert np.array_equal(reason, want)
    keep = want == 0
    assert late == int(np.count_nonzero(NOW - cols["t"][keep] > 5.0))
    ref = _normalize.fibre(
        SITE,
        dev,
        sensor,
        cols["t"][keep],
        cols["chainage_m"][keep],
        raw[keep],
        cols["confidence"][keep],
        cols["extent_m"][keep],
        cols["energy"][keep],
        100,
    )
    _rows_equal(rows, ref)


def test_kernel_empty_and_all_rejected() -> None:
    params, geom, _, sensor = _params("FO-01")
    rows, late = _kernels.fibre_rows(
        np.empty(0), np.empty(0, np.uint8), NOW, 5.0, sensor, 1, params, geom, FIBRE_TO_CLS
    )
    assert rows.shape == (0,)
    assert late == 0
    vals = np.array([NOW + 1e6, 1.0, 0.5, 10.0, 0.0, 0.0])
    reason = np.empty(1, np.uint8)
    rows, late = _kernels.fibre_rows(vals, reason, NOW, 5.0, sensor, 1, params, geom, FIBRE_TO_CLS)
    assert rows.shape == (0,)
    assert reason.tolist() == [_kernels.TIME_SKEW]


def test_topic_cache_is_bounded() -> None:
    ing = Ingest(SITE, started=NOW)
    for k in range(ingest_mod._ROUTE_CACHE + 10):
        res = ing.handle(f"limes/v1/nope/{k}", b"{}", NOW)
        assert [d.code for d in res.dead_letters] == ["bad_topic"]
    assert len(ing._routes) <= ingest_mod._ROUTE_CACHE
