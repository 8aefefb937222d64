"""Fault injection with real servers: ``kill -9`` the service, restart Mosquitto, restart
Redis, each in the middle of a scenario; the alerts must equal those of an uninterrupted
run of the same input: none missing, none duplicated, same kinds, same final states and
the same number of state writes (``rev``).

Set-up per test: a fresh Mosquitto (persistence on, unbounded session queue), a fresh
Redis with AOF ``always``, ``limes run --clock message`` as a subprocess (so its run is a
deterministic function of the message sequence), one publisher sending a generated
scenario in arrival order at QoS 1, one subscriber on ``limes/v1/alerts/+`` with a
persistent session. The uninterrupted reference is the same service code fed the same
sequence in process (:class:`service.journal.Durable`, message clock).

Checked: the alerts in Redis (kind, state, rev per alert id) equal the reference's; every
reference alert id was published on MQTT; no (alert id, state, t) message was published
twice. The service's own ``limes-service`` fault alert (raised while Redis is down) is
reported separately and must be resolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import pytest

from benchmarks.servers import MosquittoServer, RedisOptions, RedisServer
from geo import Site, default_site
from service.journal import SERVICE_DEVICE, STREAM, Durable, message_time
from service.runtime import MemorySink, Pipeline
from sim_sensors import Scenario, generate, preset
from tests.conftest import MosquittoFactory, RedisFactory
from tests.mqtt_observer import observing

pytestmark = pytest.mark.broker

DEADLINE_S = 150.0
REPORT = Path(os.environ.get("LIMES_FAULT_REPORT", "/dev/null"))


@pytest.fixture(scope="module")
def site() -> Site:
    return default_site()


@pytest.fixture(scope="module")
def scenario(site: Site) -> Scenario:
    return generate(site, preset("crossing-10min", seed=7, duration_s=420.0))


Alerts = dict[str, tuple[str, str, str]]  # alert_id -> (kind, state, rev)


@dataclass
class Reference:
    alerts: Alerts
    batches: int
    messages: Counter[tuple[str, str, float]]


@pytest.fixture(scope="module")
def reference(site: Site, scenario: Scenario) -> Reference:
    return asyncio.run(_reference(site, scenario))


async def _reference(site: Site, scenario: Scenario) -> Reference:
    sink = MemorySink()
    pipe = Pipeline(site, sink, started=scenario.messages[0].arrival)
    d = Durable(pipe, None)
    for m in scenario.messages:
        now = message_time(m.payload, d.now)
        if pipe.core.due(now):
            await d.step(now)
        await d.message(m.topic, m.payload, now)
    store: Any = pipe.store
    alerts = {
        k.rsplit(":", 1)[1]: (h["kind"], h["state"], h["rev"]) for k, h in store.hashes.items()
    }
    batches = sum(1 for m in scenario.messages if m.topic.endswith("/events"))
    msgs: Counter[tuple[str, str, float]] = Counter()
    for topic, payload, _ in sink.messages:
        if topic.count("/") == 3 and topic.startswith("limes/v1/alerts/"):
            a = msgspec.json.decode(payload)
            msgs[(a["alert_id"], a["state"], a["t"])] += 1
    return Reference(alerts, batches, msgs)


class Service:
    """``limes run`` as a child process (killable)."""

    def __init__(self, broker: MosquittoServer, redis: RedisServer, started: float, log: Path):
        self.cmd = [
            sys.executable, "-m", "service.cli", "run", "--mqtt", broker.url,
            "--redis", redis.url, "--clock", "message", "--started", repr(started),
            "--metrics-port", "0", "--client-id", "limes-fault-test", "--snapshot-s", "1",
        ]  # fmt: skip
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parent.parent
            )
        self.starts += 1

    async def connected(self, n: int) -> None:
        """Wait until the log shows ``n`` MQTT connections (subscribed)."""
        deadline = time.monotonic() + DEADLINE_S
        while self.log.read_text(errors="replace").count("connected") < n:
            assert self.proc is not None
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "service did not connect"
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Seen:
    alert_msgs: Counter[tuple[str, str, float]] = field(default_factory=Counter)
    kinds: dict[str, str] = field(default_factory=dict)
    sensors: dict[str, list[str]] = field(default_factory=dict)

    def record(self, payload: bytes) -> None:
        """One alert message as received on ``limes/v1/alerts/+``."""
        a = msgspec.json.decode(payload)
        self.alert_msgs[(a["alert_id"], a["state"], a["t"])] += 1
        self.kinds[a["alert_id"]] = a["kind"]
        self.sensors[a["alert_id"]] = a["sensors"]


async def _publish(
    broker: MosquittoServer, scenario: Scenario, at: int, fault: Callable[[], Any]
) -> None:
    """Publish every message in order at QoS 1; start ``fault`` (concurrently) after
    message ``at``; republish the message whose publish failed (at least once, as
    devices do)."""
    faults: list[asyncio.Task[Any]] = []
    i = 0
    msgs = scenario.messages
    while i < len(msgs):
        try:
            async with aiomqtt.Client(
                broker.host, broker.port, identifier="fault-publisher", clean_session=False
            ) as c:
                while i < len(msgs):
                    await c.publish(msgs[i].topic, msgs[i].payload, qos=1, timeout=5)
                    i += 1
                    if i == at and not faults:
                        faults.append(asyncio.create_task(fault()))
                    elif i % 50 == 0:
                        await asyncio.sleep(0.01)  # let the service keep up a little
        except aiomqtt.MqttError:
            await asyncio.sleep(0.2)
    await asyncio.gather(*faults)


def _redis_alerts(redis: RedisServer) -> Alerts:
    out: Alerts = {}
    with redis.client(decode_responses=True) as r:
        for key in r.scan_iter("limes:*:alert:*"):
            kind, state, rev = r.hmget(key, ["kind", "state", "rev"])
            out[str(key).rsplit(":", 1)[1]] = (str(kind), str(state), str(rev))
    return out


def _observer(broker: MosquittoServer, seen: Seen) -> contextlib.AbstractAsyncContextManager[None]:
    """Collect alert messages; reconnect (persistent session) across broker restarts."""
    return observing(
        broker, [("limes/v1/alerts/+", 1)], lambda _t, p: seen.record(p),
        identifier="fault-observer", persistent=True, reconnect=True,
    )  # fmt: skip


async def _run_with_fault(
    name: str,
    tmp_path: Path,
    broker: MosquittoServer,
    redis: RedisServer,
    scenario: Scenario,
    reference: Reference,
    fault: Callable[[Service], Any],
) -> None:
    svc = Service(broker, redis, scenario.messages[0].arrival, tmp_path / "service.log")
    seen = Seen()
    svc.start()
    try:
        await svc.connected(1)  # its persistent session exists from here on
        async with _observer(broker, seen):
            at = len(scenario.messages) * 2 // 5
            await asyncio.wait_for(_publish(broker, scenario, at, lambda: fault(svc)), DEADLINE_S)
            deadline = time.monotonic() + DEADLINE_S
            want = dict(reference.alerts)
            got: Alerts = {}
            while time.monotonic() < deadline:
                got = {k: v for k, v in _redis_alerts(redis).items()
                       if seen.sensors.get(k) != [SERVICE_DEVICE]}  # fmt: skip
                ours = Counter({k: n for k, n in seen.alert_msgs.items() if k[0] in want})
                if got == want and ours == reference.messages:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)  # anything published late would show up as a duplicate
    finally:
        svc.stop()
    log_tail = svc.log.read_text(errors="replace")[-3000:]
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing, f"alerts missing in Redis: {missing}\n{log_tail}"
    assert not extra, f"alerts not in the reference: {extra}\n{log_tail}"
    assert got == want, log_tail
    # every alert message of the reference was published on MQTT, and nothing more
    # (a state change may legitimately be published twice at the same t, e.g. an update)
    ours = Counter({k: n for k, n in seen.alert_msgs.items() if k[0] in want})
    assert not reference.messages - ours, "alert messages never published on MQTT"
    assert not ours - reference.messages, "alert messages published more than once"
    service_alerts = [k for k, s in seen.sensors.items() if s == [SERVICE_DEVICE]]
    with redis.client(decode_responses=True) as r:
        journal_left = r.xlen(STREAM)
    line = (
        f"{name}: {reference.batches} batches, {len(scenario.messages)} messages, "
        f"{len(want)} alerts ({dict(Counter(v[0] for v in want.values()))}), "
        f"{sum(ours.values())} alert messages, 0 missing, 0 duplicated, "
        f"service starts {svc.starts}, service alerts {len(service_alerts)}, "
        f"journal entries after last snapshot {journal_left}\n"
    )
    with REPORT.open("a") as f:  # noqa: ASYNC230  (a few bytes at the end of a test)
        f.write(line)
    print(line)
    assert len(want) >= 3


@pytest.fixture
def broker(mosquitto_factory: MosquittoFactory) -> MosquittoServer:
    return mosquitto_factory(autosave_interval=1, extra_config=("max_queued_messages 0",))


@pytest.fixture
def redis(redis_factory: RedisFactory) -> RedisServer:
    return redis_factory(RedisOptions.aof())


async def test_kill_9_service_mid_scenario(
    tmp_path: Path,
    broker: MosquittoServer,
    redis: RedisServer,
    scenario: Scenario,
    reference: Reference,
) -> None:
    async def fault(svc: Service) -> None:
        await asyncio.sleep(1.0)
        svc.kill()
        svc.start()

    await _run_with_fault("kill -9 service", tmp_path, broker, redis, scenario, reference, fault)


async def test_restart_mosquitto_mid_scenario(
    tmp_path: Path,
    broker: MosquittoServer,
    redis: RedisServer,
    scenario: Scenario,
    reference: Reference,
) -> None:
    async def fault(svc: Service) -> None:
        del svc
        await asyncio.sleep(0.5)
        await asyncio.to_thread(broker.restart)

    await _run_with_fault("restart Mosquitto", tmp_path, broker, redis, scenario, reference, fault)


async def test_restart_redis_mid_scenario(
    tmp_path: Path,
    broker: MosquittoServer,
    redis: RedisServer,
    scenario: Scenario,
    reference: Reference,
) -> None:
    async def fault(svc: Service) -> None:
        del svc
        await asyncio.to_thread(redis.stop)
        await asyncio.sleep(3.0)  # the service runs on without Redis meanwhile
        await asyncio.to_thread(redis.start)

    await _run_with_fault("restart Redis", tmp_path, broker, redis, scenario, reference, fault)
