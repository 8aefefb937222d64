"""Durable outbox: QoS 1 alert, tasking and CCP messages survive a crash before their PUBACK.

Invariant: a message tied to an alert write (``Publish.requires``) is in the Redis Stream
``limes:{journal}:outbox`` *before* the write is applied to the alert store, and stays
there until the broker acknowledged it (PUBACK). So at every instant, a stored alert
write whose message the broker has not acknowledged has that message in the outbox
(or, if the write is not stored yet, the journal replay will decide it again):

* :meth:`Outbox.stage` (called by :class:`alerts.AlertService` before ``store.apply``)
  XADDs the decision's messages (``topic``, ``p`` payload, ``q`` QoS) in one round trip;
* :meth:`Outbox.unstage` removes what was staged for a write the store refused (a write
  already stored, whose message is not published again);
* :meth:`Outbox.done` (called by the MQTT sink after the PUBACK) XDELs the entry;
* :meth:`Outbox.load` on start returns every entry, oldest first: the sink sends them
  before anything else, and the journal replay's publishes of the same bytes are
  dropped once each (they are the same messages: the pipeline is deterministic).

Messages are matched by a digest of topic and payload; identical messages staged twice
are two entries, removed one per PUBACK.

At-least-once, not exactly once, on the wire: a crash after the broker's PUBACK and
before the XDEL reaches Redis re-sends that message after the restart (the same bytes,
a duplicate the consumer can drop by ``(alert_id, state, t)``). While Redis is
unreachable, staging fails (counted in :attr:`Outbox.failed`) and the messages are only
in memory: a crash then loses them, as it loses the buffered journal records.
"""

from __future__ import annotations

import collections
import hashlib
import logging
from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("limes.outbox")

OUTBOX: Final = "limes:{journal}:outbox"
_READ_CHUNK = 1000

Message = tuple[str, bytes, int]


def message_key(topic: str, payload: bytes) -> bytes:
    """16-byte BLAKE2b digest of ``topic NUL payload``: how entries are matched."""
    return hashlib.blake2b(
        topic.encode("utf-8", "surrogateescape") + b"\0" + payload, digest_size=16
    ).digest()


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class Outbox:
    """The durable outbox on a Redis client (see the module doc). One writer."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        #: stream ids of staged, not yet acknowledged entries, per message key (FIFO)
        self.ids: dict[bytes, collections.deque[str]] = {}
        #: ids whose XDEL failed (Redis away): retried by :meth:`retry`
        self.to_delete: list[str] = []
        #: entries loaded on start not yet claimed by the journal replay's decisions
        self.unclaimed: collections.Counter[bytes] = collections.Counter()
        self.staged = 0
        self.failed = 0  # messages that could not be staged (kept in memory only)
        self.acked = 0

    async def load(self) -> list[Message]:
        """Every entry, oldest first (on start; registers their ids for :meth:`done`)."""
        out: list[Message] = []
        start = "-"
        while True:
            chunk: Any = await self.client.xrange(OUTBOX, min=start, max="+", count=_READ_CHUNK)
            for rid, f in chunk:
                topic = f[b"topic"].decode("utf-8", "surrogateescape")
                payload = bytes(f[b"p"])
                key = message_key(topic, payload)
                self.ids.setdefault(key, collections.deque()).append(_s(rid))
                self.unclaimed[key] += 1
                out.append((topic, payload, int(f[b"q"])))
            if len(chunk) < _READ_CHUNK:
                return out
            start = f"({_s(chunk[-1][0])}"

    async def stage(self, msgs: Sequence[Message]) -> list[str | None]:
        """XADD ``msgs`` (one round trip); per message its stream id, None if not staged.

        During recovery a message already in the outbox since before the restart (the
        replay decided it again) is claimed instead of staged twice (None).
        """
        if self.unclaimed:
            claimed = [self._claim(message_key(t, p)) for t, p, _ in msgs]
            fresh = [m for m, c in zip(msgs, claimed, strict=True) if not c]
            ids = iter(await self._stage(fresh))
            return [None if c else next(ids) for c in claimed]
        return await self._stage(msgs)

    def _claim(self, key: bytes) -> bool:
        if self.unclaimed[key] > 0:
            self.unclaimed[key] -= 1
            return True
        return False

    def end_recovery(self) -> None:
        """Live from here: every decision's messages are staged."""
        self.unclaimed.clear()

    async def _stage(self, msgs: Sequence[Message]) -> list[str | None]:
        if not msgs:
            return []
        try:
            async with self.client.pipeline(transaction=False) as p:
                for topic, payload, qos in msgs:
                    p.xadd(OUTBOX, {"topic": topic, "p": payload, "q": str(qos)})
                ids = [_s(i) for i in await p.execute()]
        except (RedisError, OSError) as exc:
            self.failed += len(msgs)
            log.warning("outbox: staging %d messages failed (%s): memory only", len(msgs), exc)
            return [None] * len(msgs)
        for (topic, payload, _), rid in zip(msgs, ids, strict=True):
            self.ids.setdefault(message_key(topic, payload), collections.deque()).append(rid)
        self.staged += len(msgs)
        return list(ids)

    async def unstage(self, msgs: Sequence[Message], ids: Sequence[str | None]) -> None:
        """Remove entries just staged (their write was not applied: not published)."""
        gone = []
        for (topic, payload, _), rid in zip(msgs, ids, strict=True):
            if rid is None:
                continue
            q = self.ids.get(message_key(topic, payload))
            if q is not None and rid in q:
                q.remove(rid)
                if not q:
                    del self.ids[message_key(topic, payload)]
                gone.append(rid)
        await self._delete(gone)

    async def done(self, topic: str, payload: bytes) -> None:
        """The broker acknowledged this message: remove its oldest entry (if staged)."""
        key = message_key(topic, payload)
        q = self.ids.get(key)
        if not q:
            return
        rid = q.popleft()
        if not q:
            del self.ids[key]
        self.acked += 1
        await self._delete([rid])

    async def retry(self) -> None:
        """Retry deletions that failed while Redis was away."""
        if self.to_delete:
            ids, self.to_delete = self.to_delete, []
            await self._delete(ids)

    async def _delete(self, ids: list[str]) -> None:
        if not ids:
            return
        try:
            await self.client.xdel(OUTBOX, *ids)
        except (RedisError, OSError) as exc:
            log.warning("outbox: removing %d entries failed (%s); retrying later", len(ids), exc)
            self.to_delete.extend(ids)

    @property
    def pending(self) -> int:
        """Entries staged and not yet acknowledged."""
        return sum(len(q) for q in self.ids.values())
