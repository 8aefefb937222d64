"""Typed wire models (msgspec Structs) for the contract's input messages.

Range checks live in the types (``msgspec.Meta``), so one ``decode`` both parses and
validates. msgspec's JSON decoder never yields NaN or +-inf (``NaN`` is malformed JSON,
``1e999`` is "Number out of range"), so every decoded float is finite.

Optional numbers default to NaN ("absent"); JSON ``null`` is not accepted for them (the
contract says *optional*, not *nullable*), except where noted.

Two decoders exist per event kind: the *fast* one decodes a whole batch into Structs and
fails as a whole on the first bad event; the *envelope* one keeps each event as raw bytes
(:class:`msgspec.Raw`) so that a batch with a bad event can be split and the bad events
rejected alone, each with its index and reason.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct, field

NAN = math.nan
MAX_EVENTS = 10_000

Deg = Annotated[float, Meta(ge=0.0, lt=360.0)]
Conf = Annotated[float, Meta(ge=0.0, le=1.0)]
NonNeg = Annotated[float, Meta(ge=0.0)]
Pos = Annotated[float, Meta(gt=0.0)]
Lat = Annotated[float, Meta(ge=-90.0, le=90.0)]
Lon = Annotated[float, Meta(ge=-180.0, le=180.0)]
Seq = Annotated[int, Meta(ge=0)]

FibreClass = Literal["walking", "running", "digging", "vehicle", "climbing", "unknown"]
TargetClass = Literal["person", "group", "vehicle", "animal", "unknown"]
State = Literal["online", "offline", "fault"]


# -- events ---------------------------------------------------------------------------------


class FibreEvent(Struct, kw_only=True, gc=False):
    """One fibre disturbance (contract "fibre" table)."""

    t: float
    chainage_m: NonNeg
    cls: FibreClass = field(name="class")
    confidence: Conf
    extent_m: NonNeg = 10.0
    energy: float = NAN


class ThermalEvent(Struct, kw_only=True, gc=False):
    """One thermal-camera detection; ``range_m`` NaN means bearing only."""

    t: float
    bearing_deg: Deg
    bearing_sigma_deg: Pos = 0.5
    range_m: NonNeg = NAN
    range_sigma_m: Pos = NAN  # NaN: 25 % of range
    cls: TargetClass = field(name="class")
    confidence: Conf
    object_id: str | None = None


class MsvEvent(Struct, kw_only=True, gc=False):
    """One radar plot of a mobile surveillance vehicle."""

    t: float
    range_m: NonNeg
    azimuth_deg: Deg
    range_sigma_m: Pos = 15.0
    azimuth_sigma_deg: Pos = 1.0
    radial_velocity_mps: float = NAN
    cls: TargetClass = field(name="class")
    confidence: Conf


class Platform(Struct, kw_only=True, gc=False):
    """MSV platform pose at scan time."""

    lat: Lat
    lon: Lon
    heading_deg: Deg


Events = Annotated[list[msgspec.Raw], Meta(min_length=1, max_length=MAX_EVENTS)]


class FibreBatch(Struct, kw_only=True, gc=False):
    """Fast-path fibre batch."""

    device: str
    seq: Seq
    events: Annotated[list[FibreEvent], Meta(min_length=1, max_length=MAX_EVENTS)]
    sent: float = NAN
    v: int = 1


class ThermalBatch(Struct, kw_only=True, gc=False):
    """Fast-path thermal batch."""

    device: str
    seq: Seq
    events: Annotated[list[ThermalEvent], Meta(min_length=1, max_length=MAX_EVENTS)]
    sent: float = NAN
    v: int = 1


class MsvBatch(Struct, kw_only=True, gc=False):
    """Fast-path MSV batch (with the platform pose)."""

    device: str
    seq: Seq
    platform: Platform
    events: Annotated[list[MsvEvent], Meta(min_length=1, max_length=MAX_EVENTS)]
    sent: float = NAN
    v: int = 1


class Envelope(Struct, kw_only=True, gc=False):
    """Slow-path batch: the envelope typed, each event raw. ``platform`` only for MSV."""

    device: str
    seq: Seq
    events: list[msgspec.Raw]
    platform: Platform | None = None
    sent: float = NAN
    v: int = 1


class VersionProbe(Struct, gc=False):
    """Just the contract version, to tell "unsupported version" from "bad schema"."""

    v: int = 1


# -- other inputs ---------------------------------------------------------------------------


class StatusIn(Struct, kw_only=True, gc=False):
    """Device status as on the wire. ``device`` and ``t`` may be absent (last will)."""

    state: State
    device: str | None = None
    t: float | None = None
    detail: str | None = None
    lat: Lat | None = None
    lon: Lon | None = None
    heading_deg: Deg | None = None
    v: int = 1


class PatrolIn(Struct, kw_only=True, gc=False):
    """Patrol position as on the wire."""

    unit: str
    t: float
    lat: Lat
    lon: Lon
    team: str
    available: bool
    v: int = 1


class AckIn(Struct, kw_only=True, gc=False):
    """Operator acknowledgement of an alert."""

    operator: str
    t: float
    note: str | None = None
    v: int = 1


# -- decoded outputs (what the ingest result carries) ---------------------------------------


class DeviceStatus(Struct, kw_only=True, frozen=True):
    """A validated device status: ``t`` is the device's time (arrival time if it sent none)."""

    device: str
    kind: str
    t: float
    state: State
    received: float
    detail: str | None = None
    lat: float | None = None
    lon: float | None = None
    heading_deg: float | None = None


class PatrolPosition(Struct, kw_only=True, frozen=True):
    """A validated patrol position."""

    unit: str
    t: float
    lat: float
    lon: float
    team: str
    available: bool


class AlertAck(Struct, kw_only=True, frozen=True):
    """A validated operator acknowledgement; ``alert_id`` comes from the topic."""

    alert_id: str
    operator: str
    t: float
    note: str | None = None


class DeadLetter(Struct, kw_only=True, frozen=True):
    """What goes to ``limes/v1/deadletter``: contract fields, then extensions.

    Invariants: ``reason`` is ``"<code>: <detail>"`` with a non-empty code;
    ``len(payload_excerpt.encode()) <= 512``. ``events`` (extension) lists
    ``[index, reason]`` of rejected events of an otherwise valid batch (at most 100).
    """

    topic: str
    reason: str
    payload_excerpt: str
    t: float
    events: list[tuple[int, str]] | None = None

    @property
    def code(self) -> str:
        """The reason code (the part before the first colon), e.g. ``"schema"``."""
        return self.reason.split(":", 1)[0]


dead_letter_encoder = msgspec.json.Encoder()


def encode_dead_letter(dl: DeadLetter) -> bytes:
    """JSON bytes of a dead letter, ``events`` omitted when None."""
    d: dict[str, object] = {
        "topic": dl.topic,
        "reason": dl.reason,
        "payload_excerpt": dl.payload_excerpt,
        "t": dl.t,
    }
    if dl.events is not None:
        d["events"] = [{"index": i, "reason": r} for i, r in dl.events]
    return dead_letter_encoder.encode(d)
