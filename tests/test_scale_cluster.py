"""The scaled service end to end on real servers: 3 gateways + 3 fusion workers + 2 alert
publishers (subprocesses: ``limes gateway`` / ``limes worker`` / ``limes publisher``) + a
3-master Redis Cluster + Mosquitto, on a scenario whose intrusions straddle the S01/S02
boundary (km 24-32).

Reference: the single-process service (``Pipeline`` + ``Durable``, message clock) fed the
same messages in process. Alerts are compared by what they are, not by id (track ids are
namespaced by sector in the scaled service, and alert ids derive from them): for each
reference alert one scaled alert of the same kind and sector opened within ``T_TOL`` s,
with the same sequence of states, and nothing more. Also checked: no alert message
(id, state, t) is published twice; a track crossing the sector boundary keeps its id
(published in both sectors under one id).

``test_same_alerts_in_process`` checks the design without servers
(:func:`scale.local.run_local`). ``test_kill_9_worker_publisher_gateway_mid_scenario``
publishes the scenario (at ``SPEED`` x its arrival clock) and, while it runs:

* at 30 % kills -9 the worker owning S01 (where the crossings are) *before any publisher
  has started*: its alerts are stored and staged in the S01 outbox, none has been
  published (checked), so every one of them is in the window where a worker that
  published its own alerts would have lost them; then starts the two publishers, and
  another worker takes S01 over (lease expiry, snapshot + stream replay, XAUTOCLAIM);
* at 45 % kills -9 the publisher owning the S01 outbox (the other takes it over);
* at 60 % kills -9 a gateway and restarts it (same MQTT client id: its session resumes).

Then every reference alert (and CCP request) must arrive once, nothing more, and every
outbox must be empty. Delivery is at least once: a publisher killed between a PUBACK and
its XACK (one round trip, well under a millisecond per message on loopback) would send
that message twice, which the test would report.

``test_wall_clock_mode`` runs the default clock of the roles (``--clock wall``: a message's
time is its arrival at the gateway, beacons every ``--step-s`` of wall time) on one Redis
(no cluster): 2 gateways + 2 workers + 1 publisher, a 30 s scenario generated to start
now and published in real time; the alerts of the single process on the same messages
must arrive (kind, sector, opening time within ``T_TOL``), and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import pytest

from alerts.lifecycle import CCP_TOPIC
from benchmarks.scale_bench import lease_owners
from benchmarks.servers import MosquittoServer, RedisCluster, RedisServer
from geo import Site, default_site
from scale.keys import outbox_key, pub_lease_key
from scale.local import run_local
from service.journal import Durable, message_time
from service.runtime import MemorySink, Pipeline
from sim_sensors import Scenario, generate, preset
from tests.conftest import MosquittoFactory, RedisClusterFactory
from tests.mqtt_observer import observing

pytestmark = pytest.mark.broker

ROOT = Path(__file__).parent.parent
DEADLINE_S = 150.0
T_TOL = 5.0
#: publishing speed-up over the scenario's arrival clock (the gateways must keep up: a
#: gateway that lags by ``d`` wall seconds lags ``d * SPEED`` in the message clock)
SPEED = 5.0
REPORT = Path(os.environ.get("LIMES_SCALE_REPORT", "/dev/null"))

# alert summary: (kind, sector, opened t, states in order)
Summary = tuple[str, str, float, tuple[str, ...]]


@pytest.fixture(scope="module")
def site() -> Site:
    return default_site()


@pytest.fixture(scope="module")
def scenario(site: Site) -> Scenario:
    return generate(site, preset("crossing-10min", seed=7, duration_s=240.0))


def _summaries(messages: list[tuple[str, bytes, int]]) -> list[Summary]:
    return _summaries_of([msgspec.json.decode(p) for t, p, _ in messages if _is_alert(t)])


def _is_alert(topic: str) -> bool:
    return topic.startswith("limes/v1/alerts/") and topic.count("/") == 3


def _summaries_of(alerts: list[dict[str, Any]]) -> list[Summary]:
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in alerts:
        by_id[a["alert_id"]].append(a)
    out = []
    for seq in by_id.values():
        seq.sort(key=lambda a: a["t"])
        states: list[str] = []
        for a in seq:
            if not states or states[-1] != a["state"]:
                states.append(a["state"])
        out.append((seq[0]["kind"], seq[0]["sector"], seq[0]["t"], tuple(states)))
    return sorted(out, key=lambda s: (s[0], s[1], s[2]))


def _match(want: list[Summary], got: list[Summary]) -> tuple[list[Summary], list[Summary]]:
    """(reference alerts without a scaled twin, scaled alerts without a reference one)."""
    left = list(got)
    missing = []
    for w in want:
        twin = next(
            (
                g
                for g in left
                if g[0] == w[0] and g[1] == w[1] and abs(g[2] - w[2]) <= T_TOL and g[3] == w[3]
            ),
            None,
        )
        if twin is None:
            missing.append(w)
        else:
            left.remove(twin)
    return missing, left


@dataclass
class Reference:
    """What the single process publishes: alert summaries and CCP requests."""

    alerts: list[Summary]
    ccp: list[dict[str, Any]]


async def _reference(site: Site, scenario: Scenario, flush_s: float = 0.0) -> Reference:
    """The single process (message clock) on the scenario's messages; ``flush_s``: steps
    continue that long after the last message."""
    sink = MemorySink()
    pipe = Pipeline(site, sink, started=scenario.messages[0].arrival)
    d = Durable(pipe, None)
    for m in scenario.messages:
        now = message_time(m.payload, d.now)
        if pipe.core.due(now):
            await d.step(now)
        await d.message(m.topic, m.payload, now)
    end = d.now + flush_s
    while flush_s and pipe.core.due(end):
        await d.step(pipe.core.next_step_at(end))
    ccp = [msgspec.json.decode(p) for t, p, _ in sink.messages if t == CCP_TOPIC]
    return Reference(_summaries(sink.messages), ccp)


@pytest.fixture(scope="module")
def reference(site: Site, scenario: Scenario) -> Reference:
    return asyncio.run(_reference(site, scenario))


def _handed_over(tracks: list[dict[str, Any]]) -> set[str]:
    """Track ids published in more than one sector."""
    sectors: dict[str, set[str]] = defaultdict(set)
    for u in tracks:
        if u["status"] == "confirmed":
            sectors[u["track_id"]].add(u["sector"])
    return {k for k, v in sectors.items() if len(v) > 1}


async def test_same_alerts_in_process(site: Site, scenario: Scenario) -> None:
    run = await run_local(
        site, [(m.topic, m.payload) for m in scenario.messages],
        started=scenario.messages[0].arrival,
    )  # fmt: skip
    # run_local ends with a beacon 2 s past the last message (its flush): the reference
    # steps as far, so a state change in those 2 s (an escalation) is in both or neither
    reference = await _reference(site, scenario, flush_s=2.0)
    got = _summaries(run.sink.messages)
    missing, extra = _match(reference.alerts, got)
    assert not missing, f"reference alerts the scaled path did not raise: {missing}"
    assert not extra, f"scaled alerts not in the reference: {extra}"
    assert len(reference.alerts) >= 4
    assert {s[1] for s in reference.alerts} >= {"S01", "S02"}
    tracks = [msgspec.json.decode(p) for t, p, _ in run.sink.messages if "/tracks/" in t]
    assert _handed_over(tracks), "no track kept its id across the S01/S02 boundary"
    # every track id is namespaced by the sector that first owned it, never reused
    assert all(u["track_id"][:4] in {f"{s.id}-" for s in site.sectors} for u in tracks)


def _by_topic(messages: list[tuple[str, bytes, int]]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = defaultdict(list)
    for topic, payload, _ in messages:
        out[topic].append(payload)
    return out


async def test_lagging_gateway_changes_nothing_in_process(site: Site, scenario: Scenario) -> None:
    """Three gateways deal the messages round-robin; the third appends its records 20 s
    (message clock, within the watermark's grace) after the others. Each sector applies
    its gateway records in time order once the watermark has passed them, so every topic's
    messages (tracks, alerts, CCP) are byte-identical to the run without lag. (Applied in
    stream order, a 1 s lag already gave S08 a second track on a vehicle, and a second
    vehicle alert; and devices whose statuses went to the leading gateway looked silent.)"""
    msgs = [(m.topic, m.payload) for m in scenario.messages]
    t0 = scenario.messages[0].arrival
    even = await run_local(site, msgs, started=t0, gateways=3)
    lagging = await run_local(site, msgs, started=t0, gateways=3, lag_s=20.0)
    a, b = _by_topic(even.sink.messages), _by_topic(lagging.sink.messages)
    assert sum(len(v) for v in a.values()) > 1000
    assert any(t.startswith("limes/v1/alerts/") for t in a)
    differ = sorted(t for t in set(a) | set(b) if a.get(t) != b.get(t))
    assert not differ, f"topics whose messages changed with the lag: {differ}"


# -- real servers -----------------------------------------------------------------------------


class Proc:
    """A ``limes`` role as a child process (killable)."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.cmd = [sys.executable, "-m", "service.cli", *args]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Seen:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    tracks: list[dict[str, Any]] = field(default_factory=list)
    ccp: list[dict[str, Any]] = field(default_factory=list)


def _observer(broker: MosquittoServer, seen: Seen) -> contextlib.AbstractAsyncContextManager[None]:
    def record(topic: str, payload: bytes) -> None:
        kind = "alerts" if "/alerts/" in topic else "tracks"
        getattr(seen, "ccp" if topic == CCP_TOPIC else kind).append(msgspec.json.decode(payload))

    return observing(
        broker, [("limes/v1/alerts/+", 1), ("limes/v1/tracks/+", 0), (CCP_TOPIC, 1)], record,
        identifier="scale-observer",
    )  # fmt: skip


async def _wait(cond: Any, what: str, procs: list[Proc]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not cond():
        for p in procs:
            assert p.alive(), f"{p.cmd[3]} died:\n{p.text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def _outbox_len(cluster: RedisCluster, sector: str) -> int:
    with cluster.client() as r:
        return int(r.xlen(outbox_key(sector)))


async def test_kill_9_worker_publisher_gateway_mid_scenario(
    tmp_path: Path,
    site: Site,
    scenario: Scenario,
    reference: Reference,
    mosquitto_factory: MosquittoFactory,
    redis_cluster_factory: RedisClusterFactory,
) -> None:
    broker = mosquitto_factory(extra_config=("max_queued_messages 0",))
    cluster = redis_cluster_factory(masters=3)
    t0 = scenario.messages[0].arrival
    common = ["--mqtt", broker.url, "--redis", cluster.url, "--redis-cluster"]
    role = [*common, "--started", repr(t0)]
    worker = ["worker", *role, "--lease-ms", "4000", "--snapshot-s", "2"]
    workers = {
        f"w{i}": Proc([*worker, "--worker-id", f"w{i}"], tmp_path / f"w{i}.log") for i in range(3)
    }
    gateway = ["gateway", *role, "--clock", "message"]
    gateways = [
        Proc([*gateway, "--client-id", f"gw{i}"], tmp_path / f"gw{i}.log") for i in range(3)
    ]
    publishers = {
        f"p{i}": Proc(
            ["publisher", *common, "--publisher-id", f"p{i}", "--lease-ms", "3000"],
            tmp_path / f"p{i}.log",
        )
        for i in range(2)
    }
    procs = [*workers.values(), *gateways]
    sectors = [s.id for s in site.sectors]
    seen = Seen()
    for p in procs:
        p.start()
    n = len(scenario.messages)
    kill_worker_at, kill_publisher_at, kill_gateway_at = n * 3 // 10, n * 9 // 20, n * 3 // 5
    staged_before_publishers = 0
    published_before_publishers = -1
    try:
        # every sector owned, by all three workers
        await _wait(
            lambda: (
                len(set(lease_owners(cluster, sectors).values())) == 3
                and len(lease_owners(cluster, sectors)) == len(sectors)
            ),
            "three workers owning every sector",
            procs,
        )
        await _wait(
            lambda: all("shared subscription" in g.text() for g in gateways), "gateways", procs
        )
        async with _observer(broker, seen):
            victim = lease_owners(cluster, sectors)["S01"]
            pub_victim = ""
            async with aiomqtt.Client(broker.host, broker.port, identifier="scale-pub") as c:
                wall0 = time.monotonic()
                for i, m in enumerate(scenario.messages):
                    delay = wall0 + (m.arrival - t0) / SPEED - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await c.publish(m.topic, m.payload, qos=1, timeout=10)
                    if i == kill_worker_at:
                        # no publisher yet: the victim's alerts are stored and staged, and
                        # none is published; it dies with them unpublished
                        workers[victim].kill()
                        staged_before_publishers = _outbox_len(cluster, "S01")
                        published_before_publishers = len(seen.alerts) + len(seen.ccp)
                        for p in publishers.values():
                            p.start()
                        procs += publishers.values()
                    elif i == kill_publisher_at:
                        owners = lease_owners(cluster, sectors, pub_lease_key)
                        pub_victim = owners.get("S01", "p0")
                        publishers[pub_victim].kill()
                    elif i == kill_gateway_at:
                        gateways[1].kill()
                        gateways[1].start()  # same client id: its MQTT session resumes
            alive = [p for p in procs if p.alive()]
            survivor = next(k for k in publishers if k != pub_victim)
            await _wait(
                lambda: (
                    victim not in lease_owners(cluster, sectors).values()
                    and len(lease_owners(cluster, sectors)) == len(sectors)
                    and set(lease_owners(cluster, sectors, pub_lease_key).values()) == {survivor}
                    and len(lease_owners(cluster, sectors, pub_lease_key)) == len(sectors)
                ),
                "the victims' sectors and outboxes taken over",
                alive,
            )
            deadline = time.monotonic() + DEADLINE_S
            got: list[Summary] = []
            while time.monotonic() < deadline:
                got = _summaries_of(seen.alerts)
                missing, extra = _match(reference.alerts, got)
                if not missing and not extra and len(seen.ccp) >= len(reference.ccp):
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(2.0)  # anything published late would show up as a duplicate
            left = {s: _outbox_len(cluster, s) for s in sectors}
    finally:
        for p in procs:
            p.stop()
    logs = "\n".join(f"--- {p.log.name}\n{p.text()[-1500:]}" for p in procs)
    assert staged_before_publishers >= 1, "the killed worker had staged no S01 alert"
    assert published_before_publishers == 0, "alert messages published without a publisher"
    got = _summaries_of(seen.alerts)
    missing, extra = _match(reference.alerts, got)
    assert not missing, f"reference alerts not raised: {missing}\ngot: {got}\n{logs}"
    assert not extra, f"alerts not in the reference: {extra}\ngot: {got}\n{logs}"
    msgs = Counter((a["alert_id"], a["state"], a["t"]) for a in seen.alerts)
    dups = [k for k, n in msgs.items() if n > 1]
    assert not dups, f"alert messages published twice: {dups}"
    ccp = Counter(r["request_id"] for r in seen.ccp)
    assert len(ccp) == len(reference.ccp), (ccp, reference.ccp)
    assert all(v == 1 for v in ccp.values()), f"CCP requests published twice: {ccp}"
    assert not any(left.values()), f"outbox entries never sent: {left}"
    handed = _handed_over(seen.tracks)
    assert handed, "no track kept its id across the S01/S02 boundary"
    taken = workers[next(k for k in workers if k != victim)].text()
    line = (
        f"scale kill -9 worker {victim} (before any publisher ran: {staged_before_publishers} "
        f"S01 messages staged), publisher {pub_victim}, gateway gw1 (restarted): "
        f"{len(scenario.messages)} messages, {len(got)} alerts "
        f"({dict(Counter(s[0] for s in got))}), {len(ccp)} CCP requests, 0 missing, "
        f"0 extra, 0 duplicated, {len(handed)} tracks handed over with their id, "
        f"takeover replayed: {'entries replayed' in taken}\n"
    )
    with REPORT.open("a") as f:  # noqa: ASYNC230  (a few bytes at the end of a test)
        f.write(line)
    print(line)


async def test_wall_clock_mode(
    tmp_path: Path,
    site: Site,
    mosquitto_factory: MosquittoFactory,
    redis_server: RedisServer,
) -> None:
    broker = mosquitto_factory()
    common = ["--mqtt", broker.url, "--redis", redis_server.url]
    workers = [
        Proc(["worker", *common, "--worker-id", f"w{i}", "--lease-ms", "4000"],
             tmp_path / f"w{i}.log")
        for i in range(2)
    ]  # fmt: skip
    gateways = [
        Proc(["gateway", *common, "--client-id", f"gw{i}", "--clock", "wall"],
             tmp_path / f"gw{i}.log")
        for i in range(2)
    ]  # fmt: skip
    publisher = Proc(["publisher", *common, "--publisher-id", "p0"], tmp_path / "p0.log")
    procs = [*workers, *gateways, publisher]
    sectors = [s.id for s in site.sectors]
    seen = Seen()
    for p in procs:
        p.start()
    try:
        await _wait(
            lambda: (
                len(set(lease_owners(redis_server, sectors).values())) == 2
                and len(lease_owners(redis_server, sectors)) == len(sectors)
                and len(lease_owners(redis_server, sectors, pub_lease_key)) == len(sectors)
                and all("shared subscription" in g.text() for g in gateways)
            ),
            "two workers owning every sector, the publisher every outbox, the gateways",
            procs,
        )
        # a scenario that starts now: its event times are wall-clock times
        scenario = generate(site, preset(
            "crossing-10min", seed=3, start_t=time.time() + 6.0, duration_s=30.0,
            approach_start_m=(100.0, 180.0), crossing_window=(0.4, 0.7), late_fraction=0.0,
            malformed_count=0, n_turnbacks=0, n_animals=0, n_vehicles=2,
            near_road_fraction=1.0,
        ))  # fmt: skip
        ref = await _reference(site, scenario, flush_s=5.0)
        end = scenario.messages[-1].arrival
        async with (
            _observer(broker, seen),
            aiomqtt.Client(broker.host, broker.port, identifier="scale-pub") as c,
        ):
            for m in scenario.messages:  # in real time
                delay = m.arrival - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await c.publish(m.topic, m.payload, qos=1, timeout=10)
            late = time.time() - end  # how far behind real time the publishing ended
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline:
                missing, extra = _match(ref.alerts, _summaries_of(seen.alerts))
                if not missing:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)
    finally:
        for p in procs:
            p.stop()
    logs = "\n".join(f"--- {p.log.name}\n{p.text()[-1500:]}" for p in procs)
    assert len(ref.alerts) >= 3
    assert {s[1] for s in ref.alerts} >= {"S01", "S02"}
    # what the scenario explains: alerts opened by its end (later, its devices fall silent)
    got = _summaries_of([a for a in seen.alerts if a["t"] <= end])
    missing, extra = _match(ref.alerts, got)
    why = f"(the test's publishing ended {late:.1f} s behind real time)\n{logs}"
    assert not missing, f"reference alerts not raised: {missing}\ngot: {got} {why}"
    assert not extra, f"alerts not in the reference: {extra}\nref: {ref.alerts} {why}"
    msgs = Counter((a["alert_id"], a["state"], a["t"]) for a in seen.alerts)
    assert all(n == 1 for n in msgs.values()), msgs
