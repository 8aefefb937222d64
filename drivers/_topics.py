"""Parsing of the contract's MQTT topics (``limes/v1/...``) into a typed route."""

from __future__ import annotations

import re
from enum import IntEnum
from typing import NamedTuple

PREFIX = "limes/v1"
AVAILABLE_TOPIC = f"{PREFIX}/service/available"
DEADLETTER_TOPIC = f"{PREFIX}/deadletter"
#: what the service subscribes to (all QoS 1)
SUBSCRIPTIONS: tuple[str, ...] = (
    f"{PREFIX}/sensors/+/+/events",
    f"{PREFIX}/sensors/+/+/status",
    f"{PREFIX}/patrols/+/position",
    f"{PREFIX}/alerts/+/ack",
)
SENSOR_KINDS: tuple[str, ...] = ("fibre", "thermal", "msv")

_ID = r"[A-Za-z0-9_-]{1,64}"
_ID_RE = re.compile(_ID)
_SENSOR_RE = re.compile(rf"limes/v1/sensors/([^/]+)/({_ID})/(events|status)")
_PATROL_RE = re.compile(rf"limes/v1/patrols/({_ID})/position")
# alert ids are the service's own; accept any non-empty level without wildcards
_ACK_RE = re.compile(r"limes/v1/alerts/([^/+#]{1,128})/ack")


class MsgType(IntEnum):
    """What a topic carries."""

    EVENTS = 0
    STATUS = 1
    PATROL = 2
    ACK = 3


class Route(NamedTuple):
    """A parsed topic: message type, sensor kind (``""`` if none) and the id in the topic."""

    type: MsgType
    kind: str
    ident: str


def parse_topic(topic: str) -> Route | str:
    """Return the :class:`Route` of ``topic``, or a rejection reason string.

    Invariant: a returned route's ``ident`` matches ``[A-Za-z0-9_-]{1,64}`` (device and unit
    ids) and ``kind`` is one of :data:`SENSOR_KINDS` for sensor topics.
    """
    m = _SENSOR_RE.fullmatch(topic)
    if m is not None:
        kind, dev, what = m.groups()
        if kind not in SENSOR_KINDS:
            return f"unknown_kind: sensor kind {kind!r} is not one of fibre, thermal, msv"
        return Route(MsgType.EVENTS if what == "events" else MsgType.STATUS, kind, dev)
    m = _PATROL_RE.fullmatch(topic)
    if m is not None:
        return Route(MsgType.PATROL, "", m.group(1))
    m = _ACK_RE.fullmatch(topic)
    if m is not None:
        return Route(MsgType.ACK, "", m.group(1))
    return "bad_topic: not an input topic of contract v1"


def is_valid_id(ident: str) -> bool:
    """Whether ``ident`` is a valid device / unit id (``[A-Za-z0-9_-]{1,64}``)."""
    return _ID_RE.fullmatch(ident) is not None
