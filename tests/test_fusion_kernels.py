"""Kernel-vs-twin tests: every fusion kernel against its slow twin in tests/naive.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion import build
from fusion.associator import assign
from fusion.classifier import PRIOR, class_llr, class_update, default_confusion
from fusion.config import TrackerConfig
from fusion.deleter import expired
from fusion.gater import gate
from fusion.initiator import init_state
from fusion.measurements import Cls, Kind, MeasArray
from fusion.predictor import predict
from fusion.state import CONFIRMED, TENTATIVE, TrackTable, packed_words
from fusion.updater import update
from tests import naive


def _random_P(rng: np.random.Generator, n: int, scale: float = 30.0) -> np.ndarray:
    A = rng.normal(size=(n, 4, 4))
    out: np.ndarray = np.einsum("nij,nkj->nik", A, A) * scale + np.eye(4) * 1.0
    return out


def _mixed_meas(rng: np.random.Generator, n: int) -> MeasArray:
    """Random rows of every kind, around the origin, with NaN/edge cases sprinkled in."""
    k = n // 5
    th = rng.uniform(0, 2 * np.pi, k)
    parts = [
        build.point(
            np.zeros(k), rng.uniform(-200, 200, k), rng.uniform(-200, 200, k), rng.uniform(3, 30, k)
        ),
        build.fibre(
            np.zeros(k),
            rng.uniform(-200, 200, k),
            rng.uniform(-200, 200, k),
            np.cos(th),
            np.sin(th),
            extent=rng.uniform(0, 60, k),
        ),
        build.polar(
            Kind.THERMAL,
            np.zeros(k),
            rng.uniform(-600, 600, k),
            rng.uniform(-600, 600, k),
            rng.uniform(-np.pi, np.pi, k),
            r=np.where(rng.random(k) < 0.5, rng.uniform(50, 900, k), np.nan),
        ),
        build.polar(
            Kind.MSV,
            np.zeros(k),
            rng.uniform(-600, 600, k),
            rng.uniform(-600, 600, k),
            rng.uniform(-np.pi, np.pi, k),
            r=rng.uniform(50, 900, k),
            vr=np.where(rng.random(k) < 0.5, rng.normal(0, 3, k), np.nan),
            sr=15.0,
        ),
        build.polar(
            Kind.THERMAL,
            np.zeros(k),
            rng.uniform(-600, 600, k),
            rng.uniform(-600, 600, k),
            rng.uniform(-np.pi, np.pi, k),
        ),
    ]
    m = np.concatenate(parts)
    # edge cases: NaN position, degenerate covariance, NaN tangent (fallback), NaN azimuth
    m["x"][0] = np.nan
    m["cxx"][1] = 0.0
    m["tx"][k] = np.nan
    m["az"][2 * k] = np.nan
    m["saz"][2 * k + 1] = 0.0
    m["mid"] = np.arange(len(m))
    return m


def test_predict_matches_twin_including_nan() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 100, (50, 4))
    P = _random_P(rng, 50)
    dt = rng.uniform(-2, 30, 50)
    q = rng.uniform(0, 2, 50)
    x[3, 1] = np.nan
    xo, Po = predict(x, P, dt, q)
    for i in range(50):
        xe, Pe = naive.predict(x[i], P[i], dt[i], q[i])
        np.testing.assert_allclose(xo[i], xe, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(Po[i], Pe, rtol=1e-10, atol=1e-8)
    assert np.isnan(xo[3, 1])
    assert np.isfinite(xo[3, 0])


def test_predict_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="need x"):
        predict(np.zeros((2, 3)), np.zeros((2, 4, 4)), 1.0, 0.1)
    with pytest.raises(ValueError, match="q must be"):
        predict(np.zeros((1, 4)), np.eye(4)[None], 1.0, -1.0)


def test_update_matches_twin_for_every_kind() -> None:
    rng = np.random.default_rng(1)
    m = _mixed_meas(rng, 100)
    n = len(m)
    xp = np.column_stack([rng.uniform(-300, 300, (n, 2)), rng.normal(0, 2, (n, 2))])
    Pp = _random_P(rng, n, 20.0)
    xo, Po, d2 = update(m, xp, Pp)
    n_used = 0
    for i in range(n):
        xe, Pe, de = naive.update(m[i], xp[i], Pp[i])
        if math.isinf(de):
            assert math.isinf(d2[i])
            np.testing.assert_array_equal(xo[i], xp[i])
            continue
        n_used += 1
        assert d2[i] == pytest.approx(de, rel=1e-7, abs=1e-9)
        np.testing.assert_allclose(xo[i], xe, rtol=1e-7, atol=1e-6)
        np.testing.assert_allclose(Po[i], Pe, rtol=1e-6, atol=1e-5)
    assert n_used >= n - 6  # only the planted edge cases are unusable


def test_bearing_only_update_is_not_a_circle() -> None:
    """A bearing-only thermal row shrinks the across-bearing variance, barely the along one."""
    xp = np.array([[0.0, 1000.0, 0.0, 0.0]])
    Pp = np.diag([400.0, 400.0, 1.0, 1.0])[None]
    m = build.polar(Kind.THERMAL, [0.0], [0.0], [0.0], [0.0])  # camera at origin, bearing north
    _, Po, d2 = update(m, xp, Pp)
    assert np.isfinite(d2[0])
    assert Po[0, 0, 0] < 0.5 * Pp[0, 0, 0]  # across the ray (x) is observed
    assert Po[0, 1, 1] == pytest.approx(Pp[0, 1, 1], rel=1e-9)  # along the ray (y) is not


def test_fibre_covariance_is_elongated_along_tangent() -> None:
    m = build.fibre([0.0], [0.0], [0.0], [1.0], [0.0], extent=40.0)
    _x, P, ok = init_state(m, 2.0)
    assert ok[0] == 1
    assert P[0, 0, 0] == pytest.approx(20.0**2)  # along = max(5, extent / 2)
    assert P[0, 1, 1] == pytest.approx(10.0**2 + 60.0**2)  # across: ambiguity + band
    R = naive.fibre_init_R(1.0, 0.0, 40.0, 10.0)
    assert R is not None
    np.testing.assert_allclose(P[0, :2, :2], R)
    np.testing.assert_allclose(P[0, 2:, 2:], np.eye(2) * 4.0)
    bad = build.point([0.0], [np.nan], [0.0], [5.0])
    assert init_state(bad, 2.0)[2][0] == 0


def test_gate_matches_exhaustive_gating() -> None:
    rng = np.random.default_rng(2)
    m = _mixed_meas(rng, 150)
    nt = 40
    xp = np.column_stack([rng.uniform(-300, 300, (nt, 2)), rng.normal(0, 2, (nt, 2))])
    Pp = _random_P(rng, nt, 50.0)
    pt, pm, d2 = gate(xp, Pp, m, gate=13.8)
    got = {(int(a), int(b)): float(c) for a, b, c in zip(pt, pm, d2, strict=True)}
    exp = {(a, b): c for a, b, c in naive.gate(xp, Pp, m, 13.8)}
    assert set(got) <= set(exp)
    # exact for linear kinds; polar rows rely on the converted covariance (recall floor)
    lin = {k for k in exp if m[k[1]]["kind"] in (Kind.POINT, Kind.FIBRE)}
    assert lin <= set(got)
    assert len(got) >= 0.95 * len(exp)
    for k, v in got.items():
        assert v == pytest.approx(exp[k], rel=1e-7, abs=1e-9)


def test_gate_empty_inputs() -> None:
    pt, _, _ = gate(np.zeros((0, 4)), np.zeros((0, 4, 4)), build.point([0.0], [0.0], [0.0], [1.0]))
    assert len(pt) == 0
    with pytest.raises(ValueError, match="gate must be"):
        gate(np.zeros((1, 4)), np.eye(4)[None], build.point([0.0], [0.0], [0.0], [1.0]), gate=0)


@pytest.mark.parametrize("seed", range(25))
def test_assign_is_optimal_on_random_sparse_problems(seed: int) -> None:
    rng = np.random.default_rng(seed)
    nt, nm = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    k = int(rng.integers(0, nt * nm + 1))
    flat = rng.choice(nt * nm, size=k, replace=False)
    pt, pm = flat // nm, flat % nm
    cost = rng.normal(-2, 2, k)
    cost[rng.random(k) < 0.1] = 0.5  # some non-negative pairs must never be used
    t_to_m, m_to_t = assign(pt, pm, cost, nt, nm, max_exact=256)
    lookup = {(int(a), int(b)): float(c) for a, b, c in zip(pt, pm, cost, strict=True)}
    total = 0.0
    for a in range(nt):
        b = int(t_to_m[a])
        if b >= 0:
            assert m_to_t[b] == a
            assert lookup[(a, b)] < 0
            total += lookup[(a, b)]
    assert np.count_nonzero(m_to_t >= 0) == np.count_nonzero(t_to_m >= 0)
    assert total == pytest.approx(naive.best_assignment(list(lookup_items(lookup))), abs=1e-9)


def lookup_items(d: dict[tuple[int, int], float]) -> list[tuple[int, int, float]]:
    return [(a, b, c) for (a, b), c in d.items()]


def test_assign_greedy_fallback_is_consistent() -> None:
    rng = np.random.default_rng(7)
    pt = rng.integers(0, 30, 200)
    pm = rng.integers(0, 30, 200)
    cost = -rng.random(200)
    t_to_m, m_to_t = assign(pt, pm, cost, 30, 30, max_exact=2)
    for a, b in enumerate(t_to_m):
        if b >= 0:
            assert m_to_t[b] == a
    with pytest.raises(ValueError, match="NaN"):
        assign(np.zeros(1, int), np.zeros(1, int), np.array([np.nan]), 1, 1)


def test_class_update_matches_twin() -> None:
    rng = np.random.default_rng(3)
    C = default_confusion()
    for _ in range(200):
        p = rng.dirichlet(np.ones(6))
        kind = int(rng.integers(0, 4))
        cls = int(rng.integers(-1, 7))
        conf = float(rng.choice([np.nan, 0.0, rng.random(), 1.0, 1.5]))
        got = class_update(p, kind, cls, conf)
        exp = naive.class_update(p, C[kind], cls, conf, PRIOR, 0.02)
        np.testing.assert_allclose(got, exp, rtol=1e-10, atol=1e-12)
        assert got.sum() == pytest.approx(1.0)


def test_class_llr_matches_twin() -> None:
    rng = np.random.default_rng(5)
    C = default_confusion()
    for _ in range(300):
        p = rng.dirichlet(np.ones(6))
        kind = int(rng.integers(0, 4))
        cls = int(rng.integers(-1, 7))
        conf = float(rng.choice([np.nan, 0.0, rng.random(), 1.0, 1.5]))
        got = class_llr(p, kind, cls, conf)
        exp = naive.class_llr(p, C[kind], cls, conf, PRIOR)
        assert got == pytest.approx(exp, rel=1e-10, abs=1e-12)


def test_class_llr_without_class_evidence_is_zero() -> None:
    p = np.array([0.02, 0.02, 0.9, 0.02, 0.02, 0.02])  # a vehicle track
    for kind in Kind:
        for conf in (0.0, np.nan):
            assert class_llr(p, int(kind), int(Cls.PERSON), conf) == 0.0
        assert class_llr(p, int(kind), int(Cls.UNKNOWN), 0.9) == 0.0
    # POINT's uniform confusion carries no class information
    assert class_llr(p, int(Kind.POINT), int(Cls.PERSON), 1.0) == pytest.approx(0.0, abs=1e-15)
    # a track drawn from the prior scores a report as a new object does
    assert class_llr(PRIOR, int(Kind.FIBRE), int(Cls.VEHICLE), 0.7) == pytest.approx(0.0)
    # full confidence: the formula without the soft likelihood
    C = default_confusion()[int(Kind.FIBRE)]
    c = int(Cls.PERSON)
    exp = np.log(p @ C[:, c] / (PRIOR @ C[:, c]))
    assert class_llr(p, int(Kind.FIBRE), c, 1.0) == pytest.approx(exp)
    assert exp < -1.0  # a person report is unlikely from a vehicle track


def test_confusion_rows_are_distributions() -> None:
    C = default_confusion()
    np.testing.assert_allclose(C.sum(axis=2), 1.0)
    assert (C >= 0).all()


def test_expired_matches_rule() -> None:
    cfg = TrackerConfig()
    g, kpar, cpar, _ = cfg.pack()
    rng = np.random.default_rng(4)
    n = 600
    st = rng.choice([0, TENTATIVE, CONFIRMED, 3], n).astype(np.uint8)
    miss = rng.integers(0, 8, n).astype(np.int32)
    age = rng.choice([np.nan, 0.0, 5.0, 12.0, 18.0, 25.0, 45.0, 100.0, 400.0], n)
    cp = rng.dirichlet(np.ones(6), n)
    kinds = rng.integers(0, 16, n).astype(np.uint8)
    pvar = rng.choice([np.nan, 0.0, 100.0, 240.0**2, 260.0**2, 1e7], n)
    got = expired(st, miss, age, cp, g, cpar, kinds, pvar, kpar)
    timeouts = {c: cfg.classes[c][1] for c in cfg.classes}
    names = list(cfg.classes)
    kind_names = [k.name.lower() for k in Kind]
    for i in range(n):
        present = [kind_names[k] for k in range(len(Kind)) if (int(kinds[i]) >> k) & 1]
        tk = max((cfg.kind_timeout_s.get(k, np.inf) for k in present), default=np.inf)
        if st[i] == TENTATIVE:
            exp = miss[i] >= cfg.tentative_max_misses or age[i] > min(cfg.tentative_timeout_s, tk)
        elif st[i] == CONFIRMED:
            exp = (
                miss[i] >= cfg.confirmed_max_misses
                or age[i] > min(timeouts[names[int(np.argmax(cp[i]))]], tk)
                or pvar[i] > cfg.drop_sigma_m**2
            )
        else:
            exp = False
        assert bool(got[i]) == bool(exp), (i, st[i], miss[i], age[i], kinds[i], pvar[i])
    # without kinds / pvar the rule is the class rule alone
    plain = expired(st, miss, age, cp, g, cpar)
    for i in range(n):
        if st[i] == CONFIRMED:
            tc = timeouts[names[int(np.argmax(cp[i]))]]
            exp = miss[i] >= cfg.confirmed_max_misses or age[i] > tc
            assert bool(plain[i]) == bool(exp)


def test_confirmable_matches_twin() -> None:
    from fusion.initiator import _confirmable

    cfg = TrackerConfig()
    g, _, _, _ = cfg.pack()
    rng = np.random.default_rng(11)
    n_conf = 0
    for _ in range(400):
        P = _random_P(rng, 1, float(rng.choice([5.0, 300.0, 1500.0, 5000.0])))[0]
        if rng.random() < 0.05:
            P[0, 0] = np.nan
        kinds = int(rng.choice([1, 2, 3, 4, 6]))
        sens = np.zeros(4, np.uint64)
        for b in rng.choice(256, int(rng.integers(0, 4)), replace=False):
            sens[b >> 6] |= np.uint64(1) << np.uint64(b & 63)
        got = bool(_confirmable(P, kinds, sens, g))
        exp = naive.confirmable(P, kinds, sens, cfg.confirm_sigma_m, cfg.camera_alone_min_sensors)
        assert got == exp, (P[:2, :2], kinds, sens)
        n_conf += got
    assert 20 < n_conf < 380  # both outcomes exercised


def test_step_row_helpers_match_twins() -> None:
    """The per-step helpers of Tracker.step (row scan, record fill, log copy) against numpy."""
    from fusion.tracker import INVALID, REC_DTYPE, _copy_meas, _records, _scan_rows

    rng = np.random.default_rng(7)
    for trial in range(20):
        m = _mixed_meas(rng, 25)
        m["t"] = rng.uniform(-5, 5, len(m))
        if trial % 3 == 0:
            m["t"][rng.integers(len(m))] = np.nan
        if trial % 5 == 0:
            m["t"][:] = np.nan
        k, t0, t1 = _scan_rows(m)
        ek, et0, et1 = naive.scan_rows(m)
        assert k == ek
        assert (math.isnan(t0) and math.isnan(et0)) or t0 == et0
        assert t1 == et1
        tid = rng.integers(-1, 50, len(m))
        act = rng.integers(0, 5, len(m)).astype(np.uint8)
        d2 = np.where(rng.random(len(m)) < 0.3, np.nan, rng.exponential(3.0, len(m)))
        rec = np.empty(len(m), dtype=REC_DTYPE)
        n_inv = _records(m, tid, act, d2, rec)
        erec, en_inv = naive.records(m, tid, act, d2, REC_DTYPE)
        assert INVALID == 3
        assert n_inv == en_inv
        assert rec.tobytes() == erec.tobytes()
        c = _copy_meas(m)
        assert c.dtype == m.dtype
        assert c.tobytes() == m.tobytes()
        assert c.flags.writeable
        c["x"][0] = 1e9  # a copy: the input is untouched
        assert m["x"][0] != 1e9


def _random_table(rng: np.random.Generator, cap: int, hw: int) -> TrackTable:
    t = TrackTable(cap)
    for name in TrackTable.__slots__:
        if name in {"ctr", "free"}:
            continue
        a = getattr(t, name)
        if a.dtype.kind == "f":
            a[:] = rng.normal(0, 100, a.shape)
            a.flat[rng.integers(0, a.size, 5)] = np.nan
        else:
            info = np.iinfo(a.dtype)
            a[:] = rng.integers(info.min, info.max, a.shape, dtype=a.dtype, endpoint=True)
    t.ctr[:] = [17, cap - hw, hw // 2, hw]
    t.free[:] = rng.permutation(cap)
    return t


def test_packed_checkpoint_matches_compact_copy() -> None:
    """A checkpoint packed into one buffer (kernel), fresh or reusing a pruned one, unpacks
    to exactly what a compact copy (numpy slices, the twin) holds, and expands to the table
    with those rows and fresh slots above them; writes through the unpacked views change the
    buffer."""
    rng = np.random.default_rng(11)
    for cap, hw, old_hw in ((64, 40, 50), (64, 40, 40), (128, 3, 100), (64, 64, 64), (64, 0, 5)):
        src = _random_table(rng, cap, hw)
        old = _random_table(rng, cap, old_hw).pack()  # garbage to overwrite (or too small)
        fresh = naive.compact_copy({n: getattr(src, n) for n in TrackTable.__slots__}, hw)
        blank = TrackTable(cap)
        for buf in (src.pack(), src.pack(into=old)):
            assert len(buf) >= packed_words(hw, cap)
            got = TrackTable.unpacked(buf)
            ex = got.expanded()
            for name in TrackTable.__slots__:
                a, b = fresh[name], getattr(got, name)
                assert a.dtype == b.dtype, name
                assert a.shape == b.shape, name
                assert a.tobytes() == b.tobytes(), name
                e = getattr(ex, name)
                if name in ("free", "ctr"):
                    assert e.tobytes() == a.tobytes(), name
                else:
                    assert e[:hw].tobytes() == a.tobytes(), name
                    assert e[hw:].tobytes() == getattr(blank, name)[hw:].tobytes(), name
            if hw:
                got.tid[0] = 123456789
                assert TrackTable.unpacked(buf).tid[0] == 123456789
        reused = len(old) >= packed_words(hw, cap)
        assert (src.pack(into=old) is old) == reused


@pytest.mark.parametrize("seed", range(6))
def test_assign_is_optimal_on_large_clusters(seed: int) -> None:
    """Clusters of 15-40 tracks (cost matrices beyond the solver's initial 256-entry scratch,
    which then grows), several per problem, against scipy's assignment on the same
    ``tracks x (measurements + one zero-cost 'unassigned' column per track)`` matrix."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(100 + seed)
    nt, nm = int(rng.integers(15, 41)), int(rng.integers(15, 41))
    dense = rng.random((nt, nm)) < 0.3
    pt, pm = np.nonzero(dense)
    cost = rng.normal(-2, 2, len(pt))
    cost[rng.random(len(pt)) < 0.1] = 0.5
    t_to_m, m_to_t = assign(pt, pm, cost, nt, nm, max_exact=256)
    big = 1e9
    M = np.full((nt, nm + nt), big)
    M[:, nm:] = np.where(np.eye(nt) > 0, 0.0, big)
    for ta, mb, cv in zip(pt.tolist(), pm.tolist(), cost.tolist(), strict=True):
        if cv < 0:
            M[ta, mb] = min(M[ta, mb], cv)
    rows, cols = linear_sum_assignment(M)
    best = float(M[rows, cols].sum())
    total = 0.0
    for a in range(nt):
        b = int(t_to_m[a])
        if b >= 0:
            assert m_to_t[b] == a
            total += float(M[a, b])
    assert total == pytest.approx(best, abs=1e-9)


