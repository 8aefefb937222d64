"""Typed messages of the alert side: engine inputs, contract outputs, store operations.

Inputs are decoded from contract JSON (unknown fields ignored, as the contract says);
outputs encode to exactly the contract's field names. Extensions are marked as such.

Engine inputs: :class:`TrackUpdate`, :class:`HealthEvent`, :class:`Ack`,
:class:`OperatorAction`, :class:`PatrolPosition`, :class:`TrackMerge`, :class:`Tick`.

Engine outputs (:class:`Decision`): :class:`Alert` transitions, store operations
(:class:`AlertWrite`, :class:`PatrolWrite`) as data, :class:`Publish` messages
(alerts, :class:`TaskingOrder`, :class:`CcpRequest`) and counter increments.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Literal, TypeAlias

import msgspec
from msgspec import Meta, Struct

# Acks and patrol positions are decoded and validated once, by the drivers (topic, schema,
# ranges, unit/topic match); the engine takes those structs as they are.
from drivers import AlertAck as Ack
from drivers import PatrolPosition

__all__ = [
    "Ack",
    "Alert",
    "AlertKind",
    "AlertRecord",
    "AlertState",
    "AlertWrite",
    "CcpRequest",
    "Decision",
    "HealthEvent",
    "Input",
    "OperatorAction",
    "PatrolPosition",
    "PatrolWrite",
    "Publish",
    "StoreOp",
    "TaskingOrder",
    "Tick",
    "TrackMerge",
    "TrackUpdate",
    "decode_track",
]

AlertKind = Literal["crossing", "approach", "digging", "vehicle", "loitering", "sensor_fault"]
AlertState = Literal["open", "acknowledged", "escalated", "resolved"]
KINDS: tuple[AlertKind, ...] = (
    "crossing",
    "approach",
    "digging",
    "vehicle",
    "loitering",
    "sensor_fault",
)

Lat = Annotated[float, Meta(ge=-90.0, le=90.0)]
Lon = Annotated[float, Meta(ge=-180.0, le=180.0)]


# -- inputs ------------------------------------------------------------------------------------


class TrackUpdate(Struct, kw_only=True, gc=False):
    """A contract track update (service output of fusion, input of the alert rules).

    Extensions: ``merged_into`` (this track ended by merging into that one) and
    ``group_size`` (people in a ``group`` track, when fusion knows it).
    """

    t: float
    track_id: str
    lat: Lat
    lon: Lon
    x: float
    y: float
    vx: float = 0.0
    vy: float = 0.0
    pos_sigma_m: float = 10.0
    cls: str = msgspec.field(name="class", default="unknown")
    class_p: float = 0.0
    status: Literal["tentative", "confirmed", "lost"]
    sector: str = ""
    side: str
    border_dist_m: float
    sensors: list[str] = msgspec.field(default_factory=list)
    merged_into: str | None = None
    group_size: int | None = None


class HealthEvent(Struct, kw_only=True, gc=False):
    """A device's health changed at ``t`` (from the drivers' health registry).

    ``state`` ``offline`` (last will, or silence past ``heartbeat_s``) and ``fault``
    raise a ``sensor_fault``; ``online`` resolves it; ``unknown`` is ignored.
    A fibre ``detail`` ``"cut at X"`` names the cut's cable chainage.
    """

    t: float
    device: str
    state: Literal["online", "offline", "fault", "unknown"]
    detail: str | None = None


class OperatorAction(Struct, kw_only=True, gc=False):
    """An operator's action on an alert (console / service API): who, when, why.

    ``assign`` needs ``unit`` and sends it a tasking order.
    """

    alert_id: str
    action: Literal["ack", "escalate", "resolve", "assign"]
    who: str
    t: float
    why: str = ""
    unit: str | None = None


class TrackMerge(Struct, kw_only=True, gc=False):
    """Fusion merged track ``old_track_id`` into ``new_track_id`` at ``t``."""

    t: float
    old_track_id: str
    new_track_id: str


class Tick(Struct, kw_only=True, gc=False):
    """Clock tick: event time ``t`` has been reached (escalations, clean-up)."""

    t: float


Input: TypeAlias = (
    TrackUpdate | HealthEvent | Ack | OperatorAction | PatrolPosition | TrackMerge | Tick
)

_track_dec = msgspec.json.Decoder(TrackUpdate)


def decode_track(payload: bytes) -> TrackUpdate:
    """Decode a contract track update (raises ``msgspec.DecodeError``)."""
    return _track_dec.decode(payload)


# -- outputs -----------------------------------------------------------------------------------


class Alert(Struct, kw_only=True, gc=False):
    """A contract alert: one object per state change, exactly the contract's fields.

    ``track_id`` is null for alerts not tied to a track (``sensor_fault``, rate-limit
    overflow).
    """

    alert_id: str
    t: float
    kind: AlertKind
    priority: int
    state: AlertState
    track_id: str | None
    lat: float
    lon: float
    sector: str
    summary: str
    sensors: list[str]
    recommended_units: list[str]


class TaskingOrder(Struct, kw_only=True, gc=False):
    """Tasking order on ``limes/v1/tasking/{unit}`` (extension defined here).

    ``t`` is the time of the assignment; ``lat``/``lon`` the alert's latest position
    (WGS84); ``assigned_by`` the operator, or ``auto`` for auto-dispatch.
    """

    v: int = 1
    unit: str
    alert_id: str
    t: float
    lat: float
    lon: float
    kind: AlertKind
    priority: int
    summary: str
    assigned_by: str


class CcpRequest(Struct, kw_only=True, gc=False):
    """Joint-patrol request on ``limes/v1/ccp/outbox`` (extension defined here).

    Only fields that may be shared across the border: position (WGS84), time, group
    size, class, heading (degrees from true north, null when not moving) and the home
    unit proposed for the joint patrol (null when none is available).
    """

    v: int = 1
    request_id: str
    alert_id: str
    t: float
    lat: float
    lon: float
    group_size: int
    cls: str = msgspec.field(name="class")
    heading_deg: float | None
    proposed_unit: str | None


class AlertRecord(Struct, kw_only=True):
    """The engine's full state of one alert (stored with it, so a restart can resume).

    Invariants: ``rev`` counts state writes (1 at ``open``) and only grows; ``state``
    ``resolved`` is final; ``members`` holds every track id keyed to this alert.
    """

    alert_id: str
    kind: AlertKind
    sector: str
    state: AlertState
    priority: int
    track_id: str | None
    lat: float
    lon: float
    x: float
    y: float
    summary: str
    sensors: list[str]
    recommended_units: list[str]
    opened_t: float
    t: float
    last_activity_t: float
    rev: int = 0
    members: list[str] = msgspec.field(default_factory=list)
    group_size: int = 1
    cls: str = "unknown"
    class_p: float = 0.0
    corroborated: bool = True
    chain: float | None = None
    device: str | None = None
    overflow: dict[str, int] = msgspec.field(default_factory=dict)
    acked_by: str | None = None
    acked_t: float | None = None
    escalated_by: str | None = None
    escalated_t: float | None = None
    resolved_by: str | None = None
    resolved_t: float | None = None
    resolved_why: str | None = None
    assigned_unit: str | None = None
    assigned_by: str | None = None
    ccp_request_id: str | None = None

    def to_alert(self) -> Alert:
        """The contract alert object for the current state."""
        return Alert(
            alert_id=self.alert_id,
            t=self.t,
            kind=self.kind,
            priority=self.priority,
            state=self.state,
            track_id=self.track_id,
            lat=self.lat,
            lon=self.lon,
            sector=self.sector,
            summary=self.summary,
            sensors=list(self.sensors),
            recommended_units=list(self.recommended_units),
        )


# -- store operations (data, executed by a store) ----------------------------------------------


class AlertWrite(Struct, kw_only=True, gc=False):
    """Write one alert revision: hash fields, one audit entry, open-set membership.

    A store applies it only if its stored ``rev`` is lower (idempotent replay) and
    applies the three parts atomically.
    """

    sector: str
    alert_id: str
    rev: int
    is_open: bool
    fields: dict[str, str]
    audit: dict[str, str]


class PatrolWrite(Struct, kw_only=True, gc=False):
    """Store a patrol's latest position (GEO set) and attributes (hash)."""

    unit: str
    t: float
    lat: float
    lon: float
    team: str
    available: bool


