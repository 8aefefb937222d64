"""Alert rules on track updates: per-track history in, findings out (pure, no I/O).

Signed distance ``sd`` is ``+border_dist_m`` on the home side and ``-border_dist_m``
on the neighbour side (the contract's ``side`` decides). ``v_home`` is the velocity
component along the border's home normal at the track (towards home, i.e. towards
the line when on the neighbour side). Tracks of class ``animal`` raise nothing.

Rules (settings from ``[alerts]``, see :class:`geo.site.AlertSettings`):

* **crossing** — a confirmed track whose history holds a sighting at
  ``sd <= -crossing_from_m`` at most ``crossing_window_s`` ago and that is now at
  ``sd >= crossing_hysteresis_m``. The neighbour-side sighting is *consumed*: the same
  track raises another crossing only after it is seen on the neighbour side again.
  A *fibre-only* track (every contributing sensor a fibre unit) within
  ``fibre_line_m`` of the line is a possible crossing, *corroborated* by
  ``v_home >= fibre_min_speed_mps`` or by a second event at least
  ``fibre_second_event_s`` after the first; uncorroborated it still raises, with
  priority 4 (the engine raises the priority once corroborated). Class ``digging``
  never counts as crossing.
* **line crossing** (a crossing, same kind) — a confirmed *fused* track (a fibre unit
  and cameras/radars contributed) whose first reported sighting was at the line,
  ``-crossing_from_m < sd <= fibre_line_m`` (it arrived there unseen, e.g. behind a
  single camera's tentative track; a track first seen farther out is the first case's),
  classed person/group with ``class_p >= fibre_min_p``, within ``crossing_window_s`` of
  that sighting, now at the line home side, ``0 <= sd <= fibre_line_m``, with
  ``pos_sigma_m <= crossing_line_sigma_m`` and speed ``<= crossing_line_max_speed_mps``,
  heading home: ``v_home >= fibre_min_speed_mps`` and ``v_home >= crossing_min_heading``
  x speed. A CCP request only with a neighbour-side sighting at most
  ``ccp_crossing_recent_s`` old. Any crossing of a track consumes both its
  neighbour-side sighting and this first sighting: the same track crosses again only
  after a new sighting at ``sd <= -crossing_from_m``.
* **approach** — a confirmed track with ``-approach_m <= sd < 0`` and
  ``v_home >= approach_min_speed_mps``; asks the engine for a CCP joint-patrol request.
* **digging** — every update of class ``digging`` is reported with its chainage; the
  engine counts them per chainage (see :mod:`alerts.lifecycle`).
* **vehicle** — a confirmed ``vehicle`` track with ``class_p >= vehicle_min_p`` and
  ``|sd| <= vehicle_m``.
* **loitering** — a confirmed track with ``|sd| <= loiter_near_m`` observed for at
  least ``loiter_s`` whose positions of the last ``loiter_s`` all lie within
  ``loiter_radius_m`` of their centroid (checked at most every 5 s per track).

Updates older than the track's latest are ignored (late or duplicated messages).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field

from alerts.geometry import LineFrame
from alerts.model import AlertKind, TrackUpdate
from geo import Site
from geo.site import AlertSettings

__all__ = ["Finding", "Rules", "TrackHistory"]

#: history points are kept at least this far apart in time (s)
HISTORY_STEP_S = 1.0
#: loitering is re-evaluated at most this often per track (s)
LOITER_CHECK_S = 5.0


@dataclass(slots=True)
class TrackHistory:
    """What the rules remember of one track."""

    track_id: str
    first_t: float
    last_t: float = -math.inf
    n: int = 0
    neighbour_t: float | None = None  # last sighting at sd <= -crossing_from_m
    neighbour_far_t: float | None = None  # last sighting at sd <= -crossing_vehicle_m
    fibre: bool = False  # a fibre unit contributed to the track
    #: time of the track's first sighting if it was at the line, -crossing_from_m < sd <=
    #: fibre_line_m (it arrived there unseen); cleared by any crossing of the track
    line_t: float | None = None
    pts: deque[tuple[float, float, float]] = field(default_factory=deque)  # (t, x, y)
    next_loiter_check: float = -math.inf
    ccp_sent: bool = False


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule fired for a track update: the engine turns it into an alert (or not)."""

    kind: AlertKind
    corroborated: bool = True
    ccp: bool = False
    chain: float = math.nan
    sd: float = math.nan
    v_home: float = math.nan


