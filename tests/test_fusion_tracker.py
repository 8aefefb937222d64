"""Tracker behaviour on small deterministic scenarios."""

from __future__ import annotations

import numpy as np
import pytest

from fusion import Tracker, TrackerConfig, build
from fusion.measurements import MEAS_DTYPE, Cls, Kind, MeasArray
from fusion.state import CONFIRMED, DEAD, TENTATIVE
from fusion.tracker import ABSORBED, ASSIGNED, LATE, STARTED, Snapshot, StepResult

T0 = 1_764_000_000.0


def _walkers(seed: int = 1) -> list[MeasArray]:
    """Two walkers crossing at right angles at (0, 0), 1.5 m/s, 3 m noise, 1 Hz for 60 s."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(60):
        x = np.array([-45 + 1.5 * k, 0.0]) + rng.normal(0, 3, 2)
        y = np.array([0.0, -45 + 1.5 * k]) + rng.normal(0, 3, 2)
        out.append(
            build.point(
                np.full(2, T0 + k), x, y, np.full(2, 3.0), mid0=2 * k, cls=int(Cls.PERSON), conf=0.6
            )
        )
    return out


def test_crossing_walkers_keep_their_ids() -> None:
    trk = Tracker()
    owner: dict[int, set[int]] = {0: set(), 1: set()}
    res: StepResult | None = None
    for k, m in enumerate(_walkers()):
        res = trk.step(T0 + k, m)
        for r in res.records:
            owner[int(r["mid"]) % 2].add(int(r["track_id"]))
            assert r["action"] in (ASSIGNED, STARTED)
    assert len(owner[0]) == 1
    assert len(owner[1]) == 1
    assert owner[0] != owner[1]
    assert res is not None
    snap = res.snapshot
    assert np.all(snap.status == CONFIRMED)
    assert len(snap) == 2
    a = int(np.flatnonzero(snap.track_id == next(iter(owner[0])))[0])
    assert snap.x[a] == pytest.approx(-45 + 1.5 * 59, abs=8)
    assert snap.vx[a] == pytest.approx(1.5, abs=0.5)


def _two_sensor_rows(k: int) -> tuple[MeasArray, MeasArray]:
    """Target at (2k, k); sensor 0 sees it at t = k, sensor 1 at t = k + 0.5."""
    rng = np.random.default_rng(100 + k)
    a = build.point(
        [T0 + k], [2.0 * k + rng.normal(0, 5)], [k + rng.normal(0, 5)], [5.0], sensor=0, mid0=2 * k
    )
    tb = k + 0.5
    b = build.point(
        [T0 + tb],
        [2.0 * tb + rng.normal(0, 5)],
        [tb + rng.normal(0, 5)],
        [5.0],
        sensor=1,
        mid0=2 * k + 1,
    )
    return a, b


def test_late_measurement_equals_in_order_arrival() -> None:
    on_time = Tracker()
    late = Tracker()
    held: MeasArray | None = None
    r1 = r2 = None
    for k in range(40):
        a, b = _two_sensor_rows(k)
        r1 = on_time.step(T0 + k + 0.9, np.concatenate([a, b]))
        if k == 10:
            held = b  # arrives 20 s late
            r2 = late.step(T0 + k + 0.9, a)
        elif k == 30:
            assert held is not None
            r2 = late.step(T0 + k + 0.9, np.concatenate([a, b, held]))
            assert r2.replayed > 0
            assert r2.late_dropped == 0
        else:
            r2 = late.step(T0 + k + 0.9, np.concatenate([a, b]))
    assert r1 is not None
    assert r2 is not None
    s1, s2 = r1.snapshot, r2.snapshot
    np.testing.assert_array_equal(s1.track_id, s2.track_id)
    np.testing.assert_allclose(s1.x, s2.x, atol=1e-6)
    np.testing.assert_allclose(s1.vy, s2.vy, atol=1e-6)
    np.testing.assert_allclose(s1.cov, s2.cov, atol=1e-6)
    # and the late row did change the estimate relative to never receiving it
    never = Tracker()
    for k in range(40):
        a, b = _two_sensor_rows(k)
        r3 = never.step(T0 + k + 0.9, a if k == 10 else np.concatenate([a, b]))
    assert int(r3.snapshot.hits[0]) == int(s1.hits[0]) - 1 == int(s2.hits[0]) - 1


def _two_sensor_run(trk: Tracker, n: int, hold: dict[int, int]) -> list[StepResult]:
    """Steps ``k = 0..n-1`` at ``T0 + k + 0.9`` with both sensors' rows; sensor 1's row of
    step ``k`` in ``hold`` arrives at step ``hold[k]`` instead."""
    out = []
    waiting: dict[int, list[MeasArray]] = {}
    for k in range(n):
        a, b = _two_sensor_rows(k)
        rows = [a]
        if k in hold:
            waiting.setdefault(hold[k], []).append(b)
        else:
            rows.append(b)
        rows += waiting.pop(k, [])
        out.append(trk.step(T0 + k + 0.9, np.concatenate(rows)))
    return out


def test_row_later_than_oosm_after_s_gets_an_oosm_update() -> None:
    """A row 40 s late (> ``oosm_after_s`` = 30 s) goes to its track as evidence, without a
    rewind: the same track, one more hit, and the estimate of in-order arrival (where the
    40-s-old row no longer moves the estimate measurably, 4e-6 m)."""
    ref = _two_sensor_run(Tracker(), 60, {})
    got = _two_sensor_run(Tracker(), 60, {10: 50})
    assert got[50].oosm == 1
    assert got[50].replayed == 0
    rec = got[50].records
    late_rec = rec[rec["mid"] == 21]
    assert late_rec["action"].tolist() == [ASSIGNED]
    assert np.isfinite(late_rec["d2"][0])
    s1, s2 = ref[50].snapshot, got[50].snapshot
    assert s2.track_id.tolist() == [int(late_rec["track_id"][0])]
    assert int(s2.hits[0]) == int(s1.hits[0])
    assert s2.status.tolist() == s1.status.tolist() == [CONFIRMED]
    np.testing.assert_allclose(s2.x, s1.x, atol=1e-3)
    np.testing.assert_allclose(s2.y, s1.y, atol=1e-3)
    np.testing.assert_allclose(s2.cov, s1.cov, rtol=1e-3, atol=1e-6)


def test_oosm_row_updates_a_track_not_updated_since() -> None:
    """A track whose last update is older than the late row gets the ordinary update at the
    row's time (what in-order arrival would have done), not evidence only."""
    times = [float(k) for k in range(6)] + [8.0]
    rows = _obj_rows(0.0, 0, times, 0)
    other = _obj_rows(3000.0, 1, [float(k) for k in range(60)], 100)
    on_time: dict[int, list[MeasArray]] = {}
    late: dict[int, list[MeasArray]] = {}
    for k, r in enumerate(other):
        on_time.setdefault(k, []).append(r)
        late.setdefault(k, []).append(r)
    for t, r in zip(times, rows, strict=True):
        on_time.setdefault(int(t), []).append(r)
        late.setdefault(45 if t == 8.0 else int(t), []).append(r)
    ref = _run_steps(Tracker(_quiet_config()), on_time, 46)
    got = _run_steps(Tracker(_quiet_config()), late, 46)
    assert got[45].oosm == 1
    assert got[45].replayed == 0
    s1, s2 = ref[-1].snapshot, got[-1].snapshot
    o1, o2 = np.argsort(s1.x), np.argsort(s2.x)
    np.testing.assert_array_equal(s1.hits[o1], s2.hits[o2])
    np.testing.assert_allclose(s1.x[o1], s2.x[o2], atol=1e-6)
    np.testing.assert_allclose(s1.cov[o1], s2.cov[o2], atol=1e-6)


