"""``limes score``: tracks and alerts of a run against the simulator's truth.

Metrics (all times UNIX epoch seconds, distances in the site's working CRS):

* **GOSPA over time** (c = 100 m, p = 1, alpha = 2; ``benchmarks.gospa``): at every
  report time ``T = start_t + j * track_report_s`` over the scenario, truth = the
  objects whose sample is ``covered`` (in some sensor's coverage; positions linearly
  interpolated between truth samples), estimates = the tracks whose latest update at or
  before ``T`` is ``confirmed`` and at most ``2 * track_report_s + 0.5`` s old,
  predicted to ``T`` with their velocity. Reported: the mean of GOSPA and of its parts
  (localisation, missed ``c/2`` each, false ``c/2`` each) over the report times.
* **Crossing recall**: a truth ``crossing`` is detected when a ``crossing`` alert opens
  (its first message, state ``open``) within ``match_m`` (300 m) of the crossing point
  and within ``[-30 s, +120 s]`` of its time. Recall = detected / crossings.
* **False crossing alerts per 100 km per day**: crossing alerts matching no truth
  crossing, divided by ``instrumented_km / 100`` and ``duration_s / 86400`` (both from
  the truth file's header).
* **Time to alert**: per detected crossing, the earliest of *its* alerts' ``t`` minus
  the crossing time; p50 and p95 (``numpy.percentile``, linear interpolation). A
  matching alert belongs to the one crossing it matches nearest (distance to the
  crossing point, then ``|dt|``), so two parties crossing 80 m and 9 s apart with an
  alert each are not both timed by the first alert; a crossing whose matching alerts
  all belong to other crossings (one alert joined both parties) uses its matching ones.
* **Alerts per intrusion**: mean number of distinct crossing alerts of each detected
  crossing, counted the same way (1 is ideal).
* **Approach recall** (``approach`` alerts vs truth ``approach`` events, window
  ``[-30 s, +300 s]``), **digging** (a ``digging`` alert within ``match_m`` during the
  digging, up to 120 s after it ends) and **faults** (a ``sensor_fault`` alert naming
  the device within 300 s of a fibre cut or a camera going offline).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from geo import Site
from sim_sensors._errors import ScoreInputError

F64 = npt.NDArray[np.float64]

MATCH_M = 300.0
CROSS_WINDOW = (-30.0, 120.0)
APPROACH_WINDOW = (-30.0, 300.0)
FAULT_WINDOW_S = 300.0


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """JSON objects of a JSON-lines file (blank lines skipped)."""
    dec = msgspec.json.Decoder()
    p = Path(path)
    try:
        f = p.open("rb")
    except OSError as exc:
        raise ScoreInputError(str(p), 0, f"cannot read: {exc.strerror or exc}") from exc
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = dec.decode(line)
            except msgspec.DecodeError as exc:
                raise ScoreInputError(str(p), n, f"not JSON: {exc}") from exc
            if not isinstance(obj, dict):
                raise ScoreInputError(str(p), n, "not a JSON object")
            yield obj


@dataclass
class TruthFile:
    """A truth file, parsed: header, events, and samples as arrays."""

    header: dict[str, Any]
    events: list[dict[str, Any]]
    ids: list[str]
    obj: npt.NDArray[np.intp]
    t: F64
    x: F64
    y: F64
    covered: npt.NDArray[np.bool_]
    role: list[str]  # per object


def load_truth(path: str | Path) -> TruthFile:
    """Parse a truth file (``docs/simulator.md``)."""
    header: dict[str, Any] = {}
    events: list[dict[str, Any]] = []
    ids: dict[str, int] = {}
    roles: list[str] = []
    obj: list[int] = []
    t: list[float] = []
    x: list[float] = []
    y: list[float] = []
    cov: list[bool] = []
    for rec in read_jsonl(path):
        kind = rec.get("type")
        if kind == "scenario":
            header = rec
        elif kind == "truth":
            i = ids.setdefault(str(rec["id"]), len(ids))
            if i == len(roles):
                roles.append(str(rec.get("role", "")))
            obj.append(i)
            t.append(float(rec["t"]))
            x.append(float(rec["x"]))
            y.append(float(rec["y"]))
            cov.append(bool(rec.get("covered", True)))
        elif kind != "network":
            events.append(rec)
    o = np.asarray(obj, np.intp)
    ta = np.asarray(t, np.float64)
    order = np.lexsort((ta, o))
    return TruthFile(
        header=header,
        events=events,
        ids=list(ids),
        obj=o[order],
        t=ta[order],
        x=np.asarray(x, np.float64)[order],
        y=np.asarray(y, np.float64)[order],
        covered=np.asarray(cov, bool)[order],
        role=roles,
    )


@dataclass
class Tracks:
    """Track updates as arrays, sorted by (track, t)."""

    ids: list[str]
    trk: npt.NDArray[np.intp]
    t: F64
    x: F64
    y: F64
    vx: F64
    vy: F64
    confirmed: npt.NDArray[np.bool_]
    lost: npt.NDArray[np.bool_]


def load_tracks(path: str | Path, site: Site) -> Tracks:
    """Parse a tracks file (contract "Track update" lines)."""
    ids: dict[str, int] = {}
    cols: dict[str, list[float]] = {k: [] for k in ("t", "x", "y", "vx", "vy")}
    trk: list[int] = []
    status: list[str] = []
    lat: list[float] = []
    lon: list[float] = []
    for rec in read_jsonl(path):
        if "track_id" not in rec or "t" not in rec:
            continue
        trk.append(ids.setdefault(str(rec["track_id"]), len(ids)))
        cols["t"].append(float(rec["t"]))
        for k in ("x", "y", "vx", "vy"):
            v = rec.get(k)
            cols[k].append(float(v) if isinstance(v, int | float) else np.nan)
        lat.append(float(rec.get("lat", np.nan)))
        lon.append(float(rec.get("lon", np.nan)))
        status.append(str(rec.get("status", "")))
    x = np.asarray(cols["x"], np.float64)
    y = np.asarray(cols["y"], np.float64)
    miss = np.isnan(x) | np.isnan(y)
    if miss.any():
        px, py = site.proj.to_xy(np.asarray(lon)[miss], np.asarray(lat)[miss])
        x[miss], y[miss] = px, py
    tr = np.asarray(trk, np.intp)
    t = np.asarray(cols["t"], np.float64)
    order = np.lexsort((t, tr))
    st = np.asarray(status, dtype=object)[order]
    return Tracks(
        ids=list(ids),
        trk=tr[order],
        t=t[order],
        x=x[order],
        y=y[order],
        vx=np.nan_to_num(np.asarray(cols["vx"], np.float64)[order]),
        vy=np.nan_to_num(np.asarray(cols["vy"], np.float64)[order]),
        confirmed=np.asarray(st == "confirmed", bool),
        lost=np.asarray(st == "lost", bool),
    )


@dataclass
class Alert:
    """An alert as first opened (with its position in the working CRS)."""

    alert_id: str
    t: float
    kind: str
    x: float
    y: float
    sensors: list[str]


def load_alerts(path: str | Path, site: Site) -> list[Alert]:
    """First message of each ``alert_id`` (its ``open``), time order."""
    first: dict[str, dict[str, Any]] = {}
    for rec in read_jsonl(path):
        aid = str(rec.get("alert_id", ""))
        if not aid:
            continue
        cur = first.get(aid)
        is_open = rec.get("state") == "open"
        if cur is None or (is_open and (cur.get("state") != "open" or rec["t"] < cur["t"])):
            first[aid] = rec
    out: list[Alert] = []
    for aid, rec in first.items():
        lat, lon = rec.get("lat"), rec.get("lon")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            x, y = site.proj.to_xy(lon, lat)
            fx, fy = float(x), float(y)
        else:
            fx = fy = float("nan")
        sensors = rec.get("sensors") or []
        out.append(Alert(aid, float(rec["t"]), str(rec.get("kind", "")), fx, fy,
                         [str(s) for s in sensors]))  # fmt: skip
    out.sort(key=lambda a: (a.t, a.alert_id))
    return out


# -- metrics -----------------------------------------------------------------------------------


@dataclass
class Score:
    """All metrics (see the module docstring); ``as_dict`` is the JSON output."""

    n_crossings: int = 0
    n_detected: int = 0
    recall: float = float("nan")
    n_crossing_alerts: int = 0
    n_false_crossing_alerts: int = 0
    false_per_100km_day: float = float("nan")
    tta_p50_s: float = float("nan")
    tta_p95_s: float = float("nan")
    alerts_per_intrusion: float = float("nan")
    n_approach: int = 0
    approach_recall: float = float("nan")
    digging_detected: bool | None = None
    faults_detected: dict[str, bool] = field(default_factory=dict)
    gospa_mean: float = float("nan")
    gospa_localisation: float = float("nan")
    gospa_missed: float = float("nan")
    gospa_false: float = float("nan")
    gospa_times: int = 0
    alerts_by_kind: dict[str, int] = field(default_factory=dict)
    instrumented_km: float = 0.0
    duration_s: float = 0.0
    per_crossing: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN as null)."""

        def clean(v: Any) -> Any:
            if isinstance(v, float) and not np.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(w) for k, w in v.items()}
            if isinstance(v, list):
                return [clean(w) for w in v]
            return v

        out: dict[str, Any] = clean(dict(self.__dict__))
        return out


