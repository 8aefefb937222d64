"""Drivers against a real Mosquitto (fixtures from tests/conftest.py): no mocks."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable

import aiomqtt
import msgspec
import pytest

import geo
from benchmarks.servers import MosquittoServer
from drivers import (
    AVAILABLE_TOPIC,
    DEADLETTER_TOPIC,
    Ingest,
    IngestResult,
    MqttDriver,
    MqttSettings,
)

pytestmark = pytest.mark.broker

SITE = geo.default_site()
FIBRE_TOPIC = "limes/v1/sensors/fibre/FO-01/events"
WAIT_S = 20.0


def batch(seq: int, n: int = 3, device: str = "FO-01") -> bytes:
    now = time.time()
    events = [
        {"t": now, "chainage_m": 100.0 + i, "class": "walking", "confidence": 0.7} for i in range(n)
    ]
    return json.dumps(
        {"v": 1, "device": device, "seq": seq, "sent": now, "events": events}
    ).encode()


class Collector:
    """on_result sink that records results and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.results: list[IngestResult] = []
        self.changed = asyncio.Condition()

    async def __call__(self, res: IngestResult) -> None:
        async with self.changed:
            self.results.append(res)
            self.changed.notify_all()

    def seqs(self) -> list[int]:
        return [r.seq for r in self.results if r.accepted and not r.duplicate and r.meas.size]

    async def wait(self, pred: object) -> None:
        assert callable(pred)
        async with asyncio.timeout(WAIT_S), self.changed:
            await self.changed.wait_for(pred)


def settings(broker: MosquittoServer, client_id: str) -> MqttSettings:
    return MqttSettings(
        host=broker.host,
        port=broker.port,
        client_id=client_id,
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
        timeout_s=5.0,
    )


async def publish_all(broker: MosquittoServer, msgs: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as dev:
        for topic, payload in msgs:
            await dev.publish(topic, payload, qos=1)


@pytest.fixture
async def watcher(mqtt_broker: MosquittoServer) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as c:
        yield c


async def test_batches_decoded_duplicates_once_and_dead_letters(
    mqtt_broker: MosquittoServer, watcher: aiomqtt.Client
) -> None:
    await watcher.subscribe(DEADLETTER_TOPIC, qos=1)
    sink = Collector()
    ingest = Ingest(SITE, started=time.time())
    async with MqttDriver(ingest, settings(mqtt_broker, "t-decode"), sink) as drv:
        async with asyncio.timeout(WAIT_S):
            await drv.wait_connected()
        await publish_all(
            mqtt_broker,
            [
                (FIBRE_TOPIC, batch(1)),
                (FIBRE_TOPIC, batch(1)),  # QoS 1 redelivery of the same batch
                (FIBRE_TOPIC, b"{not json"),
                (FIBRE_TOPIC, batch(2)),
            ],
        )
        await sink.wait(lambda: len(sink.results) >= 4)
        async with asyncio.timeout(WAIT_S):
            dead = await anext(aiomqtt_messages(watcher))
    assert sink.seqs() == [1, 2]
    assert [r.duplicate for r in sink.results] == [False, True, False, False]
    assert sink.results[0].meas.size == 3
    dl = json.loads(dead)
    assert dl["topic"] == FIBRE_TOPIC
    assert dl["reason"].startswith("invalid_json:")
    assert dl["payload_excerpt"] == "{not json"
    assert ingest.metrics.value("duplicate_batches_total", device="FO-01") == 1.0
    assert ingest.metrics.value("rejected_total", reason="invalid_json") == 1.0


async def aiomqtt_messages(client: aiomqtt.Client) -> AsyncIterator[bytes]:
    async for m in client.messages:
        assert isinstance(m.payload, bytes)
        yield m.payload


async def test_availability_retained_and_last_will(mqtt_broker: MosquittoServer) -> None:
    sink = Collector()
    ingest = Ingest(SITE, started=time.time())
    async with MqttDriver(ingest, settings(mqtt_broker, "t-avail"), sink) as drv:
        async with asyncio.timeout(WAIT_S):
            await drv.wait_connected()
        assert await retained(mqtt_broker, AVAILABLE_TOPIC) == b"online"
    assert await retained(mqtt_broker, AVAILABLE_TOPIC) == b"offline"


async def retained(broker: MosquittoServer, topic: str) -> bytes:
    async with aiomqtt.Client(broker.host, broker.port) as c:
        await c.subscribe(topic, qos=1)
        async with asyncio.timeout(WAIT_S):
            async for m in c.messages:
                assert m.retain
                assert isinstance(m.payload, bytes)
                return m.payload
    raise AssertionError  # pragma: no cover


SERVICE_SCRIPT = """
import asyncio, sys, time
import geo
from drivers import Ingest, MqttDriver, MqttSettings

async def main() -> None:
    async def sink(res: object) -> None:
        pass
    cfg = MqttSettings(host=sys.argv[1], port=int(sys.argv[2]), client_id="t-will", keepalive_s=1)
    async with MqttDriver(Ingest(geo.default_site(), started=time.time()), cfg, sink) as d:
        await d.wait_connected()
        print("ready", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""

DEVICE_SCRIPT = """
import sys, json, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
topic = "limes/v1/sensors/fibre/FO-02/status"
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="FO-02")
c.will_set(topic, b'{"state": "offline"}', qos=1, retain=True)
c.connect(sys.argv[1], int(sys.argv[2]), keepalive=1)
c.loop_start()
st = {"v": 1, "device": "FO-02", "t": time.time(), "state": "fault", "detail": "cut at 500"}
c.publish(topic, json.dumps(st), qos=1, retain=True).wait_for_publish(10)
print("ready", flush=True)
time.sleep(60)
"""


async def run_and_kill(script: str, broker: MosquittoServer) -> None:
    """Run ``script`` in a child process until it prints "ready", then SIGKILL it (a crash:
    no DISCONNECT, so the broker publishes the last will)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        broker.host,
        str(broker.port),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(WAIT_S):
            line = await proc.stdout.readline()
        assert line.strip() == b"ready"
    finally:
        proc.kill()
        await proc.wait()


