"""The test servers themselves: real Mosquitto and Redis behind the fixtures."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiomqtt
import pytest
import redis

from benchmarks import servers
from benchmarks.servers import MosquittoServer, RedisOptions, RedisServer
from tests.conftest import MosquittoFactory, RedisClusterFactory, RedisFactory

pytestmark = pytest.mark.broker

RECEIVE_TIMEOUT_S = 5.0


async def _next_message(client: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        async for message in client.messages:
            return message
    msg = "client disconnected before a message arrived"
    raise AssertionError(msg)


def _topic(name: str) -> str:
    return f"limes/test/{name}/{uuid.uuid4().hex}"


# -- Mosquitto ----------------------------------------------------------------------


async def test_mqtt_publish_subscribe_round_trip_qos1(mqtt_broker: MosquittoServer) -> None:
    assert mqtt_broker.url == f"mqtt://127.0.0.1:{mqtt_broker.port}"
    assert mqtt_broker.port != 1883  # never the system broker
    topic = _topic("roundtrip")
    payload = b'{"v": 1, "device": "FO-01", "seq": 1, "sent": 0, "events": []}'
    async with (
        aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as subscriber,
        aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as publisher,
    ):
        await subscriber.subscribe(f"{topic}/#", qos=1)
        await publisher.publish(f"{topic}/events", payload, qos=1)
        message = await _next_message(subscriber)
    assert message.topic.matches(f"{topic}/events")
    assert message.payload == payload
    assert message.qos == 1


async def test_persistent_session_keeps_queued_qos1_message_across_restart(
    fresh_mqtt_broker: MosquittoServer,
) -> None:
    broker = fresh_mqtt_broker
    topic = _topic("persist")
    client_id = "limes-test-persistent"

    async with aiomqtt.Client(
        broker.host, broker.port, identifier=client_id, clean_session=False
    ) as subscriber:
        await subscriber.subscribe(topic, qos=1)
    # The subscriber is offline; the broker queues this for its session.
    async with aiomqtt.Client(broker.host, broker.port) as publisher:
        await publisher.publish(topic, b"queued-while-offline", qos=1)

    old_pid = broker.pid
    broker.restart()
    assert broker.running
    assert broker.pid != old_pid
    assert (broker.persistence_dir / "mosquitto.db").is_file()

    async with aiomqtt.Client(
        broker.host, broker.port, identifier=client_id, clean_session=False
    ) as subscriber:
        # No new subscribe: both the subscription and the message come from the session.
        message = await _next_message(subscriber)
    assert message.topic.matches(topic)
    assert message.payload == b"queued-while-offline"
    assert message.qos == 1


async def test_killed_broker_refuses_then_start_serves_again(
    fresh_mqtt_broker: MosquittoServer,
) -> None:
    broker = fresh_mqtt_broker
    broker.kill()
    assert not broker.running
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(broker.host, broker.port, timeout=2):
            pass

    broker.start()
    topic = _topic("after-kill")
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(topic, qos=1)
        await client.publish(topic, b"back", qos=1)
        assert (await _next_message(client)).payload == b"back"


def test_mosquitto_start_failure_reports_the_log(mosquitto_factory: MosquittoFactory) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"(?s)exited with code .*no_such_option"):
        mosquitto_factory(extra_config=("no_such_option true",))


def test_missing_binary_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(servers, "_SEARCH_DIRS", ("/nonexistent",))
    with pytest.raises(servers.ServerNotInstalledError) as info:
        MosquittoServer(Path("/nonexistent/unused"))
    assert "apt-get install -y mosquitto redis-server" in str(info.value)
    assert info.value.binary == "mosquitto"


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = {servers.free_port() for _ in range(20)}
    assert len(ports) == 20
    assert all(1024 <= port <= 65535 for port in ports)


# -- Redis --------------------------------------------------------------------------


def test_redis_write_and_read(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.port != 6379  # never the system Redis
    with redis.Redis.from_url(redis_server.url) as conn:
        conn.hset("alert:A-1", mapping={"state": "open", "priority": "1"})
        conn.set("seen:FO-01", 1842)
    with redis_server.client(decode_responses=True) as conn:
        assert conn.hgetall("alert:A-1") == {"state": "open", "priority": "1"}
        assert conn.get("seen:FO-01") == "1842"


@pytest.mark.parametrize("attempt", [1, 2])
def test_session_redis_is_flushed_between_tests(redis_server: RedisServer, attempt: int) -> None:
    # Whichever of the two runs second fails unless the autouse fixture flushed.
    with redis_server.client() as conn:
        assert conn.dbsize() == 0
        assert conn.set("leak-check", attempt, nx=True)


def test_default_redis_keeps_nothing_across_restart(fresh_redis_server: RedisServer) -> None:
    with fresh_redis_server.client() as conn:
        conn.set("volatile", "x")
    fresh_redis_server.restart()
    with fresh_redis_server.client() as conn:
        assert conn.get("volatile") is None
    assert not list(fresh_redis_server.workdir.glob("*.rdb"))


def test_aof_redis_keeps_writes_across_kill(redis_factory: RedisFactory, tmp_path: Path) -> None:
    server = redis_factory(RedisOptions.aof(), workdir=tmp_path / "aof")
    with server.client() as conn:
        assert conn.config_get("appendfsync") == {"appendfsync": "always"}
        for i in range(100):
            conn.rpush("events", i)
    server.kill()  # no graceful shutdown: only the fsynced AOF is left
    server.start()
    with server.client() as conn:
        assert conn.llen("events") == 100
        assert conn.lindex("events", -1) == b"99"


def test_redis_cluster_write_and_read(redis_cluster_factory: RedisClusterFactory) -> None:
    cluster = redis_cluster_factory(masters=3)
    keys = [f"track:{i}" for i in range(60)]
    with cluster.client(decode_responses=True) as conn:
        for i, key in enumerate(keys):
            conn.set(key, str(i))
        assert [conn.get(key) for key in keys] == [str(i) for i in range(60)]
    per_node = []
    for node in cluster.nodes:
        with node.client() as conn:
            per_node.append(conn.dbsize())
    assert sum(per_node) == len(keys)
    assert sum(1 for count in per_node if count) >= 2  # really sharded, not one node
