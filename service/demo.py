"""``limes demo``: the embedded default — simulator + service in one process.

No broker and no Redis: simulated devices' messages go through the same
:class:`service.runtime.Pipeline` as live MQTT traffic (ingest, tracker, alert rules),
alerts live in the embedded memory store. Alerts are printed as they happen, with a live
summary; at the end the run is scored against the simulator's ground truth and the
output files are left in ``--out`` for ``limes score --plot``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.live import Live
from rich.table import Table

from drivers import ReplayItem
from geo import Site, default_site, load_site
from service.runtime import MemorySink, Pipeline, Sink, run_items

_PRIORITY_STYLE = {1: "bold red", 2: "red", 3: "yellow", 4: "cyan"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The demo's command-line options."""
    p.add_argument("--site", type=Path, default=None, help="site TOML (default: ro-rs)")
    p.add_argument("--preset", default="crossing-10min", help="simulator preset")
    p.add_argument("--seed", type=int, default=7, help="simulator seed")
    p.add_argument(
        "--speed", type=float, default=30.0, help="clock speed-up (0: as fast as possible)"
    )
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder")
    p.add_argument("--no-live", action="store_true", help="plain output, no live panel")
    from console import add_arguments as add_console_arguments

    add_console_arguments(p)


class _View:
    """Alert lines and the live summary panel."""

    def __init__(self, console: Console, site: Site) -> None:
        self.console = console
        self.site = site
        self.opened: Counter[str] = Counter()
        self.changes = 0
        self.dead_letters = 0
        self.tracks: dict[str, str] = {}
        self.t = 0.0

    def on_message(self, topic: str, payload: bytes) -> None:
        if topic.startswith("limes/v1/alerts/"):
            a = msgspec.json.decode(payload)
            self.changes += 1
            if a["state"] == "open":
                self.opened[a["kind"]] += 1
            style = _PRIORITY_STYLE.get(int(a["priority"]), "")
            clock = time.strftime("%H:%M:%S", time.gmtime(float(a["t"])))
            units = ", ".join(a["recommended_units"][:2]) or "-"
            self.console.print(
                f"[{style}]{clock}Z P{a['priority']} {a['kind']:<12} {a['state']:<12}[/] "
                f"{a['sector']} {a['summary']}  units: {units}"
            )
        elif topic.startswith("limes/v1/tracks/"):
            u = msgspec.json.decode(payload)
            self.t = max(self.t, float(u["t"]))
            self.tracks[u["track_id"]] = u["status"]
        elif topic == "limes/v1/deadletter":
            self.dead_letters += 1

    def panel(self, pipe: Pipeline | None) -> Table:
        t = Table(title="Limes demo (embedded: no broker, no Redis)", show_header=False)
        t.add_column("what")
        t.add_column("value", justify="right")
        clock = time.strftime("%H:%M:%S", time.gmtime(self.t)) if self.t else "-"
        t.add_row("scenario clock (UTC)", clock)
        if pipe is not None:
            c = pipe.core.counters
            t.add_row("measurements tracked", f"{c.rows:,}")
            t.add_row("tracker steps", f"{c.steps:,}")
        live = sum(1 for s in self.tracks.values() if s == "confirmed")
        t.add_row("confirmed tracks now", str(live))
        t.add_row("alerts opened", ", ".join(f"{k} {v}" for k, v in sorted(self.opened.items())))
        t.add_row("alert state changes", str(self.changes))
        t.add_row("dead letters", str(self.dead_letters))
        return t


