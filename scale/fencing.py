"""Sector leases with fencing tokens, and the fenced writes of a sector owner.

A worker owns a sector while it holds ``limes:{S}:lease`` (``SET NX PX``, renewed every
``lease_ms / 3``). Each acquisition takes a new token from ``INCR limes:{S}:fence``; the
fence key therefore always holds the newest token. Every write of an owner (stream
acknowledgements, snapshot + trim, alert writes) is a Lua script that first compares its
token with the fence key and refuses (returns -1) when a newer owner exists, so a paused
or partitioned ex-owner can never overwrite the new owner's state. All keys of a script
share the ``{S}`` hash tag: one Redis Cluster slot, so the check and the write are atomic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from alerts import RedisAlertStore, StoreWrapper
from alerts.model import AlertWrite, StoreOp
from alerts.store import _WRITE_LUA, _patrol_fields, _write_args, patrol_geo_key, patrol_key
from scale.keys import GROUP, fence_key, lease_key, outbox_key, snapshot_key, stream_key


class FencedError(Exception):
    """A write was refused: this worker's token for ``sector`` is stale."""

    def __init__(self, sector: str) -> None:
        super().__init__(f"sector {sector}: fencing token is stale (another worker owns it)")
        self.sector = sector


# KEYS: lease, fence; ARGV: worker, px -> token (0: held by someone)
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local tok = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. tok, 'PX', ARGV[2])
return tok
"""
# KEYS: lease; ARGV: value, px -> 1 renewed, 0 lost
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_CHECK = "if redis.call('GET', KEYS[{n}]) ~= ARGV[1] then return -1 end\n"
# KEYS: fence, stream; ARGV: token, group, ids...
_ACK = (
    _CHECK.format(n=1)
    + """
local ids = {}
for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
return redis.call('XACK', KEYS[2], ARGV[2], unpack(ids))
"""
)
# KEYS: fence, snapshot, stream; ARGV: token, data, position
_SNAPSHOT = (
    _CHECK.format(n=1)
    + """
redis.call('SET', KEYS[2], ARGV[2])
redis.call('XTRIM', KEYS[3], 'MINID', ARGV[3])
return 1
"""
)
# the alert store's write script behind the fence check, staging the write's outgoing
# messages in the sector outbox in the same script (stored <=> staged): KEYS alert, audit,
# open, fence, outbox; ARGV token, n messages, (topic, payload, qos) x n, then the store's
# own arguments (shifted into A)
_ALERT = (
    _CHECK.format(n=4)
    + """
local nm = tonumber(ARGV[2])
local A = {}
for i = 3 + 3 * nm, #ARGV do A[#A + 1] = ARGV[i] end
local function write()
"""
    + _WRITE_LUA.replace("ARGV", "A")
    + """
end
local r = write()
if r == 1 then
  for j = 0, nm - 1 do
    local b = 3 + 3 * j
    redis.call('XADD', KEYS[5], '*', 'topic', ARGV[b], 'p', ARGV[b + 1], 'q', ARGV[b + 2],
               'id', A[3], 'rev', A[1])
  end
