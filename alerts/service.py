"""The async executor: feeds inputs to the engine, applies its writes, then publishes.

:class:`AlertService` serialises inputs (one decision at a time, in arrival order),
applies each :class:`~alerts.model.Decision`'s store operations, then publishes its
messages through an injected publisher ``async def publish(topic, payload, qos)``.
A message tied to an alert write is published only if the store applied that write
(so replaying a journal into a store that already holds it publishes nothing twice).
The apply step is shielded from cancellation: a decision, once made, is written and
published in full before a cancellation takes effect.

:meth:`AlertService.handle_message` routes raw MQTT messages the service consumes
(acks on ``limes/v1/alerts/{alert_id}/ack``, patrol positions on
``limes/v1/patrols/{unit}/position``); :meth:`AlertService.run` subscribes an
aiomqtt client to both and consumes them until cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from alerts.cot import alert_event
from alerts.lifecycle import AlertEngine
from alerts.model import Decision, Input, PatrolPosition, decode_ack, decode_patrol
from alerts.store import AlertStore

__all__ = ["ACK_FILTER", "DEADLETTER_TOPIC", "PATROL_FILTER", "AlertService", "Publisher"]

log = logging.getLogger("limes.alerts")

Publisher = Callable[[str, bytes, int], Awaitable[None]]
CotSink = Callable[[bytes], Awaitable[None]]

ACK_FILTER = "limes/v1/alerts/+/ack"
PATROL_FILTER = "limes/v1/patrols/+/position"
DEADLETTER_TOPIC = "limes/v1/deadletter"
_enc = msgspec.json.Encoder()


class AlertService:
    """Runs an :class:`AlertEngine` against a store and a publisher."""

    def __init__(
        self,
        engine: AlertEngine,
        store: AlertStore,
        publish: Publisher,
        *,
        cot: CotSink | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.publish = publish
        self.cot = cot
        self._lock = asyncio.Lock()

    async def restore(self) -> None:
        """Load open alerts and patrol positions from the store into the engine."""
        sectors = [s.id for s in self.engine.site.sectors]
        records = await self.store.open_records(sectors)
        patrols = await self.store.patrols()
        self.engine.restore(records, patrols)

    async def submit(self, event: Input) -> Decision:
        """Decide on ``event``, then write and publish what was decided."""
        async with self._lock:
            decision = self.engine.handle(event)
            task = asyncio.ensure_future(self._apply(decision))
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                await task  # finish the writes and publishes of a decision already made
                raise
            return decision

    async def _apply(self, d: Decision) -> None:
        applied = await self.store.apply(d.ops) if d.ops else []
        for p in d.publishes:
            if p.requires is not None and not applied[p.requires]:
                continue
            await self.publish(p.topic, p.payload, p.qos)
        if self.cot is not None:
            stale = self.engine.s.cot_stale_s
            for a in d.alerts:
                await self.cot(alert_event(a, stale_s=stale))

    async def handle_message(self, topic: str, payload: bytes) -> Decision | None:
        """Route one consumed MQTT message; a bad one goes to the dead-letter topic."""
        parts = topic.split("/")
        try:
            if len(parts) == 5 and parts[:3] == ["limes", "v1", "alerts"] and parts[4] == "ack":
                return await self.submit(decode_ack(parts[3], payload))
            if len(parts) == 5 and parts[:3] == ["limes", "v1", "patrols"]:
                pos: PatrolPosition = decode_patrol(payload)
                if pos.unit != parts[3]:
                    await self._deadletter(topic, "unit does not match the topic", payload)
                    return None
                return await self.submit(pos)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await self._deadletter(topic, str(exc), payload)
            return None
        await self._deadletter(topic, "not a topic the alert service consumes", payload)
        return None

    async def _deadletter(self, topic: str, reason: str, payload: bytes) -> None:
        self.engine.counters["deadletter"] += 1
        log.warning("alerts: dead letter on %s: %s", topic, reason)
        msg: dict[str, Any] = {
            "topic": topic,
            "reason": reason,
            "payload_excerpt": payload[:200].decode("utf-8", "replace"),
            "t": time.time(),
        }
        await self.publish(DEADLETTER_TOPIC, _enc.encode(msg), 1)

    async def run(self, client: Any) -> None:
        """Subscribe ``client`` (a connected ``aiomqtt.Client``) to acks and patrol
        positions and consume them until cancelled."""
        await self.subscribe(client)
        await self.consume(client)

    async def subscribe(self, client: Any) -> None:
        """Subscribe ``client`` to acks and patrol positions (QoS 1)."""
        await client.subscribe(ACK_FILTER, qos=1)
        await client.subscribe(PATROL_FILTER, qos=1)

    async def consume(self, client: Any) -> None:
        """Handle ``client``'s messages on the two filters until cancelled; other
        messages (the client's other subscriptions) are left alone."""
        async for message in client.messages:
            if not (message.topic.matches(ACK_FILTER) or message.topic.matches(PATROL_FILTER)):
                continue  # the client's other subscriptions belong to someone else
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = str(payload).encode()
            await self.handle_message(str(message.topic), bytes(payload))
