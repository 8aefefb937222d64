"""Latency suite: device publish -> track update / alert published, through a real Mosquitto
and the live service, at several offered loads; the sustained maximum; a py-spy profile.

Set-up per load level (one fresh service each, one Mosquitto for all):

* the service is :func:`service.live.run_live` in this process (``metrics_port=None``, no
  Redis: embedded alert store, no journal), wall clock, ``step_s`` as stated per row;
* a device process (``python -m benchmarks.bench_latency --device ...``) publishes fibre
  batches every 100 ms from each of the site's 6 fibre units at QoS 1 (contract), sized
  to the offered load: half the events come from targets walking along the cable (one
  event per target per batch), a few from digging spots (one new spot per unit every 2 s,
  for alerts), the rest clutter. Each batch carries ``"bench_sent"`` (an extension field,
  ignored by the service) = its publish time. The same process subscribes to
  ``limes/v1/tracks/+`` and ``limes/v1/alerts/+`` and stamps each arrival.

What is measured (all on this machine's ``time.time()``):

* ingest lag: publish -> the batch accepted by the core (``Pipeline.accept``);
* track latency: publish -> arrival at the subscriber of the first track update of the
  step that consumed the batch. By design this includes the core's re-ordering hold
  (``hold_s``, 1 s: a step at ``now`` tracks the rows with ``t <= now - hold_s``) plus up
  to ``step_s`` of waiting for the next step, plus the step itself. Matching: a probe on
  ``Pipeline.accept``/``Pipeline.step`` (a subclass installed for the run) records which
  batches were accepted before each step, the newest event time of each batch, and the
  step's tracker time ``StepOutput.t`` (``now - hold_s``), which is the ``t`` of its track
  updates. The consuming step of a batch is the first step after its acceptance whose
  tracker time covers the batch's newest event (all its rows tracked);
* alert latency: for each alert opened, publish time of the newest batch from one of
  the alert's ``sensors`` wholly tracked by the step that raised it -> alert arrival
  (includes ``hold_s`` as above);
* backlog: the ingest lag's slope over the second half of the run; a level is sustained
  when the lag does not grow (slope < 0.05 s/s and final lag < 1 s) and the devices
  achieved >= 90 % of the offered rate. Service CPU = process CPU time / wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_common import Context, loadavg, mosquitto, percentiles, py_spy

PERIOD_S = 0.1
CLASSES = ("walking", "running", "unknown")


# ------------------------------------------------------------------ device process


def _device_batches(rate: float, cables: list[tuple[str, float]], rng: random.Random) -> Any:
    """Generator of ``(device, events_json_list)`` per tick (see the module doc)."""
    per = max(1, round(rate * PERIOD_S / len(cables)))
    n_tg = max(1, per // 2)
    tg = {
        d: [[rng.uniform(0, length), rng.choice((-1.5, 1.5))] for _ in range(n_tg)]
        for d, length in cables
    }
    digs: dict[str, list[tuple[float, float]]] = {d: [] for d, _ in cables}
    tick = 0
    while True:
        now = time.time()
        out = []
        for d, length in cables:
            evs = []
            for t in tg[d]:
                t[0] += t[1] * PERIOD_S
                if not 0 <= t[0] <= length:
                    t[1] = -t[1]
                    t[0] = min(max(t[0], 0.0), length)
                te = now - rng.random() * 0.05
                evs.append(
                    f'{{"t":{te:.3f},"chainage_m":{t[0] + rng.gauss(0, 5):.1f},'
                    f'"class":"walking","confidence":{0.6 + 0.3 * rng.random():.2f}}}'
                )
            if tick % 20 == 0:
                digs[d].append((rng.uniform(0, length), now + 10.0))
            digs[d] = [g for g in digs[d] if g[1] > now]
            for c, _ in digs[d]:
                evs.append(
                    f'{{"t":{now - 0.02:.3f},"chainage_m":{c + rng.gauss(0, 2):.1f},'
                    f'"class":"digging","confidence":0.9}}'
                )
            for _ in range(max(0, per - len(evs))):
                evs.append(
                    f'{{"t":{now - rng.random() * 0.05:.3f},"chainage_m":'
                    f'{rng.uniform(0, length):.1f},"class":"{rng.choice(CLASSES)}",'
                    f'"confidence":{0.2 + 0.5 * rng.random():.2f}}}'
                )
            out.append((d, evs))
        tick += 1
        yield out


async def _device(host: str, port: int, rate: float, seconds: float, seed: int) -> dict[str, Any]:
    import aiomqtt
    import msgspec

    import geo

    site = geo.default_site()
    cables = [(f.id, (f.to_m - f.from_m) * f.cable_factor) for f in site.fibre]
    gen = _device_batches(rate, cables, random.Random(seed))
    sent: list[tuple[str, int, float, int]] = []
    tracks: dict[float, list[float]] = {}
    alerts: list[dict[str, Any]] = []

    class _T(msgspec.Struct):
        t: float

    class _A(msgspec.Struct):
        t: float
        alert_id: str
        kind: str
        state: str
        sensors: list[str] = []

    dec_t = msgspec.json.Decoder(_T)
    dec_a = msgspec.json.Decoder(_A)
    ready = asyncio.Event()

    async def listen(sub: aiomqtt.Client) -> None:
        async for m in sub.messages:
            now = time.time()
            topic = m.topic.value
            payload = m.payload if isinstance(m.payload, bytes) else b""
            if topic.startswith("limes/v1/tracks/"):
                t = dec_t.decode(payload).t
                rec = tracks.get(t)
                if rec is None:
                    tracks[t] = [now, now, 1.0]
                else:
                    rec[1] = now
                    rec[2] += 1
            elif topic == "limes/v1/service/available":
                if payload == b"online":
                    ready.set()
            else:
                a = dec_a.decode(payload)
                alerts.append(
                    {
                        "arrival": now,
                        "t": a.t,
                        "kind": a.kind,
                        "state": a.state,
                        "alert_id": a.alert_id,
                        "sensors": a.sensors,
                    }
                )

    window = 200
    async with (
        aiomqtt.Client(host, port, identifier=f"bench-sub-{os.getpid()}") as sub,
        aiomqtt.Client(host, port, max_inflight_messages=window) as dev,
    ):
        dev.pending_calls_threshold = window + 1
        await sub.subscribe("limes/v1/tracks/+", qos=0)
        await sub.subscribe("limes/v1/alerts/+", qos=1)
        await sub.subscribe("limes/v1/service/available", qos=1)
        lt = asyncio.create_task(listen(sub))
        async with asyncio.timeout(30):
            await ready.wait()
        slots = asyncio.Semaphore(window)
        seq = dict.fromkeys((d for d, _ in cables), 0)

        async def one(topic: str, payload: bytes) -> None:
            try:
                await dev.publish(topic, payload, qos=1)
            finally:
                slots.release()

        t0 = time.time()
        behind = 0.0
        n_events = 0
        async with asyncio.TaskGroup() as tg:
            k = 0
            while time.time() - t0 < seconds:
                due = t0 + k * PERIOD_S
                delay = due - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    behind = max(behind, -delay)
                for d, evs in next(gen):
                    seq[d] += 1
                    now = time.time()
                    body = (
                        f'{{"v":1,"device":"{d}","seq":{seq[d]},"sent":{now:.3f},'
                        f'"bench_sent":{now:.6f},"events":[' + ",".join(evs) + "]}"
                    ).encode()
                    await slots.acquire()
                    sent.append((d, seq[d], now, len(evs)))
                    n_events += len(evs)
                    tg.create_task(one(f"limes/v1/sensors/fibre/{d}/events", body))
                k += 1
        pub_s = time.time() - t0
        await asyncio.sleep(2.0)  # drain: last steps, tracks and alerts
        lt.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lt
    return {
        "offered_events_per_s": rate,
        "published_events": n_events,
        "publish_s": pub_s,
        "achieved_events_per_s": n_events / pub_s if pub_s > 0 else 0.0,
        "max_behind_schedule_s": behind,
        "sent": sent,
        "tracks": {repr(k): v for k, v in tracks.items()},
        "alerts": alerts,
    }


# ------------------------------------------------------------------ service side


class _Probe:
    """Records accepted batches and steps of the pipeline of one run."""

    def __init__(self) -> None:
        self.accepts: list[tuple[float, str, int, int]] = []  # wall, device, seq, rows
        self.accept_tmax: list[float] = []  # newest event time of each accepted batch
        # now, w0, w1, n_acc, n_tr, t (the step's tracker time, StepOutput.t = now - hold_s)
        self.steps: list[tuple[float, float, float, int, int, float]] = []
        self.pipe: Any = None


def _probe_pipeline(probe: _Probe) -> type:
    from service.runtime import Pipeline

    class ProbePipeline(Pipeline):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            probe.pipe = self

        async def accept(self, res: Any) -> None:
            if res.seq >= 0:
                probe.accepts.append((time.time(), res.device, res.seq, len(res.meas)))
                tm = res.meas["t"]
                probe.accept_tmax.append(float(tm.max()) if len(tm) else -np.inf)
            await super().accept(res)

        async def step(self, now: float) -> Any:
            n = len(probe.accepts)
            w0 = time.time()
            out = await super().step(now)
            probe.steps.append((now, w0, time.time(), n, len(out.tracks), out.t))
            return out

    return ProbePipeline


@dataclass
class _Run:
    """One level's raw records: the probe, the device file, CPU share, profile."""

    probe: _Probe
    device_file: Path
    cpu_share: float
    profile: dict[str, Any] | None


