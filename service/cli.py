"""The ``limes`` command line.

Each sub-command lives in its own small function; heavy imports happen inside them so
``limes site check`` starts fast and does not compile Numba kernels.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

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

    # sim and score parse their own arguments (sim_sensors.cli, sim_sensors.score); no
    # prefix chars here, so every argument after the sub-command is passed through
    for name, handler, text in (
        ("sim", _sim, "generate a scenario (limes sim --help)"),
        ("score", _score, "score tracks and alerts against truth (limes score --help)"),
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