class Rules:
    """The track rules of one site; :meth:`observe` is pure apart from ``hist``."""

    def __init__(self, site: Site, settings: AlertSettings) -> None:
        self.site = site
        self.s = settings
        self.frame = LineFrame(site)
        self.home = site.home
        self.approach_m = float(site.approach_m)
        self._fibre = {d for d, k in site.sensor_kind.items() if k == "fibre"}
        self._fibre_spans = [(f.id, f.from_m, f.to_m) for f in site.cfg.fibre]
        #: fibre unit -> border chainage interval it cannot see (cut, offline); the engine
        #: keeps it from health events
        self.fibre_blind: dict[str, tuple[float, float]] = {}
        self._history_s = max(settings.loiter_s, 1.0) + 2 * LOITER_CHECK_S
        #: findings the rules held back, by reason (the engine adds them to its counters)
        self.rejected: Counter[str] = Counter()

    def signed_distance(self, u: TrackUpdate) -> float:
        """``sd``: the contract's unsigned distance signed by ``side``."""
        return u.border_dist_m if u.side == self.home else -u.border_dist_m

    def fibre_live(self, chain: float) -> bool:
        """A fibre unit that is not blind there covers border chainage ``chain``."""
        for dev, lo, hi in self._fibre_spans:
            if lo <= chain <= hi:
                blind = self.fibre_blind.get(dev)
                if blind is None or not blind[0] <= chain <= blind[1]:
                    return True
        return False

    def fibre_only(self, u: TrackUpdate) -> bool:
        """Every sensor of the update is a fibre unit of the site."""
        return bool(u.sensors) and all(d in self._fibre for d in u.sensors)

    def observe(self, hist: TrackHistory, u: TrackUpdate) -> list[Finding]:
        """Record ``u`` in ``hist`` and return the rules that fire (maybe none)."""
        s = self.s
        if u.t < hist.last_t:
            return []
        t = u.t
        first_update = hist.n == 0
        hist.n += 1
        hist.last_t = t
        sd = self.signed_distance(u)
        if first_update and -s.crossing_from_m < sd <= s.fibre_line_m:
            hist.line_t = t  # first seen at the line: it arrived there unseen
        if sd <= -s.crossing_from_m:
            hist.neighbour_t = t
        if sd <= -s.crossing_vehicle_m:
            hist.neighbour_far_t = t
        if not hist.fibre and any(d in self._fibre for d in u.sensors):
            hist.fibre = True
        if not hist.pts or t - hist.pts[-1][0] >= HISTORY_STEP_S:
            hist.pts.append((t, u.x, u.y))
        while hist.pts and hist.pts[0][0] < t - self._history_s:
            hist.pts.popleft()
        if u.status == "lost" or u.cls == "animal":
            return []
        confirmed = u.status == "confirmed"
        fibre_only = self.fibre_only(u)
        dist = abs(sd)
        near = (
            u.cls == "digging"
            or (fibre_only and dist <= s.fibre_line_m)
            or (confirmed and -self.approach_m <= sd < 0.0)
        )
        chain = math.nan
        v_home = math.nan
        if near or confirmed:
            chain, nx, ny = self.frame.at(u.x, u.y)
            v_home = u.vx * nx + u.vy * ny
        speed = math.hypot(u.vx, u.vy)
        age = t - hist.first_t
        out: list[Finding] = []
        if u.cls == "digging":
            if hist.fibre and dist <= s.digging_line_m and speed <= s.digging_max_speed_mps:
                out.append(Finding(kind="digging", chain=chain, sd=sd))
        else:
            crossing = self._crossing(hist, u, sd, chain, v_home, fibre_only, first_update)
            if crossing is not None:
                out.append(
                    Finding(
                        kind="crossing",
                        corroborated=crossing[0],
                        ccp=crossing[1],
                        chain=chain,
                        sd=sd,
                        v_home=v_home,
                    )
                )
        if (
            confirmed
            and len(u.sensors) >= s.approach_min_sensors
            and u.cls in ("person", "group", "unknown")
            and age >= s.approach_min_age_s
            and -self.approach_m <= sd < 0.0
            and v_home >= max(s.approach_min_speed_mps, s.approach_min_heading * speed)
        ):
            out.append(Finding(kind="approach", ccp=True, chain=chain, sd=sd, v_home=v_home))
        if (
            confirmed
            and len(u.sensors) >= s.vehicle_min_sensors
            and u.cls == "vehicle"
            and u.class_p >= s.vehicle_min_p
            and age >= s.vehicle_min_age_s
            and dist <= s.vehicle_m
        ):
            out.append(Finding(kind="vehicle", chain=chain, sd=sd, v_home=v_home))
        if confirmed and dist <= s.loiter_near_m and t >= hist.next_loiter_check:
            hist.next_loiter_check = t + LOITER_CHECK_S
            if self._loitering(hist, t):
                out.append(Finding(kind="loitering", chain=chain, sd=sd, v_home=v_home))
        return out

    def _crossing(
        self,
        hist: TrackHistory,
        u: TrackUpdate,
        sd: float,
        chain: float,
        v_home: float,
        fibre_only: bool,
        first_update: bool,
    ) -> tuple[bool, bool] | None:
        """``(corroborated, ccp)`` when the crossing rule fires, else ``None``."""
        s = self.s
        vehicle = u.cls == "vehicle"
        nt = hist.neighbour_far_t if vehicle else hist.neighbour_t
        if (
            u.status == "confirmed"
            and nt is not None
            and u.t - nt <= s.crossing_window_s
            and sd >= (s.crossing_vehicle_m if vehicle else s.crossing_hysteresis_m)
        ):
            return self._fused_crossing(hist, u, nt, sd, chain, v_home)
        if (
            hist.line_t is not None
            and not fibre_only
            and hist.fibre
            and u.status == "confirmed"
            and u.cls in ("person", "group")
            and u.class_p >= s.fibre_min_p
            and u.t - hist.line_t <= s.crossing_window_s
            and 0.0 <= sd <= s.fibre_line_m
            and u.pos_sigma_m <= s.crossing_line_sigma_m
            and math.hypot(u.vx, u.vy) <= s.crossing_line_max_speed_mps
            and v_home >= s.fibre_min_speed_mps
            and self._heads_home(u, v_home)
        ):
            # the cable felt it at the line and it walks on into home territory
            nt = hist.neighbour_t
            hist.neighbour_t = hist.neighbour_far_t = hist.line_t = None
            return True, nt is not None and u.t - nt <= s.ccp_crossing_recent_s
        if (
            fibre_only
            and abs(sd) <= s.fibre_line_m
            and u.cls in ("person", "group")
            and u.class_p >= s.fibre_min_p
        ):
            moving_in = v_home >= s.fibre_min_speed_mps
            second = not first_update and u.t - hist.first_t >= s.fibre_second_event_s
            if moving_in or second:
                return True, False
            if s.fibre_uncorroborated_alert:
                return False, False
        return None

    def _fused_crossing(
        self, hist: TrackHistory, u: TrackUpdate, nt: float, sd: float, chain: float, v_home: float
    ) -> tuple[bool, bool] | None:
        """A track seen on the neighbour side is now home side: a crossing, unless it
        jumped there, does not head across, or lacks the fibre that would have felt it."""
        s = self.s
        if sd > s.crossing_max_m:
            hist.neighbour_t = hist.neighbour_far_t = None  # a jump, not a passage
            self.rejected["crossing_jump"] += 1
            return None
        # held back (not consumed: a later update of the passage may qualify)
        if not self._heads_home(u, v_home):
            self.rejected["crossing_not_across"] += 1
            return None
        if s.crossing_needs_fibre and not hist.fibre and self.fibre_live(chain):
            self.rejected["crossing_no_fibre"] += 1
            return None
        # consumed: one crossing per passage
        hist.neighbour_t = hist.neighbour_far_t = hist.line_t = None
        return True, u.t - nt <= s.ccp_crossing_recent_s

    def _heads_home(self, u: TrackUpdate, v_home: float) -> bool:
        """The track's velocity points across the line towards home (see
        ``crossing_min_heading``)."""
        return v_home > 0.0 and v_home >= self.s.crossing_min_heading * math.hypot(u.vx, u.vy)

    def _loitering(self, hist: TrackHistory, t: float) -> bool:
        """All points of the last ``loiter_s`` within ``loiter_radius_m`` of their
        centroid, with the history reaching back at least ``loiter_s``."""
        s = self.s
        start = t - s.loiter_s
        if not hist.pts or hist.pts[0][0] > start or hist.first_t > start:
            return False
        window = [(x, y) for (pt, x, y) in hist.pts if pt >= start]
        if len(window) < 2:
            return False
        cx = sum(p[0] for p in window) / len(window)
        cy = sum(p[1] for p in window) / len(window)
        r2 = s.loiter_radius_m**2
        return all((x - cx) ** 2 + (y - cy) ** 2 <= r2 for x, y in window)
