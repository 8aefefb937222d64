"""Drivers: contract-v1 ingest from MQTT and replay files into normalized measurements.

One pure path, :meth:`Ingest.handle`, turns ``(topic, payload bytes, now)`` into an
:class:`IngestResult` (measurements, dead letters, decoded status / patrol / ack, health
events). Sources feed it: :class:`MqttDriver` (live MQTT, manual QoS 1 acks) and
:class:`ReplaySource` (JSON-lines files).
"""

from drivers._dedup import SeqVerdict
from drivers._errors import DriverConnectError, DriverError, PayloadError, ReplayError
from drivers._health import CoverageLoss, DeviceHealth, Health, HealthEvent
from drivers._ingest import MAX_PAYLOAD_BYTES, Ingest, IngestResult
from drivers._metrics import DriverMetrics
from drivers._models import (
    AlertAck,
    DeadLetter,
    DeviceStatus,
    PatrolPosition,
    encode_dead_letter,
)
from drivers._mqtt import MqttDriver, MqttSettings, MqttSource, Publisher
from drivers._replay import ReplayItem, ReplaySource
from drivers._topics import AVAILABLE_TOPIC, DEADLETTER_TOPIC, SUBSCRIPTIONS, MsgType

__all__ = [
    "AVAILABLE_TOPIC",
    "DEADLETTER_TOPIC",
    "MAX_PAYLOAD_BYTES",
    "SUBSCRIPTIONS",
    "AlertAck",
    "CoverageLoss",
    "DeadLetter",
    "DeviceHealth",
    "DeviceStatus",
    "DriverConnectError",
    "DriverError",
    "DriverMetrics",
    "Health",
    "HealthEvent",
    "Ingest",
    "IngestResult",
    "MqttDriver",
    "MqttSettings",
    "MqttSource",
    "MsgType",
    "PatrolPosition",
    "PayloadError",
    "Publisher",
    "ReplayError",
    "ReplayItem",
    "ReplaySource",
    "SeqVerdict",
    "encode_dead_letter",
]
