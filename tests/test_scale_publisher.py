"""Alert publishers (``scale.publisher``) on a real Redis and Mosquitto, in process.

Messages are staged the way a worker stages them: by the fenced alert write
(:class:`scale.fencing.Fenced`), so an entry exists only for an applied write. Checked:

* a publisher that takes over a sector's outbox first sends the entries a dead publisher
  had read and never acknowledged (``XAUTOCLAIM``), then the rest, in staged order, each
  once; entries staged while it runs go out too; the outbox ends empty (``XACK`` +
  ``XDEL`` after each PUBACK);
* with the broker down, nothing is acknowledged: the entry stays in the outbox and is
  sent once the broker is back;
* two publishers split the sectors (each outbox read by one of them at a time: order
  kept); when one stops, the other takes its sectors and nothing is lost or sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from alerts.model import AlertWrite
from benchmarks.servers import MosquittoServer, RedisServer
from drivers import MqttSettings
from geo import Site, default_site
from scale.fencing import Fenced, Lease
from scale.keys import PUB_GROUP, outbox_key, pub_lease_key
from scale.publisher import AlertPublisher, PublisherSettings, ensure_outbox_groups
from tests.mqtt_observer import observing

pytestmark = pytest.mark.broker

LEASE_MS = 1500


def _write(sector: str, alert_id: str, rev: int, state: str) -> AlertWrite:
    return AlertWrite(
        alert_id=alert_id,
        sector=sector,
        rev=rev,
        is_open=state != "resolved",
        fields={"state": state, "kind": "crossing"},
        audit={"event": state, "rev": str(rev)},
    )


def _alert(sector: str, alert_id: str, state: str, t: float) -> tuple[str, bytes, int]:
    payload = msgspec.json.encode({"alert_id": alert_id, "state": state, "t": t})
    return (f"limes/v1/alerts/{sector}", payload, 1)


class Staging:
    """Stages messages as the owner (worker ``w``) of each sector would."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.fenced: dict[str, Fenced] = {}
        self.revs: dict[str, int] = {}

    async def stage(self, sector: str, alert_id: str, state: str, t: float) -> bytes:
        if sector not in self.fenced:
            token = await Lease(self.client, "w", 60_000).acquire(sector)
            assert token > 0
            self.fenced[sector] = Fenced(self.client, sector, token)
        rev = self.revs[alert_id] = self.revs.get(alert_id, 0) + 1
        msg = _alert(sector, alert_id, state, t)
        assert await self.fenced[sector].alert(_write(sector, alert_id, rev, state), [msg])
        return msg[1]


def _observe(
    broker: MosquittoServer, got: list[tuple[str, bytes]]
) -> contextlib.AbstractAsyncContextManager[None]:
    return observing(
        broker, [("limes/v1/alerts/+", 1)], lambda t, p: got.append((t, p)),
        identifier="pub-observer",
    )  # fmt: skip


