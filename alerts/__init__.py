"""Alerts: rules on tracks and device health, one alert per intrusion, lifecycle in a
store (Redis or memory), patrol tasking, Common Contact Point requests, CoT for TAK.

The decision logic is pure: :class:`AlertEngine` turns one input into a
:class:`Decision` (alert transitions, store writes as data, messages to publish);
:class:`AlertService` applies the writes, then publishes. See ``docs/alerts.md``.
"""

from alerts._errors import AlertError, CotSendError, PayloadError, StoreError
from alerts.cot import CotSender, alert_event, track_event
from alerts.lifecycle import AlertEngine, alert_id_for, alert_topic, priority_for, tasking_topic
from alerts.memory_store import MemoryAlertStore
from alerts.model import (
    Ack,
    Alert,
    AlertRecord,
    AlertWrite,
    CcpRequest,
    Decision,
    HealthEvent,
    Input,
    OperatorAction,
    PatrolPosition,
    PatrolWrite,
    Publish,
    StoreOp,
    TaskingOrder,
    Tick,
    TrackMerge,
    TrackUpdate,
    decode_track,
)
from alerts.service import AlertService, Publisher
from alerts.store import AlertStore, RedisAlertStore, StoreWrapper
from geo.site import AlertSettings

__all__ = [
    "Ack",
    "Alert",
    "AlertEngine",
    "AlertError",
    "AlertRecord",
    "AlertService",
    "AlertSettings",
    "AlertStore",
    "AlertWrite",
    "CcpRequest",
    "CotSendError",
    "CotSender",
    "Decision",
    "HealthEvent",
    "Input",
    "MemoryAlertStore",
    "OperatorAction",
    "PatrolPosition",
    "PatrolWrite",
    "PayloadError",
    "Publish",
    "Publisher",
    "RedisAlertStore",
    "StoreError",
    "StoreOp",
    "StoreWrapper",
    "TaskingOrder",
    "Tick",
    "TrackMerge",
    "TrackUpdate",
    "alert_event",
    "alert_id_for",
    "alert_topic",
    "decode_track",
    "priority_for",
    "tasking_topic",
    "track_event",
]
