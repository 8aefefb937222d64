"""Throwaway Mosquitto and Redis servers for tests and benchmarks.

Each server runs as a child process on a free loopback port, with its config,
data and log in its own directory. Nothing here talks to a system-wide broker or
Redis on the default ports. The pytest fixtures in ``tests/conftest.py`` wrap
these classes; they can also be used directly::

    with MosquittoServer(tmp_path / "mqtt") as broker:
        ...  # connect to broker.host, broker.port

Stopping uses SIGTERM, so Mosquitto writes its persistence database and Redis
flushes its AOF; ``kill()`` uses SIGKILL and saves nothing (a crash).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import redis
import redis.cluster

__all__ = [
    "INSTALL_HINT",
    "MosquittoServer",
    "RedisCluster",
    "RedisOptions",
    "RedisServer",
    "ServerError",
    "ServerNotInstalledError",
    "find_binary",
    "free_port",
]

HOST = "127.0.0.1"
INSTALL_HINT = "apt-get install -y mosquitto redis-server"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
_SEARCH_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")
_LOG_TAIL_LINES = 30


class ServerError(RuntimeError):
    """A test server failed to start or stop; the message carries its log tail."""

    def __init__(self, name: str, reason: str, log_tail: str = "") -> None:
        self.name = name
        self.reason = reason
        self.log_tail = log_tail
        message = f"{name}: {reason}"
        if log_tail:
            message += f"\n--- last lines of the {name} log ---\n{log_tail}"
        super().__init__(message)


class ServerNotInstalledError(ServerError):
    """The server binary is not installed; the message says what to install."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        super().__init__(
            binary,
            f"`{binary}` not found on PATH or in {', '.join(_SEARCH_DIRS)}. "
            f"Install it with `{INSTALL_HINT}` (./scripts/test does this when run as root).",
        )


def find_binary(name: str) -> str:
    """Return the path of a server binary, also looking in the sbin directories."""
    found = shutil.which(name)
    if found is not None:
        return found
    for directory in _SEARCH_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise ServerNotInstalledError(name)