def _match(
    events: list[dict[str, Any]], alerts: list[Alert], window: tuple[float, float], match_m: float
) -> list[list[int]]:
    """For each truth event, the indices of alerts within ``match_m`` and ``window``."""
    out: list[list[int]] = []
    at = np.array([a.t for a in alerts], np.float64)
    ax = np.array([a.x for a in alerts], np.float64)
    ay = np.array([a.y for a in alerts], np.float64)
    for ev in events:
        dt = at - float(ev["t"])
        d = np.hypot(ax - float(ev["x"]), ay - float(ev["y"]))
        ok = (dt >= window[0]) & (dt <= window[1]) & (d <= match_m)
        out.append(np.flatnonzero(ok).tolist())
    return out


def _owners(
    events: list[dict[str, Any]], alerts: list[Alert], matches: list[list[int]]
) -> dict[int, int]:
    """Matched alert index -> index of the event it matches nearest: smallest distance to
    the event's point, then smallest ``|t_alert - t_event|``, then the earlier event."""
    best: dict[int, tuple[float, float, int]] = {}
    for i, (ev, js) in enumerate(zip(events, matches, strict=True)):
        for j in js:
            a = alerts[j]
            key = (
                float(np.hypot(a.x - float(ev["x"]), a.y - float(ev["y"]))),
                abs(a.t - float(ev["t"])),
                i,
            )
            if j not in best or key < best[j]:
                best[j] = key
    return {j: k[2] for j, k in best.items()}


