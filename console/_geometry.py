"""Static map layers of a site, in WGS84 ``[lon, lat]`` lists for Leaflet.

No tile server exists on the operators' machines, so the console draws the site itself:
the border line, the site file's other border features (the Danube section), sectors
(border slices with a label point on the home side), fibre cables (the border slice a
unit covers, ``offset_m`` towards home), cameras, MSVs and patrol starting positions.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from geo import Site

#: label points of sectors sit this far on the home side of the line (m)
LABEL_OFFSET_M = 2500.0


def line_lonlat(site: Site, c0: float, c1: float, offset_m: float = 0.0) -> list[list[float]]:
    """The border between chainages ``c0`` and ``c1`` (m), ``offset_m`` towards home,
    as ``[[lon, lat], ...]`` through every border vertex in between."""
    b = site.border
    lo, hi = max(0.0, min(c0, c1)), min(b.length, max(c0, c1))
    inner = b.cum[(b.cum > lo) & (b.cum < hi)]
    chains = np.concatenate([[lo], inner, [hi]])
    x, y, _, _ = b.point_at(chains, offset_m)
    lon, lat = site.proj.to_lonlat(x, y)
    return [[round(float(a), 6), round(float(c), 6)] for a, c in zip(lon, lat, strict=True)]


def point_lonlat(site: Site, chain: float, offset_m: float = 0.0) -> list[float]:
    """One point at border chainage ``chain``, ``offset_m`` towards home: ``[lon, lat]``."""
    x, y, _, _ = site.border.point_at(chain, offset_m)
    lon, lat = site.proj.to_lonlat(x, y)
    return [round(float(lon), 6), round(float(lat), 6)]


def _other_lines(site: Site) -> list[dict[str, Any]]:
    """LineString features of the border file other than the site's own border."""
    path = site.path.parent / site.cfg.site.border
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    feats = data.get("features", []) if isinstance(data, dict) else []
    own = site.cfg.site.border_feature
    out: list[dict[str, Any]] = []
    for f in feats:
        props = f.get("properties") or {}
        geom = f.get("geometry") or {}
        name = str(props.get("name", ""))
        if geom.get("type") != "LineString" or own is None or name == own:
            continue
        out.append(
            {"name": name, "lonlat": [[float(c[0]), float(c[1])] for c in geom["coordinates"]]}
        )
    return out


def site_layers(site: Site) -> dict[str, Any]:
    """Everything static the map draws (``GET /api/site``)."""
    border = [[float(lon), float(lat)] for lon, lat in site.border_lonlat]
    sectors = [
        {
            "id": s.id,
            "name": s.name,
            "from_m": s.from_m,
            "to_m": s.to_m,
            "lonlat": line_lonlat(site, s.from_m, s.to_m),
            "label": point_lonlat(
                site, 0.5 * (s.from_m + min(s.to_m, site.border.length)), LABEL_OFFSET_M
            ),
            "start": point_lonlat(site, s.from_m),
        }
        for s in site.sectors
    ]
    fibre = [
        {
            "id": f.id,
            "from_m": f.from_m,
            "to_m": f.to_m,
            "offset_m": f.offset_m,
            "lonlat": line_lonlat(site, f.from_m, f.to_m, f.offset_m),
        }
        for f in site.fibre
    ]
    thermal = [{"id": c.id, "lat": c.lat, "lon": c.lon, "range_m": c.range_m} for c in site.thermal]
    msv = [{"id": m.id, "lat": m.lat, "lon": m.lon, "range_m": m.range_m} for m in site.msv]
    lat = [p[1] for p in border]
    lon = [p[0] for p in border]
    return {
        "name": site.name,
        "home": site.home,
        "neighbour": site.neighbour,
        "border": border,
        "other_lines": _other_lines(site),
        "sectors": sectors,
        "fibre": fibre,
        "thermal": thermal,
        "msv": msv,
        "bounds": [[min(lat), min(lon)], [max(lat), max(lon)]],
    }
