"""The site model: a deployment described by a site file (contract, "Site file").

``load_site(path)`` parses the TOML strictly (unknown keys, wrong types, out-of-range
values and cross-field inconsistencies are :class:`SiteError` naming the file, the field
and the reason) and returns a :class:`Site` with the border line, sectors and sensors in
the working CRS, ready for vectorised geometry.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import numpy.typing as npt

from geo._errors import GeoError, SiteError
from geo.border import Border
from geo.measure import polar_to_xy, slant_to_ground
from geo.projection import Projection

F64 = npt.NDArray[np.float64]

DEVICE_ID_RE = r"^[A-Za-z0-9_-]{1,64}$"
DeviceId = Annotated[str, msgspec.Meta(pattern=DEVICE_ID_RE, description="device or unit id")]
Metres = Annotated[float, msgspec.Meta(ge=0)]
PositiveS = Annotated[float, msgspec.Meta(gt=0)]
Lat = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Lon = Annotated[float, msgspec.Meta(ge=-180, le=180)]
Heading = Annotated[float, msgspec.Meta(ge=0, lt=360)]
Code = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2,3}$", description="country code")]

_STRICT: dict[str, Any] = {"forbid_unknown_fields": True, "kw_only": True}


class SiteSection(msgspec.Struct, **_STRICT):
    """``[site]``: the deployment as a whole."""

    name: str
    border: str  # path relative to the site file: GeoJSON with LineString feature(s)
    home: Code
    neighbour: Code
    crs: str = "EPSG:3844"
    border_feature: str | None = None
    home_side: Literal["left", "right"] = "left"
    heartbeat_s: PositiveS = 30.0
    track_report_s: PositiveS = 1.0
    approach_m: Metres = 500.0


class SectorCfg(msgspec.Struct, **_STRICT):
    """``[[sectors]]``: a chainage interval ``[from_m, to_m)`` of the border line."""

    id: DeviceId
    from_m: Metres
    to_m: Metres
    name: str = ""  # extension: a human-readable name for the console


class FibreCfg(msgspec.Struct, **_STRICT):
    """``[[fibre]]``: one interrogator unit and its buried cable."""

    id: DeviceId
    from_m: Metres
    to_m: Metres
    direction: Literal[1, -1] = 1
    cable_factor: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    offset_m: float = 0.0

    @property
    def cable_length_m(self) -> float:
        """Cable length covering the interval: ``(to_m - from_m) * cable_factor``."""
        return (self.to_m - self.from_m) * self.cable_factor

    def border_chainage(self, cable_ch: npt.ArrayLike) -> F64:
        """Contract formula: ``from + c/f`` (direction 1) or ``to - c/f`` (direction -1)."""
        c = np.asarray(cable_ch, np.float64) / self.cable_factor
        return self.from_m + c if self.direction == 1 else self.to_m - c

    def cable_chainage(self, border_ch: npt.ArrayLike) -> F64:
        """Inverse of :meth:`border_chainage`."""
        s = np.asarray(border_ch, np.float64)
        d = s - self.from_m if self.direction == 1 else self.to_m - s
        return d * self.cable_factor


class ThermalCfg(msgspec.Struct, **_STRICT):
    """``[[thermal]]``: a thermal camera with on-board analytics."""

    id: DeviceId
    lat: Lat
    lon: Lon
    height_m: Metres = 5.0
    range_m: Annotated[float, msgspec.Meta(gt=0)] = 3000.0


class MsvCfg(msgspec.Struct, **_STRICT):
    """``[[msv]]``: a mobile surveillance vehicle; its pose comes with each batch."""

    id: DeviceId
    range_m: Annotated[float, msgspec.Meta(gt=0)] = 8000.0
    lat: Lat | None = None  # extension: usual deployment position (simulator, console)
    lon: Lon | None = None


class PatrolCfg(msgspec.Struct, **_STRICT):
    """``[[patrols]]``: an optional starting position of a patrol unit."""

    id: DeviceId
    team: str
    lat: Lat
    lon: Lon


PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
Priority = Annotated[int, msgspec.Meta(ge=0, le=4)]


class AlertSettings(msgspec.Struct, **_STRICT):
    """``[alerts]`` (extension, optional): alert rules, lifecycle and tasking settings.

    Every field has a default, so a site file without ``[alerts]`` gets these values.
    Times are event-time seconds; distances metres. See ``docs/alerts.md``.
    """

    # crossing: seen on the neighbour side at least this far from the line ...
    crossing_from_m: Metres = 20.0
    # ... and now on the home side at least this far (hysteresis against jitter on the line)
    crossing_hysteresis_m: Metres = 10.0
    # the neighbour-side sighting must be at most this old when the home side is reached
    crossing_window_s: PositiveS = 900.0
    # a fibre-only track this close to the line (home side) counts as a possible crossing
    fibre_line_m: Metres = 20.0
    # fibre-only crossing corroborated by a velocity component towards home of at least this
    fibre_min_speed_mps: Metres = 0.3
    # ... or by a second fibre event at least this long after the first one
    fibre_second_event_s: PositiveS = 2.0
    # crossing by a track with no fibre unit among its sensors where a live fibre unit
    # covers the line: not raised (a person crossing walks over the buried cable, whose
    # detection probability is high; camera/radar-only "crossings" were range-error ghosts)
    crossing_needs_fibre: bool = True
    # crossing: the track must head across the line, v_home >= this fraction of its speed
    # (a vehicle driving along the border jitters across it with its velocity along it)
    crossing_min_heading: Fraction = 0.3
    # crossing: not raised when first seen home side farther than this (a track jump)
    crossing_max_m: Metres = 300.0
    # line crossing of a fused track (fibre with cameras/radars, first seen at the line):
    # raised only while the track's position sigma is at most this (fibre+thermal
    # crossing-10min: 6-18 m on the real crossers when raised; a coasting ghost with a
    # grown sigma, 55 m, raised a false crossing 34 m in)
    crossing_line_sigma_m: Metres = 30.0
    # ... and only while its speed is at most this (people walk 1.2-1.5 m/s and run
    # 2.5-3.5 m/s; night-6h seed 1: a "group" ghost at 8.5 m/s raised a false crossing)
    crossing_line_max_speed_mps: Metres = 5.0
    # a vehicle-class track crosses only from at least this far on the neighbour side to
    # this far on the home side (fibre events of traffic on roads 15-45 m from the cable
    # pull vehicle tracks onto and across the line)
    crossing_vehicle_m: Metres = 60.0
    # fibre-only tracks raise possible crossings only when classed person/group with at
    # least this probability (night-6h: wind and rain make fibre-only tracks on the cable
    # with class_p ~0.35, ~10 false crossings a minute on the border; fibre-only tracks of
    # real crossers had 0.77-0.80)
    fibre_min_p: Fraction = 0.6
    # a fibre-only possible crossing that is not corroborated raises a priority-4 alert
    # (false: it waits for corroboration); vehicle- and digging-class tracks never raise one
    fibre_uncorroborated_alert: bool = False
    # approach: velocity component towards the border of at least this (m/s)
    approach_min_speed_mps: Metres = 0.2
    # approach: heading for the border, v_home >= this fraction of the speed
    approach_min_heading: Fraction = 0.5
    # approach / vehicle: the track must have been followed this long (class settles)
    approach_min_age_s: Metres = 10.0
    vehicle_min_age_s: Metres = 20.0
    # vehicle: at least this many devices contributed to the track (a single camera's
    # track is a bearing with a 25 % range: often hundreds of metres off)
    vehicle_min_sensors: PositiveInt = 2
    # approach: the same (1: night-6h approaches are often seen by one camera or radar
    # only; 2 halved approach recall there)
    approach_min_sensors: PositiveInt = 1
    # one alert per object: a new track's approach/vehicle alert joins an open one of its
    # kind whose last position, moved on with its velocity, is within this radius
    object_radius_m: Metres = 150.0
    # digging: this many digging updates within this chainage radius, spanning at least
    # digging_span_s and at most digging_window_s
    digging_radius_m: Metres = 25.0
    digging_min_events: PositiveInt = 3
    digging_span_s: Metres = 20.0
    digging_window_s: PositiveS = 900.0
    # digging counts only fibre-detected tracks this close to the line and this slow
    digging_line_m: Metres = 50.0
    digging_max_speed_mps: Metres = 1.0
    # vehicle: a confirmed vehicle track within this distance of the line (either side)
    vehicle_m: Metres = 1000.0
    # minimum class probability for a vehicle alert
    vehicle_min_p: Fraction = 0.5
    # loitering: within loiter_near_m of the line, all positions of the last loiter_s
    # within loiter_radius_m of their centroid
    loiter_near_m: Metres = 300.0
    loiter_radius_m: Metres = 50.0
    loiter_s: PositiveS = 300.0
    # priority is lowered by one (number raised) below this class probability
    low_confidence: Fraction = 0.5
    # people counted as a group (priority raised) from this size
    group_min_size: PositiveInt = 3
    # one intrusion: a new track's alert joins an open alert of the same kind and sector
    # whose last position is within group_radius_m and last activity within group_window_s
    group_radius_m: Metres = 60.0
    group_window_s: PositiveS = 120.0
    # per-sector rate limit: at most rate_limit new alerts per rate_window_s; the excess
    # is counted into one overflow alert per sector (never dropped silently)
    rate_limit: PositiveInt = 10
    rate_window_s: PositiveS = 60.0
    # a resolved (track, kind) raises again only after this cool-down
    cooldown_s: Metres = 300.0
    # an open alert nobody acknowledged is escalated after this long
    escalate_after_s: PositiveS = 120.0
    # patrol ETA = straight-line (great-circle) distance / this speed; 15 km/h is a blend of
    # foot patrols (~5 km/h) and vehicles on the border road; ranking uses one speed
    patrol_speed_kmh: PositiveS = 15.0
    # patrol positions older than this are not recommended
    patrol_stale_s: PositiveS = 900.0
    # how many units `recommended_units` lists
    recommend_count: PositiveInt = 3
    # teams recommended; empty: the home team and "JOINT"
    recommend_teams: list[str] = msgspec.field(default_factory=list)
    # auto-dispatch the nearest unit for alerts of this priority or higher (1-4; 0: off)
    auto_dispatch_priority: Priority = 0
    # joint-patrol requests to the Common Contact Point (approach, recent crossings)
    ccp_enabled: bool = True
    # a crossing raises a CCP request when the neighbour-side sighting is this recent
    ccp_crossing_recent_s: PositiveS = 300.0
    # sector for alerts outside every sector (empty: the first sector)
    fallback_sector: str = ""
    # forget the history of a track not updated for this long
    track_forget_s: PositiveS = 600.0
    # CoT events go stale this long after their time
    cot_stale_s: PositiveS = 120.0


class SiteFile(msgspec.Struct, **_STRICT):
    """The whole site file."""

    site: SiteSection
    sectors: list[SectorCfg] = msgspec.field(default_factory=list)
    fibre: list[FibreCfg] = msgspec.field(default_factory=list)
    thermal: list[ThermalCfg] = msgspec.field(default_factory=list)
    msv: list[MsvCfg] = msgspec.field(default_factory=list)
    patrols: list[PatrolCfg] = msgspec.field(default_factory=list)
    alerts: AlertSettings = msgspec.field(default_factory=AlertSettings)  # extension


@dataclass(frozen=True)
class PolarPoint:
    """A polar measurement converted to the working CRS (arrays of equal length)."""

    x: F64
    y: F64
    cxx: F64
    cxy: F64
    cyy: F64
    ox: F64
    oy: F64
    r: F64  # ground range, NaN when the sensor gave none
    az: F64  # grid azimuth (rad)
    sr: F64
    saz: F64


class Site:
    """A loaded, validated site: border, sectors and sensors in the working CRS.

    Sensor indices (``sensor_index``, the ``sensor`` column of measurements) are assigned
    fibre units first, then thermal cameras, then MSVs, each in file order.
    """

    def __init__(self, cfg: SiteFile, path: Path, border_lonlat: F64) -> None:
        self.cfg = cfg
        self.path = path
        s = cfg.site
        self.name = s.name
        self.home = s.home
        self.neighbour = s.neighbour
        self.heartbeat_s = s.heartbeat_s
        self.track_report_s = s.track_report_s
        self.approach_m = s.approach_m
        self.sectors = cfg.sectors
        self.fibre = cfg.fibre
        self.thermal = cfg.thermal
        self.msv = cfg.msv
        self.patrols = cfg.patrols
        self.border_lonlat = border_lonlat
        try:
            self.proj = Projection(s.crs)
        except GeoError as exc:
            raise SiteError(str(path), "site.crs", str(exc)) from exc
        bx, by = self.proj.to_xy(border_lonlat[:, 0], border_lonlat[:, 1])
        if not (np.isfinite(bx).all() and np.isfinite(by).all()):
            raise SiteError(str(path), "site.border", f"border does not project into {s.crs}")
        self.border = Border(np.column_stack([bx, by]), s.home_side)
        self.sensor_ids: list[str] = (
            [f.id for f in cfg.fibre] + [c.id for c in cfg.thermal] + [m.id for m in cfg.msv]
        )
        self.sensor_index: dict[str, int] = {d: i for i, d in enumerate(self.sensor_ids)}
        self.sensor_kind: dict[str, str] = {f.id: "fibre" for f in cfg.fibre}
        self.sensor_kind.update({c.id: "thermal" for c in cfg.thermal})
        self.sensor_kind.update({m.id: "msv" for m in cfg.msv})
        self.fibre_by_id = {f.id: f for f in cfg.fibre}
        self.thermal_by_id = {c.id: c for c in cfg.thermal}
        self.msv_by_id = {m.id: m for m in cfg.msv}
        self._sector_from = np.array([sc.from_m for sc in self.sectors], np.float64)
        self._sector_to = np.array([sc.to_m for sc in self.sectors], np.float64)
        self._validate_geometry()

    # -- validation ---------------------------------------------------------------------------

    def _validate_geometry(self) -> None:
        f = str(self.path)
        length = self.border.length
        prev_to = -math.inf
        for i, sc in enumerate(self.sectors):
            if sc.to_m <= sc.from_m:
                raise SiteError(f, f"sectors[{i}].to_m", "must be greater than from_m")
            if sc.from_m >= length:
                raise SiteError(
                    f, f"sectors[{i}].from_m", f"beyond the border's end ({length:.1f} m)"
                )
            if sc.from_m < prev_to:
                raise SiteError(f, f"sectors[{i}].from_m", "sectors overlap or are not in order")
            prev_to = sc.to_m
        for i, fc in enumerate(self.fibre):
            if fc.to_m <= fc.from_m:
                raise SiteError(f, f"fibre[{i}].to_m", "must be greater than from_m")
            if fc.from_m >= length:
                raise SiteError(
                    f, f"fibre[{i}].from_m", f"beyond the border's end ({length:.1f} m)"
                )
        for i, tc in enumerate(self.thermal):
            x, y = self.proj.to_xy(tc.lon, tc.lat)
            if not (np.isfinite(x) and np.isfinite(y)):
                raise SiteError(f, f"thermal[{i}]", "position does not project into the CRS")

    # -- cached sensor geometry ---------------------------------------------------------------

    @cached_property
    def thermal_xy(self) -> F64:
        """(n_thermal, 2) camera positions from the site file, working CRS."""
        if not self.thermal:
            return np.zeros((0, 2))
        x, y = self.proj.to_xy([c.lon for c in self.thermal], [c.lat for c in self.thermal])
        return np.column_stack([x, y])

    # -- vectorised geometry ------------------------------------------------------------------

    def sector_of_chainage(self, chain: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """Index into ``sectors`` of the sector holding each chainage, -1 outside all."""
        s = np.asarray(chain, np.float64)
        if not self.sectors:
            return np.full(s.shape, -1, np.intp)
        k = np.searchsorted(self._sector_from, s, side="right") - 1
        inside = (k >= 0) & (s < self._sector_to[np.clip(k, 0, None)])
        return np.where(inside, k, -1)

    def sector_id(self, index: int) -> str:
        """Sector id for an index from :meth:`sector_of_chainage` (``""`` for -1)."""
        return self.sectors[index].id if index >= 0 else ""

    def side_code(self, signed_dist: npt.ArrayLike) -> npt.NDArray[np.str_]:
        """Home code where the signed distance is >= 0, neighbour code elsewhere."""
        d = np.asarray(signed_dist, np.float64)
        return np.where(d >= 0.0, self.home, self.neighbour)

    def locate(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[F64, F64, npt.NDArray[np.intp]]:
        """``(chain, signed_dist, sector_index)`` for points in the working CRS."""
        chain, dist = self.border.project(x, y)
        return chain, dist, self.sector_of_chainage(chain)

    def fibre_points(
        self, fibre_id: str, cable_ch: npt.ArrayLike
    ) -> tuple[F64, F64, F64, F64, F64]:
        """Ground points of cable chainages of one fibre unit.

        Returns ``(x, y, chain, tx, ty)``: the point ``offset_m`` from the line towards
        home at border chainage ``chain`` (contract formula), and the unit tangent there.
        """
        fc = self.fibre_by_id[fibre_id]
        chain = fc.border_chainage(cable_ch)
        x, y, tx, ty = self.border.point_at(chain, fc.offset_m)
        return x, y, chain, tx, ty

    def polar_points(
        self,
        origin_lon: npt.ArrayLike,
        origin_lat: npt.ArrayLike,
        bearing_deg: npt.ArrayLike,
        bearing_sigma_deg: npt.ArrayLike,
        range_m: npt.ArrayLike,
        range_sigma_m: npt.ArrayLike,
        *,
        placeholder_range_m: npt.ArrayLike = np.nan,
    ) -> PolarPoint:
        """Range/true-bearing measurements from a WGS84 origin -> working-CRS points.

        ``az = radians(bearing) + gamma(origin)`` (meridian convergence). Where
        ``range_m`` is NaN (bearing only), the point is put at ``placeholder_range_m``
        with ``sr = placeholder_range_m`` so the covariance spans the ray; ``r`` stays NaN.
        """
        ox, oy = self.proj.to_xy(origin_lon, origin_lat)
        gamma = self.proj.true_north_grid_az(ox, oy)
        az = np.radians(np.asarray(bearing_deg, np.float64)) + gamma
        saz = np.radians(np.asarray(bearing_sigma_deg, np.float64))
        r = np.asarray(range_m, np.float64)
        sr = np.asarray(range_sigma_m, np.float64)
        no_r = np.isnan(r)
        ph = np.asarray(placeholder_range_m, np.float64)
        r_used = np.where(no_r, ph, r)
        sr_used = np.where(no_r, ph, sr)
        x, y, cxx, cxy, cyy = polar_to_xy(ox, oy, r_used, az, sr_used, saz)
        shape = np.broadcast_shapes(np.shape(x), np.shape(r))
        return PolarPoint(
            x=x, y=y, cxx=cxx, cxy=cxy, cyy=cyy,
            ox=np.broadcast_to(ox, shape).astype(np.float64),
            oy=np.broadcast_to(oy, shape).astype(np.float64),
            r=np.broadcast_to(r, shape).astype(np.float64),
            az=np.broadcast_to(az, shape).astype(np.float64),
            sr=np.broadcast_to(sr_used, shape).astype(np.float64),
            saz=np.broadcast_to(saz, shape).astype(np.float64),
        )  # fmt: skip

    def thermal_points(
        self,
        camera_id: str,
        bearing_deg: npt.ArrayLike,
        bearing_sigma_deg: npt.ArrayLike,
        range_m: npt.ArrayLike,
        range_sigma_m: npt.ArrayLike,
        *,
        camera_lonlat: tuple[float, float] | None = None,
    ) -> PolarPoint:
        """Thermal camera events -> points. Camera range is slant range from ``height_m``
        and is converted to ground range; bearing-only events use half the camera's
        nominal range as placeholder (see :meth:`polar_points`)."""
        cam = self.thermal_by_id[camera_id]
        lon, lat = camera_lonlat if camera_lonlat is not None else (cam.lon, cam.lat)
        r = np.asarray(range_m, np.float64)
        ground = np.where(np.isnan(r), np.nan, slant_to_ground(r, cam.height_m))
        return self.polar_points(
            lon, lat, bearing_deg, bearing_sigma_deg, ground, range_sigma_m,
            placeholder_range_m=cam.range_m / 2.0,
        )  # fmt: skip

    # -- summaries ------------------------------------------------------------------------------

    def summary_rows(self) -> list[tuple[str, str, str]]:
        """(kind, id, description) rows for ``limes site show``."""
        rows: list[tuple[str, str, str]] = []
        rows.append(
            ("border", self.name, f"{self.border.length / 1000:.1f} km in {self.proj.name}")
        )
        for sc in self.sectors:
            rows.append(("sector", sc.id, f"km {sc.from_m / 1000:.1f}-{sc.to_m / 1000:.1f}"))
        for fc in self.fibre:
            rows.append(
                (
                    "fibre",
                    fc.id,
                    f"km {fc.from_m / 1000:.1f}-{fc.to_m / 1000:.1f} dir {fc.direction:+d} "
                    f"cable {fc.cable_length_m / 1000:.1f} km offset {fc.offset_m:.0f} m",
                )
            )
        if self.thermal:
            chain, dist, sec = self.locate(self.thermal_xy[:, 0], self.thermal_xy[:, 1])
            for i, tc in enumerate(self.thermal):
                rows.append(
                    (
                        "thermal",
                        tc.id,
                        f"km {chain[i] / 1000:.1f}, {dist[i]:+.0f} m from border "
                        f"({self.sector_id(int(sec[i])) or '-'}), range {tc.range_m:.0f} m",
                    )
                )
        for m in self.msv:
            where = ""
            if m.lat is not None and m.lon is not None:
                x, y = self.proj.to_xy(m.lon, m.lat)
                chain, dist = self.border.project(x, y)
                where = f"usually km {float(chain) / 1000:.1f}, {float(dist):+.0f} m, "
            rows.append(("msv", m.id, f"{where}range {m.range_m:.0f} m"))
        for p in self.patrols:
            x, y = self.proj.to_xy(p.lon, p.lat)
            chain, dist = self.border.project(x, y)
            rows.append(
                (
                    "patrol",
                    p.id,
                    f"team {p.team}, km {float(chain) / 1000:.1f}, {float(dist):+.0f} m",
                )
            )
        return rows


# ----------------------------------------------------------------------------------------------


def _field_of(msg: str) -> tuple[str, str]:
    """Split msgspec's ``"reason - at `$.a.b[0]`"`` into ``("a.b[0]", "reason")``."""
    m = re.search(r"^(.*) - at `\$\.?(.*)`$", msg)
    if m:
        return m.group(2), m.group(1)
    return "", msg