def gospa_series(
    truth: TruthFile, tracks: Tracks, t0: float, t1: float, dt: float, c: float = 100.0
) -> tuple[F64, F64, F64, F64, F64]:
    """GOSPA (total, localisation, missed, false) at report times ``t0 + j dt <= t1``."""
    from benchmarks.gospa import gospa

    n = int(np.floor((t1 - t0) / dt + 1e-9)) + 1
    grid = t0 + dt * np.arange(n)
    # truth positions at grid times (per object, interpolated; covered = previous sample's)
    tj: list[npt.NDArray[np.intp]] = []
    tx: list[F64] = []
    ty: list[F64] = []
    bounds = np.searchsorted(truth.obj, np.arange(len(truth.ids) + 1))
    for i in range(len(truth.ids)):
        a, b = int(bounds[i]), int(bounds[i + 1])
        if b <= a:
            continue
        ts = truth.t[a:b]
        lo = np.searchsorted(grid, ts[0] - 1e-6)
        hi = np.searchsorted(grid, ts[-1] + 1e-6)
        g = grid[lo:hi]
        prev = np.clip(np.searchsorted(ts, g + 1e-6) - 1, 0, b - a - 1)
        keep = truth.covered[a:b][prev]
        tj.append(np.arange(lo, hi)[keep])
        tx.append(np.interp(g, ts, truth.x[a:b])[keep])
        ty.append(np.interp(g, ts, truth.y[a:b])[keep])
    # confirmed tracks at grid times
    ej: list[npt.NDArray[np.intp]] = []
    ex: list[F64] = []
    ey: list[F64] = []
    tb = np.searchsorted(tracks.trk, np.arange(len(tracks.ids) + 1))
    max_age = 2.0 * dt + 0.5
    for i in range(len(tracks.ids)):
        a, b = int(tb[i]), int(tb[i + 1])
        ts = tracks.t[a:b]
        lo = np.searchsorted(grid, ts[0] - 1e-6)
        hi = np.searchsorted(grid, ts[-1] + max_age, side="right")
        g = grid[lo:hi]
        u = np.searchsorted(ts, g + 1e-6) - 1
        ok = u >= 0
        u = np.clip(u, 0, None) + a
        age = g - tracks.t[u]
        ok &= (age <= max_age) & tracks.confirmed[u]
        ej.append(np.arange(lo, hi)[ok])
        ex.append((tracks.x[u] + tracks.vx[u] * age)[ok])
        ey.append((tracks.y[u] + tracks.vy[u] * age)[ok])

    def by_time(j: list[npt.NDArray[np.intp]], x: list[F64], y: list[F64]) -> list[F64]:
        if not j:
            return [np.zeros((0, 2))] * n
        jj = np.concatenate(j)
        xy = np.column_stack([np.concatenate(x), np.concatenate(y)])
        order = np.argsort(jj, kind="stable")
        cuts = np.searchsorted(jj[order], np.arange(n + 1))
        xy = xy[order]
        return [xy[cuts[k] : cuts[k + 1]] for k in range(n)]

    truth_at = by_time(tj, tx, ty)
    est_at = by_time(ej, ex, ey)
    out = np.zeros((4, n))
    for k in range(n):
        res = gospa(truth_at[k], est_at[k], c=c, p=1.0)
        out[:, k] = (res.total, res.localisation, res.missed, res.false)
    return np.asarray(grid, np.float64), out[0], out[1], out[2], out[3]