_handed_out: set[int] = set()


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago (bind to port 0).

    A port is never handed out twice in one process, so servers built before any
    of them starts (a cluster's nodes and bus ports) cannot collide.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class _ServerProcess:
    """One server child process: start, readiness wait, stop, kill, restart.

    The port is chosen once and kept across restarts, so clients reconnect to the
    same address and persistent state in ``workdir`` is reused.
    """

    name = "server"

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.host = HOST
        self.port = port if port is not None else free_port()
        self._port_fixed = port is not None
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- to override -------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _write_config(self) -> None:
        raise NotImplementedError

    def _ready(self) -> bool:
        return _port_open(self.host, self.port)

    # -- lifecycle -----------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return _tail(self.log_path, lines)

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the server and wait until it accepts connections.

        On the very first start with an automatically chosen port, a lost race for
        the port is retried once with a fresh port.
        """
        if self.running:
            return
        try:
            self._start_once(timeout)
        except ServerError:
            if self._port_fixed or not self._port_taken():
                raise
            self._pick_ports()
            self._start_once(timeout)
        self._port_fixed = True  # later restarts keep this port

    def _pick_ports(self) -> None:
        self.port = free_port()

    def _port_taken(self) -> bool:
        return "in use" in self.log_tail().lower()

    def _start_once(self, timeout: float) -> None:
        self._write_config()
        with self.log_path.open("ab") as log:
            log.write(f"=== starting {self.name} on {self.host}:{self.port} ===\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self._command(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise ServerError(
                    self.name, f"exited with code {code} during start-up", self.log_tail()
                )
            if self._ready():
                return
            if time.monotonic() > deadline:
                self._terminate(signal.SIGKILL)
                raise ServerError(
                    self.name,
                    f"not ready on {self.host}:{self.port} after {timeout:.0f} s",
                    self.log_tail(),
                )
            time.sleep(0.02)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop gracefully (SIGTERM): state is saved as the server's config says."""
        self._terminate(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), like a crash: nothing is saved on the way out."""
        self._terminate(signal.SIGKILL)

    def restart(self, timeout: float = START_TIMEOUT_S) -> None:
        """Graceful stop, then start on the same port with the same data directory."""
        self.stop()
        self.start(timeout)

    def _terminate(self, sig: signal.Signals, timeout: float = STOP_TIMEOUT_S) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)
            raise ServerError(
                self.name, f"did not stop within {timeout:.0f} s of {sig.name}", self.log_tail()
            ) from None
        # The port is closed once the process is gone; wait for it so that an
        # immediate start() on the same port does not race the old listener.
        deadline = time.monotonic() + timeout
        while _port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"


class MosquittoServer(_ServerProcess):
    """A throwaway Mosquitto broker with on-disk persistence in ``workdir``.

    Persistence is on, so persistent sessions (``clean_session=False``) and their
    queued QoS 1/2 messages survive ``stop()``/``start()``. Mosquitto writes its
    database on a graceful stop and every ``autosave_interval`` seconds; after
    ``kill()`` whatever changed since the last save is lost, as in production.
    """

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        autosave_interval: int = 1800,
        extra_config: Sequence[str] = (),
        allow_anonymous: bool = True,
    ) -> None:
        self.binary = find_binary("mosquitto")
        super().__init__(workdir, port=port)
        self.config_path = self.workdir / "mosquitto.conf"
        self.persistence_dir = self.workdir / "data"
        self.persistence_dir.mkdir(exist_ok=True)
        self.autosave_interval = autosave_interval
        self.extra_config = list(extra_config)
        #: False: no ``allow_anonymous true`` line (give auth settings in ``extra_config``;
        #: listener options there apply to this server's single listener)
        self.allow_anonymous = allow_anonymous

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        return [self.binary, "-c", str(self.config_path)]

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            *(["allow_anonymous true"] if self.allow_anonymous else []),
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
            "persistence_file mosquitto.db",
            f"autosave_interval {self.autosave_interval}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp true",
        ]
        if os.geteuid() == 0:
            # As root Mosquitto drops to user "mosquitto", who cannot write our tmp dir.
            lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
        lines.extend(self.extra_config)
        self.config_path.write_text("\n".join(lines) + "\n")


@dataclasses.dataclass(frozen=True)
class RedisOptions:
    """How to run a test Redis.

    The default keeps nothing on disk (``save ''``, ``appendonly no``). With
    ``appendonly=True`` every write is fsynced to the AOF (``appendfsync``), so
    data survives ``stop()`` and ``kill()`` alike. ``extra`` adds raw config
    directives, e.g. ``{"maxmemory": "64mb"}``.
    """

    appendonly: bool = False
    appendfsync: str = "always"
    extra: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def aof(cls, appendfsync: str = "always") -> RedisOptions:
        return cls(appendonly=True, appendfsync=appendfsync)


class RedisServer(_ServerProcess):
    """A throwaway ``redis-server``; its data lives in ``workdir`` (``dir``)."""

    name = "redis"

    def __init__(
        self,
        workdir: Path,
        options: RedisOptions | None = None,
        *,
        port: int | None = None,
        cluster: bool = False,
    ) -> None:
        self.binary = find_binary("redis-server")
        super().__init__(workdir, port=port)
        self.options = options if options is not None else RedisOptions()
        self.config_path = self.workdir / "redis.conf"
        self.cluster = cluster
        self.cluster_port = free_port() if cluster else None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    # The two ignores below make the file check both with the old types-redis stubs
    # (generic Redis[_StrType]) and with redis' own inline types (not generic).
    def client(self, *, decode_responses: bool = False) -> redis.Redis:  # type: ignore[type-arg,unused-ignore]
        """A new synchronous client for this server; close it (or use ``with``)."""
        if decode_responses:
            return redis.Redis(
                host=self.host, port=self.port, socket_timeout=5.0, decode_responses=True
            )
        return redis.Redis(host=self.host, port=self.port, socket_timeout=5.0)

    def _command(self) -> list[str]:
        return [self.binary, str(self.config_path)]

    def _pick_ports(self) -> None:
        super()._pick_ports()
        if self.cluster:
            self.cluster_port = free_port()

    def _ready(self) -> bool:
        try:
            with redis.Redis(
                host=self.host, port=self.port, socket_timeout=0.5, socket_connect_timeout=0.2
            ) as conn:
                return bool(conn.ping())
        except redis.exceptions.RedisError:  # refused, or LOADING the AOF still
            return False

    def _write_config(self) -> None:
        opts = self.options
        lines = [
            f"port {self.port}",
            f"bind {self.host}",
            "protected-mode no",
            "daemonize no",
            'logfile ""',
            f'dir "{self.workdir}"',
            "save ''",
            f"appendonly {'yes' if opts.appendonly else 'no'}",
            f"appendfsync {opts.appendfsync}",
        ]
        if self.cluster:
            lines += [
                "cluster-enabled yes",
                f"cluster-port {self.cluster_port}",
                f'cluster-config-file "{self.workdir / "nodes.conf"}"',
                "cluster-node-timeout 5000",
            ]
        lines += [f"{key} {value}" for key, value in opts.extra.items()]
        self.config_path.write_text("\n".join(lines) + "\n")


class RedisCluster:
    """A Redis Cluster of ``masters`` nodes (no replicas) on loopback ports.

    Built with ``redis-cli --cluster create``; ``start()`` returns once every
    node reports ``cluster_state:ok``.
    """

    name = "redis-cluster"

    def __init__(
        self, workdir: Path, masters: int = 3, options: RedisOptions | None = None
    ) -> None:
        if masters < 3:
            msg = f"a Redis Cluster needs at least 3 masters, got {masters}"
            raise ValueError(msg)
        self.cli = find_binary("redis-cli")
        self.workdir = Path(workdir)
        self.nodes = [
            RedisServer(self.workdir / f"node{i}", options, cluster=True) for i in range(masters)
        ]

    @property
    def host(self) -> str:
        return self.nodes[0].host

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def url(self) -> str:
        """URL of the first node; a cluster client discovers the rest."""
        return f"redis://{self.host}:{self.port}"

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(node.host, node.port) for node in self.nodes]

    def client(self, *, decode_responses: bool = False) -> redis.cluster.RedisCluster:  # type: ignore[type-arg,unused-ignore]
        """A new cluster client that knows every node; close it when done."""
        # The client discovers every node from the first one (CLUSTER SLOTS).
        return redis.cluster.RedisCluster(
            host=self.host, port=self.port, decode_responses=decode_responses, socket_timeout=5.0
        )

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        if not self._state_ok():
            self._create(timeout)
        self._wait_ok(timeout)

    def _create(self, timeout: float) -> None:
        argv = [self.cli, "--cluster", "create"]
        argv += [f"{host}:{port}" for host, port in self.addresses]
        argv += ["--cluster-replicas", "0", "--cluster-yes"]
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerError(self.name, f"`redis-cli --cluster create` timed out: {exc}") from exc
        if result.returncode != 0:
            raise ServerError(
                self.name,
                f"`redis-cli --cluster create` exited with {result.returncode}",
                (result.stdout + result.stderr)[-3000:],
            )

    def _state_ok(self) -> bool:
        for node in self.nodes:
            try:
                with node.client(decode_responses=True) as conn:
                    info = conn.execute_command("CLUSTER", "INFO")
            except redis.exceptions.RedisError:
                return False
            if "cluster_state:ok" not in str(info):
                return False
        return True

    def _wait_ok(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._state_ok():
            if time.monotonic() > deadline:
                tails = "\n".join(f"[{n.port}]\n{n.log_tail(10)}" for n in self.nodes)
                raise ServerError(self.name, "cluster_state never became ok", tails)
            time.sleep(0.05)

    def stop(self) -> None:
        errors: list[ServerError] = []
        for node in self.nodes:
            try:
                node.stop()
            except ServerError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def kill(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(ServerError):
                node.kill()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
