"""Geometry and site model on the real RO-RS border."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from pyproj import Geod

import geo
from geo import Border, Site, SiteError, default_site, load_site, polar_to_xy
from service.cli import main
from tests import naive_geo


@pytest.fixture(scope="module")
def site() -> Site:
    return default_site()


def test_default_site_layout(site: Site) -> None:
    assert site.name == "ro-rs"
    assert 220_000 < site.border.length < 230_000  # generalised land border ~224.6 km
    assert len(site.sectors) == 8
    assert len(site.fibre) == 6
    assert all(f.to_m - f.from_m <= 40_000 for f in site.fibre)
    # fibre covers the whole land border without gaps
    spans = sorted((f.from_m, f.to_m) for f in site.fibre)
    assert spans[0][0] == 0
    assert spans[-1][1] >= site.border.length
    assert all(a[1] >= b[0] for a, b in itertools.pairwise(spans))
    assert len(site.thermal) == 12
    _, dist, _ = site.locate(site.thermal_xy[:, 0], site.thermal_xy[:, 1])
    assert np.all((dist > 250) & (dist < 850))  # 300-800 m inside Romania (bends shorten it)
    assert len(site.msv) == 4
    teams = [p.team for p in site.patrols]
    assert teams.count("RO") == 10
    assert teams.count("RS") == 2


def test_known_cities_fall_on_their_side(site: Site) -> None:
    # Timisoara (RO) and Vrsac (RS), lon/lat
    x, y = site.proj.to_xy([21.2087, 21.3036], [45.7489, 45.1167])
    _, dist, _ = site.locate(x, y)
    assert dist[0] > 20_000
    assert dist[1] < -5_000
    assert list(site.side_code(dist)) == ["RO", "RS"]


def test_point_100m_inside_romania(site: Site) -> None:
    chain = np.array([1_000.0, 50_000.0, 123_456.0, 200_000.0])
    x, y, _, _ = site.border.point_at(chain, 100.0)
    got_chain, dist, _ = site.locate(x, y)
    np.testing.assert_allclose(dist, 100.0, atol=0.01)
    np.testing.assert_allclose(got_chain, chain, atol=0.01)
    assert set(site.side_code(dist)) == {"RO"}
    x, y, _, _ = site.border.point_at(chain, -100.0)
    assert set(site.side_code(site.border.signed_distance(x, y))) == {"RS"}


def test_chainage_round_trip_everywhere(site: Site) -> None:
    rng = np.random.default_rng(1)
    chain = rng.uniform(0, site.border.length, 2000)
    x, y, _, _ = site.border.point_at(chain)
    back, dist = site.border.project(x, y)
    assert np.max(np.abs(back - chain)) < 0.01
    assert np.max(np.abs(dist)) < 0.01


def test_wgs84_round_trip(site: Site) -> None:
    lon = np.array([20.3, 21.0, 21.4])
    lat = np.array([46.0, 45.5, 44.9])
    x, y = site.proj.to_xy(lon, lat)
    lon2, lat2 = site.proj.to_lonlat(x, y)
    np.testing.assert_allclose(lon2, lon, atol=1e-9)
    np.testing.assert_allclose(lat2, lat, atol=1e-9)


def test_signed_distance_at_a_convex_vertex() -> None:
    # an L-shaped line going east then north; home on the left (north-west inside)
    b = Border([[0.0, 0.0], [100.0, 0.0], [100.0, 100.0]], "left")
    # a point in the outer wedge beyond the corner (south-east) is on the right side
    assert float(b.signed_distance(110.0, -10.0)) < 0
    assert math.isclose(abs(float(b.signed_distance(110.0, -10.0))), math.hypot(10, 10))
    # a point inside the corner is on the left (home)
    assert float(b.signed_distance(90.0, 10.0)) > 0
    # right home side flips the sign
    b_r = Border([[0.0, 0.0], [100.0, 0.0], [100.0, 100.0]], "right")
    assert float(b_r.signed_distance(90.0, 10.0)) < 0


def test_sector_lookup(site: Site) -> None:
    idx = site.sector_of_chainage([0.0, 27_999.0, 28_000.0, 224_000.0, -5.0, 1e9])
    assert list(idx) == [0, 0, 1, 7, -1, -1]
    assert site.sector_id(1) == "S02"
    assert site.sector_id(-1) == ""


def test_fibre_direction_and_offset(site: Site) -> None:
    fwd = site.fibre_by_id["FO-02"]  # direction +1
    back = site.fibre_by_id["FO-01"]  # direction -1
    assert fwd.direction == 1
    assert back.direction == -1
    c = np.array([0.0, 1020.0])
    _, _, chain_f, _, _ = site.fibre_points("FO-02", c)
    np.testing.assert_allclose(chain_f, [fwd.from_m, fwd.from_m + 1000.0])
    _, _, chain_b, _, _ = site.fibre_points("FO-01", c)
    np.testing.assert_allclose(chain_b, [back.to_m, back.to_m - 1000.0])
    x, y, chain, tx, ty = site.fibre_points("FO-02", np.array([5_000.0]))
    got_chain, dist = site.border.project(x, y)
    np.testing.assert_allclose(dist, fwd.offset_m, atol=1e-6)
    np.testing.assert_allclose(got_chain, chain, atol=1e-6)
    np.testing.assert_allclose(np.hypot(tx, ty), 1.0)
    np.testing.assert_allclose(back.cable_chainage(back.border_chainage(c)), c)


def test_thermal_bearing_and_range_lands_where_expected(site: Site) -> None:
    cam = site.thermal[3]
    cx, cy = site.thermal_xy[3]
    # a target 1000 m due true-east of the camera (geodesic)
    target_lon, target_lat, _ = Geod(ellps="WGS84").fwd(cam.lon, cam.lat, 90.0, 1000.0)
    tx, ty = site.proj.to_xy(target_lon, target_lat)
    slant = math.hypot(1000.0, cam.height_m)
    p = site.thermal_points(cam.id, [90.0], [0.5], [slant], [25.0])
    # grid scale factor of Stereo70 here is ~1.0003: < 1 m at 1 km
    assert math.hypot(float(p.x[0]) - float(tx), float(p.y[0]) - float(ty)) < 1.0
    # covariance: range error along the ray (east), bearing error across it (north)
    cov = np.array([[p.cxx[0], p.cxy[0]], [p.cxy[0], p.cyy[0]]])
    evals, evecs = np.linalg.eigh(cov)
    major = evecs[:, 1]
    ray = np.array([float(p.x[0]) - cx, float(p.y[0]) - cy])
    ray /= np.linalg.norm(ray)
    assert abs(float(major @ ray)) > 0.99
    np.testing.assert_allclose(math.sqrt(evals[1]), 25.0, rtol=1e-6)
    np.testing.assert_allclose(math.sqrt(evals[0]), 1000.0 * math.radians(0.5), rtol=1e-3)


def test_thermal_bearing_only_uses_placeholder(site: Site) -> None:
    cam = site.thermal[0]
    p = site.thermal_points(cam.id, [10.0], [0.5], [np.nan], [np.nan])
    assert np.isnan(p.r[0])
    assert math.isclose(float(p.sr[0]), cam.range_m / 2)
    dist = math.hypot(float(p.x[0] - p.ox[0]), float(p.y[0] - p.oy[0]))
    assert math.isclose(dist, cam.range_m / 2, rel_tol=1e-9)


def test_msv_polar_conversion_matches_geodesic(site: Site) -> None:
    lon0, lat0 = 21.0, 45.4
    g = Geod(ellps="WGS84")
    for az_true in (0.0, 37.0, 135.0, 290.0):
        lon1, lat1, _ = g.fwd(lon0, lat0, az_true, 5000.0)
        p = site.polar_points(lon0, lat0, [az_true], [1.0], [5000.0], [15.0])
        ex, ey = site.proj.to_xy(lon1, lat1)
        # grid scale factor of Stereo70 is within 1e-3 here: 5 m at 5 km
        assert math.hypot(float(p.x[0] - ex), float(p.y[0] - ey)) < 6.0


def test_polar_to_xy_covariance_is_jacobian_form() -> None:
    x, y, cxx, cxy, cyy = polar_to_xy(0.0, 0.0, 100.0, 0.0, 10.0, 0.01)
    assert math.isclose(float(x), 0.0, abs_tol=1e-12)
    assert math.isclose(float(y), 100.0)
    assert math.isclose(float(cyy), 100.0)  # range along +y
    assert math.isclose(float(cxx), 1.0)  # (100 * 0.01)^2 across
    assert math.isclose(float(cxy), 0.0, abs_tol=1e-12)


# ------------------------------------------------------------------ invalid site files


def _write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "b.geojson").write_text(
        geo.DEFAULT_SITE_PATH.with_name("ro_rs_border.geojson").read_text()
    )
    p = tmp_path / "site.toml"
    p.write_text(body)
    return p


HEADER = """[site]
name = "t"
border = "b.geojson"
border_feature = "Romania-Serbia land border"
home = "RO"
neighbour = "RS"
"""


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (HEADER + "heartbeat_s = -1\n", "site.heartbeat_s", "Expected `float` > 0"),
        (HEADER + "colour = 'red'\n", "site", "unknown field `colour`"),
        (HEADER + "[[sectors]]\nid='A'\nfrom_m=10\nto_m=5\n", "sectors[0].to_m", "greater"),
        (
            HEADER
            + "[[sectors]]\nid='A'\nfrom_m=0\nto_m=50\n[[sectors]]\nid='B'\nfrom_m=40\nto_m=90\n",
            "sectors[1].from_m",
            "overlap",
        ),
        (HEADER + "[[fibre]]\nid='F'\nfrom_m=0\nto_m=10\ndirection=2\n", "fibre[0].direction", ""),
        (HEADER + "[[thermal]]\nid='bad id!'\nlat=45\nlon=21\n", "thermal[0].id", "regex"),
        (
            HEADER + "[[fibre]]\nid='X'\nfrom_m=0\nto_m=10\n[[msv]]\nid='X'\n",
            "msv[0].id",
            "already used",
        ),
        (HEADER + "[[patrols]]\nid='P'\nteam='HU'\nlat=45\nlon=21\n", "patrols[0].team", "JOINT"),
    ],
)
def test_invalid_site_files_name_field_and_reason(
    tmp_path: Path, body: str, field: str, reason: str
) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(SiteError) as info:
        load_site(path)
    assert info.value.file == str(path)
    assert info.value.field == field
    assert reason in info.value.reason
    assert str(path) in str(info.value)


def test_missing_border_file_and_feature(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text(HEADER.replace("b.geojson", "missing.geojson"))
    with pytest.raises(SiteError, match="file not found"):
        load_site(p)
    p2 = _write(tmp_path, HEADER.replace("Romania-Serbia land border", "Atlantis"))
    with pytest.raises(SiteError, match="no LineString named 'Atlantis'") as info:
        load_site(p2)
    assert info.value.field == "site.border_feature"


def test_geographic_crs_is_rejected(tmp_path: Path) -> None:
    p = _write(tmp_path, HEADER + 'crs = "EPSG:4326"\n')
    with pytest.raises(SiteError, match="not a projected") as info:
        load_site(p)
    assert info.value.field == "site.crs"


def test_cli_site_show_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["site", "show"]) == 0
    out = capsys.readouterr().out
    assert "FO-06" in out
    assert "TH-12" in out
    assert "224.6 km" in out
    bad = _write(tmp_path, HEADER + "approach_m = 'far'\n")
    assert main(["site", "check", str(geo.DEFAULT_SITE_PATH), str(bad)]) == 2
    cap = capsys.readouterr()
    assert "OK " in cap.out
    assert "site.approach_m" in cap.err


def test_project_kernel_matches_naive_twin(site: Site) -> None:
    v = site.border.vertices
    rng = np.random.default_rng(0)
    # points everywhere around the line, very close to it and to its vertices, beyond its
    # ends, exactly on vertices, and NaN (propagates, never raises)
    x = rng.uniform(v[:, 0].min() - 5000, v[:, 0].max() + 5000, 20000)
    y = rng.uniform(v[:, 1].min() - 5000, v[:, 1].max() + 5000, 20000)
    k = rng.integers(0, len(v), 5000)
    x = np.concatenate([x, v[k, 0] + rng.normal(0, 3, 5000), v[:, 0], v[[0, -1], 0] + 50])
    y = np.concatenate([y, v[k, 1] + rng.normal(0, 3, 5000), v[:, 1], v[[0, -1], 1] + 50])
    c1, d1 = site.border.project(x, y)
    c2, d2 = naive_geo.border_project(site.border, x, y)
    np.testing.assert_allclose(c1, c2, atol=1e-6)
    np.testing.assert_allclose(d1, d2, atol=1e-6)
    _, dn = site.border.project(np.array([np.nan, 1.0]), np.array([0.0, np.nan]))
    assert np.isnan(dn).all()