end
return r
"""
)

Message = tuple[str, bytes, int]


class Lease:
    """Lease scripts bound to one client (plain or cluster). ``lease_of`` / ``fence_of``
    name the keys: the workers' (default) or the publishers' (:mod:`scale.publisher`)."""

    def __init__(
        self,
        client: Any,
        worker: str,
        lease_ms: int,
        *,
        lease_of: Callable[[str], str] = lease_key,
        fence_of: Callable[[str], str] = fence_key,
    ) -> None:
        self.client = client
        self.worker = worker
        self.lease_ms = lease_ms
        self.lease_of = lease_of
        self.fence_of = fence_of
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    async def acquire(self, sector: str) -> int:
        """A new fencing token if the sector was free, else 0."""
        keys = [self.lease_of(sector), self.fence_of(sector)]
        return int(await self._acquire(keys=keys, args=[self.worker, self.lease_ms]))

    async def renew(self, sector: str, token: int) -> bool:
        """Extend the lease; False when it is no longer ours."""
        val = f"{self.worker}:{token}"
        return bool(await self._renew(keys=[self.lease_of(sector)], args=[val, self.lease_ms]))

    async def release(self, sector: str, token: int) -> None:
        """Give the lease up (only if still ours)."""
        await self._release(keys=[self.lease_of(sector)], args=[f"{self.worker}:{token}"])


class Fenced:
    """The fenced writes of one sector owner (token ``token``)."""

    def __init__(self, client: Any, sector: str, token: int) -> None:
        self.client = client
        self.sector = sector
        self.token = token
        self._ack = client.register_script(_ACK)
        self._snap = client.register_script(_SNAPSHOT)
        self._alert = client.register_script(_ALERT)

    def _check(self, res: Any) -> int:
        if int(res) == -1:
            raise FencedError(self.sector)
        return int(res)

    async def ack(self, ids: Sequence[str]) -> int:
        """XACK ``ids`` in the workers' group."""
        if not ids:
            return 0
        keys = [fence_key(self.sector), stream_key(self.sector)]
        return self._check(await self._ack(keys=keys, args=[self.token, GROUP, *ids]))

    async def snapshot(self, data: bytes, position: str) -> None:
        """Store the sector snapshot and trim the stream entries it includes."""
        keys = [fence_key(self.sector), snapshot_key(self.sector), stream_key(self.sector)]
        self._check(await self._snap(keys=keys, args=[self.token, data, position]))

    async def alert(self, op: AlertWrite, msgs: Sequence[Message] = ()) -> bool:
        """The alert store's idempotent write (by ``rev``), behind the fence; when it is
        applied, ``msgs`` (the messages that go out with it) are appended to the sector
        outbox ``limes:{S}:out`` by the same script: stored <=> staged."""
        keys, args = _write_args(op)
        staged: list[Any] = [len(msgs)]
        for topic, payload, qos in msgs:
            staged += [topic, payload, qos]
        res = await self._alert(
            keys=[*keys, fence_key(self.sector), outbox_key(self.sector)],
            args=[self.token, *staged, *args],
        )
        return self._check(res) == 1


class FencedStore(StoreWrapper):
    """:class:`AlertStore` of a sector owner: alert writes fenced (:class:`Fenced`),
    patrol writes and reads as :class:`alerts.RedisAlertStore` does. A
    :class:`alerts.service.StagingStore`: :meth:`apply_staged` stages each applied alert
    write's messages in the sector outbox atomically with the write."""

    def __init__(self, client: Any, fenced: Fenced) -> None:
        super().__init__(RedisAlertStore(client, owns_client=False))  # reads; closes nothing
        self.client = client
        self.fenced = fenced

    async def apply(self, ops: Sequence[StoreOp]) -> list[bool]:
        """Apply in order, staging nothing; raises :class:`FencedError` when the token is
        stale."""
        return await self.apply_staged(ops, [() for _ in ops])

    async def apply_staged(
        self, ops: Sequence[StoreOp], msgs: Sequence[Sequence[Message]]
    ) -> list[bool]:
        """Apply in order; ``msgs[i]`` is staged in the outbox iff ``ops[i]`` is applied
        (one script per alert write). Raises :class:`FencedError` when the token is stale."""
        out: list[bool] = []
        for op, m in zip(ops, msgs, strict=True):
            if isinstance(op, AlertWrite):
                out.append(await self.fenced.alert(op, m))
            else:
                await self.client.geoadd(patrol_geo_key(), (op.lon, op.lat, op.unit))
                mapping: dict[Any, Any] = _patrol_fields(op)
                await self.client.hset(patrol_key(op.unit), mapping=mapping)
                out.append(True)
        return out
