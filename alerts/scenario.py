"""Hand-made track updates for tests, benchmarks and the demo (no randomness).

:func:`track_at` builds a contract :class:`~alerts.model.TrackUpdate` for a point given
in border coordinates: chainage ``chain`` (m along the line) and signed distance ``sd``
(m, + towards home), with a velocity ``v_home`` along the home normal (m/s, + towards
home) and ``v_along`` along the line. :func:`crossing_path` walks a track from the
neighbour side to the home side. Side, sector and distance are computed exactly as the
contract defines them (``Site.locate``).
"""

from __future__ import annotations

from collections.abc import Sequence

from alerts.model import TrackUpdate
from geo import Site

__all__ = ["approach_path", "crossing_path", "track_at"]


def track_at(
    site: Site,
    track_id: str,
    t: float,
    chain: float,
    sd: float,
    *,
    v_home: float = 0.0,
    v_along: float = 0.0,
    cls: str = "person",
    class_p: float = 0.9,
    status: str = "confirmed",
    sensors: Sequence[str] = ("FO-01", "TH-01"),
    group_size: int | None = None,
    merged_into: str | None = None,
    pos_sigma_m: float = 8.0,
) -> TrackUpdate:
    """A track update at border chainage ``chain``, ``sd`` metres towards home."""
    x, y, tx, ty = site.border.point_at(chain, sd)
    k = int(site.border.segment_of(chain))
    nx, ny = site.border.home_normal[k]
    vx = v_home * float(nx) + v_along * float(tx)
    vy = v_home * float(ny) + v_along * float(ty)
    lon, lat = site.proj.to_lonlat(x, y)
    _, dist, sec = site.locate(x, y)
    side = site.home if float(dist) >= 0 else site.neighbour
    return TrackUpdate(
        t=t,
        track_id=track_id,
        lat=float(lat),
        lon=float(lon),
        x=float(x),
        y=float(y),
        vx=vx,
        vy=vy,
        pos_sigma_m=pos_sigma_m,
        cls=cls,
        class_p=class_p,
        status=status,  # type: ignore[arg-type]
        sector=site.sector_id(int(sec)),
        side=side,
        border_dist_m=abs(float(dist)),
        sensors=list(sensors),
        merged_into=merged_into,
        group_size=group_size,
    )


def crossing_path(
    site: Site,
    track_id: str,
    t0: float,
    chain: float,
    *,
    start_sd: float = -200.0,
    end_sd: float = 150.0,
    speed: float = 1.5,
    dt: float = 1.0,
    **kw: object,
) -> list[TrackUpdate]:
    """Updates every ``dt`` s of a track walking at ``speed`` from ``start_sd`` (neighbour
    side) to ``end_sd`` (home side) across the line at ``chain``."""
    out: list[TrackUpdate] = []
    n = int((end_sd - start_sd) / (speed * dt)) + 1
    for i in range(n):
        sd = start_sd + i * speed * dt
        out.append(track_at(site, track_id, t0 + i * dt, chain, sd, v_home=speed, **kw))  # type: ignore[arg-type]
    return out


def approach_path(
    site: Site,
    track_id: str,
    t0: float,
    chain: float,
    *,
    start_sd: float = -900.0,
    end_sd: float = -100.0,
    speed: float = 1.5,
    dt: float = 1.0,
    **kw: object,
) -> list[TrackUpdate]:
    """Updates of a track on the neighbour side walking towards the line (no crossing)."""
    return crossing_path(
        site, track_id, t0, chain, start_sd=start_sd, end_sd=end_sd, speed=speed, dt=dt, **kw
    )