StoreOp: TypeAlias = AlertWrite | PatrolWrite


@dataclass(frozen=True, slots=True)
class Publish:
    """An MQTT message to publish after the store ops; ``requires`` names the index of
    the :class:`AlertWrite` in :attr:`Decision.ops` that must have been applied (so a
    replayed, already-stored change is not published twice)."""

    topic: str
    payload: bytes
    qos: int = 1
    requires: int | None = None


@dataclass(slots=True)
class Decision:
    """What the engine decided for one input: transitions, writes, messages, counters.

    ``rejected`` is a reason when the input was refused (unknown alert, bad action).
    """

    alerts: list[Alert] = field(default_factory=list)
    ops: list[StoreOp] = field(default_factory=list)
    publishes: list[Publish] = field(default_factory=list)
    tasking: list[TaskingOrder] = field(default_factory=list)
    ccp: list[CcpRequest] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    rejected: str | None = None

    def extend(self, other: Decision) -> None:
        """Append ``other`` (re-basing its ``requires`` indices)."""
        base = len(self.ops)
        self.alerts.extend(other.alerts)
        self.ops.extend(other.ops)
        for p in other.publishes:
            req = None if p.requires is None else p.requires + base
            self.publishes.append(Publish(p.topic, p.payload, p.qos, req))
        self.tasking.extend(other.tasking)
        self.ccp.extend(other.ccp)
        self.counters.update(other.counters)
        if other.rejected is not None:
            self.rejected = other.rejected
