"""The alert engine: inputs in, transitions and writes out. No I/O, no wall clock.

:meth:`AlertEngine.handle` takes one input (track update, health event, ack, operator
action, patrol position, track merge, tick) and returns a :class:`~alerts.model.Decision`:
the contract alert objects of every state change, the store operations as data, the
MQTT messages to publish and counter increments. An executor
(:class:`alerts.service.AlertService`) applies the operations, then publishes.

Time is *event time*: ``now`` is the latest ``t`` of track updates, health events and
ticks (acks, actions and patrol reports carry human/device clocks and do not move it),
so replaying a journal gives the same decisions, ids and writes.

Invariants:

* **One alert per intrusion.** Alerts are keyed by ``(subject, kind)``: subject is a
  track id (or ``device:<id>`` for ``sensor_fault``). A new track's finding joins an open
  alert of the same kind and sector whose last position is within ``group_radius_m``
  and last activity within ``group_window_s`` (people crossing together: one alert,
  ``group of N``). Digging joins an open digging alert within ``digging_radius_m`` of
  chainage. Track merges re-key the old track's alerts to the new track; two open
  alerts of one kind merge into the older one and the other is resolved
  (``merged into <id>``).
* **Deterministic ids.** ``alert_id = <kind>-<blake2b(kind|subject|t_ms)[:16 hex]>`` from
  the first finding, so a replay yields the same ids; each alert write carries ``rev``
  and stores apply it only once.
* **Lifecycle.** ``open -> acknowledged | escalated | resolved``;
  ``acknowledged -> escalated | resolved``; ``escalated -> acknowledged`` (only if never
  acknowledged) ``| resolved``; ``resolved`` is final. An open alert not acknowledged
  within ``escalate_after_s`` is escalated by ``system``. Every state change is one
  audit entry (who, when, why) and one publish on ``limes/v1/alerts/{sector}``, QoS 1.
  A priority change of an open alert (group grew, fibre crossing corroborated) is
  published too, with its state unchanged.
* **Cool-down.** After an alert is resolved, its subjects raise that kind again only
  ``cooldown_s`` later (suppressions counted in ``suppressed_cooldown``).
* **Rate limit.** At most ``rate_limit`` new alerts per sector per ``rate_window_s``
  (``sensor_fault`` exempt). The excess is never silent: it is counted
  (``suppressed_rate``) into one open overflow alert per sector, whose summary gives
  the counts per kind; it is re-published when its priority rises.
* **Priority** (1 highest .. 4): base crossing 2, digging 2, approach 3, vehicle 3,
  loitering 3; one higher for a group of ``group_min_size`` or more or a vehicle; one
  lower below ``low_confidence``; an uncorroborated fibre-only crossing is 4;
  ``sensor_fault`` is 2 for a fibre cut, else 3.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import re
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from alerts.geometry import haversine_m, true_heading_deg
from alerts.model import (
    Ack,
    AlertKind,
    AlertRecord,
    AlertState,
    AlertWrite,
    CcpRequest,
    Decision,
    HealthEvent,
    Input,
    OperatorAction,
    PatrolPosition,
    PatrolWrite,
    Publish,
    TaskingOrder,
    TrackMerge,
    TrackUpdate,
)
from alerts.rules import Finding, Rules, TrackHistory
from geo import Site
from geo.site import AlertSettings

__all__ = [
    "CCP_TOPIC",
    "AlertEngine",
    "alert_id_for",
    "alert_topic",
    "priority_for",
    "tasking_topic",
]

CCP_TOPIC = "limes/v1/ccp/outbox"
SYSTEM = "system"
_CUT_RE = re.compile(r"cut\s+at\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)", re.IGNORECASE)
_BASE_PRIORITY: dict[str, int] = {
    "crossing": 2,
    "digging": 2,
    "approach": 3,
    "vehicle": 3,
    "loitering": 3,
    "sensor_fault": 3,
}
#: alert kinds about one object: a new track near an open alert of the kind continues it
_OBJECT_KINDS = frozenset({"approach", "vehicle"})
#: housekeeping (forget old tracks, drop expired cool-downs) at most this often (s)
_HOUSEKEEP_S = 10.0

_enc = msgspec.json.Encoder()


def alert_topic(sector: str) -> str:
    """``limes/v1/alerts/{sector}``."""
    return f"limes/v1/alerts/{sector}"


def tasking_topic(unit: str) -> str:
    """``limes/v1/tasking/{unit}``."""
    return f"limes/v1/tasking/{unit}"


def alert_id_for(kind: str, subject: str, t: float) -> str:
    """Deterministic alert id from kind, subject and first time (ms), MQTT-topic safe."""
    raw = f"{kind}|{subject}|{round(t * 1000)}".encode()
    return f"{kind}-{hashlib.blake2b(raw, digest_size=8).hexdigest()}"


def priority_for(
    kind: AlertKind,
    cls: str,
    class_p: float,
    group_size: int,
    settings: AlertSettings,
    *,
    corroborated: bool = True,
    fibre_cut: bool = False,
) -> int:
    """Priority 1 (highest) to 4 from kind, class, group size and confidence (see module doc)."""
    if kind == "sensor_fault":
        return 2 if fibre_cut else 3
    if kind == "crossing" and not corroborated:
        return 4
    p = _BASE_PRIORITY[kind]
    if group_size >= settings.group_min_size or cls == "vehicle":
        p -= 1
    if class_p < settings.low_confidence:
        p += 1
    return min(4, max(1, p))


@dataclass(slots=True)
class _Patrol:
    unit: str
    team: str
    lat: float
    lon: float
    t: float | None  # None: site-file starting position (never stale)
    available: bool


@dataclass(frozen=True, slots=True)
class _Dig:
    t: float
    chain: float
    track_id: str
    sector: str


def _size_text(cls: str, n: int) -> str:
    if n >= 2:
        return f"group of {n}"
    if cls == "vehicle":
        return "vehicle"
    if cls in ("person", "group"):
        return "1 person"
    return f"1 {cls} object"


class AlertEngine:
    """Alert rules and lifecycle for one site (single-threaded; see the module doc)."""

    def __init__(self, site: Site, settings: AlertSettings | None = None) -> None:
        self.site = site
        self.s: AlertSettings = settings if settings is not None else site.cfg.alerts
        if not site.sectors:
            msg = "the alert engine needs a site with at least one sector"
            raise ValueError(msg)
        sector_ids = {sc.id for sc in site.sectors}
        if self.s.fallback_sector and self.s.fallback_sector not in sector_ids:
            msg = f"alerts.fallback_sector {self.s.fallback_sector!r} is not a sector"
            raise ValueError(msg)
        self.fallback_sector = self.s.fallback_sector or site.sectors[0].id
        self._sector_ids = sector_ids
        self.rules = Rules(site, self.s)
        self.teams = set(self.s.recommend_teams) or {site.home, "JOINT"}
        self.speed_mps = self.s.patrol_speed_kmh / 3.6
        self.now = -math.inf
        self.alerts: dict[str, AlertRecord] = {}
        self.by_key: dict[tuple[str, str], str] = {}
        self.cooldown: dict[tuple[str, str], float] = {}
        self.tracks: dict[str, TrackHistory] = {}
        self.patrols: dict[str, _Patrol] = {}
        self.tasked: dict[str, str] = {}  # unit -> alert id it was tasked to
        self.counters: Counter[str] = Counter()
        self._rate: dict[str, deque[float]] = {}
        self._overflow: dict[str, str] = {}  # sector -> open overflow alert id
        self._digs: deque[_Dig] = deque()
        #: approach/vehicle alert -> (t, vx, vy) of its track's latest update
        self._motion: dict[str, tuple[float, float, float]] = {}
        self._escalations: list[tuple[float, str]] = []
        self._cooldown_counted: set[tuple[str, str]] = set()
        self._last_housekeep = -math.inf
        for p in site.patrols:
            self.patrols[p.id] = _Patrol(p.id, p.team, p.lat, p.lon, None, True)

    # -- entry point ---------------------------------------------------------------------------

    def handle(self, event: Input) -> Decision:
        """Decide everything ``event`` implies; the only way state changes."""
        d = Decision()
        if isinstance(event, TrackUpdate):
            self._advance(event.t, d)
            self._on_track(event, d)
        elif isinstance(event, HealthEvent):
            self._advance(event.t, d)
            self._on_health(event, d)
        elif isinstance(event, Ack):
            self._on_ack(event, d)
        elif isinstance(event, OperatorAction):
            self._on_action(event, d)
        elif isinstance(event, PatrolPosition):
            self._on_patrol(event, d)
        elif isinstance(event, TrackMerge):
            self._advance(event.t, d)
            self._merge(event.old_track_id, event.new_track_id, event.t, d)
        else:
            self._advance(event.t, d)
            self._housekeep(force=True)
        self.counters.update(d.counters)
        return d

    def restore(self, records: Iterable[AlertRecord], patrols: Iterable[PatrolPosition]) -> None:
        """Resume from stored state (after a restart): open alerts and patrol positions.

        Rate-limit windows, track histories and cool-downs of resolved alerts are not
        restored (they rebuild within minutes).
        """
        for rec in records:
            if rec.state == "resolved":
                continue
            self.alerts[rec.alert_id] = rec
            for subj in rec.members:
                self.by_key[(subj, rec.kind)] = rec.alert_id
            if rec.overflow:
                self._overflow[rec.sector] = rec.alert_id
            if rec.state == "open":
                heapq.heappush(
                    self._escalations, (rec.opened_t + self.s.escalate_after_s, rec.alert_id)
                )
            if rec.assigned_unit is not None:
                self.tasked[rec.assigned_unit] = rec.alert_id
        for p in patrols:
            self._on_patrol(p, Decision())

    # -- clock -----------------------------------------------------------------------------------

    def _advance(self, t: float, d: Decision) -> None:
        self.now = max(self.now, t)
        while self._escalations and self._escalations[0][0] <= self.now:
            due, aid = heapq.heappop(self._escalations)
            rec = self.alerts.get(aid)
            if rec is not None and rec.state == "open":
                why = f"not acknowledged within {self.s.escalate_after_s:g} s"
                self._transition(rec, "escalated", due, SYSTEM, why, "escalate", d)
        if self.now - self._last_housekeep >= _HOUSEKEEP_S:
            self._housekeep()

    def _housekeep(self, *, force: bool = False) -> None:
        if not force and self.now - self._last_housekeep < _HOUSEKEEP_S:
            return
        self._last_housekeep = self.now
        old = self.now - self.s.track_forget_s
        for tid in [k for k, h in self.tracks.items() if h.last_t < old]:
            del self.tracks[tid]
        expired = [k for k, rt in self.cooldown.items() if self.now - rt >= self.s.cooldown_s]
        for k in expired:
            del self.cooldown[k]
            self._cooldown_counted.discard(k)
            aid = self.by_key.get(k)
            if aid is not None and self.alerts[aid].state == "resolved":
                del self.by_key[k]
        live = set(self.by_key.values())
        for aid in [a for a, r in self.alerts.items() if r.state == "resolved" and a not in live]:
            del self.alerts[aid]
        for aid in [a for a in self._motion if a not in self.alerts]:
            del self._motion[aid]
        horizon = self.now - self.s.digging_window_s
        while self._digs and self._digs[0].t < horizon:
            self._digs.popleft()

    # -- tracks --------------------------------------------------------------------------------

    def _sector(self, sector: str) -> str:
        return sector if sector in self._sector_ids else self.fallback_sector

    def _on_track(self, u: TrackUpdate, d: Decision) -> None:
        d.counters["track_updates"] += 1
        hist = self.tracks.get(u.track_id)
        if hist is None:
            hist = self.tracks[u.track_id] = TrackHistory(u.track_id, first_t=u.t)
        elif u.t < hist.last_t:
            d.counters["late_track_updates"] += 1
            return
        findings = self.rules.observe(hist, u)
        if self.rules.rejected:
            for k, n in self.rules.rejected.items():
                d.counters[f"rule_held:{k}"] += n
            self.rules.rejected.clear()
        for f in findings:
            if f.kind == "digging":
                self._on_digging(u, f, d)
            else:
                self._on_finding(u, hist, f, d)
        if u.status == "lost":
            if u.merged_into:
                self._merge(u.track_id, u.merged_into, u.t, d)
            self.tracks.pop(u.track_id, None)

    def _track_size(self, u: TrackUpdate) -> int:
        if u.group_size is not None and u.group_size >= 1:
            return u.group_size
        return 2 if u.cls == "group" else 1

    def _summary(self, kind: AlertKind, rec: AlertRecord, f: Finding | None) -> str:
        site = self.site
        size = _size_text(rec.cls, rec.group_size)
        km = f" at km {f.chain / 1000:.2f}" if f is not None and math.isfinite(f.chain) else ""
        conf = f"{rec.cls}, p={rec.class_p:.2f}"
        if kind == "crossing":
            tail = "" if rec.corroborated else "; fibre only, not corroborated"
            return f"{size} crossed from {site.neighbour} into {site.home}{km} ({conf}){tail}"
        dist = abs(f.sd) if f is not None and math.isfinite(f.sd) else math.nan
        if kind == "approach":
            speed = f.v_home if f is not None else math.nan
            return (
                f"{size} approaching from {site.neighbour}, {dist:.0f} m from the border{km}, "
                f"{speed:.1f} m/s towards it ({conf})"
            )
        if kind == "vehicle":
            return f"vehicle {dist:.0f} m from the border{km} ({conf})"
        if kind == "loitering":
            return (
                f"{size} loitering {dist:.0f} m from the border{km} for over "
                f"{self.s.loiter_s / 60:.0f} min ({conf})"
            )
        return f"{kind}{km}"

    def _on_finding(self, u: TrackUpdate, hist: TrackHistory, f: Finding, d: Decision) -> None:
        key = (u.track_id, f.kind)
        aid = self.by_key.get(key)
        if aid is not None:
            rec = self.alerts[aid]
            if rec.state != "resolved":
                self._refresh(rec, u, f, d)
                return
            if not self._cooled_down(key, d):
                return
            del self.by_key[key]
        elif key in self.cooldown and not self._cooled_down(key, d):
            return
        sector = self._sector(u.sector)
        group = self._group_candidate(f.kind, sector, u.x, u.y)
        if group is not None:
            if self.alerts[group].ccp_request_id is not None:
                hist.ccp_sent = True  # the intrusion already has its joint-patrol request
            if f.kind in _OBJECT_KINDS:
                self._continue(group, u, f, d)
            else:
                self._join(group, u, f, d)
            return
        if not self._rate_ok(sector):
            self._overflow_add(sector, f.kind, u, d, subject=u.track_id)
            return
        size = self._track_size(u)
        rec = AlertRecord(
            alert_id=alert_id_for(f.kind, u.track_id, u.t),
            kind=f.kind,
            sector=sector,
            state="open",
            priority=priority_for(
                f.kind, u.cls, u.class_p, size, self.s, corroborated=f.corroborated
            ),
            track_id=u.track_id,
            lat=u.lat,
            lon=u.lon,
            x=u.x,
            y=u.y,
            summary="",
            sensors=sorted(u.sensors),
            recommended_units=[],
            opened_t=u.t,
            t=u.t,
            last_activity_t=u.t,
            members=[u.track_id],
            group_size=size,
            cls=u.cls,
            class_p=u.class_p,
            corroborated=f.corroborated,
            chain=f.chain if math.isfinite(f.chain) else None,
        )
        rec.summary = self._summary(f.kind, rec, f)
        self._open(rec, d)
        self.by_key[key] = rec.alert_id
        if f.kind in _OBJECT_KINDS:
            self._motion[rec.alert_id] = (u.t, u.vx, u.vy)
        if f.ccp and self.s.ccp_enabled and not hist.ccp_sent:
            hist.ccp_sent = True
            self._ccp(rec, u, d)

    def _cooled_down(self, key: tuple[str, str], d: Decision) -> bool:
        rt = self.cooldown.get(key)
        if rt is None or self.now - rt >= self.s.cooldown_s:
            self.cooldown.pop(key, None)
            self._cooldown_counted.discard(key)
            return True
        if key not in self._cooldown_counted:
            self._cooldown_counted.add(key)
            d.counters["suppressed_cooldown"] += 1
        return False

    def _group_candidate(self, kind: AlertKind, sector: str, x: float, y: float) -> str | None:
        """The open alert a new track's finding joins: for crossings and loitering, people
        together (``group_radius_m`` of its last position, same sector); for approach and
        vehicle, the same object seen by another track fragment (``object_radius_m`` of its
        last position moved on with its velocity, any sector)."""
        obj = kind in _OBJECT_KINDS
        r2 = (self.s.object_radius_m if obj else self.s.group_radius_m) ** 2
        best: tuple[float, str] | None = None
        for rec in self.alerts.values():
            if (
                rec.kind != kind
                or (rec.sector != sector and not obj)
                or rec.state == "resolved"
                or rec.track_id is None
                or self.now - rec.last_activity_t > self.s.group_window_s
            ):
                continue
            px, py = rec.x, rec.y
            m = self._motion.get(rec.alert_id) if obj else None
            if m is not None:
                px += m[1] * (self.now - m[0])
                py += m[2] * (self.now - m[0])
            dd = (px - x) ** 2 + (py - y) ** 2
            if dd <= r2 and (best is None or (dd, rec.alert_id) < best):
                best = (dd, rec.alert_id)
        return None if best is None else best[1]

    def _continue(self, aid: str, u: TrackUpdate, f: Finding, d: Decision) -> None:
        """Another track of the same object: a member (not a group member); the alert
        follows it from now on."""
        rec = self.alerts[aid]
        self.by_key[(u.track_id, f.kind)] = aid
        if u.track_id not in rec.members:
            rec.members.append(u.track_id)
            d.counters["continued_alerts"] += 1
            rec.track_id = u.track_id
            rec.sensors = sorted(set(rec.sensors) | set(u.sensors))
            self._transition(
                rec, rec.state, u.t, SYSTEM, f"track {u.track_id} continues", "join", d,
                publish=False,
            )  # fmt: skip
        self._refresh(rec, u, f, d)

    def _join(self, aid: str, u: TrackUpdate, f: Finding, d: Decision) -> None:
        rec = self.alerts[aid]
        self.by_key[(u.track_id, f.kind)] = aid
        if u.track_id not in rec.members:
            rec.members.append(u.track_id)
            rec.group_size += self._track_size(u)
            d.counters["joined_alerts"] += 1
        rec.sensors = sorted(set(rec.sensors) | set(u.sensors))
        self._refresh(rec, u, f, d, joined=True)

    def _refresh(
        self, rec: AlertRecord, u: TrackUpdate, f: Finding, d: Decision, *, joined: bool = False
    ) -> None:
        """A finding for an open alert: move it, maybe corroborate, re-prioritise."""
        rec.last_activity_t = max(rec.last_activity_t, u.t)
        if u.track_id == rec.track_id:
            rec.x, rec.y = u.x, u.y
            if rec.kind in _OBJECT_KINDS:
                self._motion[rec.alert_id] = (u.t, u.vx, u.vy)
            rec.class_p = max(rec.class_p, u.class_p)
            rec.cls = u.cls if u.cls != "unknown" else rec.cls
        if f.corroborated and not rec.corroborated:
            rec.corroborated = True
        p = priority_for(
            rec.kind, rec.cls, rec.class_p, rec.group_size, self.s, corroborated=rec.corroborated
        )
        summary = self._summary(rec.kind, rec, f)
        if p < rec.priority:
            rec.priority = p
            rec.summary = summary
            rec.lat, rec.lon = u.lat, u.lon
            self._transition(rec, rec.state, u.t, SYSTEM, "priority raised", "update", d)
        elif joined:
            rec.summary = summary
            self._transition(
                rec, rec.state, u.t, SYSTEM, f"track {u.track_id} joined", "join", d, publish=False
            )

    # -- digging ---------------------------------------------------------------------------------

    def _on_digging(self, u: TrackUpdate, f: Finding, d: Decision) -> None:
        s = self.s
        sector = self._sector(u.sector)
        self._digs.append(_Dig(u.t, f.chain, u.track_id, sector))
        for rec in self.alerts.values():
            if (
                rec.kind != "digging"
                or rec.chain is None
                or abs(rec.chain - f.chain) > s.digging_radius_m
            ):
                continue
            if rec.state == "resolved":
                if rec.resolved_t is not None and self.now - rec.resolved_t < s.cooldown_s:
                    key = (u.track_id, "digging")
                    if key not in self._cooldown_counted:
                        self._cooldown_counted.add(key)
                        self.cooldown.setdefault(key, rec.resolved_t)
                        d.counters["suppressed_cooldown"] += 1
                    return
                continue
            self.by_key[(u.track_id, "digging")] = rec.alert_id
            if u.track_id not in rec.members:
                rec.members.append(u.track_id)
            rec.last_activity_t = max(rec.last_activity_t, u.t)
            return
        key = (u.track_id, "digging")
        if key in self.cooldown and not self._cooled_down(key, d):
            return
        horizon = self.now - s.digging_window_s
        near = [
            g for g in self._digs if g.t >= horizon and abs(g.chain - f.chain) <= s.digging_radius_m
        ]
        times = {round(g.t, 3) for g in near}
        if len(times) < s.digging_min_events or max(times) - min(times) < s.digging_span_s:
            return
        if not self._rate_ok(sector):
            self._overflow_add(sector, "digging", u, d, subject=u.track_id)
            return
        members = sorted({g.track_id for g in near})
        first = min(g.t for g in near)
        rec = AlertRecord(
            alert_id=alert_id_for("digging", f"{sector}:{round(f.chain)}", first),
            kind="digging",
            sector=sector,
            state="open",
            priority=priority_for("digging", u.cls, u.class_p, 1, self.s),
            track_id=u.track_id,
            lat=u.lat,
            lon=u.lon,
            x=u.x,
            y=u.y,
            summary=(
                f"repeated digging ({len(times)} events in {max(times) - min(times):.0f} s) "
                f"at border km {f.chain / 1000:.2f}: possible tunnelling"
            ),
            sensors=sorted(u.sensors),
            recommended_units=[],
            opened_t=u.t,
            t=u.t,
            last_activity_t=u.t,
            members=members,
            cls=u.cls,
            class_p=u.class_p,
            chain=f.chain,
        )
        self._open(rec, d)
        for m in members:
            self.by_key[(m, "digging")] = rec.alert_id

    # -- rate limit ------------------------------------------------------------------------------

    def _rate_ok(self, sector: str) -> bool:
        q = self._rate.setdefault(sector, deque())
        while q and q[0] <= self.now - self.s.rate_window_s:
            q.popleft()
        if len(q) >= self.s.rate_limit:
            return False
        q.append(self.now)
        return True

    def _overflow_add(
        self, sector: str, kind: AlertKind, u: TrackUpdate, d: Decision, *, subject: str
    ) -> None:
        d.counters["suppressed_rate"] += 1
        d.counters[f"suppressed_rate:{sector}:{kind}"] += 1
        p = priority_for(kind, u.cls, u.class_p, self._track_size(u), self.s)
        aid = self._overflow.get(sector)
        rec = self.alerts.get(aid) if aid is not None else None
        if rec is None or rec.state == "resolved":
            rec = AlertRecord(
                alert_id=alert_id_for(kind, f"overflow:{sector}", self.now),
                kind=kind,
                sector=sector,
                state="open",
                priority=p,
                track_id=None,
                lat=u.lat,
                lon=u.lon,
                x=u.x,
                y=u.y,
                summary="",
                sensors=[],
                recommended_units=[],
                opened_t=self.now,
                t=self.now,
                last_activity_t=self.now,
                overflow={kind: 1},
                members=[subject],
            )
            rec.summary = self._overflow_summary(rec)
            self._overflow[sector] = rec.alert_id
            self.by_key[(subject, kind)] = rec.alert_id
            self._open(rec, d)
            return
        rec.overflow[kind] = rec.overflow.get(kind, 0) + 1
        rec.members.append(subject)
        rec.last_activity_t = self.now
        self.by_key[(subject, kind)] = rec.alert_id
        rec.summary = self._overflow_summary(rec)
        if p < rec.priority:
            rec.priority = p
            self._transition(rec, rec.state, self.now, SYSTEM, "priority raised", "update", d)
        else:
            self._transition(
                rec, rec.state, self.now, SYSTEM, "overflow counted", "count", d, publish=False
            )

    def _overflow_summary(self, rec: AlertRecord) -> str:
        n = sum(rec.overflow.values())
        parts = ", ".join(f"{k} {v}" for k, v in sorted(rec.overflow.items()))
        return (
            f"rate limit ({self.s.rate_limit} per {self.s.rate_window_s:g} s) reached in "
            f"{rec.sector}: {n} further alert(s) not raised separately ({parts})"
        )

    # -- health ----------------------------------------------------------------------------------

    def _fibre_blind(self, h: HealthEvent) -> None:
        """Keep the rules' map of fibre stretches that cannot detect (cut, offline)."""
        fc = self.site.fibre_by_id.get(h.device)
        if fc is None or h.state == "unknown":
            return
        if h.state == "online":
            self.rules.fibre_blind.pop(h.device, None)
            return
        m = _CUT_RE.search(h.detail or "") if h.state == "fault" else None
        if m is None:
            self.rules.fibre_blind[h.device] = (fc.from_m, fc.to_m)
            return
        cut = min(max(float(m.group(1)), 0.0), fc.cable_length_m)
        ends = fc.border_chainage([cut, fc.cable_length_m])
        self.rules.fibre_blind[h.device] = (float(min(ends)), float(max(ends)))

    def _on_health(self, h: HealthEvent, d: Decision) -> None:
        d.counters["health_events"] += 1
        self._fibre_blind(h)
        key = (f"device:{h.device}", "sensor_fault")
        aid = self.by_key.get(key)
        rec = self.alerts.get(aid) if aid is not None else None
        if h.state == "unknown":
            return
        if h.state == "online":
            if rec is not None and rec.state != "resolved":
                self._resolve(rec, h.t, SYSTEM, "device back online", d)
            return
        summary, lat, lon, x, y, sector, cut = self._fault_description(h)
        if rec is not None and rec.state != "resolved":
            if summary != rec.summary:
                rec.summary = summary
                rec.lat, rec.lon, rec.x, rec.y = lat, lon, x, y
                p = priority_for("sensor_fault", "unknown", 1.0, 1, self.s, fibre_cut=cut)
                publish = p < rec.priority
                rec.priority = min(rec.priority, p)
                self._transition(
                    rec, rec.state, h.t, SYSTEM, f"device {h.state}", "update", d, publish=publish
                )
            return
        if rec is not None:
            if not self._cooled_down(key, d):
                return
            del self.by_key[key]
        rec = AlertRecord(
            alert_id=alert_id_for("sensor_fault", h.device, h.t),
            kind="sensor_fault",
            sector=sector,
            state="open",
            priority=priority_for("sensor_fault", "unknown", 1.0, 1, self.s, fibre_cut=cut),
            track_id=None,
            lat=lat,
            lon=lon,
            x=x,
            y=y,
            summary=summary,
            sensors=[h.device],
            recommended_units=[],
            opened_t=h.t,
            t=h.t,
            last_activity_t=h.t,
            members=[key[0]],
            device=h.device,
        )
        self._open(rec, d)
        self.by_key[key] = rec.alert_id

    def _fault_description(
        self, h: HealthEvent
    ) -> tuple[str, float, float, float, float, str, bool]:
        """``(summary, lat, lon, x, y, sector, is_cut)`` of a device fault."""
        site = self.site
        what = "fault" if h.state == "fault" else "offline (silent past heartbeat or last will)"
        detail = f" ({h.detail})" if h.detail else ""
        fc = site.fibre_by_id.get(h.device)
        if fc is not None:
            m = _CUT_RE.search(h.detail or "") if h.state == "fault" else None
            if m is not None:
                cut = min(max(float(m.group(1)), 0.0), fc.cable_length_m)
                ends = fc.border_chainage([cut, fc.cable_length_m])
                lo, hi = float(min(ends)), float(max(ends))
                at = float(fc.border_chainage(cut))
                head = f"{h.device} fibre cut at cable {cut:.1f} m"
            else:
                lo, hi, at = fc.from_m, fc.to_m, 0.5 * (fc.from_m + fc.to_m)
                head = f"{h.device} {what}{detail}"
            secs = sorted(
                {site.sector_id(int(i)) for i in site.sector_of_chainage([lo, hi])} - {""}
            )
            sec_txt = f", sectors {', '.join(secs)}" if secs else ""
            summary = (
                f"{head}: blind border chainage {lo:.0f}-{hi:.0f} m "
                f"(km {lo / 1000:.2f}-{hi / 1000:.2f}{sec_txt})"
            )
            x, y, _, _ = site.border.point_at(at, fc.offset_m)
            lon, lat = site.proj.to_lonlat(x, y)
            sector = self._sector(site.sector_id(int(site.sector_of_chainage(at))))
            return summary, float(lat), float(lon), float(x), float(y), sector, m is not None
        summary = f"{h.device} {what}{detail}"
        pos: tuple[float, float] | None = None
        tc = site.thermal_by_id.get(h.device)
        if tc is not None:
            pos = (tc.lat, tc.lon)
        mc = site.msv_by_id.get(h.device)
        if mc is not None and mc.lat is not None and mc.lon is not None:
            pos = (mc.lat, mc.lon)
        if pos is None:
            sc = next(s for s in site.sectors if s.id == self.fallback_sector)
            x0, y0, _, _ = site.border.point_at(0.5 * (sc.from_m + sc.to_m))
            lon0, lat0 = site.proj.to_lonlat(x0, y0)
            pos = (float(lat0), float(lon0))
        xa, ya = site.proj.to_xy(pos[1], pos[0])
        _, _, sec = site.locate(xa, ya)
        sector = self._sector(site.sector_id(int(sec)))
        return summary, pos[0], pos[1], float(xa), float(ya), sector, False

    # -- acks and operator actions -------------------------------------------------------------

    def _on_ack(self, a: Ack, d: Decision) -> None:
        rec = self.alerts.get(a.alert_id)
        if rec is None:
            d.counters["ack_unknown"] += 1
            d.rejected = f"unknown alert {a.alert_id}"
            return
        why = a.note or ""
        if rec.state == "open" or (rec.state == "escalated" and rec.acked_by is None):
            rec.acked_by, rec.acked_t = a.operator, a.t
            self._transition(rec, "acknowledged", a.t, a.operator, why, "ack", d)
        elif rec.state == "resolved":
            d.counters["ack_resolved"] += 1
            d.rejected = f"alert {a.alert_id} is resolved"
        else:
            d.counters["ack_repeated"] += 1
            self._transition(rec, rec.state, a.t, a.operator, why, "ack", d, publish=False)

    def _on_action(self, a: OperatorAction, d: Decision) -> None:
        if a.action == "ack":
            self._on_ack(Ack(alert_id=a.alert_id, operator=a.who, t=a.t, note=a.why), d)
            return
        rec = self.alerts.get(a.alert_id)
        if rec is None:
            d.counters["action_unknown"] += 1
            d.rejected = f"unknown alert {a.alert_id}"
            return
        if rec.state == "resolved":
            d.rejected = f"alert {a.alert_id} is resolved"
            return
        if a.action == "resolve":
            self._resolve(rec, a.t, a.who, a.why, d)
        elif a.action == "escalate":
            if rec.state == "escalated":
                d.rejected = f"alert {a.alert_id} is already escalated"
                return
            rec.escalated_by, rec.escalated_t = a.who, a.t
            self._transition(rec, "escalated", a.t, a.who, a.why, "escalate", d)
        else:
            if a.unit is None:
                d.rejected = "assign needs a unit"
                return
            self._assign(rec, a.unit, a.t, a.who, a.why, d)

    def _assign(
        self, rec: AlertRecord, unit: str, t: float, who: str, why: str, d: Decision
    ) -> None:
        rec.assigned_unit, rec.assigned_by = unit, who
        self.tasked[unit] = rec.alert_id
        idx = self._transition(
            rec, rec.state, t, who, why or f"assigned {unit}", "assign", d, publish=False
        )
        lon, lat = self.site.proj.to_lonlat(rec.x, rec.y)  # latest position, not the published
        order = TaskingOrder(
            unit=unit,
            alert_id=rec.alert_id,
            t=t,
            lat=float(lat),
            lon=float(lon),
            kind=rec.kind,
            priority=rec.priority,
            summary=rec.summary,
            assigned_by=who,
        )
        d.tasking.append(order)
        d.publishes.append(Publish(tasking_topic(unit), _enc.encode(order), 1, idx))

    def _resolve(self, rec: AlertRecord, t: float, who: str, why: str, d: Decision) -> None:
        rec.resolved_by, rec.resolved_t, rec.resolved_why = who, t, why
        self._transition(rec, "resolved", t, who, why, "resolve", d)
        at = max(t, self.now) if math.isfinite(self.now) else t
        for subj in rec.members:
            self.cooldown[(subj, rec.kind)] = at
        for unit in [u for u, aid in self.tasked.items() if aid == rec.alert_id]:
            del self.tasked[unit]
        if self._overflow.get(rec.sector) == rec.alert_id:
            del self._overflow[rec.sector]

    # -- merges ----------------------------------------------------------------------------------

    def _merge(self, old: str, new: str, t: float, d: Decision) -> None:
        """Re-key ``old``'s alerts to ``new``; merge two open alerts of one kind."""
        if old == new:
            return
        d.counters["track_merges"] += 1
        ho, hn = self.tracks.get(old), self.tracks.get(new)
        if ho is not None:
            if hn is None:
                hn = self.tracks[new] = TrackHistory(new, first_t=ho.first_t)
            if ho.neighbour_t is not None:
                hn.neighbour_t = max(hn.neighbour_t or -math.inf, ho.neighbour_t)
            if ho.neighbour_far_t is not None:
                hn.neighbour_far_t = max(hn.neighbour_far_t or -math.inf, ho.neighbour_far_t)
            hn.fibre = hn.fibre or ho.fibre
            hn.first_t = min(hn.first_t, ho.first_t)
            hn.ccp_sent = hn.ccp_sent or ho.ccp_sent
            del self.tracks[old]
        for (subj, kind), aid in list(self.by_key.items()):
            if subj != old:
                continue
            a = self.alerts[aid]
            other_id = self.by_key.get((new, kind))
            b = self.alerts.get(other_id) if other_id is not None else None
            if b is None or b.alert_id == a.alert_id or b.state == "resolved":
                self.by_key[(new, kind)] = aid
                if new not in a.members:
                    a.members.append(new)
                if a.track_id == old:
                    a.track_id = new
                    if a.state != "resolved":
                        self._transition(
                            a,
                            a.state,
                            t,
                            SYSTEM,
                            f"track {old} merged into {new}",
                            "rekey",
                            d,
                            publish=False,
                        )
                continue
            if a.state == "resolved":
                continue
            keep, drop = (a, b) if (a.opened_t, a.alert_id) <= (b.opened_t, b.alert_id) else (b, a)
            for m in drop.members:
                if m not in keep.members:
                    keep.members.append(m)
                self.by_key[(m, kind)] = keep.alert_id
            keep.group_size = max(keep.group_size, drop.group_size)
            keep.sensors = sorted(set(keep.sensors) | set(drop.sensors))
            keep.track_id = new
            self.by_key[(new, kind)] = keep.alert_id
            self.by_key[(old, kind)] = keep.alert_id
            drop.members = []
            self._resolve(drop, t, SYSTEM, f"merged into {keep.alert_id}", d)
            self._transition(
                keep, keep.state, t, SYSTEM, f"merged {drop.alert_id}", "merge", d, publish=False
            )

    # -- patrols ---------------------------------------------------------------------------------

    def _on_patrol(self, p: PatrolPosition, d: Decision) -> None:
        cur = self.patrols.get(p.unit)
        if cur is not None and cur.t is not None and p.t <= cur.t:
            d.counters["patrol_stale"] += 1
            return
        self.patrols[p.unit] = _Patrol(p.unit, p.team, p.lat, p.lon, p.t, p.available)
        d.ops.append(
            PatrolWrite(
                unit=p.unit, t=p.t, lat=p.lat, lon=p.lon, team=p.team, available=p.available
            )
        )

    def rank_units(self, lat: float, lon: float, *, count: int | None = None) -> list[str]:
        """Available units of the recommended teams, not tasked to an unresolved alert,
        with a fresh position, nearest first by ETA = great-circle distance / speed
        (straight line: no roads, terrain or river crossings)."""
        rows: list[tuple[float, str]] = []
        for p in self.patrols.values():
            if not p.available or p.team not in self.teams or p.unit in self.tasked:
                continue
            if p.t is not None and self.now - p.t > self.s.patrol_stale_s:
                continue
            eta = haversine_m(lat, lon, p.lat, p.lon) / self.speed_mps
            rows.append((eta, p.unit))
        rows.sort()
        n = self.s.recommend_count if count is None else count
        return [u for _, u in rows[:n]]

    # -- transitions -----------------------------------------------------------------------------

    def _open(self, rec: AlertRecord, d: Decision) -> None:
        self.alerts[rec.alert_id] = rec
        d.counters["alerts_opened"] += 1
        d.counters[f"alerts_opened:{rec.kind}"] += 1
        heapq.heappush(self._escalations, (rec.opened_t + self.s.escalate_after_s, rec.alert_id))
        self._transition(rec, "open", rec.opened_t, SYSTEM, "rule fired", "open", d)
        ap = self.s.auto_dispatch_priority
        if ap and rec.priority <= ap and rec.recommended_units and rec.track_id is not None:
            self._assign(rec, rec.recommended_units[0], rec.opened_t, "auto", "auto-dispatch", d)

    def _transition(
        self,
        rec: AlertRecord,
        state: AlertState,
        t: float,
        who: str,
        why: str,
        event: str,
        d: Decision,
        *,
        publish: bool = True,
    ) -> int:
        """Apply a state change (or an update) to ``rec``: one store write with its audit
        entry, and a publish of the contract alert. Returns the write's index in ``d.ops``."""
        rec.state = state
        rec.rev += 1
        if publish:
            rec.t = t
            rec.recommended_units = [] if state == "resolved" else self.rank_units(rec.lat, rec.lon)
        alert = rec.to_alert()
        alert_json = _enc.encode(alert)
        fields = {
            "alert": alert_json.decode(),
            "record": _enc.encode(rec).decode(),
            "state": state,
            "kind": rec.kind,
            "priority": str(rec.priority),
            "t": repr(rec.t),
        }
        audit = {
            "alert_id": rec.alert_id,
            "rev": str(rec.rev),
            "event": event,
            "state": state,
            "who": who,
            "why": why,
            "t": repr(t),
            "priority": str(rec.priority),
            "summary": rec.summary,
        }
        d.ops.append(
            AlertWrite(
                sector=rec.sector,
                alert_id=rec.alert_id,
                rev=rec.rev,
                is_open=state != "resolved",
                fields=fields,
                audit=audit,
            )
        )
        idx = len(d.ops) - 1
        if publish:
            d.alerts.append(alert)
            d.publishes.append(Publish(alert_topic(rec.sector), alert_json, 1, idx))
            d.counters["alerts_published"] += 1
        return idx

    # -- CCP ---------------------------------------------------------------------------------------

    def _ccp(self, rec: AlertRecord, u: TrackUpdate, d: Decision) -> None:
        proposed = next(
            (unit for unit in rec.recommended_units if self.patrols[unit].team == self.site.home),
            None,
        )
        if proposed is None:
            proposed = next(iter(self.rank_units(u.lat, u.lon, count=len(self.patrols))), None)
            if proposed is not None and self.patrols[proposed].team != self.site.home:
                proposed = None
        req = CcpRequest(
            request_id="ccp-" + rec.alert_id.rsplit("-", 1)[-1],
            alert_id=rec.alert_id,
            t=u.t,
            lat=u.lat,
            lon=u.lon,
            group_size=rec.group_size,
            cls=u.cls,
            heading_deg=true_heading_deg(self.site, u.x, u.y, u.vx, u.vy),
            proposed_unit=proposed,
        )
        rec.ccp_request_id = req.request_id
        d.ccp.append(req)
        d.counters["ccp_requests"] += 1
        # the open write above is the last AlertWrite: the request goes out only with it
        idx = max(i for i, op in enumerate(d.ops) if isinstance(op, AlertWrite))
        d.publishes.append(Publish(CCP_TOPIC, _enc.encode(req), 1, idx))