def score(
    truth: TruthFile,
    tracks: Tracks,
    alerts: list[Alert],
    *,
    report_s: float = 1.0,
    match_m: float = MATCH_M,
) -> Score:
    """All metrics of one run (module docstring)."""
    s = Score()
    h = truth.header
    t0 = float(h.get("start_t", truth.t.min() if len(truth.t) else 0.0))
    dur = float(h.get("duration_s", (truth.t.max() - t0) if len(truth.t) else 0.0))
    s.duration_s = dur
    s.instrumented_km = float(h.get("instrumented_km", h.get("border_km", 0.0)))
    for a in alerts:
        s.alerts_by_kind[a.kind] = s.alerts_by_kind.get(a.kind, 0) + 1
    crossings = sorted((e for e in truth.events if e.get("type") == "crossing"),
                       key=lambda e: float(e["t"]))  # fmt: skip
    calerts = [a for a in alerts if a.kind == "crossing"]
    m = _match(crossings, calerts, CROSS_WINDOW, match_m)
    s.n_crossings = len(crossings)
    s.n_crossing_alerts = len(calerts)
    used = {j for js in m for j in js}
    s.n_false_crossing_alerts = len(calerts) - len(used)
    owner = _owners(crossings, calerts, m)
    tta: list[float] = []
    per: list[int] = []
    for i, (ev, matching) in enumerate(zip(crossings, m, strict=True)):
        row: dict[str, Any] = {"id": ev.get("id"), "t": ev["t"], "group_size": ev.get("group_size"),
                               "detected": bool(matching)}  # fmt: skip
        js = [j for j in matching if owner[j] == i] or matching
        if js:
            first = min(calerts[j].t for j in js)
            tta.append(first - float(ev["t"]))
            per.append(len(js))
            row["tta_s"] = round(first - float(ev["t"]), 3)
            row["alerts"] = [calerts[j].alert_id for j in js]
        s.per_crossing.append(row)
    s.n_detected = len(tta)
    if crossings:
        s.recall = s.n_detected / len(crossings)
    if tta:
        s.tta_p50_s = float(np.percentile(tta, 50))
        s.tta_p95_s = float(np.percentile(tta, 95))
        s.alerts_per_intrusion = float(np.mean(per))
    if s.instrumented_km > 0 and dur > 0:
        s.false_per_100km_day = (
            s.n_false_crossing_alerts / (s.instrumented_km / 100.0) / (dur / 86400.0)
        )
    approaches = [e for e in truth.events if e.get("type") == "approach"]
    if approaches:
        aalerts = [a for a in alerts if a.kind == "approach"]
        ma = _match(approaches, aalerts, APPROACH_WINDOW, max(match_m, 500.0))
        s.n_approach = len(approaches)
        s.approach_recall = sum(1 for js in ma if js) / len(approaches)
    digs = [e for e in truth.events if e.get("type") == "digging"]
    if digs:
        dalerts = [a for a in alerts if a.kind == "digging"]
        ok = True
        for ev in digs:
            span = (0.0, float(ev.get("t_end", ev["t"])) - float(ev["t"]) + 120.0)
            ok &= bool(_match([ev], dalerts, span, match_m)[0])
        s.digging_detected = ok
    falerts = [a for a in alerts if a.kind == "sensor_fault"]
    for ev in truth.events:
        if ev.get("type") in ("fibre_cut", "camera_offline"):
            dev = str(ev["id"])
            t = float(ev["t"])
            s.faults_detected[f"{ev['type']}:{dev}"] = any(
                dev in a.sensors and 0.0 <= a.t - t <= FAULT_WINDOW_S for a in falerts
            )
    if len(truth.t):
        _, g, loc, miss, false = gospa_series(truth, tracks, t0, t0 + dur, report_s)
        s.gospa_times = len(g)
        s.gospa_mean = float(g.mean())
        s.gospa_localisation = float(loc.mean())
        s.gospa_missed = float(miss.mean())
        s.gospa_false = float(false.mean())
    return s


