"""``limes bench``: every benchmark suite in one run, with progress bars, writing
``results.json``, ``report.md`` and PNG plots into the output folder.

    limes bench [--quick] [--suites fusion,ingest,latency,memory,startup,accuracy]
                [--out DIR] [--seed N] [--no-profile]

Suites: ``fusion`` (:mod:`benchmarks.bench_fusion`), ``ingest``
(:mod:`benchmarks.bench_ingest`), ``latency`` (:mod:`benchmarks.bench_latency`), ``memory``
(:mod:`benchmarks.bench_memory`), ``startup`` (:mod:`benchmarks.bench_startup`),
``accuracy`` (:mod:`benchmarks.bench_accuracy`). ``--quick`` runs tiny sizes (< 3 min);
the full run takes < 30 min on a 2-core machine. Absolute figures drift with the machine's
load: each suite quotes ratios against a baseline measured in the same run. A suite that
fails is recorded with its error and the others still run (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import (
    bench_accuracy,
    bench_fusion,
    bench_ingest,
    bench_latency,
    bench_memory,
    bench_startup,
)
from benchmarks.bench_common import QUICK, SIZES, Context, loadavg, run_info

SUITES: dict[str, Any] = {
    "fusion": bench_fusion,
    "ingest": bench_ingest,
    "latency": bench_latency,
    "memory": bench_memory,
    "startup": bench_startup,
    "accuracy": bench_accuracy,
}


def build_parser() -> argparse.ArgumentParser:
    """The ``limes bench`` argument parser."""
    p = argparse.ArgumentParser(
        prog="limes bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes, < 3 minutes")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tests: < 60 s
    p.add_argument("--suites", default=",".join(SUITES), help="comma-separated subset")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="output folder")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _progress(enabled: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("[bold]{task.fields[suite]:9s}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        disable=not enabled,
    )


def run_suites(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    """Run the selected suites; returns the whole result (also written as JSON)."""
    names = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SUITES))
    if unknown:
        raise SystemExit(f"limes bench: unknown suites {unknown}; choose from {list(SUITES)}")
    sizes = SIZES["tiny"] if args.tiny else (QUICK if args.quick else SIZES["full"])
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = run_info(argv, args.seed, sizes)
    result["suites"] = {}
    with (
        tempfile.TemporaryDirectory(prefix="limes-bench-") as tmp,
        _progress(not args.no_progress and sys.stderr.isatty()) as progress,
    ):
        for name in names:
            mod = SUITES[name]
            ctx = Context(
                sizes=sizes, seed=args.seed, out=out, work=Path(tmp), profile=not args.no_profile
            )
            ctx.replays = result.setdefault("_replays", {})
            task = progress.add_task("", total=mod.steps(ctx), suite=name)

            def advance(label: str, task: Any = task) -> None:
                progress.update(task, advance=1, description=label)

            ctx.advance = advance
            t0 = time.perf_counter()
            entry: dict[str, Any] = {"loadavg_before": loadavg()}
            try:
                entry["figures"] = mod.run(ctx)
                entry["ok"] = True
            except Exception as exc:
                entry["ok"] = False
                entry["error"] = f"{type(exc).__name__}: {exc}"
                entry["traceback"] = traceback.format_exc()[-4000:]
            entry["seconds"] = round(time.perf_counter() - t0, 1)
            entry["loadavg_after"] = loadavg()
            result["suites"][name] = entry
            progress.update(task, completed=mod.steps(ctx))
    result.pop("_replays", None)
    result["plots"] = write_plots(result, out)
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / "report.md").write_text(report(result))
    return result


def write_plots(result: dict[str, Any], out: Path) -> list[str]:
    """Every suite's plots (Agg backend); returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    names: list[str] = []
    plotters: dict[str, Callable[[dict[str, Any], Path], list[str]]] = {
        "fusion": bench_fusion.plot,
        "ingest": bench_ingest.plot,
        "latency": bench_latency.plot,
        "memory": bench_memory.plot,
        "startup": _plot_startup,
    }
    for name, entry in result["suites"].items():
        if entry.get("ok") and name in plotters:
            names += plotters[name](entry["figures"], out)
    return names


def _plot_startup(res: dict[str, Any], out: Path) -> list[str]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 2.6), dpi=90)
    labels, vals = ["bare python"], [res["bare_python_s"]]
    for k in ("warm", "cold"):
        if res.get(k):
            labels.append(k)
            vals.append(res[k]["wall_s"])
    ax.barh(labels, vals)
    ax.set_xscale("log")
    ax.set_xlabel("seconds to ready (spawn -> warm kernels)")
    ax.set_title("Start-up")
    fig.tight_layout()
    fig.savefig(out / "startup.png")
    plt.close(fig)
    return ["startup.png"]


