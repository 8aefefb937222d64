"""Alert stores: the :class:`AlertStore` interface and its Redis implementation.

Key layout (hash-tagged so that one sector's keys share a Redis Cluster slot)::

    limes:{S03}:alert:<alert_id>   HASH   alert (contract JSON), record (engine JSON),
                                          state, kind, priority, t, rev
    limes:{S03}:audit              STREAM one entry per alert write: alert_id, rev, event,
                                          state, who, why, t, priority, summary
    limes:{S03}:open               SET    ids of alerts not resolved
    limes:{patrols}:geo            GEO    latest patrol positions
    limes:{patrols}:unit:<unit>    HASH   team, available, t, lat, lon

An :class:`~alerts.model.AlertWrite` is applied by one Lua script, atomically and only
if the stored ``rev`` is lower than the write's (a replayed journal writes nothing
twice); :meth:`AlertStore.apply` reports per operation whether it was applied.
Every Redis error is translated once into :class:`~alerts._errors.StoreError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from alerts._errors import StoreError
from alerts.model import AlertRecord, AlertWrite, PatrolPosition, PatrolWrite, StoreOp

__all__ = [
    "AUDIT_MAXLEN",
    "AlertStore",
    "RedisAlertStore",
    "alert_key",
    "audit_key",
    "open_key",
    "patrol_geo_key",
    "patrol_key",
]

#: approximate cap of each sector's audit stream (XADD MAXLEN ~)
AUDIT_MAXLEN = 1_000_000


def alert_key(sector: str, alert_id: str) -> str:
    """``limes:{<sector>}:alert:<alert_id>``."""
    return f"limes:{{{sector}}}:alert:{alert_id}"


def audit_key(sector: str) -> str:
    """``limes:{<sector>}:audit``."""
    return f"limes:{{{sector}}}:audit"


def open_key(sector: str) -> str:
    """``limes:{<sector>}:open``."""
    return f"limes:{{{sector}}}:open"


def patrol_geo_key() -> str:
    """``limes:{patrols}:geo``."""
    return "limes:{patrols}:geo"


def patrol_key(unit: str) -> str:
    """``limes:{patrols}:unit:<unit>``."""
    return f"limes:{{patrols}}:unit:{unit}"


class AlertStore(Protocol):
    """What the alert service needs from a store (Redis, or in memory for the demo)."""

    async def apply(self, ops: Sequence[StoreOp]) -> list[bool]:
        """Apply ``ops`` in order; per op, whether it changed anything (False: a
        replayed :class:`AlertWrite` whose ``rev`` is already stored)."""
        ...

    async def get_alert(self, sector: str, alert_id: str) -> dict[str, str] | None:
        """The alert's hash fields, or ``None``."""
        ...

    async def audit(self, sector: str) -> list[dict[str, str]]:
        """The sector's audit entries, oldest first."""
        ...

    async def open_records(self, sectors: Iterable[str]) -> list[AlertRecord]:
        """Engine records of every alert not resolved, for a restart."""
        ...

    async def patrols(self) -> list[PatrolPosition]:
        """Latest stored position of every patrol unit."""
        ...

    async def nearest_units(
        self, lat: float, lon: float, radius_m: float, count: int | None = None
    ) -> list[tuple[str, float]]:
        """Units within ``radius_m`` of a point, nearest first, with distance (m)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class StoreWrapper:
    """An :class:`AlertStore` around another one (``inner``): every method goes to
    ``inner``; a wrapper overrides what it changes (usually :meth:`apply`)."""

    def __init__(self, inner: AlertStore) -> None:
        self.inner = inner

    async def apply(self, ops: Sequence[StoreOp]) -> list[bool]:
        """See :class:`AlertStore`."""
        return await self.inner.apply(ops)

    async def get_alert(self, sector: str, alert_id: str) -> dict[str, str] | None:
        """See :class:`AlertStore`."""
        return await self.inner.get_alert(sector, alert_id)

    async def audit(self, sector: str) -> list[dict[str, str]]:
        """See :class:`AlertStore`."""
        return await self.inner.audit(sector)

    async def open_records(self, sectors: Iterable[str]) -> list[AlertRecord]:
        """See :class:`AlertStore`."""
        return await self.inner.open_records(sectors)

    async def patrols(self) -> list[PatrolPosition]:
        """See :class:`AlertStore`."""
        return await self.inner.patrols()

    async def nearest_units(
        self, lat: float, lon: float, radius_m: float, count: int | None = None
    ) -> list[tuple[str, float]]:
        """See :class:`AlertStore`."""
        return await self.inner.nearest_units(lat, lon, radius_m, count)

    async def aclose(self) -> None:
        """See :class:`AlertStore`."""
        await self.inner.aclose()


# ARGV: rev, is_open ("1"/"0"), alert_id, maxlen, n_fields, field pairs..., audit pairs...
_WRITE_LUA = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
local rev = tonumber(ARGV[1])
if cur >= rev then return 0 end
local nf = tonumber(ARGV[5])
local h = {'rev', ARGV[1]}
for i = 6, 5 + 2 * nf do h[#h + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(h))
local a = {}
for i = 6 + 2 * nf, #ARGV do a[#a + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(a))
if ARGV[2] == '1' then
  redis.call('SADD', KEYS[3], ARGV[3])
else
  redis.call('SREM', KEYS[3], ARGV[3])
end
return 1
"""

