"""The alert service end to end against a real Redis and a real Mosquitto.

A *console* client subscribes to alerts, tasking and the CCP outbox like an operator
console would; the service publishes through its own aiomqtt client and consumes acks
and patrol positions from the broker through the production ingest path
(``drivers.Ingest`` -> ``service.core.alert_inputs`` -> ``AlertService.submit``). To
know that nothing more will arrive, the service client publishes a sentinel after the
service's messages (one client's QoS 1 messages reach a subscriber in order). Timeouts
only guard against hangs.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
import msgspec
import pytest

import geo
from alerts import (
    AlertEngine,
    AlertService,
    HealthEvent,
    Input,
    OperatorAction,
    PatrolWrite,
    RedisAlertStore,
    StoreOp,
    Tick,
)
from alerts.scenario import approach_path, crossing_path
from benchmarks.servers import MosquittoServer, RedisServer
from drivers import DEADLETTER_TOPIC, Ingest, encode_dead_letter
from service.core import alert_inputs

pytestmark = pytest.mark.broker

T0 = 1_764_000_000.0
CH = 60_000.0  # S03
SENTINEL = "limes/test/sentinel"
_ids = itertools.count()


@dataclass
class Rig:
    site: geo.Site
    service: AlertService
    store: RedisAlertStore
    svc: aiomqtt.Client
    console: aiomqtt.Client

    async def submit_all(self, events: Sequence[Input]) -> None:
        for e in events:
            await self.service.submit(e)

    async def drain(self) -> list[tuple[str, dict[str, Any]]]:
        """Everything the console received up to a sentinel published now."""
        token = f"s{next(_ids)}".encode()
        await self.svc.publish(SENTINEL, token, qos=1)
        out: list[tuple[str, dict[str, Any]]] = []
        async with asyncio.timeout(20):
            async for m in self.console.messages:
                if str(m.topic) == SENTINEL:
                    if m.payload == token:
                        return out
                    continue
                assert isinstance(m.payload, bytes)
                out.append((str(m.topic), msgspec.json.decode(m.payload)))
        raise AssertionError("unreachable")

    async def wait_for(self, state: str, alert_id: str) -> dict[str, Any]:
        async with asyncio.timeout(20):
            async for m in self.console.messages:
                if str(m.topic).startswith("limes/v1/alerts/") and isinstance(m.payload, bytes):
                    a = msgspec.json.decode(m.payload)
                    if a["alert_id"] == alert_id and a["state"] == state:
                        return dict(a)
        raise AssertionError("unreachable")


def _alerts(msgs: list[tuple[str, dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [p for t, p in msgs if t.startswith("limes/v1/alerts/") and p["kind"] == kind]


@pytest.fixture
async def rig(mqtt_broker: MosquittoServer, redis_server: RedisServer) -> AsyncIterator[Rig]:
    site = geo.default_site()
    store = RedisAlertStore.from_url(redis_server.url)
    n = next(_ids)
    async with (
        aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier=f"svc{n}") as svc,
        aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, identifier=f"con{n}") as console,
    ):
        for topic in ("limes/v1/alerts/+", "limes/v1/tasking/+", "limes/v1/ccp/outbox"):
            await console.subscribe(topic, qos=1)
        await console.subscribe(SENTINEL, qos=1)

        async def publish(topic: str, payload: bytes, qos: int) -> None:
            await svc.publish(topic, payload, qos=qos)

        service = AlertService(AlertEngine(site), store, publish)
        ingest = Ingest(site, started=T0)
        for topic in ("limes/v1/alerts/+/ack", "limes/v1/patrols/+/position"):
            await svc.subscribe(topic, qos=1)

        async def consume() -> None:
            async for m in svc.messages:
                assert isinstance(m.payload, bytes)
                # the scenario's clock: acks carry scenario times around T0
                res = ingest.handle(str(m.topic), m.payload, T0 + 1000)
                for dl in res.dead_letters:
                    await publish(DEADLETTER_TOPIC, encode_dead_letter(dl), 1)
                for i in alert_inputs(res):
                    await service.submit(i)

        consumer = asyncio.create_task(consume(), name="alerts.consume")
        try:
            yield Rig(site, service, store, svc, console)
        finally:
            consumer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await consumer
            await store.aclose()


async def test_crossing_one_alert_then_ack_over_mqtt(rig: Rig) -> None:
    await rig.submit_all(crossing_path(rig.site, "T1", T0, CH))
    msgs = await rig.drain()
    crossing = _alerts(msgs, "crossing")
    assert len(crossing) == 1
    a = crossing[0]
    assert a["state"] == "open"
    assert a["track_id"] == "T1"
    assert [t for t, p in msgs if p is a] == ["limes/v1/alerts/S03"]
    # an operator acknowledges over MQTT; the service consumes it from the broker
    ack = {"operator": "ion.popescu", "t": T0 + 200, "note": "camera confirms 1 person"}
    await rig.console.publish(
        f"limes/v1/alerts/{a['alert_id']}/ack", msgspec.json.encode(ack), qos=1
    )
    acked = await rig.wait_for("acknowledged", a["alert_id"])
    assert acked["t"] == T0 + 200
    h = await rig.store.get_alert("S03", a["alert_id"])
    assert h is not None
    assert h["state"] == "acknowledged"
    audit = [e for e in await rig.store.audit("S03") if e["alert_id"] == a["alert_id"]]
    assert [(e["event"], e["state"], e["who"]) for e in audit] == [
        ("open", "open", "system"),
        ("ack", "acknowledged", "ion.popescu"),
    ]
    assert audit[1]["why"] == "camera confirms 1 person"
    assert audit[1]["t"] == repr(T0 + 200)


async def test_unacked_alert_escalates(rig: Rig) -> None:
    await rig.submit_all(crossing_path(rig.site, "T2", T0, CH))
    (a,) = _alerts(await rig.drain(), "crossing")
    await rig.service.submit(Tick(t=a["t"] + rig.service.engine.s.escalate_after_s + 1))
    msgs = await rig.drain()
    (esc,) = [p for p in _alerts(msgs, "crossing") if p["alert_id"] == a["alert_id"]]
    assert esc["state"] == "escalated"
    audit = [e for e in await rig.store.audit("S03") if e["alert_id"] == a["alert_id"]]
    assert audit[-1]["event"] == "escalate"
    assert audit[-1]["who"] == "system"


async def test_group_of_twenty_raises_one_alert(rig: Rig) -> None:
    paths = [crossing_path(rig.site, f"G{j:02d}", T0, CH + 2.0 * j) for j in range(20)]
    ups = sorted((u for p in paths for u in p), key=lambda u: (u.t, u.track_id))
    await rig.submit_all(ups)
    msgs = await rig.drain()
    crossing = _alerts(msgs, "crossing")
    assert len({p["alert_id"] for p in crossing}) == 1
    assert [p["state"] for p in crossing] == ["open", "open"]  # second: priority raised
    assert crossing[-1]["priority"] == 1
    assert len({p["alert_id"] for p in _alerts(msgs, "approach")}) == 1
    assert len([t for t, _ in msgs if t == "limes/v1/ccp/outbox"]) == 1
    h = await rig.store.get_alert("S03", crossing[0]["alert_id"])
    assert h is not None
    assert "group of 20" in msgspec.json.decode(h["alert"])["summary"]


async def test_fibre_cut_raises_one_sensor_fault(rig: Rig) -> None:
    fc = rig.site.fibre_by_id["FO-02"]
    cut = HealthEvent(t=T0, device="FO-02", state="fault", detail="cut at 12345.0")
    await rig.submit_all([cut, cut, HealthEvent(t=T0 + 40, device="FO-02", state="offline")])
    faults = _alerts(await rig.drain(), "sensor_fault")
    assert len(faults) == 1
    (f,) = faults
    lo = fc.from_m + 12345.0 / fc.cable_factor
    assert f["sensors"] == ["FO-02"]
    assert f"blind border chainage {lo:.0f}-{fc.to_m:.0f} m" in f["summary"]


async def test_approach_produces_ccp_request(rig: Rig) -> None:
    await rig.submit_all(approach_path(rig.site, "P1", T0, CH, cls="group", group_size=6))
    msgs = await rig.drain()
    (ap,) = [p for p in _alerts(msgs, "approach") if p["state"] == "open"]  # then escalated
    (req,) = [p for t, p in msgs if t == "limes/v1/ccp/outbox"]
    assert req["alert_id"] == ap["alert_id"]
    assert req["group_size"] == 6
    assert req["class"] == "group"
    assert req["proposed_unit"] == ap["recommended_units"][0]
    assert 0.0 <= req["heading_deg"] < 360.0
    assert set(req) == {
        "v", "request_id", "alert_id", "t", "lat", "lon", "group_size", "class",
        "heading_deg", "proposed_unit",
    }  # fmt: skip


async def test_patrols_over_mqtt_and_tasking(rig: Rig) -> None:
    # 12 s on the neighbour side: approach alerts wait approach_min_age_s (10 s)
    await rig.submit_all(crossing_path(rig.site, "T3", T0, CH)[:12])
    (ap,) = _alerts(await rig.drain(), "approach")
    # a patrol reports 200 m from the alert over MQTT; it becomes the nearest unit
    pos = {"v": 1, "unit": "RO-Z9", "t": T0 + 10, "lat": ap["lat"] + 0.0018, "lon": ap["lon"],
           "team": "RO", "available": True}  # fmt: skip
    stored = asyncio.Event()
    apply = rig.store.apply

    async def apply_and_tell(ops: Sequence[StoreOp]) -> list[bool]:
        done = await apply(ops)
        if any(isinstance(op, PatrolWrite) for op in ops):
            stored.set()
        return done

    rig.service.store.apply = apply_and_tell  # type: ignore[method-assign]
    await rig.console.publish("limes/v1/patrols/RO-Z9/position", msgspec.json.encode(pos), qos=1)
    async with asyncio.timeout(20):
        await stored.wait()  # consumed from the broker and written to Redis
    assert [u for u, _ in await rig.store.nearest_units(ap["lat"], ap["lon"], 1000.0)] == ["RO-Z9"]
    action = OperatorAction(
        alert_id=ap["alert_id"], action="assign", who="op1", t=T0 + 20, unit="RO-Z9"
    )
    await rig.service.submit(action)
    msgs = await rig.drain()
    (order,) = [p for t, p in msgs if t == "limes/v1/tasking/RO-Z9"]
    assert order["alert_id"] == ap["alert_id"]
    assert order["assigned_by"] == "op1"
    assert set(order) == {
        "v", "unit", "alert_id", "t", "lat", "lon", "kind", "priority", "summary", "assigned_by",
    }  # fmt: skip


async def test_bad_ack_goes_to_deadletter(rig: Rig) -> None:
    await rig.console.subscribe("limes/v1/deadletter", qos=1)
    await rig.console.publish("limes/v1/alerts/x-1/ack", b"not json", qos=1)
    async with asyncio.timeout(20):
        async for m in rig.console.messages:
            if str(m.topic) == "limes/v1/deadletter":
                assert isinstance(m.payload, bytes)
                dl = msgspec.json.decode(m.payload)
                assert dl["topic"] == "limes/v1/alerts/x-1/ack"
                break


async def test_replayed_journal_publishes_nothing_twice(
    rig: Rig, redis_server: RedisServer
) -> None:
    journal: list[Input] = [*crossing_path(rig.site, "T4", T0, CH)]
    journal.append(HealthEvent(t=T0 + 300, device="FO-03", state="fault", detail="cut at 7"))
    await rig.submit_all(journal)
    first = await rig.drain()
    assert first
    # a restarted service (fresh engine, same Redis) replays the same journal
    published: list[str] = []

    async def publish(topic: str, payload: bytes, qos: int) -> None:
        published.append(topic)

    store = RedisAlertStore.from_url(redis_server.url)
    replay = AlertService(AlertEngine(rig.site), store, publish)
    for e in journal:
        d = await replay.submit(e)
        assert all(p.requires is not None for p in d.publishes)
    assert published == []
    audit = await store.audit("S03")
    assert len(audit) == len([p for t, p in first if t.startswith("limes/v1/alerts/S03")])
    await store.aclose()
