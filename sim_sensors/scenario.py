"""``generate(site, cfg) -> Scenario``: truth, sensor events, devices and network, seeded.

Independent random streams (``numpy.random.SeedSequence(seed).spawn``) feed the truth,
each sensor kind, the devices and the network, so changing one part of a config does
not reshuffle the others. Output files:

* replay (contract "Replay files"): one ``{"topic", "payload"}`` JSON line per MQTT
  message in arrival order; bytes that are not a JSON object go in ``payload_raw``;
* truth: JSON lines, described in ``docs/simulator.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

from geo import Site
from sim_sensors.config import ScenarioConfig
from sim_sensors.network import (
    Outbox,
    batch_stream,
    deliver,
    events_topic,
    heartbeat_times,
    status_payload,
    status_topic,
)
from sim_sensors.sensors import (
    DeviceStream,
    Faults,
    coverage,
    fibre_streams,
    msv_pose,
    msv_streams,
    thermal_streams,
)
from sim_sensors.truth import ROLES, SIM_DT, TRUTH_CLASSES, Truth, generate_truth

F64 = npt.NDArray[np.float64]


class Message(NamedTuple):
    """One MQTT message as delivered: arrival time, topic, payload bytes, label.

    ``label``: ``status``, ``heartbeat``, ``will``, ``patrol``, ``events``,
    ``events:late``, ``events:duplicate`` or ``malformed:<kind>``.
    """

    arrival: float
    topic: str
    payload: bytes
    label: str


@dataclass
class Scenario:
    """A generated scenario: its config, truth, and the delivered messages."""

    site: Site
    cfg: ScenarioConfig
    truth: Truth
    covered: npt.NDArray[np.bool_]
    faults: Faults
    messages: list[Message]
    events: list[dict[str, Any]]  # truth events (crossings, faults, ...) in time order
    n_events: dict[str, int]  # device events generated per sensor kind

    @property
    def header(self) -> dict[str, Any]:
        """The truth file's first line: what the scenario is and where."""
        cfg = self.cfg
        lo, hi = self.truth.chain_lo, self.truth.chain_hi
        instrumented = 0.0
        for fc in self.site.fibre:
            instrumented += max(0.0, min(hi, fc.to_m) - max(lo, fc.from_m))
        return {
            "type": "scenario",
            "name": cfg.name,
            "seed": cfg.seed,
            "site": self.site.name,
            "start_t": cfg.start_t,
            "end_t": cfg.start_t + cfg.duration_s,
            "duration_s": cfg.duration_s,
            "chain_from_m": round(lo, 1),
            "chain_to_m": round(hi, 1),
            "border_km": round((hi - lo) / 1000.0, 3),
            "instrumented_km": round(instrumented / 1000.0, 3),
            "truth_dt_s": cfg.truth_dt_s,
            "config": msgspec.to_builtins(cfg),
            "objects": [
                {
                    "id": oid,
                    "class": TRUTH_CLASSES[self.truth.cls[i]],
                    "role": ROLES[self.truth.role[i]],
                    "group_size": int(self.truth.group_size[i]),
                    **({"species": self.truth.species[i]} if self.truth.species[i] else {}),
                }
                for i, oid in enumerate(self.truth.ids)
            ],
        }

    def write_replay(self, path: str | Path) -> int:
        """Write the replay file; returns the number of lines."""
        with Path(path).open("wb") as f:
            for m in self.messages:
                f.write(replay_line(m.topic, m.payload))
        return len(self.messages)

    def write_truth(self, path: str | Path) -> int:
        """Write the truth file (header, events, network labels, samples); returns lines."""
        enc = msgspec.json.Encoder()
        n = 0
        with Path(path).open("wb") as f:
            f.write(enc.encode(self.header) + b"\n")
            n += 1
            for ev in self.events:
                f.write(enc.encode(ev) + b"\n")
                n += 1
            for m in self.messages:
                if m.label.startswith(("events:", "malformed:")):
                    rec = {"type": "network", "arrival": round(m.arrival, 3), "topic": m.topic,
                           "label": m.label}  # fmt: skip
                    f.write(enc.encode(rec) + b"\n")
                    n += 1
            for line in truth_sample_lines(self):
                f.write(line)
                n += 1
        return n

    def stats(self) -> dict[str, Any]:
        """Counts for a summary: messages by label, events by kind, truth by role."""
        labels: dict[str, int] = {}
        for m in self.messages:
            labels[m.label] = labels.get(m.label, 0) + 1
        roles: dict[str, int] = {}
        for r in self.truth.role.tolist():
            roles[ROLES[r]] = roles.get(ROLES[r], 0) + 1
        kinds: dict[str, int] = {}
        for ev in self.events:
            kinds[ev["type"]] = kinds.get(ev["type"], 0) + 1
        return {
            "messages": len(self.messages),
            "by_label": dict(sorted(labels.items())),
            "device_events": self.n_events,
            "truth_objects": roles,
            "truth_samples": len(self.truth.k),
            "truth_events": kinds,
        }


