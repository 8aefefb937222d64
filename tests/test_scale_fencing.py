"""Sector leases and fencing tokens on a real 3-master Redis Cluster: one owner at a time,
a new owner gets a higher token, and every write of a stale owner is refused. An alert
write's messages are staged in the sector outbox if and only if the write is applied
(not for a replayed revision, not for a stale owner)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from alerts.model import AlertWrite
from scale.fencing import Fenced, FencedError, Lease
from scale.gateway import ensure_groups
from scale.keys import GROUP, outbox_key, snapshot_key, stream_key
from tests.conftest import RedisClusterFactory

pytestmark = pytest.mark.broker


def _write(rev: int) -> AlertWrite:
    return AlertWrite(
        alert_id="crossing-0123456789abcdef",
        sector="S02",
        rev=rev,
        is_open=True,
        fields={"state": "open", "kind": "crossing", "alert": msgspec.json.encode({}).decode()},
        audit={"event": "open", "rev": str(rev)},
    )


async def test_lease_one_owner_and_stale_writes_refused(
    redis_cluster_factory: RedisClusterFactory,
) -> None:
    cluster = redis_cluster_factory(masters=3)
    client = aioredis.RedisCluster.from_url(cluster.url)
    try:
        await ensure_groups(client, ["S02"])
        a = Lease(client, "wa", lease_ms=400)
        b = Lease(client, "wb", lease_ms=400)
        tok_a = await a.acquire("S02")
        assert tok_a > 0
        assert await b.acquire("S02") == 0  # held: nobody else gets it
        assert await a.renew("S02", tok_a)
        assert not await b.renew("S02", tok_a)  # renewing needs the holder's value
        fa = Fenced(client, "S02", tok_a)
        m1 = [("limes/v1/alerts/S02", b'{"state":"open"}', 1), ("limes/v1/ccp/outbox", b"{}", 1)]
        assert await fa.alert(_write(1), m1)
        assert not await fa.alert(_write(1), m1)  # idempotent by rev: nothing staged again
        assert await _outbox(client) == [(t, p, str(q), "1") for t, p, q in m1]
        await asyncio.sleep(0.6)  # a stops renewing: the lease expires
        tok_b = await b.acquire("S02")
        assert tok_b > tok_a
        fb = Fenced(client, "S02", tok_b)
        raw: Any = await client.xadd(stream_key("S02"), {"k": "b", "t": "1.0", "dev": ""})
        eid = raw.decode()
        await client.xreadgroup(GROUP, "wa", {stream_key("S02"): ">"}, count=10)
        m2 = [("limes/v1/alerts/S02", b'{"state":"resolved"}', 1)]
        with pytest.raises(FencedError):
            await fa.alert(_write(2), m2)
        assert len(await _outbox(client)) == 2  # the stale owner staged nothing
        with pytest.raises(FencedError):
            await fa.ack([eid])
        with pytest.raises(FencedError):
            await fa.snapshot(b"stale", eid)
        assert await client.get(snapshot_key("S02")) is None
        assert not await a.renew("S02", tok_a)
        assert await fb.alert(_write(2), m2)
        assert (await _outbox(client))[2:] == [(*m2[0][:2], "1", "2")]
        assert await fb.ack([eid]) == 1
        await fb.snapshot(b"fresh", eid)
        assert await client.get(snapshot_key("S02")) == b"fresh"
        h = await client.hgetall("limes:{S02}:alert:crossing-0123456789abcdef")
        assert h[b"rev"] == b"2"
    finally:
        await client.aclose()


async def _outbox(client: Any) -> list[tuple[str, bytes, str, str]]:
    """(topic, payload, qos, rev) of every outbox entry of S02, in order."""
    rows: Any = await client.xrange(outbox_key("S02"))
    return [(f[b"topic"].decode(), f[b"p"], f[b"q"].decode(), f[b"rev"].decode()) for _, f in rows]
