"""The synchronous heart of the service: ingest -> tracker -> track reports -> alert inputs.

:class:`Core` does no I/O and reads no clock: every call takes ``now`` (wall time live,
the arrival clock in a replay), so a replay of the same input gives the same output.

Data flow per message (:meth:`Core.accept`)::

    bytes --Ingest.handle--> IngestResult --+-- meas rows ----------> pending buffer
                                            +-- health / patrol / ack -> alert inputs

and per step (:meth:`Core.step`, every ``step_s`` of ``now``)::

    pending --Tracker.step(now)--> Snapshot --Reporter--> track updates (contract dicts)
                                                       -> alert inputs (TrackUpdate, Tick)

Steps run the tracker at ``now - hold_s`` (a 1 s re-ordering hold, see :class:`Core`). Rows
later than the hold are the tracker's business: up to ``oosm_after_s`` (30 s) behind it
rewinds and replays exactly; later ones get an out-of-sequence update (counted in
``CoreCounters.oosm_rows``); beyond its horizon they are counted as ``late_dropped``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from alerts import HealthEvent, Input, Tick, TrackUpdate
from drivers import HealthEvent as DriverHealthEvent
from drivers import Ingest, IngestResult
from fusion.config import TrackerConfig
from fusion.measurements import MEAS_DTYPE, MeasArray
from fusion.report import Reporter
from fusion.tracker import Tracker
from geo import Site

TRACKS_PREFIX = "limes/v1/tracks/"
DEFAULT_HOLD_S = 1.0
MAX_HOLD_S = 60.0


@dataclass(slots=True)
class StepOutput:
    """What one :meth:`Core.step` produced."""

    t: float
    tracks: list[dict[str, Any]] = field(default_factory=list)  # contract track updates
    alert_inputs: list[Input] = field(default_factory=list)
    rows: int = 0  # measurement rows fed to the tracker
    late_dropped: int = 0  # rows older than the tracker's horizon


@dataclass(slots=True)
class CoreCounters:
    """Running totals of the core (exposed by the service's metrics)."""

    steps: int = 0
    rows: int = 0
    track_updates: int = 0
    late_dropped: int = 0
    replayed_rows: int = 0
    oosm_rows: int = 0  # rows too late to rewind, applied out of sequence


def alert_inputs(res: IngestResult) -> list[Input]:
    """The alert engine's inputs from one ingest result: health changes, then the decoded
    patrol position or ack (the drivers' validated structs, as they are)."""
    inputs: list[Input] = [health_input(h) for h in res.health]
    if res.patrol is not None:
        inputs.append(res.patrol)
    if res.ack is not None:
        inputs.append(res.ack)
    return inputs


def health_input(h: DriverHealthEvent) -> HealthEvent:
    """The drivers' health change as the alert engine's input (``unknown`` kept as is)."""
    return HealthEvent(t=h.t, device=h.device, state=h.state, detail=h.detail)


class Core:
    """Ingest, tracker and reporter of one site, driven by ``accept`` and ``step``.

    Args:
        site: the deployment.
        started: service start time (epoch s; devices never heard from count from it).
        tracker_config: tracker tunables (defaults for the RO-RS site when None).
        step_s: tracker step period in ``now`` seconds (contract: track updates at least
            every ``track_report_s``, so ``step_s <= track_report_s``).
        hold_s: re-ordering hold. A step at ``now`` runs the tracker to ``now - hold_s`` on
            the rows with ``t <= now - hold_s``; newer rows wait for a later step. Devices
            batch (a fibre unit sends 1 s of events at once) and batches arrive interleaved,
            so without a hold nearly every step holds rows older than what the tracker has
            already processed and costs a rewind-and-replay. Rows later than the hold still
            rewind (correctly); the price of the hold is ``hold_s`` of latency.
    """

    def __init__(
        self,
        site: Site,
        *,
        started: float,
        tracker_config: TrackerConfig | None = None,
        step_s: float = 0.5,
        hold_s: float = DEFAULT_HOLD_S,
    ) -> None:
        if not 0 < step_s <= site.track_report_s:
            msg = f"step_s must be in (0, track_report_s={site.track_report_s}]"
            raise ValueError(msg)
        if not 0 <= hold_s <= MAX_HOLD_S:
            msg = f"hold_s must be in [0, {MAX_HOLD_S}]"
            raise ValueError(msg)
        self.site = site
        self.step_s = step_s
        self.hold_s = hold_s
        self.ingest = Ingest(site, started=started)
        self.tracker = Tracker(tracker_config, n_sensors=len(site.sensor_ids))
        self.reporter = Reporter(site)
        self.counters = CoreCounters()
        self._pending: list[MeasArray] = []
        self._next_step = -math.inf
        self._to_track = msgspec.convert

    # ------------------------------------------------------------------ messages

    def handle(self, topic: str, payload: bytes, now: float) -> tuple[IngestResult, list[Input]]:
        """Ingest one message that arrived at ``now``; see :meth:`accept`."""
        res = self.ingest.handle(topic, payload, now)
        return res, self.accept(res)

    def reject(self, topic: str, payload: bytes, reason: str, now: float) -> IngestResult:
        """Count and dead-letter input that never reached :meth:`handle` (bad replay line)."""
        return self.ingest.reject(topic, payload, reason, now)

    def accept(self, res: IngestResult) -> list[Input]:
        """Buffer the result's measurements; return its alert inputs (see :func:`alert_inputs`)."""
        if len(res.meas):
            self._pending.append(res.meas)
        return alert_inputs(res)

    def tick(self, now: float) -> list[Input]:
        """Heartbeat check: devices silent past ``heartbeat_s`` become alert inputs."""
        return [health_input(h) for h in self.ingest.tick(now)]

    # ------------------------------------------------------------------ steps

    def due(self, now: float) -> bool:
        """True when ``now`` reached the next step time."""
        return now >= self._next_step

    def next_step_at(self, now: float) -> float:
        """Time of the next step: on the ``step_s`` grid after the first step (at ``now``)."""
        return now if self._next_step == -math.inf else self._next_step

    @property
    def pending_rows(self) -> int:
        """Measurement rows waiting for the next step."""
        return sum(len(m) for m in self._pending)

    def step(self, now: float) -> StepOutput:
        """Run the tracker to ``now - hold_s`` on the rows due by then; report and feed the
        alert rules. Rows more than ``MAX_HOLD_S`` ahead of ``now`` (a device clock far
        off) are not held: the tracker gets them at once."""
        t = now - self.hold_s
        meas = (
            np.concatenate(self._pending)
            if len(self._pending) > 1
            else (self._pending[0] if self._pending else np.empty(0, MEAS_DTYPE))
        )
        self._pending = []
        if self.hold_s > 0 and len(meas):
            tm = meas["t"]
            wait = (tm > t) & (tm <= now + MAX_HOLD_S)
            if wait.any():
                self._pending = [meas[wait]]
                meas = meas[~wait]
        self._next_step = now + self.step_s
        res = self.tracker.step(t, meas)
        updates = self.reporter(res.snapshot)
        out = StepOutput(t=t, tracks=updates, rows=len(meas), late_dropped=res.late_dropped)
        out.alert_inputs = [self._to_track(u, TrackUpdate) for u in updates]
        out.alert_inputs.append(Tick(t=t))
        c = self.counters
        c.steps += 1
        c.rows += len(meas)
        c.track_updates += len(updates)
        c.late_dropped += res.late_dropped
        c.replayed_rows += res.replayed
        c.oosm_rows += res.oosm
        return out


def track_topic(update: dict[str, Any]) -> str:
    """``limes/v1/tracks/{sector}`` for a track update."""
    return TRACKS_PREFIX + str(update["sector"])
