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

With an :attr:`AlertService.staging` store (the scaled service's sector store,
:class:`scale.fencing.FencedStore`), the messages tied to a write are handed to the store
with it and staged for a separate publisher role in the same atomic write (stored <=>
staged, :mod:`scale.publisher`); the service itself then publishes only messages tied to
no write.

Acks and patrol positions reach it already decoded and validated by the drivers (the
service's one ingest path, ``drivers.Ingest``), as :class:`drivers.AlertAck` and
:class:`drivers.PatrolPosition` inputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from alerts.cot import alert_event
from alerts.lifecycle import AlertEngine
from alerts.model import Decision, Input, StoreOp
from alerts.store import AlertStore

__all__ = ["AlertService", "Outbox", "Publisher", "StagingStore"]

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


@runtime_checkable
class StagingStore(Protocol):
    """A store that stages the outgoing messages of each write it applies, atomically
    with the write (a publisher role sends them later)."""

    async def apply_staged(
        self, ops: Sequence[StoreOp], msgs: Sequence[Sequence[tuple[str, bytes, int]]]
    ) -> list[bool]:
        """Apply ``ops`` in order; ``msgs[i]`` is staged iff ``ops[i]`` is applied."""
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
        self.staging: StagingStore | None = None
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
        if self.staging is not None:
            await self._apply_staged(d, self.staging)
            return
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
        await self._cot(d)

    async def _apply_staged(self, d: Decision, staging: StagingStore) -> None:
        """Each write with its messages to the staging store; publish the rest."""
        per_op: list[list[tuple[str, bytes, int]]] = [[] for _ in d.ops]
        for p in d.publishes:
            if p.requires is not None:
                per_op[p.requires].append((p.topic, p.payload, p.qos))
        if d.ops:
            await staging.apply_staged(d.ops, per_op)
        for p in d.publishes:
            if p.requires is None:
                await self.publish(p.topic, p.payload, p.qos)
        await self._cot(d)

    async def _cot(self, d: Decision) -> None:
        if self.cot is not None:
            stale = self.engine.s.cot_stale_s
            for a in d.alerts:
                await self.cot(alert_event(a, stale_s=stale))
