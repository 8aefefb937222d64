"""An in-memory :class:`~alerts.store.AlertStore` for the demo and tests.

Same semantics as :class:`~alerts.store.RedisAlertStore` (same keys, idempotent
``rev``-guarded alert writes, audit entries in order) and passes the same contract
tests; ``nearest_units`` uses the haversine formula on Redis GEO's sphere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from alerts.geometry import haversine_m
from alerts.model import AlertRecord, AlertWrite, PatrolPosition, PatrolWrite, StoreOp
from alerts.store import alert_key, audit_key, open_key

__all__ = ["MemoryAlertStore"]

_record_dec = msgspec.json.Decoder(AlertRecord)


class MemoryAlertStore:
    """:class:`~alerts.store.AlertStore` in dicts (single event loop, no persistence)."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}
        self.streams: dict[str, list[dict[str, str]]] = {}
        self.sets: dict[str, set[str]] = {}
        self.geo: dict[str, PatrolPosition] = {}

    async def apply(self, ops: Sequence[StoreOp]) -> list[bool]:
        out: list[bool] = []
        for op in ops:
            if isinstance(op, AlertWrite):
                out.append(self._write(op))
            else:
                self._patrol(op)
                out.append(True)
        return out

    def _write(self, op: AlertWrite) -> bool:
        key = alert_key(op.sector, op.alert_id)
        h = self.hashes.setdefault(key, {})
        if int(h.get("rev", "0")) >= op.rev:
            return False
        h["rev"] = str(op.rev)
        h.update(op.fields)
        self.streams.setdefault(audit_key(op.sector), []).append(dict(op.audit))
        members = self.sets.setdefault(open_key(op.sector), set())
        if op.is_open:
            members.add(op.alert_id)
        else:
            members.discard(op.alert_id)
        return True

    def _patrol(self, op: PatrolWrite) -> None:
        self.geo[op.unit] = PatrolPosition(
            unit=op.unit, t=op.t, lat=op.lat, lon=op.lon, team=op.team, available=op.available
        )

    async def get_alert(self, sector: str, alert_id: str) -> dict[str, str] | None:
        h = self.hashes.get(alert_key(sector, alert_id))
        return dict(h) if h else None

    async def audit(self, sector: str) -> list[dict[str, str]]:
        return [dict(e) for e in self.streams.get(audit_key(sector), [])]

    async def open_records(self, sectors: Iterable[str]) -> list[AlertRecord]:
        out = []
        for sector in sectors:
            for aid in sorted(self.sets.get(open_key(sector), set())):
                raw = self.hashes[alert_key(sector, aid)].get("record")
                if raw is not None:
                    out.append(_record_dec.decode(raw))
        return out

    async def patrols(self) -> list[PatrolPosition]:
        return [self.geo[u] for u in sorted(self.geo)]

    async def nearest_units(
        self, lat: float, lon: float, radius_m: float, count: int | None = None
    ) -> list[tuple[str, float]]:
        rows = sorted((haversine_m(lat, lon, p.lat, p.lon), u) for u, p in self.geo.items())
        rows = [(dist, u) for dist, u in rows if dist <= radius_m]
        if count is not None:
            rows = rows[:count]
        return [(u, dist) for dist, u in rows]

    async def aclose(self) -> None:
        return None