def replay_line(topic: str, payload: bytes) -> bytes:
    """One replay line: ``payload`` verbatim when it is a JSON object, else ``payload_raw``."""
    if payload[:1] == b"{":
        try:
            msgspec.json.decode(payload)
        except msgspec.DecodeError:
            pass
        else:
            return b'{"topic":' + msgspec.json.encode(topic) + b',"payload":' + payload + b"}\n"
    raw = payload.decode("utf-8", errors="replace")
    return msgspec.json.encode({"topic": topic, "payload_raw": raw}) + b"\n"


def truth_sample_lines(sc: Scenario) -> list[bytes]:
    """Truth samples every ``truth_dt_s`` as JSON lines, in time order."""
    tr = sc.truth
    step = round(sc.cfg.truth_dt_s / SIM_DT)
    sel = np.flatnonzero(tr.k % step == 0)
    sel = sel[np.lexsort((tr.obj[sel], tr.k[sel]))]
    lon, lat = sc.site.proj.to_lonlat(tr.x[sel], tr.y[sel])
    ids = [tr.ids[i] for i in tr.obj[sel].tolist()]
    cls = [TRUTH_CLASSES[c] for c in tr.cls[tr.obj[sel]].tolist()]
    role = [ROLES[r] for r in tr.role[tr.obj[sel]].tolist()]
    gs = tr.group_size[tr.obj[sel]].tolist()
    cov = ["true" if c else "false" for c in sc.covered[sel].tolist()]
    t = (tr.start_t + tr.k[sel] * SIM_DT).tolist()
    return [
        (
            f'{{"type":"truth","id":"{i}","t":{ti:.3f},"x":{xi:.2f},"y":{yi:.2f},'
            f'"lat":{la:.7f},"lon":{lo:.7f},"vx":{vxi:.2f},"vy":{vyi:.2f},"class":"{c}",'
            f'"group_size":{g},"role":"{r}","covered":{cv}}}\n'
        ).encode()
        for i, ti, xi, yi, la, lo, vxi, vyi, c, g, r, cv in zip(
            ids, t, tr.x[sel].tolist(), tr.y[sel].tolist(), lat.tolist(), lon.tolist(),
            tr.vx[sel].tolist(), tr.vy[sel].tolist(), cls, gs, role, cov, strict=True,
        )
    ]  # fmt: skip