def _read_border(path: Path, feature: str | None, site_file: str) -> F64:
    """Read the border LineString (lon, lat) from a GeoJSON file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SiteError(site_file, "site.border", f"file not found: {path}") from exc
    except (OSError, ValueError) as exc:
        raise SiteError(site_file, "site.border", f"cannot read GeoJSON {path}: {exc}") from exc
    feats: list[dict[str, Any]]
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        feats = [f for f in doc.get("features", []) if isinstance(f, dict)]
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        feats = [doc]
    else:
        raise SiteError(site_file, "site.border", f"{path} is not a GeoJSON Feature(Collection)")
    lines = [f for f in feats if (f.get("geometry") or {}).get("type") == "LineString"]
    if feature is not None:
        lines = [f for f in lines if (f.get("properties") or {}).get("name") == feature]
        if not lines:
            raise SiteError(
                site_file, "site.border_feature", f"no LineString named {feature!r} in {path}"
            )
    if len(lines) != 1:
        raise SiteError(
            site_file,
            "site.border_feature",
            f"{path} holds {len(lines)} LineString features: name one with border_feature",
        )
    coords = np.asarray(lines[0]["geometry"]["coordinates"], dtype=np.float64)
    if coords.ndim != 2 or coords.shape[0] < 2 or coords.shape[1] < 2:
        raise SiteError(site_file, "site.border", "border LineString needs >= 2 positions")
    return np.ascontiguousarray(coords[:, :2])


def _check_ids(cfg: SiteFile, f: str) -> None:
    seen: dict[str, str] = {}
    devices: tuple[tuple[str, list[str]], ...] = (
        ("fibre", [d.id for d in cfg.fibre]),
        ("thermal", [d.id for d in cfg.thermal]),
        ("msv", [d.id for d in cfg.msv]),
    )
    for kind, ids in devices:
        for i, ident in enumerate(ids):
            if ident in seen:
                raise SiteError(f, f"{kind}[{i}].id", f"{ident!r} already used by a {seen[ident]}")
            seen[ident] = kind
    groups = (("sectors", [g.id for g in cfg.sectors]), ("patrols", [g.id for g in cfg.patrols]))
    for name, ids in groups:
        for i, gid in enumerate(ids):
            if gid in ids[:i]:
                raise SiteError(f, f"{name}[{i}].id", f"duplicate id {gid!r}")
    s = cfg.site
    if s.home == s.neighbour:
        raise SiteError(f, "site.neighbour", "must differ from site.home")
    for i, p in enumerate(cfg.patrols):
        if p.team not in (s.home, s.neighbour, "JOINT"):
            raise SiteError(
                f, f"patrols[{i}].team", f"must be {s.home!r}, {s.neighbour!r} or 'JOINT'"
            )


def parse_site(text: bytes | str, path: Path) -> Site:
    """Parse and validate site TOML ``text``; relative paths resolve against ``path``."""
    f = str(path)
    try:
        cfg = msgspec.toml.decode(text, type=SiteFile)
    except msgspec.ValidationError as exc:
        field, reason = _field_of(str(exc))
        raise SiteError(f, field, reason) from exc
    except msgspec.DecodeError as exc:
        raise SiteError(f, "", f"not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise SiteError(f, "", f"not UTF-8 text (TOML files are UTF-8): {exc}") from exc
    except RecursionError as exc:  # tomllib recurses once per nesting level
        raise SiteError(f, "", "not valid TOML: nested too deeply") from exc
    _check_ids(cfg, f)
    border = _read_border(path.parent / cfg.site.border, cfg.site.border_feature, f)
    return Site(cfg, path, border)


def load_site(path: str | Path) -> Site:
    """Load and validate a site file (raises :class:`SiteError`)."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise SiteError(str(p), "", f"cannot read: {exc.strerror or exc}") from exc
    return parse_site(text, p)


DEFAULT_SITE_PATH = Path(__file__).parent / "data" / "ro-rs.toml"


def default_site() -> Site:
    """The shipped ``ro-rs`` site (Romania-Serbia land border, EPSG:3844)."""
    return load_site(DEFAULT_SITE_PATH)
