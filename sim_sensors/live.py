"""Live publishing: play a scenario's messages to an MQTT broker as the devices would.

One :class:`aiomqtt.Client` per device or patrol unit (client id ``{prefix}-{device}``);
each sensor's client has the contract's last will (``{"state":"offline"}``, retained,
QoS 1, on its status topic). Messages go out in arrival order at
``wall = wall0 + (arrival - arrival0) / speed``, QoS 1; statuses, heartbeats, wills and
patrol positions retained. A ``will`` message of the scenario (the broker's last will
after a camera falls silent) is published by that camera's client as a retained status,
which is what subscribers see either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiomqtt

from sim_sensors._errors import SimError
from sim_sensors.scenario import Message

RETAINED_LABELS = frozenset({"status", "heartbeat", "will", "patrol"})
WILL_PAYLOAD = b'{"state":"offline"}'


@dataclass
class PublishStats:
    """What :func:`publish` did."""

    messages: int
    clients: int
    wall_s: float


def parse_url(url: str) -> tuple[str, int]:
    """``mqtt://host:port`` (or ``host:port``) -> ``(host, port)``; port defaults to 1883."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise SimError(f"not an MQTT URL: {url!r} (want mqtt://host:port)")
    return parts.hostname, parts.port or 1883


def client_key(topic: str) -> tuple[str, str | None]:
    """The publishing client of a topic and its status topic (None for patrols)."""
    parts = topic.split("/")
    if len(parts) == 6 and parts[2] == "sensors":
        return parts[4], "/".join([*parts[:5], "status"])
    if len(parts) == 5 and parts[2] == "patrols":
        return parts[3], None
    raise SimError(f"topic {topic!r} is not a device or patrol topic")


async def publish(
    messages: Sequence[Message],
    url: str,
    *,
    speed: float = 1.0,
    prefix: str = "limes-sim",
) -> PublishStats:
    """Publish ``messages`` (arrival order) to the broker at ``url``, ``speed`` x real time."""
    if speed <= 0:
        raise SimError(f"speed must be > 0, got {speed}")
    host, port = parse_url(url)
    wills: dict[str, str | None] = {}
    for m in messages:
        key, status = client_key(m.topic)
        wills.setdefault(key, status)
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, aiomqtt.Client] = {}
        for key, status in wills.items():
            will = (
                aiomqtt.Will(status, WILL_PAYLOAD, qos=1, retain=True)
                if status is not None
                else None
            )
            client = aiomqtt.Client(host, port, identifier=f"{prefix}-{key}", will=will)
            clients[key] = await stack.enter_async_context(client)
        wall0 = time.monotonic()
        a0 = messages[0].arrival if messages else 0.0
        for m in messages:
            due = wall0 + (m.arrival - a0) / speed
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            key, _ = client_key(m.topic)
            retain = m.label in RETAINED_LABELS
            await clients[key].publish(m.topic, m.payload, qos=1, retain=retain)
        wall = time.monotonic() - wall0
    return PublishStats(messages=len(messages), clients=len(wills), wall_s=wall)