async def _level(
    host: str,
    port: int,
    rate: int,
    step_s: float,
    seconds: float,
    seed: int,
    res_file: Path,
    prof: Path | None,
) -> _Run:
    import geo
    from drivers import MqttSettings
    from service import live

    probe = _Probe()
    names = vars(live)  # the probe replaces the Pipeline class run_live builds, for this run
    orig = names["Pipeline"]
    names["Pipeline"] = _probe_pipeline(probe)
    stop = asyncio.Event()
    settings = live.LiveSettings(
        mqtt=MqttSettings(host=host, port=port, client_id=f"bench-svc-{rate}-{step_s}-{seed}"),
        step_s=step_s,
        metrics_port=None,
        journal=False,
    )
    try:
        svc = asyncio.create_task(live.run_live(geo.default_site(), settings, stop))
        cmd = [sys.executable, "-m", "benchmarks.bench_latency", "--device", host, str(port)]
        cmd += [str(rate), str(seconds), str(seed), str(res_file)]
        c0, w0 = time.process_time(), time.perf_counter()
        proc = await asyncio.create_subprocess_exec(*cmd)
        spy: contextlib.AbstractContextManager[dict[str, Any]] = (
            py_spy(os.getpid(), seconds, prof) if prof is not None else contextlib.nullcontext({})
        )
        with spy as prof_res:
            rc = await proc.wait()
        cpu = (time.process_time() - c0) / (time.perf_counter() - w0)
        stop.set()
        await svc
    finally:
        names["Pipeline"] = orig
    if rc != 0:
        msg = f"device process failed (rc {rc})"
        raise RuntimeError(msg)
    return _Run(probe, res_file, cpu, prof_res if prof is not None else None)


