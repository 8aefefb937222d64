"""Crash windows of the live service's outputs and operator actions, with real servers.

* Outbox: ``kill -9`` while the service's QoS 1 alert messages wait for a PUBACK that
  never comes (the service's connection to the broker goes through a TCP proxy that
  stops forwarding the service's bytes: a half-dead link). After the restart, every alert
  state of an uninterrupted run reaches an MQTT subscriber exactly as often as in that
  run (none missing, none twice), the alerts in Redis equal the run's, and the outbox is
  empty at the end. (In this crash window the messages never reached the broker, so no
  duplicate is possible; a crash *after* a PUBACK and before the outbox entry is removed
  re-sends the message once: at-least-once, see service/outbox.py.)
* Console actions: an operator's ack through the web console, ``kill -9`` right after
  the console answered (no snapshot since): after the restart the service knows the
  alert is acknowledged (the console shows it), and the operator's next action
  (resolve) is stored and published; without the journaled action the restarted engine
  would re-use the acknowledged revision and the store would refuse the resolve.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import msgspec
import pytest

from benchmarks.servers import MosquittoServer, RedisOptions, RedisServer, free_port
from console._auth import users_toml
from geo import Site, default_site
from service.journal import STREAM, Durable, message_time
from service.outbox import OUTBOX
from service.runtime import MemorySink, Pipeline
from sim_sensors import Scenario, generate, preset
from tests.conftest import MosquittoFactory, RedisFactory
from tests.mqtt_observer import observing
from tests.test_reliability_faults import DEADLINE_S, Alerts, Seen, Service, _redis_alerts

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def site() -> Site:
    return default_site()


@pytest.fixture(scope="module")
def scenario(site: Site) -> Scenario:
    return generate(site, preset("crossing-10min", seed=7, duration_s=420.0))


@dataclass
class Reference:
    alerts: Alerts
    messages: Counter[tuple[str, str, float]]
    #: index of each message whose handling (its step, then itself) published alerts
    triggers: list[int]
    first_open: tuple[int, str]  # (message index, alert id) of the first alert opened


@pytest.fixture(scope="module")
def reference(site: Site, scenario: Scenario) -> Reference:
    return asyncio.run(_reference(site, scenario))


def _alert_msgs(sink: MemorySink, start: int) -> list[dict[str, Any]]:
    return [
        msgspec.json.decode(payload)
        for topic, payload, _ in sink.messages[start:]
        if topic.count("/") == 3 and topic.startswith("limes/v1/alerts/")
    ]


async def _reference(site: Site, scenario: Scenario) -> Reference:
    sink = MemorySink()
    pipe = Pipeline(site, sink, started=scenario.messages[0].arrival)
    d = Durable(pipe, None)
    msgs: Counter[tuple[str, str, float]] = Counter()
    triggers: list[int] = []
    first_open: tuple[int, str] | None = None
    for i, m in enumerate(scenario.messages):
        before = len(sink.messages)
        now = message_time(m.payload, d.now)
        if pipe.core.due(now):
            await d.step(now)
        await d.message(m.topic, m.payload, now)
        new = _alert_msgs(sink, before)
        if new:
            triggers.append(i)
        for a in new:
            msgs[(a["alert_id"], a["state"], a["t"])] += 1
            if first_open is None and a["state"] == "open":
                first_open = (i, a["alert_id"])
    store: Any = pipe.store
    alerts = {
        k.rsplit(":", 1)[1]: (h["kind"], h["state"], h["rev"]) for k, h in store.hashes.items()
    }
    assert first_open is not None
    return Reference(alerts, msgs, triggers, first_open)


class StallProxy:
    """A TCP proxy to the broker whose client-to-broker direction can be held."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> StallProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop_all()
        self.flowing.set()
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def drop_all(self) -> None:
        for w in self.writers:
            w.close()
        self.writers.clear()

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(*self.target)
        except OSError:
            w.close()
            return
        self.writers += [w, uw]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, held: bool) -> None:
            with contextlib.suppress(OSError, ConnectionError, RuntimeError):
                while data := await src.read(65536):
                    if held:
                        await self.flowing.wait()
                    if dst.is_closing():
                        return
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(r, uw, True), pump(ur, w, False))