class _WebConsole:
    """The operator console of the demo (on unless ``--console-port 0``): a users file
    with fresh random passwords in ``--out``, printed once; a taken port only warns."""

    def __init__(self, console: Console, args: argparse.Namespace, out: Path, site: Site) -> None:
        from console import ConsoleHub, options_from_args

        self.console = console
        self.options = options_from_args(args, need_users=False)
        self.hub = ConsoleHub(site, clock=None) if self.options is not None else None
        self.url: str | None = None
        self.out = out

    def wrap(self, sink: Sink) -> Sink:
        from console import HubSink

        return HubSink(sink, self.hub) if self.hub is not None else sink

    def attach(self, pipe: Pipeline) -> None:
        if self.hub is not None:
            self.hub.attach(pipe)

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[None]:
        if self.hub is None or self.options is None:
            yield
            return
        from console import ConsoleError, serve_console, write_demo_users

        opts, creds = self.options, {}
        if opts.users is None:
            users = self.out / "console-users.toml"
            creds = write_demo_users(users)
            opts = dataclasses.replace(opts, users=users)
        async with contextlib.AsyncExitStack() as stack:
            try:
                server = await stack.enter_async_context(serve_console(self.hub, None, opts))
            except ConsoleError as exc:
                self.console.print(f"[yellow]console off:[/] {exc}")
            else:
                self.url = server.url
                logins = ", ".join(f"{n} / {pw} ({role})" for n, (role, pw) in creds.items())
                self.console.print(
                    f"[bold]operator console[/] {server.url}"
                    + (f"  log in as {logins}" if logins else f"  users from {opts.users}")
                )
            yield

    async def hold(self, *, interactive: bool) -> None:
        """Keep the console up after the scenario until Ctrl-C (interactive runs only)."""
        if self.url is None or not interactive:
            return
        self.console.print(
            f"scenario finished; the console stays up at {self.url} - Ctrl-C to end and score"
        )
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()


def main(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    from fusion.warm import warmup
    from sim_sensors import generate, preset
    from sim_sensors.score import load_alerts, load_tracks, load_truth, print_table, score

    console = Console()
    site = load_site(args.site) if args.site else default_site()
    console.print(
        f"[bold]Limes demo[/] on site {site.name!r}: preset {args.preset}, seed {args.seed}"
    )
    t0 = time.perf_counter()
    scenario = generate(site, preset(args.preset, seed=args.seed))
    gen_s = time.perf_counter() - t0
    console.print(
        f"simulated {len(scenario.messages):,} device messages in {gen_s:.1f} s; "
        f"warming the tracker ... {warmup():.1f} s"
    )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    scenario.write_replay(out / "replay.jsonl")
    scenario.write_truth(out / "truth.jsonl")

    view = _View(console, site)
    sink = MemorySink(on_message=view.on_message)
    web = _WebConsole(console, args, out, site)
    speed = args.speed if args.speed > 0 else None
    items = (
        ReplayItem(i, m.topic, m.payload, m.arrival) for i, m in enumerate(scenario.messages, 1)
    )
    holder: dict[str, Any] = {}

    async def make(t_first: float) -> Pipeline:
        pipe = Pipeline(site, web.wrap(sink), started=t_first)
        web.attach(pipe)
        holder["pipe"] = pipe
        return pipe

    async def feed() -> Pipeline | None:
        if args.no_live:
            return await run_items(make, items, speed=speed)
        with Live(view.panel(None), console=console, refresh_per_second=4) as live:
            return await run_items(
                make, items, speed=speed, on_step=lambda p: live.update(view.panel(p))
            )

    async def run() -> Pipeline | None:
        async with web.serve():
            pipe = await feed()
            await web.hold(interactive=not args.no_live and sys.stdin.isatty())
            return pipe

    pipe = asyncio.run(run())
    tracks_path, alerts_path = out / "tracks.jsonl", out / "alerts.jsonl"
    with tracks_path.open("wb") as ft, alerts_path.open("wb") as fa:
        for topic, payload, _ in sink.messages:
            if topic.startswith("limes/v1/tracks/"):
                ft.write(payload + b"\n")
            elif topic.startswith("limes/v1/alerts/"):
                fa.write(payload + b"\n")
    if args.no_live:
        console.print(view.panel(pipe))
    s = score(
        load_truth(out / "truth.jsonl"),
        load_tracks(tracks_path, site),
        load_alerts(alerts_path, site),
        report_s=site.track_report_s,
    )
    print_table(s, f"score against the simulator's truth ({args.preset}, seed {args.seed})")
    console.print(
        f"\nOutputs in [bold]{out}/[/]: replay.jsonl (device messages), truth.jsonl, "
        f"tracks.jsonl, alerts.jsonl.\nPlot them: [bold].venv/bin/limes score --truth "
        f"{out}/truth.jsonl --tracks {tracks_path} --alerts {alerts_path} --plot {out}/plot.png[/]"
    )
    return 0