_record_dec = msgspec.json.Decoder(AlertRecord)


def _write_args(op: AlertWrite) -> tuple[list[str], list[str]]:
    keys = [alert_key(op.sector, op.alert_id), audit_key(op.sector), open_key(op.sector)]
    args = [str(op.rev), "1" if op.is_open else "0", op.alert_id, str(AUDIT_MAXLEN)]
    args.append(str(len(op.fields)))
    for k, v in op.fields.items():
        args += [k, v]
    for k, v in op.audit.items():
        args += [k, v]
    return keys, args


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RedisAlertStore:
    """:class:`AlertStore` on Redis (redis.asyncio). One pipeline round trip per
    :meth:`apply`; the client is owned unless ``owns_client=False``."""

    def __init__(self, client: aioredis.Redis, *, owns_client: bool = True) -> None:
        self._r = client
        self._owns = owns_client
        self._script = client.register_script(_WRITE_LUA)

    @classmethod
    def from_url(cls, url: str) -> RedisAlertStore:
        """A store on a new client for ``url`` (``redis://host:port/db``)."""
        return cls(aioredis.Redis.from_url(url))

    async def apply(self, ops: Sequence[StoreOp]) -> list[bool]:
        if not ops:
            return []
        try:
            pipe = self._r.pipeline(transaction=False)
            counts: list[int] = []
            for op in ops:
                if isinstance(op, AlertWrite):
                    keys, args = _write_args(op)
                    await self._script(keys=keys, args=args, client=pipe)
                    counts.append(1)
                else:
                    pipe.geoadd(patrol_geo_key(), (op.lon, op.lat, op.unit))
                    mapping: dict[Any, Any] = _patrol_fields(op)
                    pipe.hset(patrol_key(op.unit), mapping=mapping)
                    counts.append(2)
            res = await pipe.execute()
        except RedisError as exc:
            raise StoreError("apply", f"{type(exc).__name__}: {exc}") from exc
        out: list[bool] = []
        i = 0
        for op, n in zip(ops, counts, strict=True):
            out.append(bool(res[i]) if isinstance(op, AlertWrite) else True)
            i += n
        return out

    async def get_alert(self, sector: str, alert_id: str) -> dict[str, str] | None:
        try:
            raw = await self._r.hgetall(alert_key(sector, alert_id))
        except RedisError as exc:
            raise StoreError("get_alert", str(exc)) from exc
        return {_s(k): _s(v) for k, v in raw.items()} or None

    async def audit(self, sector: str) -> list[dict[str, str]]:
        try:
            rows: list[Any] = list(await self._r.xrange(audit_key(sector)) or [])
        except RedisError as exc:
            raise StoreError("audit", str(exc)) from exc
        return [{_s(k): _s(v) for k, v in (fields or {}).items()} for _id, fields in rows]

    async def open_records(self, sectors: Iterable[str]) -> list[AlertRecord]:
        out: list[AlertRecord] = []
        try:
            for sector in sectors:
                ids = sorted(_s(m) for m in await self._r.smembers(open_key(sector)))
                for aid in ids:
                    raw = await self._r.hget(alert_key(sector, aid), "record")
                    if raw is not None:
                        out.append(_record_dec.decode(raw))
        except RedisError as exc:
            raise StoreError("open_records", str(exc)) from exc
        return out

    async def patrols(self) -> list[PatrolPosition]:
        try:
            units = sorted(_s(u) for u in await self._r.zrange(patrol_geo_key(), 0, -1))
            out = []
            for unit in units:
                h = await self._r.hgetall(patrol_key(unit))
                f = {_s(k): _s(v) for k, v in h.items()}
                if f:
                    out.append(_patrol_from(unit, f))
        except RedisError as exc:
            raise StoreError("patrols", str(exc)) from exc
        return out

    async def nearest_units(
        self, lat: float, lon: float, radius_m: float, count: int | None = None
    ) -> list[tuple[str, float]]:
        try:
            rows: list[Any] = await self._r.geosearch(
                patrol_geo_key(),
                longitude=lon,
                latitude=lat,
                radius=radius_m,
                unit="m",
                sort="ASC",
                count=count,
                withdist=True,
            )
        except RedisError as exc:
            raise StoreError("nearest_units", str(exc)) from exc
        return [(_s(name), float(dist)) for name, dist in rows]

    async def aclose(self) -> None:
        if self._owns:
            await self._r.aclose()


def _patrol_fields(op: PatrolWrite) -> dict[str, str]:
    return {
        "team": op.team,
        "available": "1" if op.available else "0",
        "t": repr(op.t),
        "lat": repr(op.lat),
        "lon": repr(op.lon),
    }


def _patrol_from(unit: str, f: dict[str, str]) -> PatrolPosition:
    return PatrolPosition(
        unit=unit,
        t=float(f["t"]),
        lat=float(f["lat"]),
        lon=float(f["lon"]),
        team=f["team"],
        available=f["available"] == "1",
    )