@contextlib.asynccontextmanager
async def _publisher(
    site: Site, broker: MosquittoServer, redis_url: str, name: str
) -> AsyncIterator[AlertPublisher]:
    settings = PublisherSettings(
        mqtt=MqttSettings(host=broker.host, port=broker.port, client_id=name, timeout_s=2.0),
        redis_url=redis_url,
        publisher_id=name,
        lease_ms=LEASE_MS,
        settle_s=0.0,
    )
    pub = AlertPublisher(site, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(pub.run(stop))
    try:
        yield pub
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def _until(cond: Callable[[], bool], what: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _outbox_left(client: Any, sectors: list[str]) -> dict[str, tuple[int, int]]:
    """``sector -> (entries, pending)`` for the non-empty outboxes."""
    out = {}
    for s in sectors:
        n = int(await client.xlen(outbox_key(s)))
        groups: Any = await client.xinfo_groups(outbox_key(s))
        pending = sum(int(g["pending"]) for g in groups)
        if n or pending:
            out[s] = (n, pending)
    return out


@pytest.fixture
def site() -> Site:
    return default_site()


async def test_takeover_sends_dead_publishers_entries_first_in_order(
    site: Site, mqtt_broker: MosquittoServer, redis_server: RedisServer
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    got: list[tuple[str, bytes]] = []
    try:
        st = Staging(client)
        staged = [
            await st.stage("S01", "crossing-a", "open", 10.0),
            await st.stage("S01", "crossing-a", "escalated", 20.0),
            await st.stage("S01", "crossing-a", "resolved", 30.0),
        ]
        other = await st.stage("S05", "vehicle-b", "open", 12.0)
        # a publisher read the first two S01 entries and died before acknowledging them
        await ensure_outbox_groups(client, ["S01", "S05"])
        read: Any = await client.xreadgroup(PUB_GROUP, "dead", {outbox_key("S01"): ">"}, count=2)
        assert len(read[0][1]) == 2
        async with (
            _observe(mqtt_broker, got),
            _publisher(site, mqtt_broker, redis_server.url, "p1") as pub,
        ):
            await _until(lambda: len(got) == 4, "the staged messages")
            late = await st.stage("S01", "crossing-a", "open", 40.0)  # staged while running
            await _until(lambda: len(got) == 5, "the message staged later")
            await asyncio.sleep(0.3)  # a duplicate would arrive now
            assert pub.counters.claimed == 2
        s01 = [p for t, p in got if t.endswith("/S01")]
        assert s01 == [*staged, late]  # the claimed ones first, in staged order, once each
        assert [p for t, p in got if t.endswith("/S05")] == [other]
        assert len(got) == 5
        assert await _outbox_left(client, [s.id for s in site.sectors]) == {}
    finally:
        await client.aclose()


async def test_broker_down_keeps_the_entry_until_puback(
    site: Site, fresh_mqtt_broker: MosquittoServer, redis_server: RedisServer
) -> None:
    broker = fresh_mqtt_broker
    client = aioredis.Redis.from_url(redis_server.url)
    got: list[tuple[str, bytes]] = []
    try:
        st = Staging(client)
        async with _publisher(site, broker, redis_server.url, "p1") as pub:
            await _until(lambda: len(pub.owned) == len(site.sectors), "all outboxes owned")
            broker.stop()
            msg = await st.stage("S03", "digging-c", "open", 5.0)
            await _until(lambda: pub.counters.retries >= 1, "a failed publish")
            assert await _outbox_left(client, ["S03"]) == {"S03": (1, 1)}  # read, not acked
            broker.start()
            async with _observe(broker, got):
                await _until(lambda: len(got) == 1, "the message after the broker came back")
                await asyncio.sleep(0.3)
        assert got == [("limes/v1/alerts/S03", msg)]
        assert await _outbox_left(client, ["S03"]) == {}
    finally:
        await client.aclose()


async def test_two_publishers_split_sectors_and_hand_over(
    site: Site, mqtt_broker: MosquittoServer, redis_server: RedisServer
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    sectors = [s.id for s in site.sectors]
    got: list[tuple[str, bytes]] = []

    async def owners() -> dict[str, str]:
        out = {}
        for s in sectors:
            v: Any = await client.get(pub_lease_key(s))
            if v is not None:
                out[s] = v.decode().rsplit(":", 1)[0]
        return out

    try:
        st = Staging(client)
        want: list[tuple[str, bytes]] = []
        async with (
            _observe(mqtt_broker, got),
            _publisher(site, mqtt_broker, redis_server.url, "p1"),
        ):
            async with _publisher(site, mqtt_broker, redis_server.url, "p2"):
                deadline = time.monotonic() + 15
                while sorted((await owners()).values()) != ["p1"] * 4 + ["p2"] * 4:
                    assert time.monotonic() < deadline, await owners()
                    await asyncio.sleep(0.1)
                for i, s in enumerate(sectors):
                    msg = await st.stage(s, f"approach-{i}", "open", float(i))
                    want.append((f"limes/v1/alerts/{s}", msg))
                await _until(lambda: len(got) == len(want), "one message per sector")
            # p2 stopped cleanly: released its sectors; p1 takes them on its next round
            for i, s in enumerate(sectors):
                msg = await st.stage(s, f"approach-{i}", "resolved", 100.0 + i)
                want.append((f"limes/v1/alerts/{s}", msg))
            await _until(lambda: len(got) == len(want), "the second round", within=20)
            assert set((await owners()).values()) == {"p1"}
            await asyncio.sleep(0.3)
        assert sorted(got) == sorted(want)  # each once
        for s in sectors:  # per sector in staged order
            assert [m for m in got if m[0].endswith(s)] == [m for m in want if m[0].endswith(s)]
        assert await _outbox_left(client, sectors) == {}
    finally:
        await client.aclose()