def test_snapshot_rows_match_twin() -> None:
    """``_snap_rows`` (the snapshot of a step, written at a row offset into the blocks) against
    the twin: every non-free slot below ``hw`` in slot order, predicted to ``now`` (or taken
    from the merger's predictions where flagged), sigma, confidence and copied columns; and
    the same rows written through ``_snap_views`` into one snapshot buffer, read back as a
    ``Snapshot`` (``SNAP_DTYPE``): the buffer layout and the dtype agree."""
    from fusion.config import C_Q, K_WEIGHT
    from fusion.tracker import (
        S_CONF,
        S_CP,
        S_NF,
        S_P,
        S_SIG,
        S_TB,
        S_TU,
        S_WORDS,
        S_X,
        SNAP_DTYPE,
        Snapshot,
        _snap_rows,
        _snap_views,
    )

    rng = np.random.default_rng(5)
    cfg = TrackerConfig()
    _, kpar, cpar, _ = cfg.pack()
    for cap, hw in ((64, 40), (64, 0), (128, 128)):
        tb = TrackTable(cap)
        tb.x[:] = rng.normal(0, 100, tb.x.shape)
        A = rng.normal(0, 3, (cap, 4, 4))
        tb.P[:] = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(4)
        tb.t[:] = 1000.0 - rng.uniform(0, 5, cap)
        tb.t[::7] = 1000.0  # dt = 0
        tb.t_upd[:] = tb.t
        tb.t_birth[:] = tb.t - 10
        tb.tid[:] = rng.permutation(cap)
        tb.status[:] = rng.integers(0, 4, cap)
        tb.was_conf[:] = rng.integers(0, 2, cap)
        tb.hits[:] = rng.integers(0, 50, cap)
        p = rng.uniform(0.01, 1, tb.class_p.shape)
        tb.class_p[:] = p / p.sum(axis=1, keepdims=True)
        tb.kinds[:] = rng.integers(0, 16, cap)
        tb.sensors[:] = rng.integers(0, 2**62, tb.sensors.shape, dtype=np.uint64)
        tb.merged_into[:] = rng.integers(-1, cap, cap)
        tb.x[3, 0] = np.nan  # a NaN state propagates, never raises
        XP = rng.normal(0, 100, (cap, 4))
        B = rng.normal(0, 10, (cap, 4, 4))
        PP = B @ B.transpose(0, 2, 1)
        pv = (rng.random(cap) < 0.3).astype(np.uint8)
        n = int(np.count_nonzero(tb.status[:hw] != 0))
        r0 = 3
        out = (
            np.full((n + r0, S_NF), -7.0),
            np.full((n + r0, 2), -7, dtype=np.int64),
            np.full((n + r0, 3), 7, dtype=np.uint8),
            np.full(n + r0, -7, dtype=np.int32),
            np.zeros((n + r0, tb.sensors.shape[1]), dtype=np.uint64),
        )
        _snap_rows(
            tb.x, tb.P, tb.t, tb.t_upd, tb.t_birth, tb.tid, tb.status, tb.was_conf, tb.hits,
            tb.class_p, tb.kinds, tb.sensors, tb.merged_into, hw, 1000.0, kpar, cpar, XP, PP,
            pv, *out, r0,
        )  # fmt: skip
        fl, ids, flags, hits, sens = out
        assert np.all(fl[:r0] == -7.0)  # rows before the offset untouched
        cols = {n: getattr(tb, n) for n in TrackTable.__slots__}
        want = naive.snapshot_rows(cols, hw, 1000.0, cpar[:, C_Q], kpar[:, K_WEIGHT], XP, PP, pv)
        assert len(want) == n
        for r, w in enumerate(want, start=r0):
            np.testing.assert_allclose(fl[r, S_X : S_X + 4], w["x"], rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(
                fl[r, S_P : S_P + 16].reshape(4, 4), w["P"], rtol=1e-12, atol=1e-9
            )
            np.testing.assert_allclose(fl[r, S_SIG], w["sig"], rtol=1e-9)
            assert fl[r, S_CP:S_CONF].tolist() == w["class_p"].tolist()
            assert fl[r, S_CONF] == pytest.approx(w["conf"], abs=1e-15)
            assert (fl[r, S_TU], fl[r, S_TB]) == (w["t_upd"], w["t_birth"])
            assert tuple(ids[r]) == w["ids"]
            assert tuple(flags[r]) == w["flags"]
            assert hits[r] == w["hits"]
            assert sens[r].tolist() == w["sensors"].tolist()
        buf = np.full((n + r0) * S_WORDS, -7, dtype=np.int64)
        _snap_rows(
            tb.x, tb.P, tb.t, tb.t_upd, tb.t_birth, tb.tid, tb.status, tb.was_conf, tb.hits,
            tb.class_p, tb.kinds, tb.sensors, tb.merged_into, hw, 1000.0, kpar, cpar, XP, PP,
            pv, *_snap_views(buf), r0,
        )  # fmt: skip
        assert np.all(buf[: r0 * S_WORDS] == -7)
        snap = Snapshot._of_rows(1000.0, np.frombuffer(buf, SNAP_DTYPE)[r0:])
        assert len(snap) == n
        for r, w in enumerate(want):
            np.testing.assert_allclose(
                [snap.x[r], snap.y[r], snap.vx[r], snap.vy[r]], w["x"], rtol=1e-12, atol=1e-9
            )
            np.testing.assert_allclose(snap.cov[r], w["P"], rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(snap.pos_sigma[r], w["sig"], rtol=1e-9)
            assert snap.class_p[r].tolist() == w["class_p"].tolist()
            assert snap.confidence[r] == pytest.approx(w["conf"], abs=1e-15)
            assert (snap.t_update[r], snap.t_birth[r]) == (w["t_upd"], w["t_birth"])
            assert (snap.track_id[r], snap.merged_into[r]) == w["ids"]
            assert (snap.status[r], snap.was_confirmed[r], snap.kinds[r]) == w["flags"]
            assert snap.hits[r] == w["hits"]
            assert snap.sensors[r].tolist() == w["sensors"].tolist()


@pytest.mark.parametrize("seed", range(4))
def test_merge_matches_brute_force_twin(seed: int) -> None:
    """``_merge`` (candidates from x-buckets) against the twin (every pair within R in x and
    y, by brute force) on clusters of duplicate and walking-together tracks spread along a
    20 km strip, with ended and free slots among them: same merges, survivors, estimates,
    class posteriors and sets; ``pv`` marks exactly the live non-survivors."""
    from fusion.config import (
        C_Q,
        G_EPS,
        G_GROUP_CONF,
        G_GROUP_R,
        G_MERGE_GATE,
        G_MERGE_MAX_M,
        G_VTOL,
    )
    from fusion.merger import _merge

    rng = np.random.default_rng(200 + seed)
    cfg = TrackerConfig()
    g, _, cpar, prior = cfg.pack()
    C_fibre = np.ascontiguousarray(cfg.confusion()[int(Kind.FIBRE)])
    cap, hw, now = 128, 100, 5000.0
    tb = TrackTable(cap)
    centres = np.column_stack([rng.uniform(0, 20_000, 20), rng.uniform(0, 2_000, 20)])
    k = rng.integers(0, 20, hw)
    tb.x[:hw, :2] = centres[k] + rng.normal(0, 8, (hw, 2))
    tb.x[:hw, 2:] = rng.normal(0, 1.0, (hw, 2))
    A = rng.normal(0, 2, (hw, 4, 4))
    tb.P[:hw] = A @ A.transpose(0, 2, 1) + np.diag([25.0, 25.0, 1.0, 1.0])
    tb.t[:hw] = now - rng.uniform(0, 3, hw)
    tb.t_upd[:hw] = np.round(tb.t[:hw])
    tb.tid[:hw] = rng.permutation(1000)[:hw]
    tb.status[:hw] = rng.choice([0, 1, 2, 2, 2, 3], hw)
    tb.was_conf[:hw] = tb.status[:hw] == 2
    tb.hist[:hw] = rng.integers(0, 2**10, hw)
    tb.hits[:hw] = rng.integers(1, 30, hw)
    tb.miss[:hw] = rng.integers(0, 3, hw)
    p = rng.uniform(0.01, 1, (hw, tb.class_p.shape[1]))
    p[rng.random(hw) < 0.5, :2] *= 20  # half of them people
    tb.class_p[:hw] = p / p.sum(axis=1, keepdims=True)
    tb.kinds[:hw] = rng.integers(1, 16, hw)
    tb.sensors[:hw] = rng.integers(0, 2**40, (hw, tb.sensors.shape[1]), dtype=np.uint64)
    tb.last_sensor[:hw] = rng.integers(0, 3, hw)
    tb.merged_into[:hw] = -1
    tb.ctr[:] = [5000, cap - hw, int(np.isin(tb.status[:hw], (1, 2)).sum()), hw]
    cols = {n: getattr(tb, n).copy() for n in TrackTable.__slots__}
    XP = np.zeros((cap, 4))
    PP = np.zeros((cap, 4, 4))
    pv = np.full(cap, 7, dtype=np.uint8)
    n = _merge(
        tb.x, tb.P, tb.t, tb.t_upd, tb.tid, tb.status, tb.was_conf, tb.hist, tb.hits, tb.miss,
        tb.class_p, tb.kinds, tb.sensors, tb.last_sensor, tb.merged_into, tb.ctr, hw, now, g,
        cpar, prior, C_fibre, XP, PP, pv,
    )  # fmt: skip
    prm = {
        "merge_max": g[G_MERGE_MAX_M], "group_r": g[G_GROUP_R], "gate": g[G_MERGE_GATE],
        "vtol": g[G_VTOL], "group_conf": g[G_GROUP_CONF], "eps": g[G_EPS],
    }  # fmt: skip
    live0 = np.isin(cols["status"][:hw], (1, 2))
    want = naive.merge(cols, hw, now, prm, cpar[:, C_Q], prior, C_fibre)
    assert n == want > 3
    for name in ("status", "merged_into", "tid", "last_sensor", "kinds", "sensors", "hist",
                 "hits", "miss", "was_conf"):  # fmt: skip
        assert getattr(tb, name).tolist() == cols[name].tolist(), name
    for name in ("x", "P", "t", "t_upd", "class_p"):
        np.testing.assert_allclose(getattr(tb, name), cols[name], rtol=1e-9, atol=1e-9)
    survivors = set(tb.merged_into[:hw][tb.merged_into[:hw] >= 0].tolist())
    for i in range(hw):
        want_pv = bool(live0[i]) and int(tb.tid[i]) not in survivors
        assert bool(pv[i]) == want_pv, i