def test_rewind_applies_earlier_oosm_rows_again() -> None:
    """An OOSM row applied at step 50, then a row 4 s late at step 52 rewinds past step 50:
    the replay applies the OOSM row again in step 50, so the result equals the run where
    only the OOSM row was late."""
    ref = _two_sensor_run(Tracker(), 60, {10: 50})
    got = _two_sensor_run(Tracker(), 60, {10: 50, 48: 52})
    assert got[52].replayed > 0
    assert got[52].oosm == 0
    s1, s2 = ref[-1].snapshot, got[-1].snapshot
    np.testing.assert_array_equal(s1.track_id, s2.track_id)
    np.testing.assert_array_equal(s1.hits, s2.hits)
    np.testing.assert_allclose(s1.x, s2.x, atol=1e-6)
    np.testing.assert_allclose(s1.cov, s2.cov, atol=1e-6)


def test_measurement_beyond_horizon_is_counted_not_applied() -> None:
    trk = Tracker(TrackerConfig(horizon_s=5.0))
    for k in range(20):
        a, _ = _two_sensor_rows(k)
        trk.step(T0 + k + 0.9, a)
    _, old = _two_sensor_rows(2)
    res = trk.step(T0 + 20.9, old)
    assert res.late_dropped == 1
    assert res.records["action"].tolist() == [LATE]
    assert trk.counters.late_dropped == 1


def _fibre_crossing(
    t0: float, x0: float, people: tuple[float, ...], seconds: int, mid0: int
) -> list[MeasArray]:
    """People crossing a cable along the x axis at ``x0 + offset``: one event each per second."""
    rng = np.random.default_rng(int(x0))
    out = []
    for k in range(seconds):
        n = len(people)
        xs = x0 + np.array(people) + rng.normal(0, 2.0, n)
        out.append(
            build.fibre(
                np.full(n, t0 + k),
                xs,
                np.zeros(n),
                np.ones(n),
                np.zeros(n),
                extent=8.0,
                cls=int(Cls.PERSON),
                conf=0.6,
                mid0=mid0 + n * k,
            )
        )
    return out


def test_fibre_only_intrusion_becomes_confirmed_track() -> None:
    trk = Tracker()
    ids: set[int] = set()
    res = None
    for k, m in enumerate(_fibre_crossing(T0, 5000.0, (0.0,), 12, 0)):
        res = trk.step(T0 + k + 0.5, m)
        ids |= set(res.records["track_id"].tolist())
    assert res is not None
    snap = res.snapshot
    assert len(ids) == 1
    assert len(snap) == 1
    assert snap.status[0] == CONFIRMED
    assert int(np.argmax(snap.class_p[0])) == int(Cls.PERSON)
    assert snap.confidence[0] == pytest.approx(0.5)  # fibre alone: lower confidence
    # the fibre's covariance stays elongated along the cable (x) versus across (y)
    assert snap.cov[0, 0, 0] < snap.cov[0, 1, 1]


