"""Shared fixtures: throwaway Mosquitto and Redis servers (see ``benchmarks/servers.py``).

Session-scoped ``mqtt_broker`` and ``redis_server`` start once, on the first test
that asks for them, and stop at the end of the session. A test that stops, kills
or restarts a server should take ``fresh_mqtt_broker`` / ``fresh_redis_server``
instead, which belong to that test alone. The session Redis is flushed before
every test that uses it; a session server a test left stopped is started again.

A missing ``mosquitto`` or ``redis-server`` fails the test with the command to
install it; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeAlias, TypeVar

import pytest

from benchmarks.servers import (
    MosquittoServer,
    RedisCluster,
    RedisOptions,
    RedisServer,
    ServerError,
    ServerNotInstalledError,
)

MosquittoFactory: TypeAlias = Callable[..., MosquittoServer]
RedisFactory: TypeAlias = Callable[..., RedisServer]
RedisClusterFactory: TypeAlias = Callable[..., RedisCluster]

_S = TypeVar("_S", MosquittoServer, RedisServer, RedisCluster)


def _fail_on_server_error(exc: ServerError) -> None:
    if isinstance(exc, ServerNotInstalledError):
        pytest.fail(str(exc), pytrace=False)
    pytest.fail(f"could not start a test server: {exc}", pytrace=False)


def _started(build: Callable[[], _S]) -> _S:
    try:
        server = build()
        server.start()
    except ServerError as exc:
        _fail_on_server_error(exc)
        raise  # unreachable: pytest.fail raises
    return server


# -- Mosquitto ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """One Mosquitto for the whole session: ``.host``, ``.port``, ``.url``.

    Shared by many tests: do not stop it or rely on its persistence; use
    ``fresh_mqtt_broker`` for that.
    """
    workdir = tmp_path_factory.mktemp("mosquitto")
    server = _started(lambda: MosquittoServer(workdir))
    yield server
    server.stop()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[MosquittoFactory]:
    """Start extra brokers: ``mosquitto_factory(autosave_interval=1, extra_config=[...])``.

    Each gets its own directory under the test's ``tmp_path`` (or ``workdir=``) and
    is stopped after the test.
    """
    servers: list[MosquittoServer] = []

    def make(
        *,
        workdir: Path | None = None,
        autosave_interval: int = 1800,
        extra_config: tuple[str, ...] = (),
    ) -> MosquittoServer:
        directory = workdir if workdir is not None else tmp_path / f"mosquitto{len(servers)}"
        server = _started(
            lambda: MosquittoServer(
                directory, autosave_interval=autosave_interval, extra_config=extra_config
            )
        )
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.kill()


@pytest.fixture
def fresh_mqtt_broker(mosquitto_factory: MosquittoFactory) -> MosquittoServer:
    """A Mosquitto for this test alone; stop, kill and restart it freely."""
    return mosquitto_factory()


# -- Redis --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis (no persistence) for the session: ``.url``, ``.client()``.

    Flushed before each test that uses it. Use ``fresh_redis_server`` or
    ``redis_factory`` to stop, kill or restart a Redis.
    """
    workdir = tmp_path_factory.mktemp("redis")
    server = _started(lambda: RedisServer(workdir))
    yield server
    server.stop()


@pytest.fixture
def redis_options() -> RedisOptions:
    """Options for ``fresh_redis_server``; override in a module or class for AOF:

    ``@pytest.fixture`` ``def redis_options(): return RedisOptions.aof()``
    """
    return RedisOptions()


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[RedisFactory]:
    """Start extra Redis servers: ``redis_factory(RedisOptions.aof(), workdir=path)``.

    ``workdir`` holds the config, log and (with AOF) the data; give a second
    server the same ``workdir`` after stopping the first to reopen its data.
    Every server started here is killed after the test.
    """
    servers: list[RedisServer] = []

    def make(options: RedisOptions | None = None, *, workdir: Path | None = None) -> RedisServer:
        directory = workdir if workdir is not None else tmp_path / f"redis{len(servers)}"
        server = _started(lambda: RedisServer(directory, options))
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.kill()


@pytest.fixture
def fresh_redis_server(redis_factory: RedisFactory, redis_options: RedisOptions) -> RedisServer:
    """A Redis for this test alone, started with ``redis_options``."""
    return redis_factory(redis_options)


@pytest.fixture
def redis_cluster_factory(tmp_path: Path) -> Iterator[RedisClusterFactory]:
    """Start a Redis Cluster: ``redis_cluster_factory(masters=3)``; killed after the test."""
    clusters: list[RedisCluster] = []

    def make(masters: int = 3, options: RedisOptions | None = None) -> RedisCluster:
        workdir = tmp_path / f"cluster{len(clusters)}"
        cluster = RedisCluster(workdir, masters, options)
        clusters.append(cluster)  # before start: a half-started cluster is still cleaned up
        return _started(lambda: cluster)

    yield make
    for cluster in clusters:
        cluster.kill()


# -- keeping the session servers clean ----------------------------------------------


@pytest.fixture(autouse=True)
def _reset_session_servers(request: pytest.FixtureRequest) -> None:
    """Before each test that uses them: session servers running, session Redis empty.

    Tests that do not ask for a server (directly or through another fixture) do not
    start one.
    """
    names = request.fixturenames
    if "mqtt_broker" in names:
        broker: MosquittoServer = request.getfixturevalue("mqtt_broker")
        if not broker.running:
            _started(lambda: broker)
    if "redis_server" in names:
        server: RedisServer = request.getfixturevalue("redis_server")
        if not server.running:
            _started(lambda: server)
        with server.client() as conn:
            conn.flushall()