async def test_last_will_published_when_service_dies(mqtt_broker: MosquittoServer) -> None:
    """Availability goes ``offline`` by last will when the service process dies."""
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as watch:
        await watch.subscribe(AVAILABLE_TOPIC, qos=1)
        await run_and_kill(SERVICE_SCRIPT, mqtt_broker)
        await wait_payload(watch, lambda p: p == b"offline")
    assert await retained(mqtt_broker, AVAILABLE_TOPIC) == b"offline"


async def wait_payload(client: aiomqtt.Client, pred: Callable[[bytes], bool]) -> None:
    """Wait for a message whose payload satisfies ``pred`` (retained or live)."""
    async with asyncio.timeout(WAIT_S):
        async for m in client.messages:
            if isinstance(m.payload, bytes) and pred(m.payload):
                return


async def test_device_status_retained_and_last_will(mqtt_broker: MosquittoServer) -> None:
    """A device's retained status, then its last will, reach a service started later."""
    topic = "limes/v1/sensors/fibre/FO-02/status"
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as watch:
        await watch.subscribe(topic, qos=1)
        await run_and_kill(DEVICE_SCRIPT, mqtt_broker)
        await wait_payload(watch, lambda p: b"offline" in p)
    assert b"offline" in await retained(mqtt_broker, topic)
    sink = Collector()
    ingest = Ingest(SITE, started=time.time())
    async with MqttDriver(ingest, settings(mqtt_broker, "t-status"), sink):
        await sink.wait(lambda: any(r.status is not None for r in sink.results))
    st = next(r.status for r in sink.results if r.status is not None)
    assert st.device == "FO-02"
    assert st.state == "offline"
    assert ingest.snapshot(time.time())["FO-02"].state == "offline"


