"""Alert publishers: send the sector outboxes on MQTT (``limes publisher``).

A worker's fenced alert write (:mod:`scale.fencing`) appends the write's outgoing
messages (the alert on ``limes/v1/alerts/{sector}``, a tasking order on
``limes/v1/tasking/{unit}``, a joint-patrol request on ``limes/v1/ccp/outbox``: every
QoS 1 message the single process publishes after a store write) to the sector outbox
``limes:{S}:out`` in the same Lua script: a write is stored if and only if its messages
are staged. A worker that dies after its write therefore loses nothing: the message is in
Redis until a publisher has sent it.

Publishers (any number, stateless) own sectors' outboxes by lease, like the workers own
sectors (:class:`scale.membership.SectorOwner`, keys ``limes:{S}:pub:lease`` /
``:pub:fence``), so that one sector's messages leave in the order they were staged (two
publishers reading one stream would reorder an alert's ``open`` and ``resolved``). Per
owned sector (:meth:`AlertPublisher.run_sector`):

1. ``XAUTOCLAIM`` (min idle 0) the entries a previous owner read and did not acknowledge
   (it died, or lost the lease, between reading and acknowledging), in id order;
2. ``XREADGROUP >`` in the group ``limes-publishers``, new entries in id order;
3. per entry: publish it (topic, payload, QoS from the entry; never retained, as the
   contract says), wait for the broker's PUBACK (retrying while the broker is away, in
   order, without skipping), then ``XACK`` + ``XDEL`` in one script.

Delivery is at least once: a publisher killed between the PUBACK and the ``XACK`` (a
round trip), or paused past its lease while the next owner sends the same entry, sends
the message twice: byte-identical, which consumers drop by ``(alert_id, state, t)`` for
alerts, ``(alert_id, unit, t)`` for taskings and ``request_id`` for CCP requests (the
single process's outbox, :mod:`service.outbox`, has the same window). The acknowledgement
is not fenced: whoever acknowledges an entry has sent it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiomqtt

from drivers import DriverConnectError, MqttSettings, MqttSource, Publisher
from geo import Site
from scale.fencing import Lease
from scale.gateway import ensure_groups, redis_client
from scale.keys import PUB_GROUP, PUBLISHERS, outbox_key, pub_fence_key, pub_lease_key
from scale.membership import SectorOwner

log = logging.getLogger("limes.scale.publisher")

# KEYS: outbox; ARGV: group, id -> entries removed
_DONE = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])
"""


@dataclass(frozen=True)
class PublisherSettings:
    """Settings of one publisher process."""

    mqtt: MqttSettings
    redis_url: str
    publisher_id: str
    cluster: bool = False
    lease_ms: int = 10_000
    settle_s: float = 1.0
    read_count: int = 100
    retry_s: float = 0.5


@dataclass
class PublisherCounters:
    """What a publisher did (logged at the end)."""

    published: int = 0
    claimed: int = 0  # entries taken over from a previous owner
    retries: int = 0  # publishes retried (broker away or slow)
    released: int = 0


async def ensure_outbox_groups(client: Any, sectors: list[str]) -> None:
    """The publishers' group on every sector outbox (:func:`scale.gateway.ensure_groups`)."""
    await ensure_groups(client, sectors, key=outbox_key, group=PUB_GROUP)


class AlertPublisher(SectorOwner):
    """One publisher process (see the module doc)."""

    role = "publisher"

    def __init__(self, site: Site, settings: PublisherSettings) -> None:
        ids = [s.id for s in site.sectors]
        super().__init__(ids, settings.publisher_id, settings.lease_ms, PUBLISHERS)
        self.settle_s = settings.settle_s
        self.s = settings
        self.counters = PublisherCounters()
        self.mqtt: Publisher | None = None
        self._done: Any = None

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then finish the entry in hand and release."""
        self.stop = stop
        self.client = redis_client(self.s.redis_url, cluster=self.s.cluster)
        self.lease = Lease(
            self.client, self.member, self.lease_ms,
            lease_of=pub_lease_key, fence_of=pub_fence_key,
        )  # fmt: skip
        self._done = self.client.register_script(_DONE)
        await ensure_outbox_groups(self.client, self.ids)
        mqtt = dataclasses.replace(
            self.s.mqtt,
            subscriptions=(f"limes/v1/scale/{self.member}/cmd",),
        )

        async def ignore(topic: str, payload: bytes) -> None:
            del topic, payload

        try:
            async with MqttSource(mqtt, ignore, name="publisher") as driver:
                self.mqtt = driver.publisher
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(driver.wait_connected(), 10)
                log.info("publisher %s connected", self.member)
                await self.membership()
                await self.release_all()
        finally:
            await self.client.aclose()
            log.info("publisher stopped: stats %s", json.dumps(dataclasses.asdict(self.counters)))

    async def run_sector(self, sector: str, token: int) -> None:
        """Send one sector's outbox until the sector is left (see the module doc)."""
        try:
            await self._run_sector(sector, token)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("publisher %s: sector %s failed", self.member, sector)
            raise

    async def _run_sector(self, sector: str, token: int) -> None:
        c = self.client
        stream = outbox_key(sector)
        cursor = "0-0"
        while not self.leaving(sector):  # a previous owner's entries first, in id order
            res: Any = await c.xautoclaim(
                stream, PUB_GROUP, self.member, 0, cursor, count=self.s.read_count
            )
            cursor = _s(res[0])
            self.counters.claimed += len(res[1])
            if not await self._send(sector, res[1]):
                break
            if cursor == "0-0":
                break
        while not self.leaving(sector):
            resp: Any = await c.xreadgroup(
                PUB_GROUP, self.member, {stream: ">"}, count=self.s.read_count, block=200
            )
            for _name, entries in resp or []:
                if not await self._send(sector, entries):
                    break
        o = self.owned.get(sector)
        if o is not None and o.stopping and self.holds(sector):
            assert self.lease is not None
            await self.lease.release(sector, token)
            self.counters.released += 1
            log.info("publisher %s released %s", self.member, sector)
        self.owned.pop(sector, None)

    async def _send(self, sector: str, entries: list[Any]) -> bool:
        """Publish ``entries`` in order, each acknowledged after its PUBACK; False when the
        sector was left first (the rest stay pending for the next owner)."""
        stream = outbox_key(sector)
        for rid, f in entries:
            if f is None:  # deleted under the pending entry: nothing to send
                continue
            topic = f[b"topic"].decode("utf-8", "surrogateescape")
            payload, qos = bytes(f[b"p"]), int(f[b"q"])
            while True:
                if self.leaving(sector):
                    return False
                try:
                    if self.mqtt is None:
                        raise DriverConnectError("mqtt", "not connected")
                    await self.mqtt.publish(topic, payload, qos=qos, retain=False)
                    break
                except (DriverConnectError, aiomqtt.MqttError, TimeoutError) as exc:
                    self.counters.retries += 1
                    log.warning("publisher %s: %s not sent (%s); retrying", self.member,
                                topic, exc)  # fmt: skip
                    await asyncio.sleep(self.s.retry_s)
            await self._done(keys=[stream], args=[PUB_GROUP, rid])
            self.counters.published += 1
        return True


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
