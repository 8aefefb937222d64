"""Sector ownership by leases, shared by the fusion workers and the alert publishers.

A :class:`SectorOwner` runs one asyncio task per sector it holds a lease on
(:meth:`SectorOwner.run_sector`, the role's work). Its membership loop
(:meth:`SectorOwner.membership`), every ``lease_ms / 3``:

* registers the process in the role's live set (a ZSET of expiry times, ``live_key``) and
  drops expired members;
* renews the lease of every owned sector (a sector whose renewal fails is cancelled);
* keeps a fair share ``ceil(sectors / live members)``: below it, acquires free sectors
  (starting at a per-process rotation, so processes start on different sectors); above
  it, marks one sector ``stopping`` (its task finishes cleanly and releases the lease), so
  a process that starts later gets work without a restart of the others.

A task must stop when :meth:`SectorOwner.holds` turns false: no renewal succeeded for
``HOLD_FRACTION`` of the lease, i.e. before the lease can expire and pass to another owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from scale.fencing import Lease

log = logging.getLogger("limes.scale")

#: a sector stops (before its lease can expire) when no renewal succeeded for this
#: fraction of the lease; renewals run every third of it
HOLD_FRACTION = 0.8


@dataclass
class Owned:
    """One sector held: its fencing token, its task, the last successful renewal."""

    token: int
    task: asyncio.Task[None]
    renewed: float  # monotonic time of the last successful renewal (or acquisition)
    stopping: bool = False


class SectorOwner:
    """Lease-based ownership of sectors (see the module doc); subclasses implement
    :meth:`run_sector`. ``client`` and ``lease`` are set by the subclass before
    :meth:`membership` runs."""

    role = "owner"

    def __init__(self, ids: list[str], member: str, lease_ms: int, live_key: str) -> None:
        self.ids = ids
        self.member = member
        self.lease_ms = lease_ms
        self.live_key = live_key
        self.settle_s = 1.0
        self.client: Any = None
        self.lease: Lease | None = None
        self.owned: dict[str, Owned] = {}
        self.acquired = 0
        self.stop = asyncio.Event()
        # sectors tried first: a per-member rotation, so members start on different ones
        h = int(hashlib.blake2b(member.encode(), digest_size=4).hexdigest(), 16)
        n = len(ids)
        self.order = [ids[(h + i) % n] for i in range(n)]

    async def run_sector(self, sector: str, token: int) -> None:
        """The role's work on one owned sector (returns when it stops)."""
        raise NotImplementedError

    async def membership(self) -> None:
        """The membership loop (see the module doc), until :attr:`stop` is set."""
        assert self.lease is not None
        period = self.lease_ms / 3000.0
        settle_until = time.monotonic() + self.settle_s
        while not self.stop.is_set():
            now_ms = int(time.time() * 1000)
            await self.client.zadd(self.live_key, {self.member: now_ms + self.lease_ms})
            await self.client.zremrangebyscore(self.live_key, "-inf", now_ms)
            live = max(1, int(await self.client.zcard(self.live_key)))
            share = math.ceil(len(self.ids) / live)
            for sector, o in list(self.owned.items()):
                if o.task.done():
                    self.owned.pop(sector, None)
                    continue
                if await self.lease.renew(sector, o.token):
                    o.renewed = time.monotonic()
                else:
                    log.warning("%s %s lost the lease of %s", self.role, self.member, sector)
                    o.task.cancel()
            if time.monotonic() >= settle_until:
                active = [s for s, o in self.owned.items() if not o.stopping]
                if len(active) < share:
                    for sector in self.order:
                        if sector in self.owned or len(self.owned) >= share:
                            continue
                        token = await self.lease.acquire(sector)
                        if token:
                            self.start(sector, token)
                elif len(active) > share:
                    self.owned[active[-1]].stopping = True  # the task finishes and releases
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), period)

    def start(self, sector: str, token: int) -> None:
        """Start the task of a sector just acquired."""
        name = f"scale.{self.role}[{sector}]"
        task = asyncio.create_task(self.run_sector(sector, token), name=name)
        self.owned[sector] = Owned(token, task, time.monotonic())
        self.acquired += 1
        log.info("%s %s owns %s (token %d)", self.role, self.member, sector, token)

    async def release_all(self) -> None:
        """Ask every sector task to finish (and release), wait up to 10 s for each."""
        for o in self.owned.values():
            o.stopping = True
        for o in list(self.owned.values()):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(o.task, 10)

    def holds(self, sector: str) -> bool:
        """Whether ``sector`` is owned and was renewed within ``HOLD_FRACTION`` of the lease."""
        o = self.owned.get(sector)
        limit = self.lease_ms * HOLD_FRACTION / 1000
        return o is not None and time.monotonic() - o.renewed < limit

    def leaving(self, sector: str) -> bool:
        """Whether the task of ``sector`` should stop now (asked to, or the lease is unsure)."""
        o = self.owned.get(sector)
        return o is None or o.stopping or not self.holds(sector)