def _observing(broker: MosquittoServer, seen: Seen) -> contextlib.AbstractAsyncContextManager[None]:
    return observing(
        broker, [("limes/v1/alerts/+", 1)], lambda _t, p: seen.record(p),
        identifier="outbox-observer", persistent=True,
    )  # fmt: skip


async def _publish(client: aiomqtt.Client, scenario: Scenario, lo: int, hi: int) -> None:
    for i in range(lo, hi):
        m = scenario.messages[i]
        await client.publish(m.topic, m.payload, qos=1, timeout=10)
        if i % 50 == 0:
            await asyncio.sleep(0.01)


def _journal_messages(redis: RedisServer) -> int:
    with redis.client() as r:
        return sum(1 for _, f in r.xrange(STREAM) if f[b"k"] == b"m")


async def _until(pred: Any, what: str, svc: Service, within: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + within
    while not pred():
        assert svc.proc is not None
        assert svc.proc.poll() is None, svc.log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.1)


@dataclass
class _Url:
    url: str


@pytest.fixture
def broker(mosquitto_factory: MosquittoFactory) -> MosquittoServer:
    return mosquitto_factory(autosave_interval=1, extra_config=("max_queued_messages 0",))


@pytest.fixture
def redis(redis_factory: RedisFactory) -> RedisServer:
    return redis_factory(RedisOptions.aof())


def _service(via: str, redis: RedisServer, scenario: Scenario, log: Path, *extra: str) -> Service:
    svc = Service(_Url(via), redis, scenario.messages[0].arrival, log)  # type: ignore[arg-type]
    i = svc.cmd.index("--snapshot-s")
    svc.cmd[i + 1] = "3600"  # no snapshot: the restart replays the journal
    svc.cmd += list(extra)
    return svc


