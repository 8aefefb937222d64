"""Sector routing of the scaled service: windows with an overlap margin, device coverage,
the sector store's rule (a sector writes only its own alerts), and device liveness when
the gateways feeding a sector lag behind one another."""

from __future__ import annotations

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


async def test_lagging_gateway_does_not_make_a_device_look_silent(site: Site) -> None:
    """A camera that only sends statuses (every 10 s; heartbeat 30 s) is never silent. Its
        statuses alternate, three at a time, between a gateway in time and one that appends
        25 s late (within the watermark's grace): the sector clock waits for the lagging one,
        so the leading gateway's statuses are applied up to 25 s before their arrival time,
        and the lagging one's are older than the newest applied (stale, not applied). The
        device must stay online: no ``offline`` health input, no ``sensor_fault`` alert naming it
    (the site's other devices, which send nothing, do raise theirs)."""
    from alerts import Input
    from alerts.model import HealthEvent
    from scale.sector import SectorDurable, SectorPipeline
    from service.runtime import MemorySink

    t0, lag, dev = 1.8e9, 25.0, "TH-04"
    sector = next(s.id for s in site.sectors if s.from_m <= 70_000 < s.to_m)  # TH-04's (S03)
    sink = MemorySink()
    router = Router(site, 1500.0)
    pipe = SectorPipeline(site, sink, sector, router, started=t0, store=MemoryAlertStore())
    d = SectorDurable(pipe)
    seen: list[Input] = []
    submit = pipe.submit

    async def spy(inputs: Any) -> None:
        inputs = list(inputs)
        seen.extend(inputs)
        await submit(inputs)

    pipe.submit = spy  # type: ignore[method-assign]
    recs: list[tuple[float, int, dict[bytes, bytes]]] = []
    for i in range(240):  # beacons of both gateways, one a second of their own clocks
        t = t0 + i
        for g, late in (("gw0", 0.0), ("gw1", lag)):
            recs.append((t + late, len(recs), {b"k": b"b", b"t": repr(t).encode(),
                                               b"g": g.encode(), b"dev": b""}))  # fmt: skip
    for k in range(22):
        t = t0 + 10.0 * k
        g, late = ("gw0", 0.0) if (k // 3) % 2 == 0 else ("gw1", lag)
        payload = b'{"v":1,"device":"%s","t":%r,"state":"online"}' % (dev.encode(), t)
        topic = f"limes/v1/sensors/thermal/{dev}/status".encode()
        fields = {b"k": b"m", b"t": repr(t).encode(), b"g": g.encode(), b"topic": topic,
                  b"p": payload}  # fmt: skip
        recs.append((t + late, len(recs), fields))
    for _, _, f in sorted(recs, key=lambda r: (r[0], r[1])):
        await d.apply_record(f)
    assert d.stale_statuses > 0  # the lagging gateway's statuses were older than applied
    offline = [h for h in seen if isinstance(h, HealthEvent) and h.device == dev
               and h.state == "offline"]  # fmt: skip
    assert not offline, f"{dev} went offline at {[h.t - t0 for h in offline]} s"
    alerts = [msgspec.json.decode(p) for t, p, _ in sink.messages if "/alerts/" in t]
    assert not [a for a in alerts if dev in a["sensors"]]  # (the site's silent devices: yes)
    assert any(a["kind"] == "sensor_fault" for a in alerts)  # the rule did run
    assert pipe.core.ingest.health.state(dev, d.now) == "online"
