"""The one transport-agnostic ingest path: ``Ingest.handle(topic, payload, now)``.

``handle`` is pure and synchronous (no I/O, no clock: the caller passes ``now``) and never
raises for any input bytes or topic: everything wrong becomes a :class:`DeadLetter` with a
reason ``"<code>: <detail>"``. Order of the checks (each stops at the first failure):

1. topic (contract v1 input topic, ids ``[A-Za-z0-9_-]{1,64}``, kind fibre/thermal/msv);
2. payload size (at most 1 MiB);
3. device known to the site, of the topic's kind (every sensor, MSVs included, is listed
   in the site file by id);
4. decode + types + ranges in one msgspec pass (malformed JSON, wrong types, NaN/inf,
   angles in [0, 360), confidence in [0, 1], ranges >= 0, seq int >= 0, 1..10000 events);
   ``v`` absent means 1, any other version is "unsupported contract version";
5. ``device`` / ``unit`` equal to the topic's;
6. per event: schema (split decode, only when the fast decode failed), time within 24 h of
   ``now``, chainage on the cable. Bad events are rejected alone (their index and reason
   in the dead letter); a batch with no valid event is rejected whole;
7. only then de-duplication of ``(device, seq)`` (a rejected batch does not use up its seq);
8. normalization into :data:`MEAS_DTYPE` rows, column-wise.

Reason codes: ``bad_topic``, ``unknown_kind``, ``oversize``, ``unknown_device``,
``kind_mismatch``, ``invalid_json``, ``schema``, ``unsupported_version``,
``device_mismatch``, ``empty_batch``, ``too_many_events``, ``no_valid_events``,
``partial_batch`` (some events rejected), ``time_skew``, ``bad_team``. Per event:
``schema``, ``time_skew``, ``out_of_cable``, ``non_finite``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from drivers import _deadletter, _kernels, _normalize
from drivers._dedup import DEFAULT_WINDOW, SeqVerdict, SeqWindows
from drivers._errors import PayloadError
from drivers._health import Health, HealthEvent
from drivers._metrics import DriverMetrics
from drivers._models import (
    MAX_EVENTS,
    AckIn,
    AlertAck,
    DeadLetter,
    DeviceStatus,
    Envelope,
    FibreBatch,
    FibreEvent,
    MsvBatch,
    MsvEvent,
    PatrolIn,
    PatrolPosition,
    Platform,
    StatusIn,
    ThermalBatch,
    ThermalEvent,
    VersionProbe,
)
from drivers._topics import MsgType, Route, parse_topic
from fusion.measurements import (
    FIBRE_CLASSES,
    FIBRE_TO_CLS,
    MEAS_DTYPE,
    TARGET_CLASSES,
    MeasArray,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from drivers._health import DeviceHealth
    from geo import Site

MAX_PAYLOAD_BYTES: Final = 1 << 20
MAX_SKEW_S: Final = 24 * 3600.0
CABLE_TOLERANCE_M: Final = 1.0
_TYPE_NAMES = ("events", "status", "patrol", "ack")
_ROUTE_CACHE: Final = 4096  # parsed topics kept (then forgotten all at once)

F64 = npt.NDArray[np.float64]

_EMPTY: MeasArray = np.empty(0, MEAS_DTYPE)
_EMPTY.flags.writeable = False

_FIBRE_CODE = {c: i for i, c in enumerate(FIBRE_CLASSES)}
_TARGET_CODE = {c: i for i, c in enumerate(TARGET_CLASSES)}
_G = {
    name: attrgetter(name)
    for name in (
        "t",
        "chainage_m",
        "confidence",
        "extent_m",
        "energy",
        "bearing_deg",
        "bearing_sigma_deg",
        "range_m",
        "range_sigma_m",
        "azimuth_deg",
        "azimuth_sigma_deg",
        "radial_velocity_mps",
        "object_id",
    )
}
_G_CLS = attrgetter("cls")
_FIBRE_FCODE = {c: float(i) for i, c in enumerate(FIBRE_CLASSES)}
_WHY_NON_FINITE = "non_finite: a required number is NaN or infinite"
_WHY_SKEW = "time_skew: event t is more than 24 h from now"

_FAST: dict[str, msgspec.json.Decoder[Any]] = {
    "fibre": msgspec.json.Decoder(FibreBatch),
    "thermal": msgspec.json.Decoder(ThermalBatch),
    "msv": msgspec.json.Decoder(MsvBatch),
}
_EVENT: dict[str, msgspec.json.Decoder[Any]] = {
    "fibre": msgspec.json.Decoder(FibreEvent),
    "thermal": msgspec.json.Decoder(ThermalEvent),
    "msv": msgspec.json.Decoder(MsvEvent),
}
_ENVELOPE = msgspec.json.Decoder(Envelope)
_VERSION = msgspec.json.Decoder(VersionProbe)
_STATUS = msgspec.json.Decoder(StatusIn)
_PATROL = msgspec.json.Decoder(PatrolIn)
_ACK = msgspec.json.Decoder(AckIn)


class _FibreUnit:
    """Per-unit constants of the fibre fast path (:func:`_kernels.fibre_rows`), built once."""

    __slots__ = ("geom", "params", "sensor", "why_out_of_cable")

    def __init__(self, site: Site, dev: str) -> None:
        fc = site.fibre_by_id[dev]
        b = site.border
        length = fc.cable_length_m
        self.why_out_of_cable = f"out_of_cable: chainage beyond the cable's {length:.1f} m"
        self.sensor = site.sensor_index[dev]
        k = _kernels
        p = np.empty(9, np.float64)
        p[k.U_FROM], p[k.U_TO], p[k.U_DIR] = fc.from_m, fc.to_m, fc.direction
        p[k.U_FACTOR], p[k.U_OFFSET] = fc.cable_factor, fc.offset_m
        p[k.U_MAX_CHAIN], p[k.U_MAX_SKEW] = length + CABLE_TOLERANCE_M, MAX_SKEW_S
        p[k.U_LOC_VAR] = _normalize.FIBRE_LOC_SIGMA_M**2
        p[k.U_CROSS_VAR] = _normalize.FIBRE_CROSS_SIGMA_M**2
        self.params: F64 = p
        g = np.zeros((7, len(b.cum)), np.float64)
        g[k.G_CUM] = b.cum
        g[k.G_VX], g[k.G_VY] = b.vertices[:, 0], b.vertices[:, 1]
        g[k.G_TX, :-1], g[k.G_TY, :-1] = b.tangent[:, 0], b.tangent[:, 1]
        g[k.G_HX, :-1], g[k.G_HY, :-1] = b.home_normal[:, 0], b.home_normal[:, 1]
        self.geom: F64 = g


@dataclass(slots=True)
class IngestResult:
    """What one message produced. Exactly one of these holds:

    * ``dead_letters`` has a whole-message reject (``accepted`` is False), or
    * the message was accepted: ``meas`` (events; possibly with a ``partial_batch``
      dead letter for the events rejected alone), ``status``, ``patrol`` or ``ack``; or
      it was a ``duplicate`` batch (nothing else set).

    ``meas`` is a fresh array the caller owns (a shared read-only empty one when none).
    ``health`` are the device state changes the message caused.
    """

    topic: str
    type: MsgType | None = None
    accepted: bool = False
    meas: MeasArray = field(default_factory=lambda: _EMPTY)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    status: DeviceStatus | None = None
    patrol: PatrolPosition | None = None
    ack: AlertAck | None = None
    health: list[HealthEvent] = field(default_factory=list)
    device: str = ""
    seq: int = -1
    verdict: SeqVerdict | None = None
    duplicate: bool = False
    lost: int = 0  # batches newly counted lost (seq gap) by this batch
    late: int = 0  # events later than ``late_after_s``
    rejected_events: int = 0
    sent: float = math.nan  # the batch's ``sent`` (device time), NaN when absent


class _Reject(Exception):  # noqa: N818  (internal control flow, never escapes)
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _col(evs: Sequence[object], name: str, n: int) -> F64:
    return np.fromiter(map(_G[name], evs), np.float64, n)


def _classes(evs: Sequence[object], table: dict[str, int], n: int) -> npt.NDArray[np.uint8]:
    return np.fromiter(map(table.__getitem__, map(_G_CLS, evs)), np.uint8, n)


class Ingest:
    """Validation, de-duplication, health and normalization of contract v1 input.

    Args:
        site: the deployment (devices, geometry, ``heartbeat_s``).
        started: service start time (for "never heard from" devices).
        metrics: counters to update (a fresh private registry if None).
        window: per-device de-duplication window (batches).
        late_after_s: an event whose arrival ``now`` exceeds its ``t`` by more than this is
            counted late (still processed).
    """

    def __init__(
        self,
        site: Site,
        *,
        started: float = 0.0,
        metrics: DriverMetrics | None = None,
        window: int = DEFAULT_WINDOW,
        late_after_s: float = 5.0,
    ) -> None:
        self.site = site
        self.metrics = metrics if metrics is not None else DriverMetrics()
        self.health = Health(site, started=started)
        self.windows = SeqWindows(window)
        self.late_after_s = late_after_s
        self._next_mid = 1
        self._fibre_units: dict[str, _FibreUnit] = {}
        self._routes: dict[str, Route | str] = {}
        if site.fibre:  # load the fibre kernel now, not on the first message (~1 s)
            u = self._fibre_unit(site.fibre[0].id)
            _kernels.fibre_rows(
                np.empty(0), np.empty(0, np.uint8), 0.0, 0.0, 0, 0, u.params, u.geom, FIBRE_TO_CLS
            )
        self._teams = {site.home, site.neighbour, "JOINT"}
        m = self.metrics
        self._rx = {t: m.received.labels(type=t) for t in (*_TYPE_NAMES, "invalid")}
        self._ok = {t: m.decoded.labels(type=t) for t in _TYPE_NAMES}
        self._ev = {k: m.events.labels(kind=k) for k in ("fibre", "thermal", "msv")}
        for d in site.sensor_ids:
            m.set_device_state(d, "unknown")
        self._handlers: dict[MsgType, Callable[[Route, str, bytes, float, IngestResult], None]] = {
            MsgType.EVENTS: self._events,
            MsgType.STATUS: self._status,
            MsgType.PATROL: self._patrol,
            MsgType.ACK: self._ack,
        }

    # -- public --------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes, now: float) -> IngestResult:
        """Process one message that arrived at ``now`` (epoch s). Never raises for bad input."""
        res = IngestResult(topic=topic)
        route = self._routes.get(topic)
        if route is None:
            route = parse_topic(topic)
            if len(self._routes) >= _ROUTE_CACHE:  # bounded: arbitrary topics cannot grow it
                self._routes.clear()
            self._routes[topic] = route
        if isinstance(route, str):
            self._rx["invalid"].inc()
            return self._reject(res, route, payload, now)
        res.type = route.type
        self._rx[_TYPE_NAMES[route.type]].inc()
        if len(payload) > MAX_PAYLOAD_BYTES:
            return self._reject(
                res, f"oversize: payload of {len(payload)} bytes exceeds 1 MiB", payload, now
            )
        try:
            self._handlers[route.type](route, topic, payload, now, res)
        except _Reject as r:
            return self._reject(res, r.reason, payload, now)
        self._ok[_TYPE_NAMES[route.type]].inc()
        res.accepted = True
        if res.health:
            self._count_health(res.health)
        return res

    def reject(self, topic: str, payload: bytes, reason: str, now: float) -> IngestResult:
        """A dead letter for input that never reached :meth:`handle` (e.g. a broken replay
        line), counted like the others. ``reason`` is ``"<code>: <detail>"``."""
        self._rx["invalid"].inc()
        return self._reject(IngestResult(topic=topic), reason, payload, now)

    def decode_strict(self, topic: str, payload: bytes, now: float) -> IngestResult:
        """Like :meth:`handle` but raise :class:`PayloadError` on a whole-message reject."""
        res = self.handle(topic, payload, now)
        if not res.accepted:
            raise PayloadError(topic, res.dead_letters[0].reason)
        return res

    def tick(self, now: float) -> list[HealthEvent]:
        """Heartbeat evaluation at ``now``: devices that went silent become offline."""
        events = self.health.tick(now)
        self._count_health(events)
        return events

    def snapshot(self, now: float) -> dict[str, DeviceHealth]:
        """Health of every device at ``now``, with its lost and duplicate batch counts."""
        dedup = {d: self.windows.counts(d) for d in self.site.sensor_ids}
        return self.health.snapshot(now, dedup)

    # -- internals -----------------------------------------------------------------------

    def _reject(self, res: IngestResult, reason: str, payload: bytes, now: float) -> IngestResult:
        code = reason.split(":", 1)[0]
        self.metrics.rejected.labels(reason=code).inc()
        res.accepted = False
        res.dead_letters.append(_deadletter.make(res.topic, reason, payload, now))
        return res

    def _count_health(self, events: list[HealthEvent]) -> None:
        m = self.metrics
        for ev in events:
            m.set_device_state(ev.device, ev.state)
            m.health_events.labels(state=ev.state).inc()
        m.coverage_loss_m.set(
            sum(c.border_to_m - c.border_from_m for c in self.health.coverage_losses())
        )

    def _device_kind(self, route: Route) -> None:
        kind = self.site.sensor_kind.get(route.ident)
        if kind is None:
            raise _Reject(f"unknown_device: {route.ident!r} is not in site {self.site.name!r}")
        if kind != route.kind:
            raise _Reject(
                f"kind_mismatch: {route.ident!r} is a {kind} sensor, topic says {route.kind}"
            )

    @staticmethod
    def _schema_error(payload: bytes, exc: msgspec.DecodeError) -> _Reject:
        if not isinstance(exc, msgspec.ValidationError):
            return _Reject(f"invalid_json: {exc}")
        try:
            v = _VERSION.decode(payload).v
        except msgspec.DecodeError:
            v = 1
        if v != 1:
            return _Reject(f"unsupported_version: unsupported contract version {v}")
        return _Reject(f"schema: {exc}")

    @staticmethod
    def _check_version(v: int) -> None:
        if v != 1:
            raise _Reject(f"unsupported_version: unsupported contract version {v}")

    def _check_time(self, t: float, now: float) -> None:
        if not abs(t - now) <= MAX_SKEW_S:
            raise _Reject(f"time_skew: t={t} is more than 24 h from now={now}")

    # events ------------------------------------------------------------------------------

    def _events(
        self, route: Route, topic: str, payload: bytes, now: float, res: IngestResult
    ) -> None:
        self._device_kind(route)
        kind, dev = route.kind, route.ident
        rejects: list[tuple[int, str]] = []
        try:
            batch = _FAST[kind].decode(payload)
        except msgspec.DecodeError as exc:
            if not isinstance(exc, msgspec.ValidationError):
                raise _Reject(f"invalid_json: {exc}") from None
            self._events_split(route, topic, payload, now, res)
            return
        if batch.v != 1:
            self._check_version(batch.v)
        if batch.device != dev:
            raise _Reject(f"device_mismatch: payload device {batch.device!r} on topic of {dev!r}")
        res.sent = batch.sent
        if kind == "fibre":
            self._fibre_fast(dev, topic, payload, now, res, batch.events, batch.seq)
            return
        self._events_cols(
            kind,
            dev,
            topic,
            payload,
            now,
            res,
            batch.events,
            None,
            rejects,
            batch.seq,
            getattr(batch, "platform", None),
        )

    def _events_split(
        self, route: Route, topic: str, payload: bytes, now: float, res: IngestResult
    ) -> None:
        """The batch failed the fast decode: decode the envelope, then each event alone."""
        kind, dev = route.kind, route.ident
        try:
            env = _ENVELOPE.decode(payload)
        except msgspec.DecodeError as exc2:
            raise self._schema_error(payload, exc2) from None
        self._check_version(env.v)
        if env.device != dev:
            raise _Reject(f"device_mismatch: payload device {env.device!r} on topic of {dev!r}")
        res.sent = env.sent
        if not env.events:
            raise _Reject("empty_batch: a batch holds 1 to 10000 events, got 0")
        if len(env.events) > MAX_EVENTS:
            raise _Reject(
                f"too_many_events: a batch holds 1 to 10000 events, got {len(env.events)}"
            )
        if kind == "msv" and env.platform is None:
            raise _Reject("schema: Object missing required field `platform`")
        evs: list[Any] = []
        good_i: list[int] = []
        rejects: list[tuple[int, str]] = []
        dec = _EVENT[kind]
        for i, raw in enumerate(env.events):
            try:
                evs.append(dec.decode(raw))
                good_i.append(i)
            except msgspec.DecodeError as e:
                rejects.append((i, f"schema: {e}"))
        idx = np.asarray(good_i, np.intp)
        self._events_cols(
            kind, dev, topic, payload, now, res, evs, idx, rejects, env.seq, env.platform
        )

    def _fibre_unit(self, dev: str) -> _FibreUnit:
        unit = self._fibre_units.get(dev)
        if unit is None:
            unit = self._fibre_units[dev] = _FibreUnit(self.site, dev)
        return unit

    def _fibre_fast(
        self,
        dev: str,
        topic: str,
        payload: bytes,
        now: float,
        res: IngestResult,
        evs: list[Any],
        seq: int,
    ) -> None:
        """Fibre batch that decoded whole: validate + normalize in one kernel pass.

        Same checks, order, reasons, counters and rows as :meth:`_events_cols` (the
        general path, which the tests compare it with).
        """
        n = len(evs)
        u = self._fibre_unit(dev)
        code = _FIBRE_FCODE
        vals = np.array(
            [
                v
                for e in evs
                for v in (e.t, e.chainage_m, e.confidence, e.extent_m, e.energy, code[e.cls])
            ],
            np.float64,
        )
        reason = np.empty(n, np.uint8)
        out, late = _kernels.fibre_rows(
            vals,
            reason,
            now,
            self.late_after_s,
            u.sensor,
            self._next_mid,
            u.params,
            u.geom,
            FIBRE_TO_CLS,
        )
        kept = len(out)
        rejects: list[tuple[int, str]] = []
        if kept < n:
            why = ("", _WHY_NON_FINITE, _WHY_SKEW, u.why_out_of_cable)
            rejects = [(i, why[reason[i]]) for i in np.flatnonzero(reason).tolist()]
        self._count_rejects(rejects)
        if not self._accept(res, topic, payload, now, dev, seq, kept, rejects):
            return
        self._next_mid += kept
        self._late(res, "fibre", late)
        res.meas = out
        self._ev["fibre"].inc(kept)

    def _count_rejects(self, rejects: list[tuple[int, str]]) -> None:
        for _, why in rejects:
            self.metrics.events_rejected.labels(reason=why.split(":", 1)[0]).inc()

    def _accept(
        self,
        res: IngestResult,
        topic: str,
        payload: bytes,
        now: float,
        dev: str,
        seq: int,
        n: int,
        rejects: list[tuple[int, str]],
    ) -> bool:
        """After validation: no valid event rejects the batch; then de-duplication, gap and
        partial-batch accounting and liveness. False for a duplicate (nothing more to do)."""
        if n == 0:
            listed = "; ".join(f"[{i}] {r}" for i, r in rejects[:5])
            raise _Reject(f"no_valid_events: all {len(rejects)} events rejected: {listed}")
        verdict, lost = self.windows.check(dev, seq, res.sent)
        res.device, res.seq, res.verdict = dev, seq, verdict
        m = self.metrics
        if verdict is SeqVerdict.DUPLICATE:
            res.duplicate = True
            m.duplicates.labels(device=dev).inc()
            return False
        if lost:
            res.lost = lost
            m.lost.labels(device=dev).inc(lost)
        if verdict is SeqVerdict.LATE:
            m.recovered.labels(device=dev).inc()
        elif verdict is SeqVerdict.RESTART:
            m.seq_resets.labels(cause="regress").inc()
        if rejects:
            res.rejected_events = len(rejects)
            listed = "; ".join(f"[{i}] {r}" for i, r in rejects[:5])
            res.dead_letters.append(
                _deadletter.make(
                    topic,
                    f"partial_batch: {len(rejects)} of {n + len(rejects)} events rejected: "
                    + listed,
                    payload,
                    now,
                    rejects,
                )
            )
        res.health = self.health.seen(dev, now)
        return True

    def _late(self, res: IngestResult, kind: str, late: int) -> None:
        if late:
            res.late = late
            self.metrics.late_events.labels(kind=kind).inc(late)

    def _events_cols(
        self,
        kind: str,
        dev: str,
        topic: str,
        payload: bytes,
        now: float,
        res: IngestResult,
        evs: list[Any],
        idx: npt.NDArray[np.intp] | None,
        rejects: list[tuple[int, str]],
        seq: int,
        platform: Platform | None,
    ) -> None:
        """The general, column-wise path (every kind; fibre batches that needed a split)."""
        n = len(evs)
        if kind == "fibre":
            cols = self._fibre_cols(evs, n)
        elif kind == "thermal":
            cols = self._thermal_cols(evs, n)
        else:
            cols = self._msv_cols(evs, n)
        t = cols["t"]
        bad = np.zeros(n, np.bool_)
        reasons: list[tuple[npt.NDArray[np.bool_], str]] = []
        finite = np.ones(n, np.bool_)
        for name, col in cols.items():
            if col.dtype.kind == "f" and name not in ("energy", "range_m", "range_sigma_m", "vr"):
                finite &= np.isfinite(col)
        reasons.append((~finite, _WHY_NON_FINITE))
        skew = ~(np.abs(t - now) <= MAX_SKEW_S)
        reasons.append((skew, _WHY_SKEW))
        if kind == "fibre":
            u = self._fibre_unit(dev)
            off = cols["chainage_m"] > u.params[_kernels.U_MAX_CHAIN]
            reasons.append((off, u.why_out_of_cable))
        for mask, _ in reasons:
            bad |= mask
        if bad.any():
            orig = idx if idx is not None else np.arange(n)
            first: dict[int, str] = dict(rejects)
            for mask, why in reasons:
                for j in np.flatnonzero(mask).tolist():
                    first.setdefault(int(orig[j]), why)
            rejects = sorted(first.items())
            keep = ~bad
            cols = {k: c[keep] for k, c in cols.items()}
            n = int(keep.sum())
        self._count_rejects(rejects)
        if not self._accept(res, topic, payload, now, dev, seq, n, rejects):
            return
        self._late(res, kind, int(np.count_nonzero(now - cols["t"] > self.late_after_s)))
        sensor = self.site.sensor_index[dev]
        mid0 = self._next_mid
        self._next_mid += n
        c = cols
        if kind == "fibre":
            res.meas = _normalize.fibre(
                self.site,
                dev,
                sensor,
                c["t"],
                c["chainage_m"],
                c["cls"].astype(np.uint8),
                c["confidence"],
                c["extent_m"],
                c["energy"],
                mid0,
            )
        elif kind == "thermal":
            res.meas = _normalize.thermal(
                self.site,
                dev,
                sensor,
                self.health.camera_origin(dev),
                c["t"],
                c["bearing_deg"],
                c["bearing_sigma_deg"],
                c["range_m"],
                c["range_sigma_m"],
                c["cls"].astype(np.uint8),
                c["confidence"],
                c["obj"].astype(np.int64),
                mid0,
            )
        else:
            assert platform is not None  # the MSV decoders require it
            self.health.platform(
                dev, platform.lat, platform.lon, platform.heading_deg, float(c["t"].max())
            )
            res.meas = _normalize.msv(
                self.site,
                sensor,
                platform.lat,
                platform.lon,
                c["t"],
                c["range_m"],
                c["azimuth_deg"],
                c["range_sigma_m"],
                c["azimuth_sigma_deg"],
                c["vr"],
                c["cls"].astype(np.uint8),
                c["confidence"],
                mid0,
            )
        self._ev[kind].inc(n)

    @staticmethod
    def _fibre_cols(evs: list[Any], n: int) -> dict[str, npt.NDArray[Any]]:
        return {
            "t": _col(evs, "t", n),
            "chainage_m": _col(evs, "chainage_m", n),
            "confidence": _col(evs, "confidence", n),
            "extent_m": _col(evs, "extent_m", n),
            "energy": _col(evs, "energy", n),
            "cls": _classes(evs, _FIBRE_CODE, n),
        }

    @staticmethod
    def _thermal_cols(evs: list[Any], n: int) -> dict[str, npt.NDArray[Any]]:
        ids = list(map(_G["object_id"], evs))
        obj = (
            np.fromiter(map(_normalize.object_hash, ids), np.int64, n)
            if any(ids)
            else np.zeros(n, np.int64)
        )
        return {
            "t": _col(evs, "t", n),
            "bearing_deg": _col(evs, "bearing_deg", n),
            "bearing_sigma_deg": _col(evs, "bearing_sigma_deg", n),
            "range_m": _col(evs, "range_m", n),
            "range_sigma_m": _col(evs, "range_sigma_m", n),
            "confidence": _col(evs, "confidence", n),
            "cls": _classes(evs, _TARGET_CODE, n),
            "obj": obj,
        }

    @staticmethod
    def _msv_cols(evs: list[Any], n: int) -> dict[str, npt.NDArray[Any]]:
        return {
            "t": _col(evs, "t", n),
            "range_m": _col(evs, "range_m", n),
            "azimuth_deg": _col(evs, "azimuth_deg", n),
            "range_sigma_m": _col(evs, "range_sigma_m", n),
            "azimuth_sigma_deg": _col(evs, "azimuth_sigma_deg", n),
            "vr": _col(evs, "radial_velocity_mps", n),
            "confidence": _col(evs, "confidence", n),
            "cls": _classes(evs, _TARGET_CODE, n),
        }

    # status / patrol / ack ---------------------------------------------------------------

    def _status(
        self, route: Route, topic: str, payload: bytes, now: float, res: IngestResult
    ) -> None:
        self._device_kind(route)
        try:
            st = _STATUS.decode(payload)
        except msgspec.DecodeError as exc:
            raise self._schema_error(payload, exc) from None
        self._check_version(st.v)
        dev = route.ident
        if st.device is not None and st.device != dev:
            raise _Reject(f"device_mismatch: payload device {st.device!r} on topic of {dev!r}")
        t = now if st.t is None else st.t
        self._check_time(t, now)
        if (st.lat is None) != (st.lon is None):
            raise _Reject("schema: lat and lon come together")
        out = DeviceStatus(
            device=dev,
            kind=route.kind,
            t=t,
            state=st.state,
            received=now,
            detail=st.detail,
            lat=st.lat,
            lon=st.lon,
            heading_deg=st.heading_deg,
        )
        if st.state == "online":
            self.windows.reset(dev, t)
            self.metrics.seq_resets.labels(cause="online").inc()
        res.device, res.status = dev, out
        res.health = self.health.status(out)

    def _patrol(
        self, route: Route, topic: str, payload: bytes, now: float, res: IngestResult
    ) -> None:
        try:
            p = _PATROL.decode(payload)
        except msgspec.DecodeError as exc:
            raise self._schema_error(payload, exc) from None
        self._check_version(p.v)
        if p.unit != route.ident:
            raise _Reject(f"device_mismatch: payload unit {p.unit!r} on topic of {route.ident!r}")
        if p.team not in self._teams:
            raise _Reject(f"bad_team: team {p.team!r} is not one of {sorted(self._teams)}")
        self._check_time(p.t, now)
        res.device = p.unit
        res.patrol = PatrolPosition(
            unit=p.unit, t=p.t, lat=p.lat, lon=p.lon, team=p.team, available=p.available
        )

    def _ack(self, route: Route, topic: str, payload: bytes, now: float, res: IngestResult) -> None:
        try:
            a = _ACK.decode(payload)
        except msgspec.DecodeError as exc:
            raise self._schema_error(payload, exc) from None
        self._check_version(a.v)
        self._check_time(a.t, now)
        res.ack = AlertAck(alert_id=route.ident, operator=a.operator, t=a.t, note=a.note)
