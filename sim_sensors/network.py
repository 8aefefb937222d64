"""Devices and the network: batches, seq, status and heartbeats, then delivery effects.

Device behaviour (contract "Event batch", "Device status"):

* a fibre unit sends one batch per ``fibre_batch_s`` window holding events, a camera
  one per frame, an MSV one per scan (with ``platform``); at most 2,000 events per
  batch (well under the 1 MiB payload limit); ``seq`` starts at 1 and grows by one per
  batch per device, in sending order; ``sent`` is the end of the window plus
  ``U(0.05, 0.3)`` s;
* every device publishes a retained status ``online`` at scenario start, and again
  every ``heartbeat_s`` (default: the site's ``heartbeat_s / 3``) as liveness, MSVs
  with their pose; after a fibre cut the unit's status is ``fault`` with
  ``detail "cut at X"``;
* a camera going offline: ``status`` publishes ``offline`` then falls silent;
  ``will`` falls silent and the broker publishes its last will ``{"state":"offline"}``
  ``will_delay_s`` later; ``silence`` only falls silent.

Delivery of event batches: arrival ``= sent + 0.02 + Exp(0.05 s)``; a
``late_fraction`` of batches is delayed by a lognormal (median 8 s, sigma 0.8, clipped
to 2-60 s), and ``late_minutes_fraction`` of those by ``U(60, 300)`` s instead; a
``duplicate_fraction`` is delivered twice (QoS 1), the copy ``U(0.1, 3)`` s later.
``malformed_count`` extra payloads are injected next to real batches of a device,
cycling through ``bad_json`` (the batch truncated; arrives just before it),
``wrong_device`` (``device`` not the topic's; just before), ``nan`` (a ``NaN`` literal
in an event, not JSON; just after) and ``not_object`` (a JSON array).
Statuses and patrol positions arrive 0.02-0.1 s after they are sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim_sensors.sensors import DeviceStream

F64 = npt.NDArray[np.float64]

MAX_EVENTS_PER_BATCH = 2000
MALFORMED_KINDS = ("bad_json", "wrong_device", "nan", "not_object")


@dataclass
class Outbox:
    """Messages before delivery: sent time, topic, payload, label (parallel lists)."""

    sent: list[float]
    topic: list[str]
    payload: list[bytes]
    label: list[str]
    device: list[str]

    @classmethod
    def empty(cls) -> Outbox:
        return cls([], [], [], [], [])

    def add(self, sent: float, topic: str, payload: bytes, label: str, device: str) -> None:
        self.sent.append(sent)
        self.topic.append(topic)
        self.payload.append(payload)
        self.label.append(label)
        self.device.append(device)


def events_topic(kind: str, device: str) -> str:
    """``limes/v1/sensors/{kind}/{device}/events``."""
    return f"limes/v1/sensors/{kind}/{device}/events"


def status_topic(kind: str, device: str) -> str:
    """``limes/v1/sensors/{kind}/{device}/status``."""
    return f"limes/v1/sensors/{kind}/{device}/status"


def batch_stream(
    stream: DeviceStream,
    rng: np.random.Generator,
    start_t: float,
    window_s: float,
    t_stop: float,
) -> tuple[list[float], list[bytes], list[int]]:
    """Batches of one device: ``(sent, payload, seq)`` in sending order.

    Events with the same key (window/frame/scan) form one batch, ordered by time; events
    at or after ``t_stop`` (device gone) are dropped.
    """
    keep = np.flatnonzero(stream.t < t_stop)
    order = keep[np.lexsort((stream.t[keep], stream.key[keep]))]
    keys = stream.key[order]
    if len(keys) == 0:
        return [], [], []
    cut = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut, [len(keys)]])
    ev = [stream.json[i] for i in order.tolist()]
    sent_all: list[float] = []
    payloads: list[bytes] = []
    seqs: list[int] = []
    seq = 0
    delays = rng.uniform(0.05, 0.3, len(starts))
    head = f'{{"v":1,"device":"{stream.device}","seq":'
    for b, (a, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        key = int(keys[a])
        sent = start_t + (key + 1) * window_s + float(delays[b])
        plat = stream.platform.get(key)
        extra = f',"platform":{plat}' if plat is not None else ""
        for lo in range(a, e, MAX_EVENTS_PER_BATCH):
            hi = min(e, lo + MAX_EVENTS_PER_BATCH)
            seq += 1
            body = ",".join(ev[lo:hi])
            text = f'{head}{seq},"sent":{sent:.3f}{extra},"events":[{body}]}}'
            sent_all.append(sent)
            payloads.append(text.encode())
            seqs.append(seq)
    return sent_all, payloads, seqs


def status_payload(
    device: str,
    t: float,
    state: str,
    detail: str | None = None,
    pose: tuple[float, float, float] | None = None,
) -> bytes:
    """A device status message (contract "Device status")."""
    parts = [f'{{"v":1,"device":"{device}","t":{t:.3f},"state":"{state}"']
    if detail is not None:
        parts.append(f',"detail":"{detail}"')
    if pose is not None:
        lat, lon, hdg = pose
        parts.append(f',"lat":{lat:.7f},"lon":{lon:.7f},"heading_deg":{hdg:.1f}')
    parts.append("}")
    return "".join(parts).encode()


@dataclass
class Delivered:
    """Messages as the broker delivers them (parallel lists, arrival order)."""

    arrival: F64
    topic: list[str]
    payload: list[bytes]
    label: list[str]


def deliver(
    out: Outbox,
    rng: np.random.Generator,
    *,
    late_fraction: float,
    late_minutes_fraction: float,
    duplicate_fraction: float,
    malformed_count: int,
) -> Delivered:
    """Apply latency, lateness, duplicates and malformed payloads; sort by arrival."""
    sent = np.asarray(out.sent, np.float64)
    n = len(sent)
    is_batch = np.array([lab == "events" for lab in out.label], bool)
    arrival = sent + np.where(is_batch, 0.02 + rng.exponential(0.05, n), rng.uniform(0.02, 0.1, n))
    labels = list(out.label)
    late = is_batch & (rng.random(n) < late_fraction)
    minutes = late & (rng.random(n) < late_minutes_fraction)
    secs = np.clip(8.0 * np.exp(0.8 * rng.standard_normal(n)), 2.0, 60.0)
    arrival = np.where(late, arrival + np.where(minutes, rng.uniform(60, 300, n), secs), arrival)
    for i in np.flatnonzero(late).tolist():
        labels[i] = "events:late"
    topics = list(out.topic)
    payloads = list(out.payload)
    extra_arr: list[float] = []
    # duplicates (QoS 1 redelivery of the same bytes)
    dup = np.flatnonzero(is_batch & (rng.random(n) < duplicate_fraction))
    dgap = rng.uniform(0.1, 3.0, len(dup))
    for i, g in zip(dup.tolist(), dgap.tolist(), strict=True):
        extra_arr.append(float(arrival[i]) + g)
        topics.append(topics[i])
        payloads.append(payloads[i])
        labels.append("events:duplicate")
    # malformed payloads next to real batches
    batches = np.flatnonzero(is_batch & ~late)
    if malformed_count and len(batches):
        pick = np.sort(rng.choice(batches, size=min(malformed_count, len(batches)), replace=False))
        for j, i in enumerate(pick.tolist()):
            kind = MALFORMED_KINDS[j % len(MALFORMED_KINDS)]
            p = payloads[i]
            dev = out.device[i]
            if kind == "bad_json":
                bad, at = p[: len(p) // 2], float(arrival[i]) - 0.005
            elif kind == "wrong_device":
                bad = p.replace(f'"device":"{dev}"'.encode(), b'"device":"NOT-THIS-ONE"', 1)
                at = float(arrival[i]) - 0.005
            elif kind == "nan":
                head, _, tail = p.partition(b'"events":[{"t":')
                num_end = min(k for k in (tail.find(b","), tail.find(b"}")) if k >= 0)
                bad = head + b'"events":[{"t":NaN' + tail[num_end:]
                at = float(arrival[i]) + 0.005
            else:
                bad, at = b"[1,2,3]", float(arrival[i]) - 0.005
            extra_arr.append(at)
            topics.append(topics[i])
            payloads.append(bad)
            labels.append(f"malformed:{kind}")
    arr = np.concatenate([arrival, np.asarray(extra_arr, np.float64)])
    order = np.argsort(arr, kind="stable")
    return Delivered(
        arrival=arr[order],
        topic=[topics[i] for i in order.tolist()],
        payload=[payloads[i] for i in order.tolist()],
        label=[labels[i] for i in order.tolist()],
    )


def heartbeat_times(
    rng: np.random.Generator, start_t: float, duration_s: float, period: float
) -> F64:
    """Heartbeat status times of one device: every ``period`` s from a random phase."""
    phase = float(rng.uniform(0.0, period))
    n = max(0, math.floor((duration_s - phase) / period) + 1)
    return np.asarray(start_t + phase + period * np.arange(n), np.float64)
