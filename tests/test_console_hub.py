"""ConsoleHub: state from the sink stream, bounded fan-out (drop and resync), dead
letters per device, fibre blind segments, and a sink that never fails because of it."""

from __future__ import annotations

import msgspec

from alerts import HealthEvent
from console import ConsoleHub, HubSink
from geo import default_site
from service.runtime import MemorySink, Pipeline

T0 = 1_764_000_000.0
_enc = msgspec.json.Encoder()


def _track(tid: str, t: float, status: str = "confirmed") -> bytes:
    u = {"t": t, "track_id": tid, "lat": 45.9, "lon": 20.4, "x": 0.0, "y": 0.0, "vx": 1.0,
         "vy": 0.0, "pos_sigma_m": 8.0, "class": "person", "class_p": 0.9, "status": status,
         "sector": "S01", "side": "RS", "border_dist_m": 50.0, "sensors": ["TH-01"]}  # fmt: skip
    return _enc.encode(u)


async def test_tracks_coalesce_and_slow_client_resyncs() -> None:
    hub = ConsoleHub(default_site(), clock=None, queue_size=3)
    fast, slow = hub.subscribe(), hub.subscribe()
    for i in range(5):
        hub.on_message("limes/v1/tracks/S01", _track("T1", T0 + i))
    hub.flush_tracks()  # one frame with the latest of T1
    frame = fast.queue.get_nowait()
    assert frame.startswith(b"event: tracks\n")
    assert frame.count(b'"track_id":"T1"') == 1
    assert b'"t":1764000004' in frame
    for i in range(10):  # the slow client never reads: it overflows, never blocks
        hub.on_message("limes/v1/tracks/S01", _track(f"T{i + 2}", T0 + 10))
        hub.flush_tracks()
        while not fast.queue.empty():
            fast.queue.get_nowait()
    assert slow.resyncs >= 1
    assert slow.dropped > 0
    assert slow.queue.qsize() <= 3
    frames = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
    assert b"resync" in frames  # the stream sends a full snapshot there
    hub.on_message("limes/v1/tracks/S01", _track("T1", T0 + 11, "lost"))
    assert "T1" not in hub.tracks
    assert len(hub.tracks) == 10


async def test_stream_starts_with_snapshot_and_ends_on_close() -> None:
    hub = ConsoleHub(default_site(), clock=None)
    hub.on_message("limes/v1/tracks/S01", _track("T9", T0))
    client = hub.subscribe()
    frames = hub.frames(client, alive=lambda: True)
    first = await anext(frames)
    assert b"event: snapshot" in first
    assert b'"T9"' in first
    hub.close()
    assert [f async for f in frames] == []
    assert client not in hub.clients


async def test_dead_letters_health_and_blind_segment() -> None:
    site = default_site()
    hub = ConsoleHub(site, clock=lambda: T0 + 10.0)
    pipe = Pipeline(site, HubSink(MemorySink(), hub), started=T0)
    hub.attach(pipe)
    dl = {"topic": "limes/v1/sensors/fibre/FO-02/events", "reason": "x", "t": T0}
    hub.on_message("limes/v1/deadletter", _enc.encode(dl))
    hub.on_message("limes/v1/deadletter", _enc.encode({**dl, "topic": "limes/v1/alerts/a/ack"}))
    hub.on_message("limes/v1/tracks/S01", b"not json")  # shown as a counter, never raised
    status = {"v": 1, "device": "FO-02", "t": T0 + 1, "state": "fault", "detail": "cut at 12000"}
    res = pipe.core.ingest.handle(
        "limes/v1/sensors/fibre/FO-02/status", _enc.encode(status), T0 + 1
    )
    await pipe.on_result(res)
    await pipe.submit([HealthEvent(t=T0 + 1, device="FO-02", state="fault", detail="cut at 12000")])
    hub.refresh()
    assert hub.dead_letters == {"FO-02": 1, "(other)": 1}
    assert hub.counters["bad_messages"] == 1
    fo2 = next(d for d in hub.health if d["device"] == "FO-02")
    assert fo2["state"] == "fault"
    assert fo2["dead_letters"] == 1
    cov = fo2["coverage_loss"]
    assert cov is not None
    assert 37438 < cov["border_from_m"] < cov["border_to_m"] <= 74876 + 1
    assert len(cov["lonlat"]) >= 2
    [alert] = [a for a in hub.alerts.values() if a["kind"] == "sensor_fault"]
    assert "FO-02" in alert["sensors"]
    assert {p["unit"] for p in hub.patrols} == {p.id for p in site.patrols}


async def test_sink_publishes_even_if_the_hub_breaks() -> None:
    class Broken(ConsoleHub):
        def on_message(self, topic: str, payload: bytes) -> None:
            raise RuntimeError("bug")

    inner = MemorySink()
    sink = HubSink(inner, Broken(default_site()))
    await sink.publish("limes/v1/tracks/S01", _track("T1", T0), 0)
    assert len(inner.messages) == 1
