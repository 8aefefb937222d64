"""One contract for every alert store: the Redis store (real Redis) and the memory store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import geo
from alerts import (
    AlertEngine,
    AlertStore,
    AlertWrite,
    HealthEvent,
    MemoryAlertStore,
    OperatorAction,
    PatrolPosition,
    PatrolWrite,
    RedisAlertStore,
    StoreError,
)
from alerts.store import alert_key, audit_key, open_key
from benchmarks.servers import RedisServer

T0 = 1_764_000_000.0


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[AlertStore]:
    s: AlertStore
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        with server.client() as conn:  # requested dynamically: the autouse reset misses it
            conn.flushall()
        s = RedisAlertStore.from_url(server.url)
    else:
        s = MemoryAlertStore()
    yield s
    await s.aclose()


@pytest.fixture(scope="module")
def site() -> geo.Site:
    return geo.default_site()


def _write(rev: int, state: str = "open", sector: str = "S03") -> AlertWrite:
    return AlertWrite(
        sector=sector,
        alert_id="crossing-0001",
        rev=rev,
        is_open=state != "resolved",
        fields={"state": state, "kind": "crossing", "alert": "{}"},
        audit={"alert_id": "crossing-0001", "rev": str(rev), "state": state, "who": "op"},
    )


def test_keys_are_hash_tagged_by_sector() -> None:
    for key in (alert_key("S03", "a-1"), audit_key("S03"), open_key("S03")):
        assert "{S03}" in key


async def test_write_is_idempotent_by_rev(store: AlertStore) -> None:
    assert await store.apply([_write(1), _write(2, "acknowledged")]) == [True, True]
    # a replay of the same revisions changes nothing and adds no audit entry
    assert await store.apply([_write(1), _write(2, "acknowledged")]) == [False, False]
    h = await store.get_alert("S03", "crossing-0001")
    assert h is not None
    assert h["state"] == "acknowledged"
    assert h["rev"] == "2"
    audit = await store.audit("S03")
    assert [(e["rev"], e["state"], e["who"]) for e in audit] == [
        ("1", "open", "op"),
        ("2", "acknowledged", "op"),
    ]
    assert await store.get_alert("S03", "nope") is None
    assert await store.audit("S01") == []


async def test_open_records_round_trip(store: AlertStore, site: geo.Site) -> None:
    e = AlertEngine(site)
    d1 = e.handle(HealthEvent(t=T0, device="TH-01", state="offline"))
    d2 = e.handle(HealthEvent(t=T0, device="FO-03", state="fault", detail="cut at 10"))
    (gone,) = d2.alerts
    d3 = e.handle(OperatorAction(alert_id=gone.alert_id, action="resolve", who="op", t=T0 + 1))
    for d in (d1, d2, d3):
        await store.apply(d.ops)
    sectors = [s.id for s in site.sectors]
    records = await store.open_records(sectors)
    assert [r.alert_id for r in records] == [d1.alerts[0].alert_id]
    # a fresh engine resumes: an ack for the restored alert is accepted
    e2 = AlertEngine(site)
    e2.restore(records, await store.patrols())
    d = e2.handle(OperatorAction(alert_id=records[0].alert_id, action="ack", who="op", t=T0 + 5))
    assert [a.state for a in d.alerts] == ["acknowledged"]
    (w,) = d.ops
    assert isinstance(w, AlertWrite)
    assert w.rev == 2
    assert await store.apply(d.ops) == [True]


async def test_nearest_units_matches_engine_ranking(store: AlertStore, site: geo.Site) -> None:
    """Hand-made layout: Redis GEOSEARCH, the memory haversine and the engine agree."""
    lat, lon = 45.70, 21.00
    deg = 1.0 / 111_195.0
    layout = [("U1", 900.0, 0.0), ("U2", 300.0, 0.0), ("U3", 0.0, 500.0), ("U4", -2500.0, 0.0)]
    e = AlertEngine(site)
    e.patrols.clear()
    ops = []
    for unit, north, east in layout:
        p = PatrolPosition(
            unit=unit,
            t=T0,
            lat=lat + north * deg,
            lon=lon + east * deg / 0.6984,
            team="RO",
            available=True,
        )
        ops += e.handle(p).ops
    assert all(isinstance(op, PatrolWrite) for op in ops)
    await store.apply(ops)
    rows = await store.nearest_units(lat, lon, 2000.0)
    assert [u for u, _ in rows] == ["U2", "U3", "U1"]
    assert [round(dist, -1) for _, dist in rows] == [300.0, 500.0, 900.0]
    assert [u for u, _ in await store.nearest_units(lat, lon, 5000.0, count=2)] == ["U2", "U3"]
    e.now = T0
    assert e.rank_units(lat, lon, count=4) == ["U2", "U3", "U1", "U4"]
    stored = await store.patrols()
    assert sorted(p.unit for p in stored) == ["U1", "U2", "U3", "U4"]
    assert all(p.team == "RO" and p.available for p in stored)


async def test_redis_errors_become_store_errors() -> None:
    store = RedisAlertStore.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(StoreError) as info:
        await store.apply([_write(1)])
    assert info.value.op == "apply"
    assert info.value.__cause__ is not None
    await store.aclose()
