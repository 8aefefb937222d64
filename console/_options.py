"""Command-line options of the console (light: no web framework imported here)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

USERS_ENV = "LIMES_CONSOLE_USERS"


@dataclass(frozen=True, slots=True)
class ConsoleOptions:
    """Where the console listens and who may log in.

    ``users`` None: the demo writes a users file with random passwords and prints them.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    users: Path | None = None
    secure_cookies: bool = False


def add_arguments(p: argparse.ArgumentParser, *, default_port: int = 8080) -> None:
    """``--console-port``, ``--console-host``, ``--console-users``, ``--console-secure``."""
    g = p.add_argument_group("operator console")
    g.add_argument(
        "--console-port",
        type=int,
        default=default_port,
        help=f"web console port (0: off; default {default_port})",
    )
    g.add_argument(
        "--console-host", default="127.0.0.1", help="console listen address (default loopback)"
    )
    g.add_argument(
        "--console-users",
        type=Path,
        default=None,
        help=f"console users file (TOML/JSON, scrypt hashes; default ${USERS_ENV})",
    )
    g.add_argument(
        "--console-secure",
        action="store_true",
        help="mark the session cookie Secure (console served behind TLS)",
    )


def options_from_args(args: argparse.Namespace, *, need_users: bool) -> ConsoleOptions | None:
    """The console options of parsed ``args``; None when the console is off (port 0, or
    ``need_users`` and neither ``--console-users`` nor ``$LIMES_CONSOLE_USERS`` is set)."""
    if args.console_port == 0:
        return None
    users = args.console_users
    if users is None and os.environ.get(USERS_ENV):
        users = Path(os.environ[USERS_ENV])
    if users is None and need_users:
        return None
    return ConsoleOptions(
        host=args.console_host,
        port=args.console_port,
        users=users,
        secure_cookies=args.console_secure,
    )
