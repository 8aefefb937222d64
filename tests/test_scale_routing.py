"""Sector routing of the scaled service: windows with an overlap margin, device coverage,
the sector store's rule (a sector writes only its own alerts), and device liveness when
the gateways feeding a sector lag behind one another."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import pytest

from alerts import MemoryAlertStore
from alerts.model import AlertWrite, PatrolWrite
from fusion.measurements import MEAS_DTYPE, MeasArray
from geo import Site, default_site
from scale.routing import Router
from scale.sector import SectorStore


@pytest.fixture(scope="module")
def site() -> Site:
    return default_site()


def _rows(chain: list[float]) -> MeasArray:
    m = np.zeros(len(chain), MEAS_DTYPE)
    m["chain"] = chain
    return m


def test_windows_overlap_at_boundaries(site: Site) -> None:
    r = Router(site, margin_m=1500.0)
    s1, s2 = site.sectors[0], site.sectors[1]
    assert s1.to_m == s2.from_m
    b = s1.to_m
    assert r.sectors_of(_rows([b - 5000.0])) == [s1.id]
    assert r.sectors_of(_rows([b - 1000.0])) == [s1.id, s2.id]  # within the margin: both
    assert r.sectors_of(_rows([b + 1000.0])) == [s1.id, s2.id]
    assert r.sectors_of(_rows([b + 2000.0])) == [s2.id]
    assert r.sectors_of(_rows([-50.0])) == [s1.id]  # before the first sector: the first
    assert r.sectors_of(_rows([site.sectors[-1].to_m + 10_000.0])) == [site.sectors[-1].id]
    m = _rows([b - 5000.0, b - 1000.0, b + 2000.0])
    assert r.mask(m, s2.id).tolist() == [False, True, True]
    # without a margin every chainage is in exactly one window
    r0 = Router(site, margin_m=0.0)
    chain = np.linspace(0.0, site.sectors[-1].to_m - 1.0, 997)
    assert (r0.windows(chain).sum(axis=1) == 1).all()


def test_coverage_of_fixed_sensors(site: Site) -> None:
    r = Router(site, margin_m=1500.0)
    cov = r.coverage()
    n = len(site.sectors)
    for f in site.fibre:
        # sector windows: [from - 1500, to + 1500), open-ended at the two ends of the line
        want = [
            s.id
            for i, s in enumerate(site.sectors)
            if (i == 0 or s.from_m - 1500 <= f.to_m) and (i == n - 1 or s.to_m + 1500 >= f.from_m)
        ]
        assert cov[f.id] == want
        assert len(want) >= 2  # 37.4 km units over 28 km sectors
    for cam in site.thermal:
        assert cov[cam.id], cam.id  # a camera reaches at least its own sector
    assert not any(m.id in cov for m in site.msv)  # mobile: every sector


async def test_sector_store_writes_only_its_alerts() -> None:
    inner = MemoryAlertStore()
    store = SectorStore(inner, "S02", patrol_writer=False)

    def write(sector: str) -> AlertWrite:
        return AlertWrite(
            alert_id=f"crossing-{sector}", sector=sector, rev=1, is_open=True,
            fields={"state": "open"}, audit={"event": "open"},
        )  # fmt: skip

    patrol = PatrolWrite(unit="RO-P01", t=1.0, lat=45.8, lon=20.6, team="RO", available=True)
    res = await store.apply([write("S01"), write("S02"), patrol, write("S02")])
    assert res == [False, True, True, False]  # foreign: not applied; repeat: idempotent
    assert set(inner.hashes) == {"limes:{S02}:alert:crossing-S02"}
    assert await inner.patrols() == []  # only the patrol writer sector writes patrols
    writer = SectorStore(inner, "S01", patrol_writer=True)
    assert await writer.apply([patrol]) == [True]
    assert [p.unit for p in await inner.patrols()] == ["RO-P01"]


def _sector(site: Site, sector: str, t0: float) -> tuple[Any, Any, list[Any]]:
    """A sector pipeline (memory store and sink) and the alert inputs it submits."""
    from scale.sector import SectorDurable, SectorPipeline
    from service.runtime import MemorySink

    sink = MemorySink()
    pipe = SectorPipeline(
        site, sink, sector, Router(site, 1500.0), started=t0, store=MemoryAlertStore()
    )
    d = SectorDurable(pipe)
    seen: list[Any] = []
    submit = pipe.submit

    async def spy(inputs: Any) -> None:
        inputs = list(inputs)
        seen.extend(inputs)
        await submit(inputs)

    pipe.submit = spy  # type: ignore[method-assign]
    return d, sink, seen


def _status(dev: str, t: float, g: str, state: str = "online") -> dict[bytes, bytes]:
    payload = b'{"v":1,"device":"%s","t":%r,"state":"%s"}' % (dev.encode(), t, state.encode())
    return {b"k": b"m", b"t": repr(t).encode(), b"g": g.encode(),
            b"topic": f"limes/v1/sensors/thermal/{dev}/status".encode(), b"p": payload}  # fmt: skip


def _beacon(t: float, g: str) -> dict[bytes, bytes]:
    return {b"k": b"b", b"t": repr(t).encode(), b"g": g.encode(), b"dev": b""}


async def test_lagging_gateway_does_not_make_a_device_look_silent(site: Site) -> None:
    """A camera that only sends statuses (every 10 s; heartbeat 30 s) is never silent. Its
    statuses alternate, three at a time, between a gateway in time and one whose records
    reach the stream 25 s late (within the watermark's grace). The sector applies gateway
    records in time order once the watermark passed them, so the statuses are applied in
    their order, none stale, and the device stays online: no ``offline`` health input, no
    ``sensor_fault`` alert naming it (the site's other devices, which send nothing, do
    raise theirs). (Applied in stream order, the leading gateway's statuses counted up to
    25 s early, the lagging one's came stale, and the camera went offline three times.)"""
    from alerts.model import HealthEvent

    t0, lag, dev = 1.8e9, 25.0, "TH-04"
    sector = next(s.id for s in site.sectors if s.from_m <= 70_000 < s.to_m)  # TH-04's (S03)
    d, sink, seen = _sector(site, sector, t0)
    recs: list[tuple[float, int, dict[bytes, bytes]]] = []
    for g in ("gw0", "gw1"):  # both gateways known from the start
        recs.append((-math.inf, len(recs), _beacon(t0 - 1.0, g)))
    for i in range(240):  # beacons of both gateways, one a second of their own clocks
        for g, late in (("gw0", 0.0), ("gw1", lag)):
            recs.append((t0 + i + late, len(recs), _beacon(t0 + i, g)))
    for k in range(22):
        t = t0 + 10.0 * k
        g, late = ("gw0", 0.0) if (k // 3) % 2 == 0 else ("gw1", lag)
        recs.append((t + late, len(recs), _status(dev, t, g)))
    for _, _, f in sorted(recs, key=lambda r: (r[0], r[1])):
        await d.apply_record(f)
    assert d.stale_statuses == 0
    offline = [h for h in seen if isinstance(h, HealthEvent) and h.device == dev
               and h.state == "offline"]  # fmt: skip
    assert not offline, f"{dev} went offline at {[h.t - t0 for h in offline]} s"
    alerts = [msgspec.json.decode(p) for t, p, _ in sink.messages if "/alerts/" in t]
    assert not [a for a in alerts if dev in a["sensors"]]
    assert any(a["kind"] == "sensor_fault" for a in alerts)  # the rule did run
    assert d.pipe.core.ingest.health.state(dev, d.now) == "online"


async def test_stale_status_counts_as_heartbeat_not_as_state(site: Site) -> None:
    """A status older than one already applied (from a gateway past the grace) is not
    applied, but its arrival shows the device alive then, as any message does; a stale
    ``offline`` (a last will) shows nothing."""
    t0, dev = 1.8e9, "TH-04"
    sector = next(s.id for s in site.sectors if s.from_m <= 70_000 < s.to_m)
    for state, alive in (("online", True), ("offline", False)):
        d, _, _ = _sector(site, sector, t0)
        await d.apply_record(_status(dev, t0 + 100.0, "gw0"))
        await d.apply_record(_beacon(t0 + 125.0, "gw0"))
        await d.apply_record(_status(dev, t0 + 90.0, "gw1", state))  # stale, arrives at 125
        health = d.pipe.core.ingest.health
        assert d.stale_statuses == 1
        assert health.state(dev, t0 + 150.0) == ("online" if alive else "offline"), state
        assert health.snapshot(t0 + 150.0)[dev].last_status == "online"  # not applied