def test_lone_fibre_event_is_a_tentative_track() -> None:
    trk = Tracker()
    res = trk.step(T0 + 1, build.fibre([T0], [10.0], [0.0], [1.0], [0.0], mid0=7))
    assert res.records["action"].tolist() == [STARTED]
    assert res.snapshot.status.tolist() == [TENTATIVE]


def test_group_walking_over_fibre_is_one_group_track() -> None:
    trk = Tracker()
    res = None
    for k, m in enumerate(_fibre_crossing(T0, 8000.0, (0.0, 7.0, 13.0), 15, 0)):
        res = trk.step(T0 + k + 0.5, m)
    assert res is not None
    snap = res.snapshot
    live = snap.status != 3
    assert live.sum() == 1
    assert int(np.argmax(snap.class_p[live][0])) == int(Cls.GROUP)
    assert (res.records["action"] == ABSORBED).sum() >= 1


def test_corroboration_by_thermal_raises_confidence() -> None:
    trk = Tracker(n_sensors=2)
    res = None
    for k, m in enumerate(_fibre_crossing(T0, 1000.0, (0.0,), 10, 0)):
        t = T0 + k
        cam = build.polar(
            Kind.THERMAL,
            [t + 0.2],
            [1000.0],
            [-800.0],
            [0.0],
            r=[800.0],
            sr=40.0,
            sensor=1,
            mid0=1000 + k,
            cls=int(Cls.PERSON),
            conf=0.8,
        )
        m["sensor"] = 0
        res = trk.step(t + 0.5, np.concatenate([m, cam]))
    assert res is not None
    snap = res.snapshot
    live = np.flatnonzero(snap.status == CONFIRMED)
    assert len(live) == 1
    assert snap.confidence[live[0]] > 0.8
    assert snap.sensor_indices(int(live[0])) == [0, 1]
    assert snap.class_p[live[0], int(Cls.PERSON)] > 0.6


def test_every_row_gets_a_record_and_invalid_rows_are_reported() -> None:
    trk = Tracker()
    m = build.point(np.full(3, T0), [0.0, np.nan, 500.0], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0])
    m["t"][2] = np.nan
    res = trk.step(T0 + 1, m)
    assert sorted(res.records["mid"].tolist()) == [0, 1, 2]
    assert res.invalid == 2


