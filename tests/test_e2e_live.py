"""End to end on real Mosquitto and Redis: simulated devices -> ``limes run`` -> consoles.

The ``crossing-10min`` scenario (seed 1: two crossings, a turn-back, four vehicles, four
animals, light wind, late / duplicated / malformed messages) is published live by one MQTT
client per device, ``SPEED`` times faster than real time. The service runs in-process
(:func:`service.live.run_live`) with a clock that reads *scenario* time running at the
same speed (``LiveSettings.clock``), so device event times and the service's ``now``
agree as they do in the field. A test client subscribes to the service's track and alert
topics like a console; what it received is written as the contract's JSON lines and
scored against the simulator's truth with ``limes score`` (``sim_sensors.score``).
Redis must hold every alert (hash) and its audit trail (stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from alerts import RedisAlertStore
from benchmarks.servers import MosquittoServer, RedisServer
from drivers import MqttSettings
from geo import default_site
from service.live import LiveSettings, run_live
from sim_sensors import generate, preset
from sim_sensors.live import publish
from sim_sensors.score import load_alerts, load_tracks, load_truth, score
from tests.test_service_replay import check_alert_stream, check_track_stream, patrol_units

pytestmark = pytest.mark.broker

SEED = 1
DURATION_S = 300.0
#: scenario seconds per wall second: 300 s of scenario in 30 s (2 busy CPUs keep up at 10x;
#: at 30x the single event loop fell behind: devices looked silent, rows came late)
SPEED = 10.0


class SceneClock:
    """Scenario time: ``t0`` until :meth:`start`, then ``t0 + rate * wall elapsed``.

    Started by the first device message the test's console client sees, so that the
    service's clock and the devices' clocks share their origin (to within a few ms of
    broker latency, i.e. well under a second of scenario time). Started too early (say,
    before the publishers' clients connect), the service's ``now`` leads the event times:
    its track updates carry later times and crossings seem alerted before they happen.
    """

    def __init__(self, t0: float, rate: float) -> None:
        self.t0 = t0
        self.rate = rate
        self._wall0: float | None = None

    def start(self) -> None:
        """Let time run from now."""
        self._wall0 = time.monotonic()

    @property
    def started(self) -> bool:
        """:meth:`start` was called."""
        return self._wall0 is not None

    def __call__(self) -> float:
        if self._wall0 is None:
            return self.t0
        return self.t0 + (time.monotonic() - self._wall0) * self.rate


async def _wait_online(sub: aiomqtt.Client) -> None:
    async for msg in sub.messages:
        if str(msg.topic) == "limes/v1/service/available" and msg.payload == b"online":
            return


async def test_crossing_scenario_live(
    fresh_mqtt_broker: MosquittoServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    site = default_site()
    sc = generate(site, preset("crossing-10min", seed=SEED, duration_s=DURATION_S))
    truth_path = tmp_path / "truth.jsonl"
    sc.write_truth(truth_path)
    clock = SceneClock(sc.messages[0].arrival, SPEED)
    broker = fresh_mqtt_broker
    settings = LiveSettings(
        mqtt=MqttSettings(host=broker.host, port=broker.port, client_id="limes-e2e"),
        redis_url=redis_server.url,
        metrics_port=None,
        clock=clock,
        clock_rate=SPEED,
    )
    tracks: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    stop = asyncio.Event()
    async with aiomqtt.Client(broker.host, broker.port, identifier="e2e-console") as sub:
        await sub.subscribe("limes/v1/service/available", qos=1)
        service = asyncio.create_task(run_live(site, settings, stop), name="e2e.service")
        await asyncio.wait_for(_wait_online(sub), timeout=20.0)
        await sub.subscribe("limes/v1/tracks/+", qos=0)
        await sub.subscribe("limes/v1/alerts/+", qos=1)
        await sub.subscribe("limes/v1/sensors/#", qos=0)

        async def collect() -> None:
            async for msg in sub.messages:
                topic = str(msg.topic)
                assert isinstance(msg.payload, bytes)
                if topic.startswith("limes/v1/sensors/"):
                    if not clock.started:
                        clock.start()
                elif topic.startswith("limes/v1/tracks/"):
                    tracks.append(json.loads(msg.payload))
                elif topic.startswith("limes/v1/alerts/"):
                    alerts.append(json.loads(msg.payload))

        collector = asyncio.create_task(collect(), name="e2e.collect")
        stats = await publish(sc.messages, broker.url, speed=SPEED)
        await asyncio.sleep(1.0)  # ~30 s of scenario time for the last steps
        stop.set()
        await asyncio.wait_for(service, timeout=60.0)  # journal flush and snapshot on stop
        await asyncio.sleep(0.2)
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
    assert stats.messages == len(sc.messages)

    # what a console received follows the contract
    units = patrol_units(site, (m.topic for m in sc.messages))
    counts = check_track_stream(tracks, site)
    latest = check_alert_stream(alerts, site, units)
    assert counts["confirmed"] > 0

    # scored like `limes score` against the truth
    tracks_path, alerts_path = tmp_path / "tracks.jsonl", tmp_path / "alerts.jsonl"
    tracks_path.write_text("".join(json.dumps(u) + "\n" for u in tracks))
    alerts_path.write_text("".join(json.dumps(a) + "\n" for a in alerts))
    s = score(
        load_truth(truth_path), load_tracks(tracks_path, site), load_alerts(alerts_path, site)
    )
    keep = os.environ.get("LIMES_E2E_OUT")  # a folder to keep the files and score in
    if keep:
        for f in (truth_path, tracks_path, alerts_path):
            shutil.copy(f, Path(keep) / f.name)
        (Path(keep) / "score.json").write_text(json.dumps(s.as_dict(), indent=1))
    assert s.n_crossings == 2
    # Thresholds from measurement: 5 runs of this test on the development machine (2 CPUs
    # shared with other work, load 3-7) after the alert-rule tuning gave recall 1.0 every
    # time, 0-1 false crossing alerts (a vehicle track jittering across the line), 1.0
    # crossing alerts per intrusion, time to alert p95 8-31 s (the service lags under
    # load; a replay of the same scenario gives 9-11 s) and GOSPA 600-664 m (false tracks
    # dominate, see docs/scoring.md). Margins: one more false alert, 2x the worst time to
    # alert, +20 % GOSPA.
    assert s.recall >= 0.95, s.per_crossing
    assert s.n_false_crossing_alerts <= MAX_FALSE_CROSSING, s.as_dict()
    assert s.alerts_per_intrusion <= 1.0, s.as_dict()
    assert math.isfinite(s.tta_p95_s), s.as_dict()
    assert s.tta_p95_s <= MAX_TTA_S, s.as_dict()
    assert s.gospa_mean <= MAX_GOSPA_M, s.as_dict()
    # there is no digging in this scenario
    assert "digging" not in s.alerts_by_kind, s.alerts_by_kind

    # Redis holds every alert (hash, latest state) and its audit stream
    store = RedisAlertStore.from_url(redis_server.url)
    try:
        for aid, a in latest.items():
            h = await store.get_alert(a["sector"], aid)
            assert h is not None, aid
            assert h["state"] == a["state"], (aid, h["state"], a["state"])
            assert json.loads(h["alert"])["alert_id"] == aid
        for sector in {a["sector"] for a in latest.values()}:
            entries = await store.audit(sector)
            mine = {aid for aid, a in latest.items() if a["sector"] == sector}
            assert {f["alert_id"] for f in entries} >= mine
            assert sorted(f["alert_id"] for f in entries if f["event"] == "open") == sorted(mine)
    finally:
        await store.aclose()


MAX_FALSE_CROSSING = 2
MAX_TTA_S = 60.0
MAX_GOSPA_M = 800.0