def _measure(
    host: str,
    port: int,
    rate: int,
    step_s: float,
    seconds: float,
    seed: int,
    work: Path,
    prof: Path | None,
) -> dict[str, Any]:
    """Run one level and analyse it."""
    res_file = work / f"latency-device-{rate}-{step_s}.json"
    r = asyncio.run(_level(host, port, rate, step_s, seconds, seed, res_file, prof))
    dev = json.loads(r.device_file.read_text())
    out = _analyse(r.probe, dev, step_s)
    out["service_cpu_share"] = round(r.cpu_share, 3)
    if r.profile is not None:
        out["profile"] = r.profile
    return out


def _analyse(probe: _Probe, dev: dict[str, Any], step_s: float) -> dict[str, Any]:
    sent = {(d, s): w for d, s, w, _ in dev["sent"]}
    acc = probe.accepts
    acc_sent = np.array([sent.get((d, s), np.nan) for _, d, s, _ in acc])
    acc_wall = np.array([w for w, _, _, _ in acc])
    lag = acc_wall - acc_sent
    ok = np.isfinite(lag)
    st = probe.steps
    cuts = np.array([s[3] for s in st], dtype=np.int64)
    # track updates and alerts carry the step's tracker time (StepOutput.t = now - hold_s)
    step_t = [s[5] for s in st]
    arrivals = {float(k): v for k, v in dev["tracks"].items()}
    # track latency: accept i consumed by the first step j with cuts[j] > i whose tracker
    # time covers the batch's newest event (the core holds rows newer than now - hold_s)
    t_arr = np.array(step_t)
    tmax = probe.accept_tmax
    track_lat = []
    proc_lat = []
    for i in np.flatnonzero(ok):
        j = int(np.searchsorted(cuts, i, side="right"))
        j = max(j, int(np.searchsorted(t_arr, tmax[i], side="left")))
        if j >= len(st):
            continue
        proc_lat.append(st[j][2] - acc_sent[i])
        a = arrivals.get(step_t[j])
        if a is not None:
            track_lat.append(a[0] - acc_sent[i])
    # alert latency: newest batch from the alert's sensors wholly tracked by its step
    # (accepted before it, newest event at or before its tracker time)
    by_dev: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    tmax_arr = np.array(tmax)
    for d in {d for _, d, _, _ in acc}:
        idx = np.array([i for i, a in enumerate(acc) if a[1] == d and ok[i]], dtype=np.int64)
        by_dev[d] = (idx, acc_sent[idx], tmax_arr[idx])
    alert_lat = []
    for a in dev["alerts"]:
        if a["state"] != "open" or not len(t_arr):
            continue
        j = int(np.searchsorted(t_arr, a["t"], side="right")) - 1
        if j < 0:
            continue
        best = -np.inf
        for d in a["sensors"] or list(by_dev):
            if d in by_dev:
                idx, s, tm = by_dev[d]
                k = int(np.searchsorted(idx, cuts[j], side="left")) - 1
                while k >= 0 and tm[k] > t_arr[j]:
                    k -= 1
                if k >= 0:
                    best = max(best, float(s[k]))
        if np.isfinite(best):
            alert_lat.append(a["arrival"] - best)
    # backlog: lag slope over the second half (by publish time)
    xs, ys = acc_sent[ok], lag[ok]
    slope = 0.0
    if len(xs) > 10:
        h = xs >= np.median(xs)
        slope = float(np.polyfit(xs[h] - xs[h][0], ys[h], 1)[0]) if h.sum() > 2 else 0.0
    tail_lag = float(np.mean(ys[-max(1, len(ys) // 10) :])) if len(ys) else float("nan")
    n_sent = len(dev["sent"])
    accepted_rows = int(sum(r for _, _, _, r in acc))
    achieved = dev["achieved_events_per_s"]
    growing = bool(slope >= 0.05 or tail_lag >= 1.0 or len(acc) < 0.98 * n_sent)
    step_dur = [s[2] - s[1] for s in st]
    core = probe.pipe.core if probe.pipe is not None else None
    hold_s = float(core.hold_s) if core is not None else None
    rows = int(core.counters.rows) if core is not None else 0
    replayed = int(core.counters.replayed_rows) if core is not None else 0
    return {
        "offered_events_per_s": dev["offered_events_per_s"],
        "achieved_events_per_s": round(achieved),
        "accepted_events_per_s": round(accepted_rows / dev["publish_s"]),
        "step_s": step_s,
        "batches_sent": n_sent,
        "batches_accepted": len(acc),
        "devices_max_behind_s": round(dev["max_behind_schedule_s"], 3),
        "ingest_lag_ms": percentiles(ys),
        "processed_ms": percentiles(proc_lat),
        "track_ms": percentiles(track_lat),
        "alert_ms": percentiles(alert_lat),
        "alerts_opened": sum(1 for a in dev["alerts"] if a["state"] == "open"),
        "step_ms": percentiles(step_dur),
        "track_updates_per_step": percentiles([s[4] for s in st], scale=1.0),
        "hold_s": hold_s,
        "rows_tracked": rows,
        "rows_replayed": replayed,
        "lag_slope_s_per_s": round(slope, 4),
        "tail_lag_s": round(tail_lag, 3),
        "backlog_growing": growing,
        "sustained": bool(not growing and achieved >= 0.9 * dev["offered_events_per_s"]),
        "loadavg": loadavg(),
    }


def run(ctx: Context) -> dict[str, Any]:
    """Every load level, the small-step run and the ramp (see the module doc)."""
    from fusion.warm import warmup

    warmup()
    sz = ctx.sizes
    plan: list[tuple[str, int, float]] = [("load", r, 0.5) for r in sz.latency_loads]
    if sz.latency_small_step_s is not None:
        plan.append(("small_step", 10000, sz.latency_small_step_s))
    plan += [("ramp", r, 0.5) for r in sz.latency_ramp]
    prof_rate = 10000 if 10000 in sz.latency_loads else sz.latency_loads[-1]
    rows: list[dict[str, Any]] = []
    with mosquitto(ctx.work) as broker:
        for kind, rate, step_s in plan:
            prof = None
            if ctx.profile and kind == "load" and rate == prof_rate and sz.profile_seconds > 0:
                prof = ctx.out / f"profile_latency_{rate}.raw"
            r = _measure(
                broker.host, broker.port, rate, step_s, sz.latency_seconds, ctx.seed, ctx.work, prof
            )
            r["kind"] = kind
            rows.append(r)
            ctx.advance(f"latency: {rate} ev/s step {step_s}")
            if kind == "ramp" and not r["sustained"]:
                break  # beyond the maximum: higher loads only grow the backlog faster
    sustained = [r for r in rows if r["sustained"] and r["step_s"] == 0.5]
    best = max(sustained, key=lambda r: r["accepted_events_per_s"]) if sustained else None
    first_bad = [r for r in rows if not r["sustained"] and r["step_s"] == 0.5]
    return {
        "period_s": PERIOD_S,
        "devices": 6,
        "seconds_per_level": sz.latency_seconds,
        "levels": rows,
        "sustained_max_events_per_s": best["accepted_events_per_s"] if best else None,
        "first_unsustained_offered": (
            min(r["offered_events_per_s"] for r in first_bad) if first_bad else None
        ),
    }


def steps(ctx: Context) -> int:
    """Progress units of :func:`run`."""
    sz = ctx.sizes
    return len(sz.latency_loads) + len(sz.latency_ramp) + (sz.latency_small_step_s is not None)


def plot(res: dict[str, Any], out: Path) -> list[str]:
    """``latency.png``: track/alert p50/p99 and ingest lag vs offered load."""
    import matplotlib.pyplot as plt

    rows = sorted(
        (r for r in res.get("levels") or [] if r["step_s"] == 0.5),
        key=lambda r: r["offered_events_per_s"],
    )
    fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=90)
    xs = [r["offered_events_per_s"] for r in rows]
    for key, style in (("track_ms", "o-"), ("alert_ms", "s--"), ("ingest_lag_ms", "^:")):
        for q, alpha in (("p50", 1.0), ("p99", 0.5)):
            ys = [r[key][q] if r[key][q] is not None else np.nan for r in rows]
            ax.plot(xs, ys, style, alpha=alpha, label=f"{key[:-3]} {q}")
    ax.axhline(50, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered events/s (6 fibre units, batches every 100 ms)")
    ax.set_ylabel("ms (publish -> arrival)")
    ax.set_title("End-to-end latency, step_s = 0.5 s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(out / "latency.png")
    plt.close(fig)
    return ["latency.png"]


def main(argv: Sequence[str] | None = None) -> int:
    """``--device HOST PORT RATE SECONDS SEED OUT.json``: the device + subscriber process."""
    ap = argparse.ArgumentParser(description="latency bench device process")
    ap.add_argument("--device", nargs=6, required=True)
    a = ap.parse_args(argv)
    host, port, rate, seconds, seed, out = a.device
    res = asyncio.run(_device(host, int(port), float(rate), float(seconds), int(seed)))
    Path(out).write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
