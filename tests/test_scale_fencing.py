"""Sector leases and fencing tokens on a real 3-master Redis Cluster: one owner at a time,
a new owner gets a higher token, and every write of a stale owner is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from alerts.model import AlertWrite
from scale.fencing import Fenced, FencedError, Lease
from scale.gateway import ensure_groups
from scale.keys import GROUP, snapshot_key, stream_key
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
        assert await fa.alert(_write(1))
        assert not await fa.alert(_write(1))  # idempotent by rev
        await asyncio.sleep(0.6)  # a stops renewing: the lease expires
        tok_b = await b.acquire("S02")
        assert tok_b > tok_a
        fb = Fenced(client, "S02", tok_b)
        raw: Any = await client.xadd(stream_key("S02"), {"k": "b", "t": "1.0", "dev": ""})
        eid = raw.decode()
        await client.xreadgroup(GROUP, "wa", {stream_key("S02"): ">"}, count=10)
        with pytest.raises(FencedError):
            await fa.alert(_write(2))
        with pytest.raises(FencedError):
            await fa.ack([eid])
        with pytest.raises(FencedError):
            await fa.snapshot(b"stale", eid)
        assert await client.get(snapshot_key("S02")) is None
        assert not await a.renew("S02", tok_a)
        assert await fb.alert(_write(2))
        assert await fb.ack([eid]) == 1
        await fb.snapshot(b"fresh", eid)
        assert await client.get(snapshot_key("S02")) == b"fresh"
        h = await client.hgetall("limes:{S02}:alert:crossing-0123456789abcdef")
        assert h[b"rev"] == b"2"
    finally:
        await client.aclose()