def _faults(site: Site, cfg: ScenarioConfig, truth: Truth, rng: np.random.Generator) -> Faults:
    mid = 0.5 * (truth.chain_lo + truth.chain_hi)
    cut_dev: str | None = None
    cut_t = math.inf
    cut_x = math.inf
    if cfg.fibre_cut_at_s is not None and site.fibre:
        if cfg.fibre_cut_device is not None:
            if cfg.fibre_cut_device not in site.fibre_by_id:
                raise ValueError(f"fibre_cut_device {cfg.fibre_cut_device!r} not in the site")
            fc = site.fibre_by_id[cfg.fibre_cut_device]
        else:
            fc = min(site.fibre, key=lambda f: abs(0.5 * (f.from_m + f.to_m) - mid))
        cut_dev = fc.id
        cut_t = cfg.start_t + cfg.fibre_cut_at_s
        if cfg.fibre_cut_chainage_m is not None:
            cut_x = min(cfg.fibre_cut_chainage_m, fc.cable_length_m)
        else:
            a = max(fc.from_m, truth.chain_lo)
            b = min(fc.to_m, truth.chain_hi)
            s = float(rng.uniform(a + 0.3 * (b - a), a + 0.7 * (b - a)))
            cut_x = round(float(fc.cable_chainage(s)), 1)
    off_dev: str | None = None
    off_t = math.inf
    if cfg.camera_offline_at_s is not None and site.thermal:
        if cfg.camera_offline_device is not None:
            if cfg.camera_offline_device not in site.thermal_by_id:
                raise ValueError(
                    f"camera_offline_device {cfg.camera_offline_device!r} not in the site"
                )
            off_dev = cfg.camera_offline_device
        else:
            chain, _, _ = site.locate(site.thermal_xy[:, 0], site.thermal_xy[:, 1])
            inside = np.flatnonzero((chain >= truth.chain_lo) & (chain <= truth.chain_hi))
            pool = inside if len(inside) else np.arange(len(site.thermal))
            off_dev = site.thermal[int(pool[int(rng.integers(len(pool)))])].id
        off_t = cfg.start_t + cfg.camera_offline_at_s
    return Faults(cut_dev, cut_t, cut_x, off_dev, off_t)


def _fault_events(site: Site, cfg: ScenarioConfig, faults: Faults) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if faults.cut_device is not None:
        fc = site.fibre_by_id[faults.cut_device]
        x, y, chain, _, _ = site.fibre_points(fc.id, faults.cut_cable_m)
        lon, lat = site.proj.to_lonlat(x, y)
        sec = site.sector_of_chainage(chain)
        out.append({
            "type": "fibre_cut", "id": fc.id, "t": round(faults.cut_t, 3),
            "chainage_m": faults.cut_cable_m, "chain": round(float(chain), 1),
            "x": round(float(x), 2), "y": round(float(y), 2),
            "lat": round(float(lat), 7), "lon": round(float(lon), 7),
            "sector": site.sector_id(int(sec)),
        })  # fmt: skip
    if faults.offline_device is not None:
        cam = site.thermal_by_id[faults.offline_device]
        out.append({
            "type": "camera_offline", "id": cam.id, "t": round(faults.offline_t, 3),
            "mode": cfg.camera_offline_mode, "lat": cam.lat, "lon": cam.lon,
        })  # fmt: skip
    return out


