"""Device health: liveness, reported state, fibre cuts, portable-camera positions.

State machine per device of the site (effective state, in order of precedence):

1. ``fault`` while the last status was ``fault`` (cleared only by a status ``online``);
2. ``offline`` while the last status was ``offline`` (a last will) and nothing came since;
3. ``offline`` when nothing (events or status) arrived for more than ``site.heartbeat_s``;
4. ``unknown`` for a device never heard from, until ``heartbeat_s`` after start;
5. ``online`` otherwise.

Liveness uses the service's clock (the ``now`` passed in), not the device's ``t``.
A change of effective state emits one :class:`HealthEvent` (for the alert rules).

A fibre ``fault`` whose detail reads ``cut at X`` (cable chainage, metres) is a
coverage-loss segment ``[X, end of that cable]``, also given in border chainage. A fibre
``fault`` without a readable cut position loses the whole cable (the interrogator cannot
be trusted anywhere). Everything here is pure and synchronous.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from msgspec import Struct

if TYPE_CHECKING:
    from drivers._models import DeviceStatus
    from geo import Site

Effective = Literal["online", "offline", "fault", "unknown"]
_CUT_RE = re.compile(r"cut\s+at\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)", re.IGNORECASE)


class CoverageLoss(Struct, kw_only=True, frozen=True):
    """A stretch of fibre that detects nothing, in cable and in border chainage (m).

    Invariant: ``cable_from_m <= cable_to_m`` and ``border_from_m <= border_to_m``.
    """

    device: str
    cable_from_m: float
    cable_to_m: float
    border_from_m: float
    border_to_m: float
    since: float


class HealthEvent(Struct, kw_only=True, frozen=True):
    """A change of a device's effective state (``previous`` -> ``state``) at ``t``.

    ``cause``: ``status`` (a status message), ``message`` (events from a silent or
    offline device), ``heartbeat`` (silence longer than ``heartbeat_s``).
    """

    t: float
    device: str
    kind: str
    state: Effective
    previous: Effective
    cause: str
    detail: str | None = None
    coverage: CoverageLoss | None = None


class DeviceHealth(Struct, kw_only=True, frozen=True):
    """Snapshot of one device for the console and alert rules."""

    device: str
    kind: str
    state: Effective
    last_seen: float | None
    last_status: str | None
    detail: str | None
    lat: float | None
    lon: float | None
    heading_deg: float | None
    coverage_loss: CoverageLoss | None
    lost_batches: int = 0
    duplicate_batches: int = 0


@dataclass(slots=True)
class _Dev:
    device: str
    kind: str
    state: Effective = "unknown"
    reported: str | None = None  # last status state
    last_seen: float | None = None
    detail: str | None = None
    lat: float | None = None
    lon: float | None = None
    heading_deg: float | None = None
    pos_t: float = -math.inf  # time of the position (site file: -inf)
    coverage: CoverageLoss | None = None
    origin: tuple[float, float, float] | None = None  # cached ox, oy, gamma (thermal)


class Health:
    """Health registry of every sensor of ``site``; see the module doc for the rules."""

    def __init__(self, site: Site, *, started: float) -> None:
        self.site = site
        self.heartbeat_s = float(site.heartbeat_s)
        self.started = started
        self._d: dict[str, _Dev] = {d: _Dev(d, site.sensor_kind[d]) for d in site.sensor_ids}
        for cam in site.thermal:
            dev = self._d[cam.id]
            dev.lat, dev.lon = cam.lat, cam.lon
        for m in site.msv:
            dev = self._d[m.id]
            dev.lat, dev.lon = m.lat, m.lon

    # -- updates ---------------------------------------------------------------------------

    def seen(self, device: str, now: float) -> list[HealthEvent]:
        """A valid message (events) from ``device`` arrived at ``now``: it is alive."""
        dev = self._d[device]
        dev.last_seen = now if dev.last_seen is None else max(dev.last_seen, now)
        if dev.reported == "offline":
            dev.reported = None
        return self._settle(dev, now, "message")

    def alive(self, device: str, now: float) -> list[HealthEvent]:
        """A message from ``device`` arrived at ``now`` that says nothing new about its
        state (a status older than one already applied): it extends the heartbeat
        (``last_seen``) and changes nothing else; a reported ``offline`` stays."""
        dev = self._d[device]
        dev.last_seen = now if dev.last_seen is None else max(dev.last_seen, now)
        return self._settle(dev, now, "message")

    def status(self, st: DeviceStatus) -> list[HealthEvent]:
        """Apply a validated status (``st.received`` is the arrival time)."""
        dev = self._d[st.device]
        now = st.received
        dev.last_seen = now if dev.last_seen is None else max(dev.last_seen, now)
        dev.reported = st.state
        dev.detail = st.detail
        if st.lat is not None and st.lon is not None and st.t >= dev.pos_t:
            dev.lat, dev.lon, dev.pos_t, dev.origin = st.lat, st.lon, st.t, None
        if st.heading_deg is not None:
            dev.heading_deg = st.heading_deg
        if st.state == "online":
            dev.coverage = None
        elif st.state == "fault" and dev.kind == "fibre":
            dev.coverage = self._cut(dev.device, st.detail, st.t)
        return self._settle(dev, now, "status")

    def platform(self, device: str, lat: float, lon: float, heading_deg: float, t: float) -> None:
        """Record an MSV platform pose from an events batch (newest wins)."""
        dev = self._d[device]
        if t >= dev.pos_t:
            dev.lat, dev.lon, dev.heading_deg, dev.pos_t = lat, lon, heading_deg, t

    def tick(self, now: float) -> list[HealthEvent]:
        """Re-evaluate every device at ``now`` (heartbeat timeouts); call about once a second."""
        out: list[HealthEvent] = []
        for dev in self._d.values():
            out.extend(self._settle(dev, now, "heartbeat"))
        return out

    # -- queries ---------------------------------------------------------------------------

    def state(self, device: str, now: float) -> Effective:
        """Effective state of ``device`` at ``now``."""
        return self._effective(self._d[device], now)

    def snapshot(
        self, now: float, dedup: dict[str, tuple[int, int, int]] | None = None
    ) -> dict[str, DeviceHealth]:
        """Every device's health at ``now`` (``dedup``: device -> (lost, recovered, dups))."""
        out: dict[str, DeviceHealth] = {}
        for d, dev in self._d.items():
            lost, rec, dups = (dedup or {}).get(d, (0, 0, 0))
            out[d] = DeviceHealth(
                device=d,
                kind=dev.kind,
                state=self._effective(dev, now),
                last_seen=dev.last_seen,
                last_status=dev.reported,
                detail=dev.detail,
                lat=dev.lat,
                lon=dev.lon,
                heading_deg=dev.heading_deg,
                coverage_loss=dev.coverage,
                lost_batches=lost - rec,
                duplicate_batches=dups,
            )
        return out

    def coverage_losses(self) -> list[CoverageLoss]:
        """Current fibre coverage-loss segments, in site order."""
        return [dev.coverage for dev in self._d.values() if dev.coverage is not None]

    def camera_origin(self, device: str) -> tuple[float, float, float]:
        """``(ox, oy, gamma)`` of a thermal camera: working-CRS position and meridian
        convergence, from the newest of site file and status messages (cached)."""
        dev = self._d[device]
        if dev.origin is None:
            assert dev.lat is not None  # cameras always have a position (site file)
            assert dev.lon is not None
            proj = self.site.proj
            ox, oy = proj.to_xy(dev.lon, dev.lat)
            gamma = proj.true_north_grid_az(ox, oy)
            dev.origin = (float(ox), float(oy), float(gamma))
        return dev.origin

    # -- internals ---------------------------------------------------------------------------

    def _effective(self, dev: _Dev, now: float) -> Effective:
        if dev.reported == "fault":
            return "fault"
        if dev.reported == "offline":
            return "offline"
        if dev.last_seen is None:
            return "unknown" if now - self.started <= self.heartbeat_s else "offline"
        return "offline" if now - dev.last_seen > self.heartbeat_s else "online"

    def _settle(self, dev: _Dev, now: float, cause: str) -> list[HealthEvent]:
        new = self._effective(dev, now)
        if new == dev.state:
            return []
        ev = HealthEvent(
            t=now,
            device=dev.device,
            kind=dev.kind,
            state=new,
            previous=dev.state,
            cause=cause,
            detail=dev.detail if cause == "status" else None,
            coverage=dev.coverage if new == "fault" else None,
        )
        dev.state = new
        return [ev]

    def _cut(self, device: str, detail: str | None, t: float) -> CoverageLoss:
        fc = self.site.fibre_by_id[device]
        length = fc.cable_length_m
        m = _CUT_RE.search(detail or "")
        x = float(m.group(1)) if m is not None else 0.0
        x = min(max(x, 0.0), length) if math.isfinite(x) else 0.0
        b0, b1 = (float(v) for v in fc.border_chainage([x, length]))
        return CoverageLoss(
            device=device,
            cable_from_m=x,
            cable_to_m=length,
            border_from_m=min(b0, b1),
            border_to_m=max(b0, b1),
            since=t,
        )