# ------------------------------------------------------------------ report


def _f(v: Any, spec: str = ",.0f") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return format(v, spec)
    return str(v)


def _fig(result: dict[str, Any], suite: str) -> dict[str, Any] | None:
    e = result["suites"].get(suite)
    return e["figures"] if e and e.get("ok") else None


def headline(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(figure, value, against)`` rows of the headline table."""
    rows: list[tuple[str, str, str]] = []
    fu = _fig(result, "fusion")
    if fu:
        t = fu["vs_tracks"]
        for r in (t[0], t[-1]):
            rows.append(
                (
                    f"tracker det/s, {r['truth_mean']:g} live targets (20 clutter/scan)",
                    _f(r["det_per_s"]),
                    f"{r['ratio_vs_baseline']:.2f} x the {t[0]['truth_mean']:g}-target point",
                )
            )
        c = fu["vs_clutter"][-1]
        rows.append(
            (
                f"tracker det/s, 100 targets + {c['clutter_per_scan']:g} clutter/scan",
                _f(c["det_per_s"]),
                f"{c['ratio_vs_baseline']:.2f} x no clutter",
            )
        )
        pr = fu.get("peer") or {}
        if "speed_ratio" in pr:
            rows.append(
                (
                    "Limes vs Stone Soup GNN, det/s (same scans)",
                    f"{pr['speed_ratio']:g} x",
                    f"GOSPA {pr['limes_same_slice']['gospa']} vs "
                    f"{pr['stonesoup']['gospa']} ({pr['stonesoup']['scans']} scans)",
                )
            )
    ig = _fig(result, "ingest")
    if ig:
        d = max((r for r in ig["decode"] if r["kind"] == "fibre"), key=lambda r: r["batch"])
        rows.append(
            (
                f"decode+normalize events/s, fibre batch {d['batch']}",
                _f(d["ingest_events_per_s"]),
                f"{d['ratio_vs_json_loads']:.2f} x json.loads",
            )
        )
        for q in (0, 1):
            m = [r for r in ig["mqtt"] if r["qos"] == q and r["batch"] == 1000]
            if m:
                rows.append(
                    (
                        f"MQTT e2e events/s, QoS {q}, batch 1000",
                        _f(m[0]["events_per_s"]),
                        f"{m[0]['events_ratio_vs_json_loads']:.2f} x json.loads",
                    )
                )
    la = _fig(result, "latency")
    if la:
        for r in la["levels"]:
            rows.append(
                (
                    f"track p50/p99 ms at {r['offered_events_per_s']:,.0f} ev/s offered, "
                    f"step_s {r['step_s']:g}",
                    f"{_f(r['track_ms']['p50'], '.0f')} / {_f(r['track_ms']['p99'], '.0f')}",
                    f"alert p99 {_f(r['alert_ms']['p99'], '.0f')} ms; "
                    f"{'sustained' if r['sustained'] else 'backlog grows'}; "
                    f"goal p99 <= 50 ms at 10k",
                )
            )
        rows.append(
            (
                "sustained max events/s (live service, one process)",
                _f(la["sustained_max_events_per_s"]),
                "goal >= 200,000",
            )
        )
    me = _fig(result, "memory")
    if me:
        big = me["vs_tracks"][-1]
        rows.append(
            (
                f"tracker RSS at {big['live_tracks']} live tracks",
                f"{big['tracker_mib']:.1f} MiB",
                f"{_f(big['bytes_per_track'])} B/track",
            )
        )
        for h in me["vs_hours"]:
            rows.append(
                (
                    f"RSS over {h['simulated_h']} simulated h ({h['preset']})",
                    f"{_f(h.get('rss_first_mib'), '.0f')} -> "
                    f"{_f(h.get('rss_last_mib'), '.0f')} MiB",
                    f"slope {_f(h.get('slope_second_half_mib_per_h'), '.1f')} MiB/h "
                    f"(flat: {_f(h.get('flat'))})",
                )
            )
    su = _fig(result, "startup")
    if su:
        w = su["warm"]
        rows.append(
            (
                "start-up to ready, warm cache",
                f"{w['wall_s']:.1f} s",
                f"{w['wall_s'] / su['bare_python_s']:.0f} x bare python",
            )
        )
        if su.get("cold"):
            rows.append(
                (
                    "start-up to ready, cold (compile)",
                    f"{su['cold']['wall_s']:.1f} s",
                    f"{su['cold_over_warm']:.1f} x warm",
                )
            )
    ac = _fig(result, "accuracy")
    if ac:
        for p in ac["presets"]:
            s = p["score"]
            rows.append(
                (
                    f"accuracy {p['preset']} ({p['duration_s']:g} s): crossing recall / "
                    "false per 100 km day / GOSPA",
                    f"{_f(s['recall'], '.2f')} / {_f(s['false_per_100km_day'], '.1f')} / "
                    f"{_f(s['gospa_mean'], '.1f')}",
                    f"replay {_f(p['events_per_s'])} events/s "
                    f"({_f(p['speedup_vs_real_time'], '.1f')} x real time)",
                )
            )
    return rows


def report(result: dict[str, Any]) -> str:
    """The Markdown report of one run."""
    m = result["machine"]
    v = result["versions"]
    lines = [
        "# Limes benchmark report",
        "",
        f"Command: `{' '.join(result['command'])}` (sizes `{result['sizes']}`, "
        f"seed {result['seed']}), started {result['started']}, git "
        f"{result['git']['commit'][:10]}{' (dirty)' if result['git']['dirty'] else ''}.",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} cores, load average at start "
        f"{_f(m['loadavg_at_start'])}. Versions: "
        + ", ".join(f"{k} {val}" for k, val in v.items()),
        "",
        "Absolute figures drift with the load of this shared machine; compare the ratios "
        "(each against a baseline measured in the same run).",
        "",
        "## Headline",
        "",
        "| figure | value | against |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in headline(result)]
    lines.append("")
    for name, entry in result["suites"].items():
        lines.append(f"## {name}")
        lines.append("")
        lines.append(
            f"{entry['seconds']} s, load average {_f(entry['loadavg_before'])} -> "
            f"{_f(entry['loadavg_after'])}."
        )
        lines.append("")
        if not entry.get("ok"):
            lines += ["**failed**: " + entry.get("error", "?"), ""]
            continue
        lines += _suite_md(name, entry["figures"])
    for p in result.get("plots", []):
        lines += [f"![{p}]({p})", ""]
    return "\n".join(lines) + "\n"


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]) -> list[str]:
    out = ["| " + " | ".join(h for h, _, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for _, key, spec in cols:
            val: Any = r
            for part in key.split("."):
                val = val.get(part) if isinstance(val, dict) else None
            cells.append(_f(val, spec))
        out.append("| " + " | ".join(cells) + " |")
    return [*out, ""]


def _profile_md(prof: dict[str, Any]) -> list[str]:
    if "summary" not in prof:
        return [f"Profile: {prof.get('error', 'none')}", ""]
    s = prof["summary"]
    out = [
        f"py-spy profile of the service process ({s['samples']} samples, event loop idle "
        f"{s['idle_share']:.0%}); numba kernels show as their calling Python function:",
        "",
        "| self time | share | inclusive | share |",
        "|---|---|---|---|",
    ]
    for (a, x), (b, y) in zip(s["self"][:10], s["inclusive"][:10], strict=False):
        out.append(f"| {a} | {x:.0%} | {b} | {y:.0%} |")
    return [*out, ""]


def _suite_md(name: str, f: dict[str, Any]) -> list[str]:  # noqa: PLR0911 (one per suite)
    if name == "fusion":
        cols = [
            ("targets", "targets", "d"),
            ("mean truth", "truth_mean", ".0f"),
            ("clutter/scan", "clutter_per_scan", "g"),
            ("det/scan", "det_per_scan", ".0f"),
            ("det/s", "det_per_s", ",.0f"),
            ("ms/scan", "ms_per_scan", ".2f"),
            ("x baseline", "ratio_vs_baseline", ".2f"),
            ("GOSPA", "gospa", ".1f"),
        ]
        out = ["Detections/s vs live targets:", "", *_table(f["vs_tracks"], cols)]
        out += ["Detections/s vs clutter (100 targets):", "", *_table(f["vs_clutter"], cols)]
        out += ["Stone Soup peer (tracker_bench): `" + json.dumps(f.get("peer")) + "`", ""]
        return out
    if name == "ingest":
        out = _table(
            f["decode"],
            [
                ("kind", "kind", ""),
                ("batch", "batch", "d"),
                ("ingest ev/s", "ingest_events_per_s", ",.0f"),
                ("us/batch", "ingest_us_per_batch", ".1f"),
                ("json.loads ev/s", "json_loads_events_per_s", ",.0f"),
                ("x json.loads", "ratio_vs_json_loads", ".2f"),
            ],
        )
        return out + _table(
            f["mqtt"],
            [
                ("QoS", "qos", "d"),
                ("batch", "batch", "d"),
                ("msgs/s", "messages_per_s", ",.0f"),
                ("events/s", "events_per_s", ",.0f"),
                ("received", "received", "d"),
                ("sent", "messages", "d"),
                ("x json.loads", "events_ratio_vs_json_loads", ".2f"),
            ],
        )
    if name == "latency":
        out = [
            f"6 fibre units, a batch each per {f['period_s']} s, QoS 1; "
            f"{f['seconds_per_level']} s per level. Latencies in ms, publish -> arrival "
            "at a subscriber (track: first update of the step that consumed the batch, "
            "so up to step_s of batching is included).",
            "",
        ]
        out += _table(
            f["levels"],
            [
                ("offered ev/s", "offered_events_per_s", ",.0f"),
                ("accepted ev/s", "accepted_events_per_s", ",.0f"),
                ("batches in/sent", "batches_accepted", "d"),
                ("", "batches_sent", "d"),
                ("step_s", "step_s", "g"),
                ("ingest lag p50", "ingest_lag_ms.p50", ".0f"),
                ("ingest lag p99", "ingest_lag_ms.p99", ".0f"),
                ("track p50", "track_ms.p50", ".0f"),
                ("track p95", "track_ms.p95", ".0f"),
                ("track p99", "track_ms.p99", ".0f"),
                ("alert p50", "alert_ms.p50", ".0f"),
                ("alert p99", "alert_ms.p99", ".0f"),
                ("alerts", "alerts_opened", "d"),
                ("step ms p50", "step_ms.p50", ".0f"),
                ("lag slope s/s", "lag_slope_s_per_s", ".3f"),
                ("service CPU", "service_cpu_share", ".2f"),
                ("sustained", "sustained", ""),
            ],
        )
        out += [
            f"Sustained maximum: {_f(f['sustained_max_events_per_s'])} events/s; first "
            f"level whose backlog grew: {_f(f['first_unsustained_offered'])} offered.",
            "",
        ]
        for r in f["levels"]:
            if "profile" in r:
                out += [f"At {r['offered_events_per_s']:,.0f} events/s offered:", ""]
                out += _profile_md(r["profile"])
        return out
    if name == "memory":
        out = _table(
            f["vs_tracks"],
            [
                ("targets", "targets", "d"),
                ("live tracks", "live_tracks", "d"),
                ("RSS MiB", "rss_mib", ".1f"),
                ("tracker MiB", "tracker_mib", ".2f"),
                ("B/track", "bytes_per_track", ",.0f"),
            ],
        )
        return out + _table(
            f["vs_hours"],
            [
                ("preset", "preset", ""),
                ("simulated h", "simulated_h", "g"),
                ("first MiB", "rss_first_mib", ".1f"),
                ("last MiB", "rss_last_mib", ".1f"),
                ("peak MiB", "rss_peak_mib", ".1f"),
                ("slope MiB/h", "slope_second_half_mib_per_h", ".2f"),
                ("flat", "flat", ""),
            ],
        )
    if name == "startup":
        rows = [{"run": "bare python", "wall_s": f["bare_python_s"]}]
        rows += [{"run": k, **f[k]} for k in ("warm", "cold") if f.get(k)]
        out = _table(
            rows,
            [
                ("run", "run", ""),
                ("wall s", "wall_s", ".2f"),
                ("imports s", "import_s", ".2f"),
                ("fusion warm-up s", "fusion_warmup_s", ".2f"),
                ("ingest warm-up s", "ingest_warmup_s", ".2f"),
            ],
        )
        return out + ([f["cold_note"], ""] if "cold_note" in f else [])
    if name == "accuracy":
        rows = [{**p, **p["score"]} for p in f["presets"]]
        return _table(
            rows,
            [
                ("preset", "preset", ""),
                ("sim s", "duration_s", "g"),
                ("replay ev/s", "events_per_s", ",.0f"),
                ("x real time", "speedup_vs_real_time", ".1f"),
                ("recall", "recall", ".2f"),
                ("crossings", "n_crossings", "d"),
                ("false/100km/day", "false_per_100km_day", ".1f"),
                ("TTA p50 s", "tta_p50_s", ".1f"),
                ("TTA p95 s", "tta_p95_s", ".1f"),
                ("alerts/intrusion", "alerts_per_intrusion", ".2f"),
                ("approach recall", "approach_recall", ".2f"),
                ("GOSPA", "gospa_mean", ".1f"),
            ],
        )
    return []


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``limes bench``; exit 1 when a suite failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    result = run_suites(args, argv)
    failed = [n for n, e in result["suites"].items() if not e.get("ok")]
    print(
        f"wrote {args.out / 'results.json'}, {args.out / 'report.md'} and "
        f"{len(result['plots'])} plots"
    )
    for a, b, c in headline(result):
        print(f"  {a}: {b} ({c})")
    for n in failed:
        print(f"suite {n} FAILED: {result['suites'][n]['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
