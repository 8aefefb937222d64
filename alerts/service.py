"""The async executor: feeds inputs to the engine, applies its writes, then publishes.

:class:`AlertService` serialises inputs (one decision at a time, in arrival order),
applies each :class:`~alerts.model.Decision`'s store operations, then publishes its
messages through an injected publisher ``async def publish(topic, payload, qos)``.
A message tied to an alert write is published only if the store applied that write
(so replaying a journal into a store that already holds it publishes nothing twice).
The apply step is shielded from cancellation: a decision, once made, is written and
published in full before a cancellation takes effect.

With an :attr:`AlertService.outbox` (the live service's :class:`service.outbox.Outbox`),
a decision's QoS 1 messages are staged durably *before* its store writes, and the ones
whose write the store refused are unstaged: a crash between the store write and the
broker's PUBACK cannot lose a message (it is re-sent on start).

Acks and patrol positions reach it already decoded and validated by the drivers (the
service's one ingest path, ``drivers.Ingest``), as :class:`drivers.AlertAck` and
:class:`drivers.PatrolPosition` inputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from alerts.cot import alert_event
from alerts.lifecycle import AlertEngine
from alerts.model import Decision, Input
from alerts.store import AlertStore

__all__ = ["AlertService", "Outbox", "Publisher"]

Publisher = Callable[[str, bytes, int], Awaitable[None]]
CotSink = Callable[[bytes], Awaitable[None]]


class Outbox(Protocol):
    """Durable staging of outbound messages (see :class:`service.outbox.Outbox`)."""

    async def stage(self, msgs: Sequence[tuple[str, bytes, int]]) -> list[str | None]:
        """Stage ``msgs`` durably; per message a handle (None: not staged)."""
        ...

    async def unstage(
        self, msgs: Sequence[tuple[str, bytes, int]], ids: Sequence[str | None]
    ) -> None:
        """Remove staged messages that will not be published."""
        ...


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
        self.outbox: Outbox | None = None
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
        durable = [p for p in d.publishes if p.qos >= 1]
        msgs = [(p.topic, p.payload, p.qos) for p in durable]
        ids = await self.outbox.stage(msgs) if self.outbox is not None and msgs else []
        applied = await self.store.apply(d.ops) if d.ops else []
        refused = [
            (m, i)
            for p, m, i in zip(durable, msgs, ids, strict=False)
            if p.requires is not None and not applied[p.requires]
        ]
        if refused and self.outbox is not None:
            await self.outbox.unstage([m for m, _ in refused], [i for _, i in refused])
        for p in d.publishes:
            if p.requires is not None and not applied[p.requires]:
                continue
            await self.publish(p.topic, p.payload, p.qos)
        if self.cot is not None:
            stale = self.engine.s.cot_stale_s
            for a in d.alerts:
                await self.cot(alert_event(a, stale_s=stale))
