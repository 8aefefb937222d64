"""Live publishing reaches a real Mosquitto: every message, on its topic, with retain.

A fresh broker: the session broker holds retained messages of earlier tests.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import aiomqtt

from benchmarks.servers import MosquittoServer
from geo import default_site
from sim_sensors import generate, preset
from sim_sensors.live import publish


async def test_live_publish_reaches_mosquitto(fresh_mqtt_broker: MosquittoServer) -> None:
    sc = generate(default_site(), preset("crossing-10min", seed=2, duration_s=40.0))
    sent = Counter((m.topic, m.payload) for m in sc.messages)
    got: Counter[tuple[str, bytes]] = Counter()
    async with aiomqtt.Client(
        fresh_mqtt_broker.host, fresh_mqtt_broker.port, identifier="sim-test"
    ) as sub:
        await sub.subscribe("limes/v1/#", qos=1)
        pub = asyncio.create_task(publish(sc.messages, fresh_mqtt_broker.url, speed=400.0))

        async def collect() -> None:
            async for msg in sub.messages:
                assert isinstance(msg.payload, bytes)
                got[(str(msg.topic), msg.payload)] += 1
                if sum(got.values()) >= len(sc.messages):
                    return

        await asyncio.wait_for(collect(), timeout=60.0)
        stats = await pub
    assert stats.messages == len(sc.messages)
    assert stats.clients == len(default_site().sensor_ids) + len(default_site().patrols)
    assert got == sent
    # the statuses are retained: a late subscriber gets every device's latest status
    async with aiomqtt.Client(
        fresh_mqtt_broker.host, fresh_mqtt_broker.port, identifier="sim-late"
    ) as late:
        await late.subscribe("limes/v1/sensors/+/+/status", qos=1)
        seen: set[str] = set()

        async def retained() -> None:
            async for msg in late.messages:
                assert msg.retain
                seen.add(str(msg.topic).split("/")[4])
                if len(seen) == len(default_site().sensor_ids):
                    return

        await asyncio.wait_for(retained(), timeout=20.0)