def test_step_validates_input() -> None:
    trk = Tracker()
    with pytest.raises(TypeError, match="MEAS_DTYPE"):
        trk.step(T0, np.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        trk.step(float("nan"), None)


def test_missed_scans_delete_tracks_and_report_lost_once() -> None:
    trk = Tracker()
    statuses = []
    for k in range(12):
        # the scanning sensor keeps reporting (a far clutter plot), the target is gone at k=5
        x = 0.0 if k < 5 else 5000.0 + 1000.0 * k
        res = trk.step(T0 + k, build.point([T0 + k], [x], [0.0], [5.0], mid0=k))
        near = np.abs(res.snapshot.x) < 100
        statuses.append(res.snapshot.status[near].tolist())
    assert statuses[4] == [CONFIRMED]
    assert statuses.count([3]) == 1  # reported once as ended, after 5 missed scans
    assert statuses.index([3]) == 9
    assert statuses[-1] == []


def _quiet_config(timeout_s: float = 60.0) -> TrackerConfig:
    """Point sensors that do not scan (no per-frame misses), one timeout for every class."""
    base = TrackerConfig()
    kinds = dict(base.kinds)
    pd, lam, _, absorb, w = kinds["point"]
    kinds["point"] = (pd, lam, False, absorb, w)
    classes = {c: (q, timeout_s, sv) for c, (q, _, sv) in base.classes.items()}
    return TrackerConfig(kinds=kinds, classes=classes)


def _obj_rows(x0: float, sensor: int, times: list[float], mid0: int) -> list[MeasArray]:
    """One row per time for an object moving at +1 m/s along y from ``(x0, 0)``."""
    rng = np.random.default_rng(mid0)
    return [
        build.point(
            [T0 + t], [x0 + rng.normal(0, 3)], [t + rng.normal(0, 3)], [3.0], sensor=sensor,
            mid0=mid0 + k,
        )
        for k, t in enumerate(times)
    ]  # fmt: skip


def _run_steps(trk: Tracker, arrivals: dict[int, list[MeasArray]], n: int) -> list[StepResult]:
    out = []
    for k in range(n):
        rows = arrivals.get(k, [])
        m = np.concatenate(rows) if rows else None
        out.append(trk.step(T0 + k + 0.9, m))
    return out


def _ids_near(res: StepResult, x0: float) -> list[tuple[int, int]]:
    s = res.snapshot
    near = np.abs(s.x - x0) < 100
    return list(zip(s.track_id[near].tolist(), s.status[near].tolist(), strict=True))


def test_late_row_that_starts_a_track_earlier_keeps_published_ids() -> None:
    """Object P (sensor 0) is first seen at 5.5 s, object Q (sensor 1) at 5.2 s, but Q's first
    row arrives only at 12.9 s. On time, Q starts first; late, P was published first. The
    rewind must not hand P's published id to Q (and Q's to P): ids follow the objects, a
    confirmed id never turns tentative, and the estimates equal in-order arrival."""
    p_rows = _obj_rows(0.0, 0, [5.5 + k for k in range(20)], 0)
    q_rows = _obj_rows(5000.0, 1, [5.2 + k for k in range(20)], 1000)
    in_order: dict[int, list[MeasArray]] = {}
    late: dict[int, list[MeasArray]] = {}
    for k in range(20):
        in_order.setdefault(5 + k, []).extend([p_rows[k], q_rows[k]])
        late.setdefault(5 + k, []).append(p_rows[k])
        late.setdefault(12 if k == 0 else 5 + k, []).append(q_rows[k])
    ref = _run_steps(Tracker(_quiet_config()), in_order, 26)
    trk = Tracker(_quiet_config())
    got = _run_steps(trk, late, 26)
    assert got[12].replayed > 0
    assert trk.counters.replays == 1
    for x0 in (0.0, 5000.0):
        seen = [_ids_near(r, x0) for r in got]
        ids = {i for s in seen for i, _ in s}
        assert len(ids) == 1, (x0, seen)  # one id per object over the whole run
        statuses = [st for s in seen for _, st in s]
        first_conf = statuses.index(CONFIRMED)
        assert set(statuses[first_conf:]) == {CONFIRMED}, statuses
    # same estimates as in-order arrival (ids may differ: a published id is kept)
    s1, s2 = ref[-1].snapshot, got[-1].snapshot
    o1, o2 = np.argsort(s1.x), np.argsort(s2.x)
    np.testing.assert_allclose(s1.x[o1], s2.x[o2], atol=1e-6)
    np.testing.assert_allclose(s1.vy[o1], s2.vy[o2], atol=1e-6)
    np.testing.assert_allclose(s1.cov[o1], s2.cov[o2], atol=1e-6)


def test_late_row_reviving_an_ended_track_reports_each_id_ended_once() -> None:
    """P is seen 0..5 s, goes quiet (timeout 4 s: reported ended at 9.9 s), and is seen again
    from 11 s (a new track). A row from 8 s arriving at 12.9 s keeps P alive in the replayed
    timeline: the ended id stays ended (a fresh id continues it), the track started at 11 s
    ends now pointing to its heir, nothing ends twice, and P is tracked under one live id."""
    times = [float(k) for k in range(6)] + [8.0] + [11.0 + k for k in range(10)]
    rows = _obj_rows(0.0, 0, times, 0)
    arrivals: dict[int, list[MeasArray]] = {}
    for t, r in zip(times, rows, strict=True):
        arrivals.setdefault(12 if t == 8.0 else int(t), []).append(r)
    trk = Tracker(_quiet_config(timeout_s=4.0))
    got = _run_steps(trk, arrivals, 21)
    assert got[12].replayed > 0
    ended: dict[int, int] = {}
    for k, res in enumerate(got):
        s = res.snapshot
        for i, st in zip(s.track_id.tolist(), s.status.tolist(), strict=True):
            assert i not in ended, (k, i, "row after its end")
            if st == DEAD:
                ended[i] = k
    assert len(ended) == 2  # P's first id (timeout) and the 11 s track (replaced at 12.9 s)
    last = got[-1].snapshot
    assert last.status.tolist() == [CONFIRMED]
    assert int(last.track_id[0]) not in ended
    dead12 = got[12].snapshot
    m = dead12.status == DEAD
    assert dead12.merged_into[m].tolist() == [int(last.track_id[0])]


def test_late_row_after_a_quiet_spell_equals_in_order_arrival() -> None:
    """Nothing newer than P's last row (5 s) was processed when its 8 s row arrives at 13.9 s,
    but P already timed out at 11.9 s (timeout 6 s): the row must still rewind (in order it
    would have kept P alive) instead of starting a new track."""
    times = [float(k) for k in range(6)] + [8.0]
    rows = _obj_rows(0.0, 0, times, 0)
    on_time = {int(t): [r] for t, r in zip(times, rows, strict=True)}
    late = {13 if t == 8.0 else int(t): [r] for t, r in zip(times, rows, strict=True)}
    ref = _run_steps(Tracker(_quiet_config(timeout_s=6.0)), on_time, 14)
    got = _run_steps(Tracker(_quiet_config(timeout_s=6.0)), late, 14)
    assert got[13].replayed > 0
    s1, s2 = ref[-1].snapshot, got[-1].snapshot
    assert s1.status.tolist() == [CONFIRMED]
    assert s2.status.tolist() == [CONFIRMED]
    assert int(s2.hits[0]) == len(times)
    np.testing.assert_allclose(s1.x, s2.x, atol=1e-6)
    np.testing.assert_allclose(s1.cov, s2.cov, atol=1e-6)


def test_rewind_into_a_replays_checkpoint_keeps_ids_and_reports_nothing_unpublished() -> None:
    """P lives 10-13 s and times out (4 s); Q goes on. Q's 8 s row arrives at 20.9 s: the
    replay re-creates P (its id already ended, so P runs under an id nobody sees and ends
    silently) and takes checkpoints as it goes. Q's 14 s row arrives at 22.9 s and rewinds
    into one of those checkpoints, where P is live under that unpublished id: when P ends
    again it must not be reported (no ``lost`` for an id never published), every id is
    reported ended at most once, and Q keeps one id. S starts at 16 s, after that
    checkpoint: the second replay re-creates it and must give it back its published id
    (which is lower than the checkpoint's id counter, as the first replay reconciled it)."""
    p_rows = _obj_rows(0.0, 0, [10.0, 11.0, 12.0, 13.0], 0)
    s_times = [16.0 + k for k in range(14)]
    q_times = [float(k) for k in range(30)]
    q_rows = _obj_rows(5000.0, 1, q_times, 1000)
    arrivals: dict[int, list[MeasArray]] = {}
    for k, r in zip([10, 11, 12, 13], p_rows, strict=True):
        arrivals.setdefault(k, []).append(r)
    for tq, r in zip(q_times, q_rows, strict=True):
        at = {8.0: 20, 14.0: 22}.get(tq, int(tq))
        arrivals.setdefault(at, []).append(r)
    for ts, r in zip(s_times, _obj_rows(-5000.0, 2, s_times, 2000), strict=True):
        arrivals.setdefault(int(ts), []).append(r)
    trk = Tracker(_quiet_config(timeout_s=4.0))
    got = _run_steps(trk, arrivals, 30)
    assert got[20].replayed > 0
    assert got[22].replayed > 0
    assert trk.counters.replays == 2
    seen_live: set[int] = set()
    ended: set[int] = set()
    for k, res in enumerate(got):
        s = res.snapshot
        for i, st in zip(s.track_id.tolist(), s.status.tolist(), strict=True):
            assert i not in ended, (k, i, "row after its end")
            if st == DEAD:
                assert i in seen_live, (k, i, "ended but never published")
                ended.add(i)
            else:
                seen_live.add(i)
    q_ids = {i for r in got for i, _ in _ids_near(r, 5000.0)}
    assert len(q_ids) == 1
    s_ids = {i for r in got for i, _ in _ids_near(r, -5000.0)}
    assert len(s_ids) == 1
    p_ids = {i for r in got for i, _ in _ids_near(r, 0.0)}
    assert len(p_ids) == 1
    assert p_ids <= ended


def test_rewind_state_stays_bounded_by_the_horizon_under_repeated_late_rows() -> None:
    """Many late rows over a long run: every rewind replays at most the rows of the last
    ``horizon_s`` (the rewind state is pruned, not kept since the first rewind)."""
    horizon = 60.0
    trk = Tracker(TrackerConfig(horizon_s=horizon))
    n = 400
    held: dict[int, MeasArray] = {}
    replayed: list[int] = []
    for k in range(n):
        a, b = _two_sensor_rows(k)
        rows = [a]
        if k % 7 == 0:
            held[k + 20] = b  # sensor 1's row of step k arrives 20 s late (rewinds overlap)
        else:
            rows.append(b)
        if k in held:
            rows.append(held.pop(k))
        res = trk.step(T0 + k + 0.9, np.concatenate(rows))
        replayed.append(res.replayed)
    late_steps = [r for r in replayed if r > 0]
    assert len(late_steps) >= n // 7 - 2  # the late rows did rewind
    rows_per_s = 2
    assert max(replayed[n // 2 :]) <= rows_per_s * (horizon + 10)
    assert trk.counters.late_dropped == 0


def test_late_row_after_checkpoints_were_reused_equals_in_order_arrival() -> None:
    """With a 10 s horizon, pruned checkpoints' tables are reused for new checkpoints from
    step ~11 on; a row held back 4 steps at step 30 (its checkpoint is a reused table)
    must still give exactly the in-order result, at that step and after."""
    cfg = TrackerConfig(horizon_s=10.0, oosm_after_s=1e9)
    ref = _two_sensor_run(Tracker(cfg), 40, {})
    trk = Tracker(cfg)
    got = _two_sensor_run(trk, 40, {30: 34})
    assert got[34].replayed > 0
    assert got[34].late_dropped == 0
    for k in range(34, 40):
        s1, s2 = ref[k].snapshot, got[k].snapshot
        np.testing.assert_array_equal(s1.track_id, s2.track_id)
        np.testing.assert_array_equal(s1.status, s2.status)
        np.testing.assert_array_equal(s1.x, s2.x)
        np.testing.assert_array_equal(s1.cov, s2.cov)
        np.testing.assert_array_equal(s1.hits, s2.hits)
    # the horizon bounds the checkpoints kept
    assert len(trk._ckpts) <= 12


def _vehicle_and_group(seconds: int = 50) -> tuple[list[MeasArray], set[int], set[int]]:
    """A vehicle driving along a cable (the x axis) 35 m away at 8 m/s, seen by a thermal
    camera (class vehicle) and by the fibre (vehicle events, extent 25 m); from k = 20 (the
    vehicle 40 m before x = 0) to 35 a group of three stands on the cable at x = 0, 5, 10 m (fibre
    ``walking`` = person events, extent 8 m). One fibre event per row time (as the units send
    them). Returns the per-second rows, the vehicle's and the group's measurement ids."""
    rng = np.random.default_rng(7)
    out: list[MeasArray] = []
    veh: set[int] = set()
    grp: set[int] = set()
    mid = 0
    for k in range(seconds):
        t = T0 + k
        xv = -200.0 + 8.0 * k
        rows = []
        ox, oy = -700.0, 0.0
        dx, dy = xv - ox, 35.0 - oy
        cam = build.polar(
            Kind.THERMAL,
            [t + 0.2],
            [ox],
            [oy],
            [np.arctan2(dx, dy) + rng.normal(0, 0.005)],
            r=[np.hypot(dx, dy) + rng.normal(0, 10)],
            sr=20.0,
            saz=0.005,
            sensor=1,
            mid0=mid,
            cls=int(Cls.VEHICLE),
            conf=0.8,
        )
        veh.add(mid)
        mid += 1
        fv = build.fibre(
            [t + 0.1],
            [xv + rng.normal(0, 3)],
            [0.0],
            [1.0],
            [0.0],
            extent=25.0,
            cls=int(Cls.VEHICLE),
            conf=0.7,
            mid0=mid,
        )
        veh.add(mid)
        mid += 1
        rows += [fv, cam]
        if 20 <= k < 35:
            for n, off in enumerate((0.0, 5.0, 10.0)):
                rows.append(
                    build.fibre(
                        [t + 0.3 + 0.2 * n],
                        [off + rng.normal(0, 2)],
                        [0.0],
                        [1.0],
                        [0.0],
                        extent=8.0,
                        cls=int(Cls.PERSON),
                        conf=0.6,
                        mid0=mid,
                    )
                )
                grp.add(mid)
                mid += 1
        out.append(np.concatenate(rows))
    return out, veh, grp


def test_vehicle_passing_a_group_on_the_cable_keeps_its_own_fibre_events() -> None:
    """Classification-aided association: while a vehicle-class track passes 35 m from a group
    track on the cable, the group's person events feed the group track and the vehicle's
    vehicle events the vehicle track (without the class term the group track took a vehicle
    event, and the vehicle's rows went to two tracks).

    The class term only arbitrates between tracks: a person event with no other track near
    still joins the vehicle track (kinematic cost about -6.5 against a class term of at most
    +1.4), so the test starts the group's events before the vehicle arrives."""
    trk = Tracker(n_sensors=2)
    steps, veh, grp = _vehicle_and_group()
    owner: dict[int, int] = {}
    res: StepResult | None = None
    for k, m in enumerate(steps):
        res = trk.step(T0 + k + 0.9, m)
        for r in res.records:
            owner[int(r["mid"])] = int(r["track_id"])
    assert res is not None
    veh_ids = {owner[j] for j in veh}
    grp_ids = {owner[j] for j in grp}
    assert len(veh_ids) == 1, veh_ids
    assert not veh_ids & grp_ids
    snap = res.snapshot
    v = int(np.flatnonzero(snap.track_id == next(iter(veh_ids)))[0])
    assert snap.status[v] == CONFIRMED
    assert int(np.argmax(snap.class_p[v])) == int(Cls.VEHICLE)
    assert snap.vx[v] == pytest.approx(8.0, abs=1.0)
    assert abs(snap.vy[v]) < 1.0


def _mixed_rows(k: int, rng: np.random.Generator) -> MeasArray:
    """Step ``k`` of a busy mixed scene: a vehicle along a cable seen by the fibre and a
    thermal camera, two walkers seen by an MSV radar (with Doppler), and uniform point
    clutter (births, deaths, merges every step)."""
    t = T0 + k
    xv = -300.0 + 8.0 * k
    rows = [
        build.fibre([t + 0.1], [xv + rng.normal(0, 3)], [0.0], [1.0], [0.0], extent=25.0,
                    cls=int(Cls.VEHICLE), conf=0.7, sensor=0, mid0=1000 * k),
        build.polar(Kind.THERMAL, [t + 0.2], [-700.0], [0.0],
                    [np.arctan2(xv + 700.0, 35.0) + rng.normal(0, 0.005)],
                    r=[np.hypot(xv + 700.0, 35.0) + rng.normal(0, 10)], sr=20.0, saz=0.005,
                    sensor=1, mid0=1000 * k + 1, cls=int(Cls.VEHICLE), conf=0.8),
    ]  # fmt: skip
    for w, (x0, y0) in enumerate(((-50.0, -400.0), (60.0, -420.0))):
        x, y = x0, y0 + 1.5 * k
        dx, dy = x - 100.0, y + 1500.0
        rows.append(
            build.polar(Kind.MSV, [t + 0.3], [100.0], [-1500.0],
                        [np.arctan2(dx, dy) + rng.normal(0, 0.003)],
                        r=[np.hypot(dx, dy) + rng.normal(0, 5)], vr=[1.5 * dy / np.hypot(dx, dy)],
                        sensor=2, mid0=1000 * k + 2 + w)
        )  # fmt: skip
    n = int(rng.poisson(15))
    rows.append(
        build.point(np.full(n, t + 0.5), rng.uniform(-500, 500, n), rng.uniform(-500, 500, n),
                    np.full(n, 10.0), sensor=3, mid0=1000 * k + 10)
    )  # fmt: skip
    return np.concatenate(rows)


@pytest.mark.parametrize("horizon", [300.0, 0.0])
def test_one_call_fast_path_equals_the_general_path(
    horizon: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live in-order step (one kernel call, :meth:`Tracker._step_fast`) gives bit for bit
    the snapshots, records, table and checkpoints of the general path (rows, end of step and
    checkpoint as separate calls, what replays use), on a busy mixed-sensor scene."""
    cfg = TrackerConfig(horizon_s=horizon)
    steps = [_mixed_rows(k, np.random.default_rng(k)) for k in range(60)]

    def run() -> tuple[list[StepResult], Tracker]:
        trk = Tracker(cfg, n_sensors=4)
        return [trk.step(T0 + k + 0.9, m) for k, m in enumerate(steps)], trk

    fast, trk_f = run()
    calls = {"fast": 0}
    orig = Tracker._step_fast

    def no_fast(self: Tracker, t: float, meas: MeasArray) -> StepResult | None:
        calls["fast"] += 1
        return None

    monkeypatch.setattr(Tracker, "_step_fast", no_fast)
    slow, trk_s = run()
    monkeypatch.setattr(Tracker, "_step_fast", orig)
    assert calls["fast"] == len(steps)  # the general path ran every step
    assert trk_f.counters.merges > 0  # the scene exercised merging
    for a, b in zip(fast, slow, strict=True):
        _same_step(a, b)
    assert len(trk_f._ckpts) == len(trk_s._ckpts) == (len(steps) + 1 if horizon else 1)
    _same_tracker(trk_f, trk_s)


def _same_step(a: StepResult, b: StepResult) -> None:
    """Same snapshot (every column, bit for bit), records and counts."""
    for name in ("track_id", "status", "x", "y", "vx", "vy", "cov", "pos_sigma", "class_p",
                 "confidence", "kinds", "sensors", "t_update", "t_birth", "hits",
                 "merged_into", "was_confirmed"):  # fmt: skip
        assert getattr(a.snapshot, name).tobytes() == getattr(b.snapshot, name).tobytes(), name
    assert a.snapshot.t == b.snapshot.t
    assert a.records.tobytes() == b.records.tobytes()
    assert (a.replayed, a.late_dropped, a.invalid, a.oosm) == (
        b.replayed,
        b.late_dropped,
        b.invalid,
        b.oosm,
    )


def _same_tracker(a: Tracker, b: Tracker) -> None:
    """Same table, counters, checkpoints and rewind state (log rows by content)."""
    for name in a.table.__slots__:
        assert getattr(a.table, name).tobytes() == getattr(b.table, name).tobytes(), name
    assert a.counters == b.counters
    assert (a.frontier, a._settled_t) == (b.frontier, b._settled_t)
    assert [(c.step_t, c.frontier, c.settled) for c in a._ckpts] == [
        (c.step_t, c.frontier, c.settled) for c in b._ckpts
    ]
    for ca, cb in zip(a._ckpts, b._ckpts, strict=True):
        ta, tb = ca.table(), cb.table()
        for name in ta.__slots__:
            assert getattr(ta, name).tobytes() == getattr(tb, name).tobytes(), name
    assert a._step_times == b._step_times
    assert [t for t, _ in a._ended] == [t for t, _ in b._ended]
    for (_, ea), (_, eb) in zip(a._ended, b._ended, strict=True):
        assert ea.tobytes() == eb.tobytes()
    # the log may be chunked differently (a run keeps one chunk per call): same rows and
    # owners newer than the oldest checkpoint (what a rewind reads)
    f = a._ckpts[0].frontier if a._ckpts else -np.inf

    def rows(trk: Tracker) -> tuple[bytes, bytes]:
        if not trk._log:
            return b"", b""
        log = np.concatenate([np.frombuffer(c, dtype=MEAS_DTYPE) for c in trk._log])
        tid = np.concatenate([o[1] for o in trk._own])
        keep = log["t"] > f
        return log[keep].tobytes(), tid[keep].tobytes()

    assert rows(a) == rows(b)


def _batch(steps: list[MeasArray]) -> tuple[MeasArray, np.ndarray]:
    offs = np.zeros(len(steps) + 1, dtype=np.int64)
    offs[1:] = np.cumsum([len(m) for m in steps])
    return np.concatenate(steps), offs


@pytest.mark.parametrize("horizon", [300.0, 20.0, 0.0])
def test_run_equals_step_by_step(horizon: float) -> None:
    """``Tracker.run`` over a busy mixed-sensor scene (births, deaths, merges, the table
    growing mid-run) gives bit for bit the step results and tracker state of calling
    ``step`` per scan; with a 20 s horizon the run itself prunes (its early checkpoints are
    never taken), and a late row afterwards rewinds into what it kept exactly as after the
    step-by-step run."""
    cfg = TrackerConfig(horizon_s=horizon)
    steps = [_mixed_rows(k, np.random.default_rng(k)) for k in range(60)]
    times = np.array([T0 + k + 0.9 for k in range(60)])
    trk_s = Tracker(cfg, n_sensors=4)
    by_step = [trk_s.step(float(t), m) for t, m in zip(times, steps, strict=True)]
    trk_b = Tracker(cfg, n_sensors=4)
    rows, offs = _batch(steps)
    res = trk_b.run(times, rows, offs)
    assert len(res) == len(steps)
    assert trk_s.counters.merges > 0
    assert len(res.parts) >= 2  # the table grew mid-run: the kernel stopped and went on
    for k in range(len(steps)):
        _same_step(by_step[k], res[k])
    _same_tracker(trk_s, trk_b)
    if horizon:
        assert len(trk_b._ckpts) == min(len(steps) + 1, int(horizon) + 1)  # + the empty one
    # late rows after the run: a rewind (5 s late) and an OOSM update (45 s late)
    late = np.concatenate([
        build.point([T0 + 55.5], [10.0], [20.0], [10.0], sensor=3, mid0=900_000),
        build.point([T0 + 15.5], [-30.0], [40.0], [10.0], sensor=3, mid0=900_001),
    ])  # fmt: skip
    ra = trk_s.step(T0 + 60.9, late)
    rb = trk_b.step(T0 + 60.9, late.copy())
    _same_step(ra, rb)
    _same_tracker(trk_s, trk_b)
    if horizon:
        assert ra.replayed > 0


def test_run_hands_other_steps_to_step() -> None:
    """Steps the one-call path declines (late rows, unsorted rows, a sensor beyond the
    tables) go through ``step`` inside ``run``; the result is still that of step-by-step."""
    steps = [_mixed_rows(k, np.random.default_rng(50 + k)) for k in range(30)]
    steps[10] = np.concatenate([steps[10], build.point([T0 + 7.2], [0.0], [0.0], [10.0],
                                                       sensor=3, mid0=800_000)])  # fmt: skip
    steps[15] = steps[15][::-1].copy()
    steps[20] = np.concatenate([steps[20], build.point([T0 + 20.95], [5.0], [5.0], [10.0],
                                                       sensor=6, mid0=800_001)])  # fmt: skip
    times = np.array([T0 + k + 0.9 for k in range(30)])
    trk_s = Tracker(n_sensors=4)
    by_step = [trk_s.step(float(t), m) for t, m in zip(times, steps, strict=True)]
    trk_b = Tracker(n_sensors=4)
    rows, offs = _batch(steps)
    res = trk_b.run(times, rows, offs)
    assert sum(isinstance(p, StepResult) for p in res.parts) >= 2
    assert by_step[10].replayed > 0
    for k in range(len(steps)):
        _same_step(by_step[k], res[k])
    _same_tracker(trk_s, trk_b)


def test_run_validates_input() -> None:
    trk = Tracker()
    rows = build.point([T0, T0 + 1], [0.0, 1.0], [0.0, 1.0], [5.0, 5.0])
    with pytest.raises(ValueError, match="offsets"):
        trk.run([T0, T0 + 1], rows, [0, 1])
    with pytest.raises(ValueError, match="offsets"):
        trk.run([T0, T0 + 1], rows, [0, 2, 1])
    with pytest.raises(ValueError, match="finite"):
        trk.run([T0, np.nan], rows, [0, 1, 2])
    with pytest.raises(TypeError):
        trk.run([T0], np.zeros(2, dtype=[("t", "f8")]), [0, 2])
    assert trk.counters.steps == 0
    res = trk.run([T0, T0 + 1], rows, [0, 1, 2])
    assert len(res) == 2
    assert trk.counters.steps == 2
    with pytest.raises(IndexError):
        res[2]


def test_snapshot_columns_construction_and_replace() -> None:
    """A step's snapshot reads its columns from the kernel's rows; one built from whole
    columns keeps them as given; ``replace`` changes only what it names; a missing or
    unknown column is a TypeError."""
    trk = Tracker()
    rows = build.point([T0, T0], [0.0, 500.0], [0.0, 40.0], [5.0, 5.0])
    snap = trk.step(T0, rows).snapshot
    assert len(snap) == 2
    assert snap.x.tolist() == [0.0, 500.0]
    assert snap.y.tolist() == [0.0, 40.0]
    assert snap.status.tolist() == [TENTATIVE, TENTATIVE]
    assert snap.track_id.tolist() == [1, 2]
    assert snap.cov.shape == (2, 4, 4)
    assert snap.x is snap.x  # made once, then kept
    cols = {c: getattr(snap, c) for c in Snapshot.COLUMNS}
    again = Snapshot(snap.t, **cols)
    assert all(getattr(again, c) is cols[c] for c in Snapshot.COLUMNS)
    moved = snap.replace(t=T0 + 1, x=snap.x + 5.0)
    assert moved.t == T0 + 1
    assert moved.x.tolist() == [5.0, 505.0]
    assert moved.y is snap.y
    assert snap.x.tolist() == [0.0, 500.0]  # the original is unchanged
    with pytest.raises(TypeError):
        Snapshot(T0, x=snap.x)
    with pytest.raises(TypeError):
        snap.replace(speed=snap.x)