async def test_unacked_message_redelivered_after_crash(fresh_mqtt_broker: MosquittoServer) -> None:
    """The sink fails before the ack: the next session with the same id gets the batch again."""
    broker = fresh_mqtt_broker
    cfg = settings(broker, "t-crash")

    class BoomError(Exception):
        pass

    async def crash(res: IngestResult) -> None:
        raise BoomError

    # first session: subscribe (persistent), then crash on the first message
    ingest = Ingest(SITE, started=time.time())
    with pytest.raises(ExceptionGroup) as info:  # noqa: PT012
        async with MqttDriver(ingest, cfg, crash) as drv:
            async with asyncio.timeout(WAIT_S):
                await drv.wait_connected()
            await publish_all(broker, [(FIBRE_TOPIC, batch(7))])
            await asyncio.sleep(WAIT_S)
    assert info.group_contains(BoomError)
    sink = Collector()
    async with MqttDriver(Ingest(SITE, started=time.time()), cfg, sink):
        await sink.wait(lambda: 7 in sink.seqs())


async def test_broker_restart_mid_stream_loses_nothing(fresh_mqtt_broker: MosquittoServer) -> None:
    """Stop (graceful, persistence saved) and restart the broker while batches flow."""
    broker = fresh_mqtt_broker
    sink = Collector()
    ingest = Ingest(SITE, started=time.time())
    n = 40
    async with MqttDriver(ingest, settings(broker, "t-restart"), sink) as drv:
        async with asyncio.timeout(WAIT_S):
            await drv.wait_connected()
        await publish_all(broker, [(FIBRE_TOPIC, batch(s)) for s in range(n // 2)])
        await asyncio.to_thread(broker.restart)
        await publish_until_acked(broker, [(FIBRE_TOPIC, batch(s)) for s in range(n // 2, n)])
        await sink.wait(lambda: len(set(sink.seqs())) == n)
    assert sorted(sink.seqs()) == list(range(n))
    assert drv.source.connections >= 2


async def test_broker_killed_while_batch_unacked(fresh_mqtt_broker: MosquittoServer) -> None:
    """SIGKILL the broker while the service holds an unacknowledged batch: after the
    restart the batch is redelivered (the broker saved the session at once)."""
    broker = fresh_mqtt_broker
    broker.stop()
    broker.autosave_interval = 1
    broker.extra_config.append("autosave_on_changes true")
    broker.start()
    entered, release = asyncio.Event(), asyncio.Event()
    sink = Collector()

    async def slow(res: IngestResult) -> None:
        if res.seq == 1 and not release.is_set():
            entered.set()
            await release.wait()
        await sink(res)

    ingest = Ingest(SITE, started=time.time())
    async with MqttDriver(ingest, settings(broker, "t-kill"), slow) as drv:
        async with asyncio.timeout(WAIT_S):
            await drv.wait_connected()
        await publish_all(broker, [(FIBRE_TOPIC, batch(1))])
        async with asyncio.timeout(WAIT_S):
            await entered.wait()
        # Mosquitto saves once the change count *exceeds* autosave_interval (1): two more
        # retained changes make sure the queued batch is on disk before the crash.
        async with aiomqtt.Client(broker.host, broker.port) as other:
            for k in range(2):
                await other.publish(f"test/save/{k}", b"x", qos=1, retain=True)
        await asyncio.sleep(0.5)
        broker.kill()
        release.set()
        broker.start()
        await publish_until_acked(broker, [(FIBRE_TOPIC, batch(2))])
        await sink.wait(lambda: set(sink.seqs()) >= {1, 2})
        # the batch held unacknowledged across the crash came again (and was de-duplicated)
        await sink.wait(lambda: any(r.seq == 1 and r.duplicate for r in sink.results))


async def publish_until_acked(broker: MosquittoServer, msgs: list[tuple[str, bytes]]) -> None:
    """A device's behaviour: retry each QoS 1 batch until the broker acknowledged it."""
    for topic, payload in msgs:
        while True:
            try:
                async with asyncio.timeout(5.0):
                    await publish_all(broker, [(topic, payload)])
                break
            except (aiomqtt.MqttError, TimeoutError):
                await asyncio.sleep(0.1)


def test_dead_letter_json_shape() -> None:
    ingest = Ingest(SITE, started=0.0)
    res = ingest.handle(FIBRE_TOPIC, b"\xff" * 2000, 10.0)
    from drivers._models import encode_dead_letter

    d = msgspec.json.decode(encode_dead_letter(res.dead_letters[0]))
    assert set(d) == {"topic", "reason", "payload_excerpt", "t"}
    assert len(d["payload_excerpt"].encode()) <= 512
