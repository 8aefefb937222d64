"""Prometheus counters of the ingest path, on a per-instance registry.

Each :class:`DriverMetrics` owns its own :class:`prometheus_client.CollectorRegistry`
(never the global one), so tests and several ingest instances do not collide. The
service exposes ``metrics.registry`` (e.g. ``prometheus_client.generate_latest``).
Label values are bounded: message types, reason codes, sensor kinds, site devices.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

_NS = "limes_ingest"
DEVICE_STATES: tuple[str, ...] = ("online", "offline", "fault", "unknown")


class DriverMetrics:
    """All ingest counters. Attribute names match the metric names without prefix."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "received", "Messages received, by message type", ["type"], namespace=_NS, registry=r
        )
        self.decoded = Counter(
            "decoded",
            "Messages decoded and accepted, by message type",
            ["type"],
            namespace=_NS,
            registry=r,
        )
        self.rejected = Counter(
            "rejected",
            "Messages rejected whole (dead letters), by reason code",
            ["reason"],
            namespace=_NS,
            registry=r,
        )
        self.events_rejected = Counter(
            "events_rejected",
            "Single events rejected inside a valid batch, by reason code",
            ["reason"],
            namespace=_NS,
            registry=r,
        )
        self.duplicates = Counter(
            "duplicate_batches",
            "Batches seen again (device, seq) and skipped",
            ["device"],
            namespace=_NS,
            registry=r,
        )
        self.lost = Counter(
            "lost_batches",
            "Batches missing at a seq gap when it was seen",
            ["device"],
            namespace=_NS,
            registry=r,
        )
        self.recovered = Counter(
            "recovered_batches",
            "Out-of-order batches that filled an earlier gap",
            ["device"],
            namespace=_NS,
            registry=r,
        )
        self.seq_resets = Counter(
            "seq_resets",
            "Seq windows reset (status online, or far regression)",
            ["cause"],
            namespace=_NS,
            registry=r,
        )
        self.late_events = Counter(
            "late_events",
            "Events that arrived later than the lateness threshold after t",
            ["kind"],
            namespace=_NS,
            registry=r,
        )
        self.events = Counter(
            "events_normalized",
            "Events normalized into measurements",
            ["kind"],
            namespace=_NS,
            registry=r,
        )
        self.device_state = Gauge(
            "device_state",
            "1 for the current effective state of each device",
            ["device", "state"],
            namespace=_NS,
            registry=r,
        )
        self.health_events = Counter(
            "health_events",
            "Device state changes, by new state",
            ["state"],
            namespace=_NS,
            registry=r,
        )
        self.coverage_loss_m = Gauge(
            "coverage_loss_m",
            "Border length (m) without fibre coverage (cuts, faults)",
            namespace=_NS,
            registry=r,
        )

    def set_device_state(self, device: str, state: str) -> None:
        """One-hot the ``device_state`` gauge of ``device``."""
        for s in DEVICE_STATES:
            self.device_state.labels(device=device, state=s).set(1.0 if s == state else 0.0)

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (``name`` with ``_total`` for counters), 0 if absent."""
        v = self.registry.get_sample_value(f"{_NS}_{name}", labels)
        return 0.0 if v is None else v
