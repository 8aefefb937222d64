"""Sector routing of the scaled service: windows with an overlap margin, device coverage,
and the sector store's rule (a sector writes only its own alerts)."""

from __future__ import annotations

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