def _device_messages(
    site: Site,
    cfg: ScenarioConfig,
    truth: Truth,
    streams: list[DeviceStream],
    faults: Faults,
    rng: np.random.Generator,
) -> Outbox:
    out = Outbox.empty()
    t0 = cfg.start_t
    end = cfg.start_t + cfg.duration_s
    hb = cfg.heartbeat_s if cfg.heartbeat_s is not None else site.heartbeat_s / 3.0
    kinds = {s.device: s.kind for s in streams}
    for dev, kind in site.sensor_kind.items():
        kinds.setdefault(dev, kind)
    poses: dict[str, tuple[F64, F64, F64, F64]] = {}
    for m in site.msv:
        if m.id in truth.msv_obj:
            px, py, head = msv_pose(site, truth, m.id)
            lon, lat = site.proj.to_lonlat(px, py)
            gam = site.proj.true_north_grid_az(px, py)
            hdg = np.mod(np.degrees(head - gam), 360.0)
            poses[m.id] = (lat, lon, hdg, gam)

    def pose_at(dev: str, t: float) -> tuple[float, float, float] | None:
        if dev not in poses:
            return None
        lat, lon, hdg, _ = poses[dev]
        k = min(len(lat) - 1, max(0, round((t - t0) / SIM_DT)))
        h = round(float(hdg[k]), 1)
        return float(lat[k]), float(lon[k]), 0.0 if h >= 360.0 else h

    for dev in site.sensor_ids:
        kind = kinds[dev]
        st = status_topic(kind, dev)
        out.add(t0, st, status_payload(dev, t0, "online", pose=pose_at(dev, t0)), "status", dev)
        stop = end
        if dev == faults.offline_device:
            stop = faults.offline_t
        for t in heartbeat_times(rng, t0, cfg.duration_s, hb).tolist():
            if t >= stop:
                break
            if dev == faults.cut_device and t >= faults.cut_t:
                pl = status_payload(dev, t, "fault", f"cut at {faults.cut_cable_m:.1f}")
            else:
                pl = status_payload(dev, t, "online", pose=pose_at(dev, t))
            out.add(t, st, pl, "heartbeat", dev)
        if dev == faults.cut_device:
            t = faults.cut_t + 1.0
            out.add(t, st, status_payload(dev, t, "fault", f"cut at {faults.cut_cable_m:.1f}"),
                    "status", dev)  # fmt: skip
        if dev == faults.offline_device:
            t = faults.offline_t
            if cfg.camera_offline_mode == "status":
                out.add(t, st, status_payload(dev, t, "offline", "power loss"), "status", dev)
            elif cfg.camera_offline_mode == "will":
                out.add(t + cfg.will_delay_s, st, b'{"state":"offline"}', "will", dev)
    for s in streams:
        window = cfg.fibre_batch_s if s.kind == "fibre" else SIM_DT
        stop = faults.offline_t if s.device == faults.offline_device else math.inf
        sent, pls, _ = batch_stream(s, rng, t0, window, stop)
        topic = events_topic(s.kind, s.device)
        for t, pl in zip(sent, pls, strict=True):
            out.add(t, topic, pl, "events", s.device)
    # patrol positions
    for p in site.patrols:
        if p.id not in truth.patrol_obj:
            continue
        idx = truth.object_samples(truth.patrol_obj[p.id])
        step = max(1, round(cfg.patrol_report_s / SIM_DT))
        phase = int(rng.integers(0, step))
        sel = idx[(truth.k[idx] - phase) % step == 0]
        lon, lat = site.proj.to_lonlat(truth.x[sel], truth.y[sel])
        topic = f"limes/v1/patrols/{p.id}/position"
        for k, la, lo in zip(truth.k[sel].tolist(), lat.tolist(), lon.tolist(), strict=True):
            t = t0 + k * SIM_DT
            pl = (
                f'{{"v":1,"unit":"{p.id}","t":{t:.3f},"lat":{la:.7f},"lon":{lo:.7f},'
                f'"team":"{p.team}","available":true}}'
            ).encode()
            out.add(t, topic, pl, "patrol", p.id)
    return out


def generate(site: Site, cfg: ScenarioConfig) -> Scenario:
    """Generate a scenario on ``site`` (deterministic in ``cfg``, including ``cfg.seed``)."""
    ss = np.random.SeedSequence(cfg.seed)
    r_truth, r_fibre, r_thermal, r_msv, r_dev, r_net, r_fault = (
        np.random.default_rng(s) for s in ss.spawn(7)
    )
    truth = generate_truth(site, cfg, r_truth)
    faults = _faults(site, cfg, truth, r_fault)
    streams = fibre_streams(site, cfg, truth, r_fibre, faults)
    streams += thermal_streams(site, cfg, truth, r_thermal, faults)
    streams += msv_streams(site, cfg, truth, r_msv)
    n_events: dict[str, int] = {}
    for s in streams:
        n_events[s.kind] = n_events.get(s.kind, 0) + len(s.t)
    outbox = _device_messages(site, cfg, truth, streams, faults, r_dev)
    d = deliver(
        outbox,
        r_net,
        late_fraction=cfg.late_fraction,
        late_minutes_fraction=cfg.late_minutes_fraction,
        duplicate_fraction=cfg.duplicate_fraction,
        malformed_count=cfg.malformed_count,
    )
    messages = [
        Message(a, tp, p, lab)
        for a, tp, p, lab in zip(d.arrival.tolist(), d.topic, d.payload, d.label, strict=True)
    ]
    events = sorted(truth.events + _fault_events(site, cfg, faults), key=lambda e: e["t"])
    covered = coverage(site, truth, faults)
    return Scenario(site, cfg, truth, covered, faults, messages, events, n_events)
