"""Snapshots: a pipeline restored from a snapshot continues exactly like the original.

In process (no servers): a generated scenario goes through :class:`service.journal.Durable`
with the message clock; at several cut points the state is captured, restored into a fresh
pipeline, and both continue on the rest of the input. Every outbound message (track
updates, alerts, dead letters) after the cut must be byte-identical. This is the test that
catches state a snapshot forgets (a new attribute in the tracker or the alert engine).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from geo import Site, default_site
from service import snapshot
from service.journal import Durable, message_time
from service.runtime import MemorySink, Pipeline
from sim_sensors import Scenario, generate, preset


@pytest.fixture(scope="module")
def site() -> Site:
    return default_site()


@pytest.fixture(scope="module")
def scenario(site: Site) -> Scenario:
    return generate(site, preset("crossing-10min", seed=7, duration_s=240.0))


def _durable(site: Site, started: float) -> tuple[Durable, MemorySink]:
    sink = MemorySink()
    return Durable(Pipeline(site, sink, started=started), None), sink


async def _feed(d: Durable, items: list[tuple[str, bytes]]) -> None:
    for topic, payload in items:
        now = message_time(payload, d.now)
        if d.pipe.core.due(now):
            await d.step(now)
        await d.message(topic, payload, now)


async def test_restored_pipeline_continues_identically(site: Site, scenario: Scenario) -> None:
    items = [(m.topic, m.payload) for m in scenario.messages]
    started = scenario.messages[0].arrival
    for frac in (0.3, 0.6):
        cut = int(len(items) * frac)
        a, sink_a = _durable(site, started)
        await _feed(a, items[:cut])
        data = snapshot.capture(a.pipe, a, position="1-0", started=started, now=a.now)
        b, sink_b = _durable(site, started)
        assert snapshot.restore(b.pipe, data, b) == ("1-0", a.now)
        b.now = a.now
        n_before = len(sink_a.messages)
        await _feed(a, items[cut:])
        await _feed(b, items[cut:])
        after = sink_a.messages[n_before:]
        assert len(after) > 100
        assert sink_b.messages == after
    kinds = {m[0].split("/")[2] for m in sink_a.messages}
    assert {"tracks", "alerts"} <= kinds


def test_codec_round_trip_and_refusals() -> None:
    arr = np.zeros(3, dtype=[("t", "f8"), ("k", "u1")])
    value = {
        ("a", 1): [1.5, math.inf, None, b"x", (1 << 100), {1, 2}],
        "arr": arr,
        "scalar": np.float32(2.5),
    }
    back = snapshot.decode_value(snapshot.encode_value(value))
    assert back[("a", 1)][:2] == [1.5, math.inf]
    assert back[("a", 1)][3:] == [b"x", 1 << 100, {1, 2}]
    assert back["arr"].dtype == arr.dtype
    assert back["scalar"] == np.float32(2.5)
    with pytest.raises(snapshot.SnapshotError):
        snapshot.encode_value(object())
    with pytest.raises(snapshot.SnapshotError):
        snapshot.encode_value(np.array([object()]))
    with pytest.raises(snapshot.SnapshotError):  # only the project's own classes
        snapshot.decode_value(["O", "os:system", []])
    with pytest.raises(snapshot.SnapshotError):
        snapshot.decode_value(["zz", 1])


async def test_snapshot_refused_for_another_site(site: Site) -> None:
    a, _ = _durable(site, 0.0)
    data = snapshot.capture(a.pipe, position="0-0", started=0.0)
    b, _ = _durable(site, 0.0)
    b.pipe.core.step_s = 0.25
    with pytest.raises(snapshot.SnapshotError, match="another site"):
        snapshot.restore(b.pipe, data)
    with pytest.raises(snapshot.SnapshotError):
        snapshot.restore(b.pipe, b"not msgpack \xff")
