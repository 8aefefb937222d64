"""The ``limes`` command line.

Each sub-command lives in its own small function; heavy imports happen inside them so
``limes site check`` starts fast and does not compile Numba kernels.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drivers import MqttSettings
    from geo import Site

Handler = Callable[[argparse.Namespace], int]


def _site_show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from geo import SiteError, default_site, load_site

    console = Console()
    try:
        site = load_site(args.site) if args.site else default_site()
    except SiteError as exc:
        console.print(f"[red]invalid site file[/red] {exc}")
        return 2
    table = Table(title=f"Limes site {site.name!r} ({site.path})")
    table.add_column("kind")
    table.add_column("id")
    table.add_column("where / what")
    for kind, ident, desc in site.summary_rows():
        table.add_row(kind, ident, desc)
    console.print(table)
    console.print(
        f"home {site.home} ({site.cfg.site.home_side} of the line), neighbour {site.neighbour}; "
        f"heartbeat {site.heartbeat_s:g} s, track report {site.track_report_s:g} s, "
        f"approach {site.approach_m:g} m"
    )
    return 0


def _site_check(args: argparse.Namespace) -> int:
    from geo import SiteError, load_site

    ok = True
    for path in args.files:
        try:
            site = load_site(path)
        except SiteError as exc:
            print(f"INVALID {exc}", file=sys.stderr)
            ok = False
        else:
            print(
                f"OK {path}: site {site.name!r}, border {site.border.length / 1000:.1f} km, "
                f"{len(site.sectors)} sectors, {len(site.sensor_ids)} sensors, "
                f"{len(site.patrols)} patrols"
            )
    return 0 if ok else 2


def _sim(args: argparse.Namespace) -> int:
    from sim_sensors.cli import main as sim_main

    return sim_main(args.argv)


def _score(args: argparse.Namespace) -> int:
    from sim_sensors.score import main as score_main

    return score_main(args.argv)


def _bench(args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if argv[:1] == ["tracker"]:  # the peer benchmark on scenario files (benchmarks.tracker_bench)
        from benchmarks.tracker_bench import main as tracker_main

        return tracker_main(argv[1:])
    from benchmarks.suite import main as bench_main

    return bench_main(argv)


def _load(path: Path | None) -> Site:
    from geo import SiteError, default_site, load_site

    try:
        return load_site(path) if path else default_site()
    except SiteError as exc:
        raise SystemExit(f"invalid site file {exc}") from exc


def _replay(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from fusion.warm import warmup
    from service.runtime import replay_file

    site = _load(args.site_file)
    warmup()
    summary = asyncio.run(
        replay_file(
            site,
            args.input,
            tracks=args.tracks,
            alerts=args.alerts,
            messages=args.messages,
            step_s=args.step_s,
            speed=args.speed,
        )
    )
    print(json.dumps(summary, indent=1))
    return 0


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from fusion.warm import warmup
    from service.live import LiveSettings, run_live

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format='{"t":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":%(message)r}',
    )
    site = _load(args.site)
    mqtt = mqtt_settings(args)
    logging.getLogger("limes.service").info("JIT warm-up %.1f s", warmup())
    settings = LiveSettings(
        mqtt=mqtt,
        redis_url=args.redis or _secret("LIMES_REDIS_URL"),
        step_s=args.step_s,
        metrics_port=args.metrics_port or None,
        message_clock=args.clock == "message",
        started=args.started,
        journal=not args.no_journal,
        snapshot_s=args.snapshot_s,
    )
    from console import options_from_args

    console = options_from_args(args, need_users=True)
    if console is None and args.console_port:
        logging.getLogger("limes.service").warning("console off: no --console-users")
    asyncio.run(run_live(site, settings, console=console))
    return 0


def _scale_common(args: argparse.Namespace) -> tuple[Site, MqttSettings, str, float]:
    """Logging, site, MQTT settings, Redis URL and start time of a scale-out role (the
    publisher has no ``--started``: now)."""
    import time

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format='{"t":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":%(message)r}',
    )
    redis_url = args.redis or _secret("LIMES_REDIS_URL")
    if not redis_url:
        raise SystemExit("--redis (or $LIMES_REDIS_URL) is required for the scale-out roles")
    started = getattr(args, "started", None)
    started = started if started is not None else time.time()
    return _load(args.site), mqtt_settings(args), redis_url, started


def _gateway(args: argparse.Namespace) -> int:
    import asyncio

    from scale.gateway import GatewaySettings, run_gateway
    from service.live import _signal_event

    site, mqtt, redis_url, started = _scale_common(args)
    settings = GatewaySettings(
        mqtt=mqtt,
        redis_url=redis_url,
        cluster=args.redis_cluster,
        margin_m=args.margin_m,
        beacon_s=args.step_s,
        message_clock=args.clock == "message",
        started=started,
    )

    async def main() -> None:
        await run_gateway(site, settings, _signal_event())

    asyncio.run(main())
    return 0


def _worker(args: argparse.Namespace) -> int:
    import asyncio
    import socket

    from fusion.warm import warmup
    from scale.worker import Worker, WorkerSettings
    from service.live import _signal_event

    worker_id = args.worker_id or f"{socket.gethostname()}-{os.getpid()}"
    args.client_id = args.client_id or f"limes-worker-{worker_id}"
    site, mqtt, redis_url, started = _scale_common(args)
    logging.getLogger("limes.scale").info("JIT warm-up %.1f s", warmup())
    settings = WorkerSettings(
        mqtt=mqtt,
        redis_url=redis_url,
        worker_id=worker_id,
        cluster=args.redis_cluster,
        margin_m=args.margin_m,
        step_s=args.step_s,
        lease_ms=args.lease_ms,
        snapshot_s=args.snapshot_s,
        started=started,
    )

    async def main() -> None:
        await Worker(site, settings).run(_signal_event())

    asyncio.run(main())
    return 0


def _publisher(args: argparse.Namespace) -> int:
    import asyncio
    import socket

    from scale.publisher import AlertPublisher, PublisherSettings
    from service.live import _signal_event

    publisher_id = args.publisher_id or f"{socket.gethostname()}-{os.getpid()}"
    args.client_id = args.client_id or f"limes-publisher-{publisher_id}"
    site, mqtt, redis_url, _ = _scale_common(args)
    settings = PublisherSettings(
        mqtt=mqtt,
        redis_url=redis_url,
        publisher_id=publisher_id,
        cluster=args.redis_cluster,
        lease_ms=args.lease_ms,
    )

    async def main() -> None:
        await AlertPublisher(site, settings).run(_signal_event())

    asyncio.run(main())
    return 0


def mqtt_settings(args: argparse.Namespace) -> MqttSettings:
    """The service's MQTT settings from ``--mqtt`` (``mqtt://`` plain, ``mqtts://`` TLS,
    default ports 1883 / 8883), ``--mqtt-ca/-cert/-key`` and the credentials in the
    environment (``LIMES_MQTT_USERNAME``, ``LIMES_MQTT_PASSWORD[_FILE]``)."""
    from urllib.parse import urlsplit

    from drivers import MqttSettings

    url = urlsplit(args.mqtt)
    tls = url.scheme in ("mqtts", "ssl")
    if url.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not url.hostname:
        raise SystemExit(f"--mqtt must look like mqtt(s)://host:port, got {args.mqtt!r}")
    files = {"--mqtt-ca": args.mqtt_ca, "--mqtt-cert": args.mqtt_cert, "--mqtt-key": args.mqtt_key}
    for flag, path in files.items():
        if path is None:
            continue
        if not tls:
            raise SystemExit(f"{flag} needs a TLS broker URL (mqtts://host:port)")
        if not Path(path).is_file():
            raise SystemExit(f"{flag}: no such file {path}")
    if (args.mqtt_cert is None) != (args.mqtt_key is None):
        raise SystemExit("--mqtt-cert and --mqtt-key go together")
    return MqttSettings(
        host=url.hostname,
        port=url.port or (8883 if tls else 1883),
        client_id=args.client_id,
        username=os.environ.get("LIMES_MQTT_USERNAME"),
        password=_secret("LIMES_MQTT_PASSWORD"),
        tls=tls,
        ca_file=args.mqtt_ca,
        cert_file=args.mqtt_cert,
        key_file=args.mqtt_key,
    )


def _secret(name: str) -> str | None:
    """A secret from ``$NAME``, else from the file named by ``$NAME_FILE`` (systemd
    credentials, Docker/Kubernetes secrets); surrounding whitespace stripped."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise SystemExit(f"{name}_FILE: cannot read {path}: {exc.strerror}") from exc