async def test_kill_9_with_alerts_waiting_for_puback(
    tmp_path: Path,
    broker: MosquittoServer,
    redis: RedisServer,
    scenario: Scenario,
    reference: Reference,
) -> None:
    k = reference.triggers[len(reference.triggers) // 2]  # publishes alerts when handled
    seen = Seen()
    async with StallProxy(broker.host, broker.port) as proxy:
        svc = _service(proxy.url, redis, scenario, tmp_path / "service.log")
        svc.start()
        try:
            await svc.connected(1)
            async with (
                _observing(broker, seen),
                aiomqtt.Client(
                    broker.host, broker.port, identifier="outbox-publisher", clean_session=False
                ) as pub,
            ):
                await _publish(pub, scenario, 0, k)
                await _until(lambda: _journal_messages(redis) >= k, "first part handled", svc)
                await asyncio.sleep(1.0)  # its alerts published and acknowledged
                with redis.client() as r:
                    assert r.xlen(OUTBOX) == 0
                proxy.flowing.clear()  # the service's PUBACKs and PUBLISHes stop here
                await _publish(pub, scenario, k, k + 1)

                def staged() -> bool:
                    with redis.client() as r:
                        return bool(r.xlen(OUTBOX))

                await _until(staged, "alert staged in the outbox", svc, 30.0)
                with redis.client() as r:
                    waiting = r.xlen(OUTBOX)
                svc.kill()
                proxy.drop_all()  # what the dead service had written never arrives
                proxy.flowing.set()
                svc.start()
                await svc.connected(2)
                await _publish(pub, scenario, k + 1, len(scenario.messages))
                want = reference.alerts
                got: Alerts = {}
                deadline = time.monotonic() + DEADLINE_S
                while time.monotonic() < deadline:
                    got = _redis_alerts(redis)
                    if got == want and seen.alert_msgs == reference.messages:
                        break
                    await asyncio.sleep(0.5)
                await asyncio.sleep(1.0)  # a late duplicate would show up now
        finally:
            svc.stop()
    text = svc.log.read_text(errors="replace")
    assert f"outbox: {waiting} unacknowledged messages queued again" in text, text[-3000:]
    assert got == want, text[-3000:]
    assert not reference.messages - seen.alert_msgs, "alert messages lost"
    assert not seen.alert_msgs - reference.messages, "alert messages published twice"
    with redis.client() as r:
        assert r.xlen(OUTBOX) == 0
    print(
        f"outbox: killed with {waiting} alert messages staged, "
        f"{sum(seen.alert_msgs.values())} alert messages, {len(want)} alerts, "
        "0 missing, 0 duplicated"
    )


async def test_console_action_survives_kill_9_after_the_answer(
    tmp_path: Path,
    broker: MosquittoServer,
    redis: RedisServer,
    scenario: Scenario,
    reference: Reference,
) -> None:
    users = tmp_path / "users.toml"
    users.write_text(users_toml({"op": ("operator", "pw-op")}))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    svc = _service(
        broker.url, redis, scenario, tmp_path / "service.log",
        "--console-port", str(port), "--console-users", str(users),
    )  # fmt: skip
    k, aid = reference.first_open
    seen = Seen()

    async def login(http: httpx.AsyncClient) -> str:
        deadline = time.monotonic() + 30.0
        while True:
            try:
                r = await http.post("/api/login", json={"username": "op", "password": "pw-op"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "console not up"
                await asyncio.sleep(0.2)
        assert r.status_code == 200, r.text
        return str(r.json()["csrf"])

    def stored() -> dict[str, str]:
        with redis.client(decode_responses=True) as r:
            keys = list(r.scan_iter(f"limes:*:alert:{aid}"))
            if not keys:
                return {}
            return {**r.hgetall(keys[0]), "key": keys[0]}

    svc.start()
    try:
        await svc.connected(1)
        async with (
            _observing(broker, seen),
            aiomqtt.Client(
                broker.host, broker.port, identifier="console-publisher", clean_session=False
            ) as pub,
        ):
            await _publish(pub, scenario, 0, k + 1)
            await _until(lambda: stored().get("state") == "open", f"{aid} open", svc)
            async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
                csrf = await login(http)
                r = await http.post(
                    f"/api/alerts/{aid}/ack", json={"note": "seen on camera"},
                    headers={"x-csrf-token": csrf},
                )  # fmt: skip
                assert r.status_code == 200, r.text
                assert r.json()["state"] == "acknowledged"
            svc.kill()  # right after the answer; no snapshot was taken
            acked = stored()
            assert acked["state"] == "acknowledged"
            with redis.client() as rc:
                kinds = [f[b"k"] for _, f in rc.xrange(STREAM)]
            svc.start()
            await svc.connected(2)
            async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
                csrf = await login(http)
                st = (await http.get("/api/state")).json()
                views = {a["alert_id"]: a for a in st["alerts"]}
                assert views[aid]["state"] == "acknowledged", views.get(aid)
                r = await http.post(
                    f"/api/alerts/{aid}/resolve", json={"note": "patrol: nothing there"},
                    headers={"x-csrf-token": csrf},
                )  # fmt: skip
                assert r.status_code == 200, r.text
            await _until(lambda: stored().get("state") == "resolved", "resolve stored", svc, 20.0)
            await _until(lambda: any(s == "resolved" for a, s, _ in seen.alert_msgs if a == aid),
                         "resolve published", svc, 20.0)  # fmt: skip
            await asyncio.sleep(1.0)
    finally:
        svc.stop()
    final = stored()
    assert final["state"] == "resolved"
    assert int(final["rev"]) == int(acked["rev"]) + 1
    states = Counter(s for (a, s, _), n in seen.alert_msgs.items() if a == aid for _ in range(n))
    assert states == Counter({"open": 1, "acknowledged": 1, "resolved": 1}), seen.alert_msgs
    with redis.client(decode_responses=True) as rc:
        audit = [f for _, f in rc.xrange(final["key"].split(":alert:")[0] + ":audit")
                 if f.get("alert_id") == aid]  # fmt: skip
    assert [(f["state"], f["who"]) for f in audit if f["who"] == "op"] == [
        ("acknowledged", "op"),
        ("resolved", "op"),
    ]
    assert kinds.count(b"c") == 1  # the ack was journaled before the console answered