# -- CLI ---------------------------------------------------------------------------------------


def _fmt(v: Any, spec: str = ".3g") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def print_table(s: Score, title: str) -> None:
    """A rich table of the metrics on stdout."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("crossings (truth)", str(s.n_crossings))
    t.add_row("crossing recall", f"{_fmt(s.recall)} ({s.n_detected}/{s.n_crossings})")
    t.add_row("crossing alerts", str(s.n_crossing_alerts))
    t.add_row("false crossing alerts", str(s.n_false_crossing_alerts))
    t.add_row("false crossing alerts / 100 km / day", _fmt(s.false_per_100km_day))
    t.add_row("time to alert p50 (s)", _fmt(s.tta_p50_s))
    t.add_row("time to alert p95 (s)", _fmt(s.tta_p95_s))
    t.add_row("crossing alerts per intrusion", _fmt(s.alerts_per_intrusion))
    t.add_row("approach recall", f"{_fmt(s.approach_recall)} (of {s.n_approach})")
    t.add_row("digging detected", _fmt(s.digging_detected))
    for k, v in s.faults_detected.items():
        t.add_row(f"fault alerted: {k}", str(v))
    t.add_row("GOSPA mean (m)", _fmt(s.gospa_mean, ".1f"))
    t.add_row("  localisation / missed / false", " / ".join(
        _fmt(v, ".1f") for v in (s.gospa_localisation, s.gospa_missed, s.gospa_false)
    ))  # fmt: skip
    t.add_row("alerts by kind", ", ".join(f"{k} {v}" for k, v in sorted(s.alerts_by_kind.items())))
    t.add_row("instrumented km x hours", f"{s.instrumented_km:.1f} x {s.duration_s / 3600:.2f}")
    Console().print(t)


def build_parser() -> argparse.ArgumentParser:
    """The ``limes score`` argument parser."""
    p = argparse.ArgumentParser(prog="limes score", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--truth", type=Path, required=True, help="truth file from limes sim")
    p.add_argument("--tracks", type=Path, required=True, help="track updates (JSON lines)")
    p.add_argument("--alerts", type=Path, required=True, help="alerts (JSON lines)")
    p.add_argument("--site", type=Path, default=None, help="site TOML (default: ro-rs)")
    p.add_argument("--json", type=Path, default=None, help="write the metrics as JSON here")
    p.add_argument("--plot", type=Path, default=None, help="write a PNG of the scenario here")
    p.add_argument("--match-m", type=float, default=MATCH_M, help="alert match radius (m)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``limes score``; returns the exit status."""
    from geo import SiteError, default_site, load_site

    args = build_parser().parse_args(argv)
    try:
        site = load_site(args.site) if args.site else default_site()
    except SiteError as exc:
        print(f"invalid site file {exc}", file=sys.stderr)
        return 2
    try:
        truth = load_truth(args.truth)
        tracks = load_tracks(args.tracks, site)
        alerts = load_alerts(args.alerts, site)
    except (ScoreInputError, KeyError, TypeError, ValueError) as exc:
        print(f"cannot read inputs: {exc}", file=sys.stderr)
        return 2
    s = score(truth, tracks, alerts, report_s=site.track_report_s, match_m=args.match_m)
    name = truth.header.get("name", args.truth.name)
    print_table(s, f"limes score: {name} seed {truth.header.get('seed', '-')}")
    if args.json is not None:
        args.json.write_text(json.dumps(s.as_dict(), indent=1) + "\n")
    if args.plot is not None:
        from sim_sensors.plot import plot_scenario

        plot_scenario(site, truth, tracks, alerts, args.plot)
    return 0
