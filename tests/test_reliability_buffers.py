"""The degraded-mode buffers of the live service against a real Redis that goes away:
records and alert writes made while Redis is down are written exactly once, in order,
when it is back, even when two coroutines flush at the same time (the step loop's
self-check and the pipeline's next append do exactly that in ``limes run``); and the
MQTT intake's bound against a real Mosquitto."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiomqtt
import pytest

from alerts import RedisAlertStore
from alerts.model import PatrolWrite
from benchmarks.servers import RedisOptions, RedisServer
from drivers import MqttSettings, MqttSource
from service.journal import STREAM, Record, RedisJournal, ResilientStore
from tests.conftest import MosquittoFactory

pytestmark = pytest.mark.broker

N = 1_700  # over three journal chunks (500) and eight store chunks (200)


@pytest.fixture
def redis_options() -> RedisOptions:
    """AOF: what was written before the outage survives the restart."""
    return RedisOptions.aof()


async def test_journal_buffer_flushed_once_in_order_by_concurrent_flushers(
    fresh_redis_server: RedisServer,
) -> None:
    redis = fresh_redis_server
    journal = RedisJournal.from_url(redis.url, retry_s=0.0)
    try:
        await journal.append(Record("s", 0.0))
        await asyncio.to_thread(redis.stop)
        for i in range(1, N + 1):
            await journal.append(Record("m", float(i), "sensors/fibre/FO-01/events", b"%d" % i))
        assert journal.degraded
        assert len(journal.buffer) == N
        await asyncio.to_thread(redis.start)

        results = await asyncio.gather(*(journal.flush(force=True) for _ in range(3)))

        assert results == [True, True, True]
        assert not journal.buffer
        got = [rec for _, rec in await journal.records("0-0")]
        assert [r.t for r in got] == [float(i) for i in range(N + 1)]
        assert [r.payload for r in got[1:]] == [b"%d" % i for i in range(1, N + 1)]
        assert journal.last_id == (await redis_last_id(journal))
    finally:
        await journal.aclose()


async def redis_last_id(journal: RedisJournal) -> str:
    last: Any = await journal.client.xrevrange(STREAM, count=1)
    rid = last[0][0]
    return rid.decode() if isinstance(rid, bytes) else str(rid)


async def test_alert_store_buffer_applied_once_by_concurrent_flushers(
    fresh_redis_server: RedisServer,
) -> None:
    redis = fresh_redis_server
    store = ResilientStore(RedisAlertStore.from_url(redis.url), retry_s=0.0)
    try:
        await asyncio.to_thread(redis.stop)
        ops = [
            PatrolWrite(
                unit=f"RO-P{i:04d}",
                t=float(i),
                lat=45.5 + i * 1e-4,
                lon=20.9,
                team="RO",
                available=True,
            )
            for i in range(N)
        ]
        for i in range(0, N, 100):
            assert await store.apply(ops[i : i + 100]) == [True] * 100  # buffered
        assert store.degraded
        assert len(store.buffer) == N
        await asyncio.to_thread(redis.start)

        results = await asyncio.gather(
            store.flush(force=True), store.flush(force=True), store.apply(ops[:1])
        )

        assert list(results[:2]) == [True, True]
        assert not store.buffer
        units = [p.unit for p in await store.patrols()]
        assert units == sorted(op.unit for op in ops)
    finally:
        await store.aclose()


async def test_mqtt_intake_is_bounded_when_the_handler_is_slow(
    mosquitto_factory: MosquittoFactory,
) -> None:
    """Backpressure on input: a handler slower than the publisher does not make the
    service queue the broker's backlog in memory (Mosquitto 2.0.11 sends a whole window
    per PUBACK); every message is still handled once, in order, and acknowledged."""
    # the backlog now waits in the broker: its default queue limit (1000) would drop it
    broker = mosquitto_factory(extra_config=("max_queued_messages 0",))
    high, n = 50, 1_500
    got: list[int] = []
    waiting_max = 0
    source: MqttSource | None = None
    done = asyncio.Event()

    async def handler(topic: str, payload: bytes) -> None:
        nonlocal waiting_max
        assert source is not None
        assert source._client is not None
        waiting_max = max(waiting_max, source._client._queue.qsize())
        got.append(int(payload))
        if got[-1] == n - 1:
            done.set()
        await asyncio.sleep(0.002)  # slower than the publisher

    settings = MqttSettings(
        host=broker.host, port=broker.port, client_id="intake-test",
        subscriptions=("bulk/#",), max_waiting=high,
    )  # fmt: skip
    source = MqttSource(settings, handler)
    async with source:
        await asyncio.wait_for(source.wait_connected(), 10)
        async with aiomqtt.Client(broker.host, broker.port, identifier="bulk-pub") as pub:
            for i in range(n):
                await pub.publish("bulk/x", b"%d" % i, qos=1)
        await asyncio.wait_for(done.wait(), 60)
        assert source._intake is not None
        pauses = source._intake.pauses
    assert got == list(range(n))
    assert pauses > 0  # the window was reached and reading stopped
    assert waiting_max <= high + 20, waiting_max

    # a resumed session whose backlog floods in right after the CONNACK: the set-up
    # (presence PUBACK, SUBACK) is still read, and the backlog is taken in order
    async with aiomqtt.Client(broker.host, broker.port, identifier="bulk-pub") as pub:
        for i in range(n, 2 * n):
            await pub.publish("bulk/x", b"%d" % i, qos=1)
    n, done, waiting_max = 2 * n, asyncio.Event(), 0
    # a window smaller than what the broker sends before the SUBACK
    source = MqttSource(dataclasses.replace(settings, max_waiting=5), handler)
    async with source:
        await asyncio.wait_for(source.wait_connected(), 10)
        await asyncio.wait_for(done.wait(), 60)
    first, second = got[: n // 2], got[n // 2 :]
    assert first == list(range(n // 2))
    # the first session's last message may be redelivered (closed before its PUBACK)
    assert second in (list(range(n // 2, n)), [n // 2 - 1, *range(n // 2, n)]), second[:3]
    assert waiting_max <= 5 + 20 + 20, waiting_max  # + the window sent before SUBACK
