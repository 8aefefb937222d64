"""Stateless ingest gateways: MQTT shared subscription -> validation and de-duplication
-> the sector streams.

Several gateways share the subscriptions (``$share/limes/<topic filter>``: the broker
gives each message to one of them). Per message (:meth:`GatewayCore.route`):

1. ``drivers.Ingest.handle``: validation (dead letters are published here, once),
   per-gateway ``(device, seq)`` de-duplication, normalisation to measurement rows;
2. across gateways: a QoS 1 redelivery may reach another gateway than the first
   delivery, so an accepted message also needs ``SET limes:{dev:<device>}:seen:<digest>
   NX PX`` to succeed (digest of topic + payload: a redelivery is byte-identical);
3. events go to the stream of every sector whose window (sector +- margin) holds one of
   their rows; the status of a fibre unit or camera to the sectors its measurements can
   reach (:meth:`scale.routing.Router.coverage`: camera positions, fibre cuts, health);
   MSV statuses, patrol positions and acks to every sector;
4. every ``beacon_s`` of the gateway's clock a beacon record goes to every sector: it
   carries the devices seen since the last one (so a sector that receives none of a
   device's events still knows it is alive) and lets quiet sectors step.

The MQTT message is acknowledged only after its stream appends succeeded (a gateway
killed in between: the broker redelivers, the idempotency key or the worker's
de-duplication drops the repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from drivers import (
    DEADLETTER_TOPIC,
    Ingest,
    MqttSettings,
    MqttSource,
    MsgType,
    encode_dead_letter,
)
from geo import Site
from scale.keys import GROUP, seen_key, stream_key
from scale.routing import Router
from service.journal import message_time

log = logging.getLogger("limes.scale.gateway")

#: the shared subscription group and the topic filters it covers
SHARE_GROUP = "limes"
SHARED_SUBSCRIPTIONS: tuple[str, ...] = tuple(
    f"$share/{SHARE_GROUP}/{t}"
    for t in (
        "limes/v1/sensors/+/+/events",
        "limes/v1/sensors/+/+/status",
        "limes/v1/patrols/+/position",
        "limes/v1/alerts/+/ack",
    )
)
SEEN_TTL_MS = 600_000


Fields = dict[str, Any]


@dataclass
class Routed:
    """What one message becomes: dead letters to publish, appends to make."""

    dead_letters: list[bytes] = field(default_factory=list)
    appends: list[tuple[str, Fields]] = field(default_factory=list)  # (sector, fields)
    key: str | None = None  # idempotency key to claim first (None: no claim needed)


class GatewayCore:
    """The pure part of a gateway: message -> dead letters + stream appends (no I/O)."""

    def __init__(
        self, site: Site, *, started: float, margin_m: float, beacon_s: float, name: str = "gw"
    ) -> None:
        self.site = site
        self.name = name
        self.router = Router(site, margin_m)
        self.ingest = Ingest(site, started=started)
        self._coverage = self.router.coverage()
        self.beacon_s = beacon_s
        self._next_beacon = -math.inf
        self._seen: set[str] = set()
        self.counts = {"messages": 0, "appends": 0, "rejected": 0, "dup": 0, "rows": 0}

    def route(self, topic: str, payload: bytes, now: float) -> Routed:
        """Validate, de-duplicate (this gateway) and route one message arriving at ``now``."""
        self.counts["messages"] += 1
        res = self.ingest.handle(topic, payload, now)
        out = Routed(dead_letters=[encode_dead_letter(d) for d in res.dead_letters])
        if not res.accepted or res.duplicate:
            self.counts["dup" if res.duplicate else "rejected"] += 1
            return out
        fields: Fields = {"k": "m", "t": repr(now), "g": self.name, "topic": topic, "p": payload}
        if len(res.meas):
            self.counts["rows"] += len(res.meas)
            sectors = self.router.sectors_of(res.meas)
            self._seen.add(res.device)
        elif res.type == MsgType.EVENTS:
            sectors = []  # every event rejected alone: nothing to fuse
            self._seen.add(res.device)
        elif res.type == MsgType.STATUS and res.device in self._coverage:
            sectors = self._coverage[res.device]  # the sectors its measurements can reach
        else:  # MSV status, patrol position, ack: every sector
            sectors = list(self.router.ids)
        out.appends = [(s, fields) for s in sectors]
        digest = hashlib.blake2b(topic.encode() + b"\0" + payload, digest_size=12).hexdigest()
        parts = topic.split("/")
        out.key = seen_key(res.device or (parts[3] if len(parts) > 3 else "misc"), digest)
        return out

    def beacon(self, now: float) -> list[tuple[str, Fields]]:
        """The beacon appends due at ``now`` (none if not due)."""
        if now < self._next_beacon:
            return []
        self._next_beacon = (
            now + self.beacon_s
            if self._next_beacon == -math.inf
            else max(self._next_beacon + self.beacon_s, now)
        )
        fields: Fields = {
            "k": "b", "t": repr(now), "g": self.name, "dev": ",".join(sorted(self._seen))
        }  # fmt: skip
        self._seen.clear()
        return [(s, fields) for s in self.router.ids]


async def ensure_groups(
    client: Any,
    sectors: list[str],
    *,
    key: Callable[[str], str] = stream_key,
    group: str = GROUP,
) -> None:
    """Create consumer group ``group`` on stream ``key(s)`` of every sector (default: the
    workers' group on the sector input streams; id 0: an entry added before the group
    existed is still delivered); an existing group is left as is."""
    for s in sectors:
        try:
            await client.xgroup_create(key(s), group, id="0", mkstream=True)
        except aioredis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


async def append(client: Any, appends: list[tuple[str, Fields]], maxlen: int) -> None:
    """XADD each append (one round trip per shard: a non-transactional pipeline)."""
    if not appends:
        return
    async with client.pipeline(transaction=False) as p:
        for sector, fields in appends:
            p.xadd(stream_key(sector), fields, maxlen=maxlen, approximate=True)
        await p.execute()


@dataclass(frozen=True)
class GatewaySettings:
    """Settings of one gateway process."""

    mqtt: MqttSettings
    redis_url: str
    cluster: bool = False
    margin_m: float = 1500.0
    beacon_s: float = 0.5
    message_clock: bool = False
    started: float | None = None
    #: cap of each sector stream (approximate MAXLEN; snapshots trim far below it)
    maxlen: int = 2_000_000
    clock: Callable[[], float] = time.time


def redis_client(url: str, *, cluster: bool) -> Any:
    """An asyncio client for ``url``: a cluster client (discovers the nodes) or a plain one."""
    if cluster:
        return aioredis.RedisCluster.from_url(url, socket_timeout=5.0)
    return aioredis.Redis.from_url(url, socket_timeout=5.0)


async def run_gateway(site: Site, settings: GatewaySettings, stop: asyncio.Event) -> None:
    """Run one gateway until ``stop`` is set."""
    started = settings.started if settings.started is not None else settings.clock()
    core = GatewayCore(
        site,
        started=started,
        margin_m=settings.margin_m,
        beacon_s=settings.beacon_s,
        name=settings.mqtt.client_id,
    )
    client = redis_client(settings.redis_url, cluster=settings.cluster)
    await ensure_groups(client, core.router.ids)
    clock_now = -math.inf
    driver: MqttSource | None = None

    async def on_message(topic: str, payload: bytes) -> None:
        nonlocal clock_now
        if settings.message_clock:
            clock_now = message_time(payload, clock_now)
            now = clock_now
        else:
            now = settings.clock()
        r = core.route(topic, payload, now)
        if driver is not None:
            for dl in r.dead_letters:
                await driver.publisher.publish(DEADLETTER_TOPIC, dl, qos=1)
        if r.appends and r.key is not None:
            fresh = await client.set(r.key, b"1", nx=True, px=SEEN_TTL_MS)
            if not fresh:
                core.counts["dup"] += 1
                r.appends = []
        appends = r.appends + (core.beacon(now) if settings.message_clock else [])
        await append(client, appends, settings.maxlen)
        core.counts["appends"] += len(appends)

    mqtt = dataclasses.replace(settings.mqtt, subscriptions=SHARED_SUBSCRIPTIONS)
    driver = MqttSource(mqtt, on_message, name="gateway")
    try:
        async with driver:
            log.info("gateway %s: shared subscription on %s", mqtt.client_id, mqtt.endpoint)
            while not stop.is_set():
                if not settings.message_clock:
                    await append(client, core.beacon(settings.clock()), settings.maxlen)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.beacon_s)
        bye: Fields = {"k": "x", "t": repr(clock_now), "g": core.name}
        await append(client, [(s, bye) for s in core.router.ids], settings.maxlen)
    finally:
        await client.aclose()
    log.info("gateway stopped: %s", core.counts)