def _demo(args: argparse.Namespace) -> int:
    from service.demo import main as demo_main

    return demo_main(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="limes", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    site = sub.add_parser("site", help="inspect and validate site files")
    site_sub = site.add_subparsers(dest="site_command", required=True)
    show = site_sub.add_parser("show", help="print a summary of a site (default: ro-rs)")
    show.add_argument("--site", type=Path, default=None, help="site TOML file")
    show.set_defaults(handler=_site_show)
    check = site_sub.add_parser("check", help="validate site files; exit 2 if any is invalid")
    check.add_argument("files", type=Path, nargs="+")
    check.set_defaults(handler=_site_check)

    run = sub.add_parser("run", help="run the live service on MQTT (and Redis)")
    run.add_argument("--site", type=Path, default=None, help="site TOML (default: ro-rs)")
    run.add_argument(
        "--mqtt",
        default="mqtt://127.0.0.1:1883",
        help="broker URL: mqtt://host:port, or mqtts://host:port for TLS (default port 8883)",
    )
    run.add_argument(
        "--mqtt-ca", default=None, help="CA certificate (PEM) for mqtts:// (default: system CAs)"
    )
    run.add_argument("--mqtt-cert", default=None, help="client certificate (PEM), if required")
    run.add_argument("--mqtt-key", default=None, help="client certificate's key (PEM)")
    run.add_argument(
        "--redis",
        default=None,
        help="redis://host:port/db (default: $LIMES_REDIS_URL or the file named by "
        "$LIMES_REDIS_URL_FILE; none: embedded store, no journal)",
    )
    run.add_argument("--client-id", default="limes-service", help="MQTT persistent session id")
    run.add_argument("--step-s", type=float, default=0.5, help="tracker step period (s)")
    run.add_argument("--metrics-port", type=int, default=9108, help="Prometheus port (0: off)")
    run.add_argument("--log-level", default="info")
    from console import add_arguments as add_console_arguments

    add_console_arguments(run)
    run.add_argument(
        "--clock",
        choices=("wall", "message"),
        default="wall",
        help="wall: steps on wall time; message: each message's sent/t is now, steps as "
        "in a replay (deterministic; tests and re-runs)",
    )
    run.add_argument("--started", type=float, default=None, help="service start time (epoch s)")
    run.add_argument("--no-journal", action="store_true", help="no Redis input journal")
    run.add_argument("--snapshot-s", type=float, default=30.0, help="state snapshot period (s)")
    run.set_defaults(handler=_run)

    for name, text in (
        ("gateway", "scale-out ingest gateway: MQTT shared subscription -> sector streams"),
        ("worker", "scale-out fusion worker: owns sectors by lease (docs/scaling.md)"),
        ("publisher", "scale-out alert publisher: sector outboxes -> MQTT (docs/scaling.md)"),
    ):
        role = sub.add_parser(name, help=text)
        role.add_argument("--site", type=Path, default=None, help="site TOML (default: ro-rs)")
        role.add_argument("--mqtt", default="mqtt://127.0.0.1:1883", help="broker URL")
        role.add_argument("--mqtt-ca", default=None, help="CA certificate (PEM) for mqtts://")
        role.add_argument("--mqtt-cert", default=None, help="client certificate (PEM)")
        role.add_argument("--mqtt-key", default=None, help="client certificate's key (PEM)")
        role.add_argument("--redis", default=None, help="redis://host:port (or $LIMES_REDIS_URL)")
        role.add_argument(
            "--redis-cluster", action="store_true", help="the URL is a Redis Cluster node"
        )
        role.add_argument(
            "--client-id",
            default="limes-gateway" if name == "gateway" else None,
            help="MQTT client id, unique per process"
            + ("" if name == "gateway" else f" (default: limes-{name}-<{name} id>)"),
        )
        role.add_argument("--log-level", default="info")
        role.set_defaults(handler={"gateway": _gateway, "worker": _worker}.get(name, _publisher))
        if name == "publisher":
            role.add_argument("--publisher-id", default=None, help="default: host-pid")
            role.add_argument("--lease-ms", type=int, default=10_000, help="outbox lease (ms)")
            continue
        role.add_argument(
            "--margin-m", type=float, default=1500.0, help="sector overlap margin (m)"
        )
        role.add_argument("--step-s", type=float, default=0.5, help="step / beacon period (s)")
        role.add_argument("--started", type=float, default=None, help="service start (epoch s)")
        if name == "gateway":
            role.add_argument(
                "--clock",
                choices=("wall", "message"),
                default="wall",
                help="message: a message's sent/t is its time, beacons follow it (tests)",
            )
        else:
            role.add_argument("--worker-id", default=None, help="default: host-pid")
            role.add_argument("--lease-ms", type=int, default=10_000, help="sector lease (ms)")
            role.add_argument("--snapshot-s", type=float, default=30.0, help="snapshot period (s)")

    replay = sub.add_parser("replay", help="feed a replay file; write tracks and alerts")
    replay.add_argument("site_file", type=Path, metavar="SITE", help="site TOML")
    replay.add_argument("input", type=Path, metavar="INPUT.jsonl")
    replay.add_argument("--tracks", type=Path, required=True, help="track updates out")
    replay.add_argument("--alerts", type=Path, required=True, help="alerts out")
    replay.add_argument("--messages", type=Path, default=None, help="every outbound message")
    replay.add_argument("--step-s", type=float, default=0.5, help="tracker step period (s)")
    replay.add_argument("--speed", type=float, default=None, help="real-time x N (default: max)")
    replay.set_defaults(handler=_replay)

    demo = sub.add_parser("demo", help="simulator + service in one process, no servers")
    from service.demo import add_arguments

    add_arguments(demo)
    demo.set_defaults(handler=_demo)

    # sim and score parse their own arguments (sim_sensors.cli, sim_sensors.score); no
    # prefix chars here, so every argument after the sub-command is passed through
    for name, handler, text in (
        ("sim", _sim, "generate a scenario (limes sim --help)"),
        ("score", _score, "score tracks and alerts against truth (limes score --help)"),
        ("bench", _bench, "benchmark suites: report, JSON, plots (limes bench --help)"),
    ):
        passthrough = sub.add_parser(name, add_help=False, prefix_chars="\x00", help=text)
        passthrough.add_argument("argv", nargs=argparse.REMAINDER)
        passthrough.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``limes`` console script."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
