"""``limes sim``: generate a scenario to replay/truth files, or publish it live over MQTT.

Examples::

    limes sim --preset crossing-10min --seed 1 --replay r.jsonl --truth t.jsonl
    limes sim --preset night-6h --set n_crossings=40 --set weather.wind=0.6 --replay r.jsonl
    limes sim --preset crossing-10min --mqtt mqtt://localhost:1883 --speed 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    """The ``limes sim`` argument parser."""
    from sim_sensors.config import PRESETS

    p = argparse.ArgumentParser(
        prog="limes sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--site", type=Path, default=None, help="site TOML (default: ro-rs)")
    p.add_argument("--preset", default="crossing-10min", choices=sorted(PRESETS))
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the preset's)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help="override a config field, e.g. duration_s=1200 or weather.wind=0.5 (repeatable)",
    )
    p.add_argument("--replay", type=Path, default=None, help="write the replay file here")
    p.add_argument("--truth", type=Path, default=None, help="write the truth file here")
    p.add_argument("--mqtt", default=None, help="publish live to this broker (mqtt://host:port)")
    p.add_argument("--speed", type=float, default=1.0, help="live clock speed-up (default 1)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def _overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"limes sim: --set wants FIELD=VALUE, got {item!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 (one exit per failure)
    """Entry point of ``limes sim``; returns the exit status."""
    import msgspec
    from rich.console import Console
    from rich.table import Table

    from geo import SiteError, default_site, load_site
    from sim_sensors._errors import SimError
    from sim_sensors.config import PRESETS, ScenarioConfig
    from sim_sensors.scenario import generate

    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    try:
        site = load_site(args.site) if args.site else default_site()
    except SiteError as exc:
        console.print(f"[red]invalid site file[/red] {exc}")
        return 2
    over = _overrides(args.set)
    if args.seed is not None:
        over["seed"] = args.seed
    data = _merge(msgspec.to_builtins(PRESETS[args.preset]), over)
    try:
        cfg = msgspec.convert(data, ScenarioConfig)
    except msgspec.ValidationError as exc:
        console.print(f"[red]invalid scenario config[/red] {exc}")
        return 2
    if args.replay is None and args.truth is None and args.mqtt is None:
        console.print("[yellow]nothing to do:[/yellow] give --replay, --truth and/or --mqtt")
        return 2
    t0 = time.perf_counter()
    try:
        sc = generate(site, cfg)
    except (SimError, ValueError) as exc:
        console.print(f"[red]cannot generate[/red] {exc}")
        return 2
    gen_s = time.perf_counter() - t0
    if args.replay is not None:
        sc.write_replay(args.replay)
    if args.truth is not None:
        sc.write_truth(args.truth)
    stats = sc.stats()
    stats["generate_s"] = round(gen_s, 2)
    stats["write_s"] = round(time.perf_counter() - t0 - gen_s, 2)
    if args.mqtt is not None:
        from sim_sensors.live import publish

        try:
            res = asyncio.run(publish(sc.messages, args.mqtt, speed=args.speed))
        except SimError as exc:
            console.print(f"[red]cannot publish[/red] {exc}")
            return 2
        except Exception as exc:  # aiomqtt.MqttError and OS errors: report, exit 1
            console.print(f"[red]MQTT failed[/red] {type(exc).__name__}: {exc}")
            return 1
        stats["published"] = res.messages
        stats["clients"] = res.clients
        stats["publish_wall_s"] = round(res.wall_s, 2)
    if args.json:
        sys.stdout.write(json.dumps(stats, indent=1) + "\n")
        return 0
    table = Table(title=f"limes sim {cfg.name!r} seed {cfg.seed} on {site.name!r}")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("messages", str(stats["messages"]))
    for k, v in stats["by_label"].items():
        table.add_row(f"  {k}", str(v))
    for k, v in stats["device_events"].items():
        table.add_row(f"{k} events", str(v))
    for k, v in stats["truth_objects"].items():
        table.add_row(f"truth {k}", str(v))
    for k, v in stats["truth_events"].items():
        table.add_row(f"event {k}", str(v))
    table.add_row("generate (s)", f"{gen_s:.1f}")
    Console().print(table)
    return 0
