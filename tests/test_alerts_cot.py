"""CoT XML for TAK: required fields, full precision, and sending over real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
import xml.etree.ElementTree as ET
from datetime import datetime

import pytest

from alerts import Alert, CotSender, TrackUpdate, alert_event, track_event
from alerts.cot import cot_time

T0 = 1_764_000_000.25


def _alert(**kw: object) -> Alert:
    base: dict[str, object] = {
        "alert_id": "crossing-0123456789abcdef",
        "t": T0,
        "kind": "crossing",
        "priority": 1,
        "state": "open",
        "track_id": "T7",
        "lat": 45.123456789012,
        "lon": 21.000000123456,
        "sector": "S03",
        "summary": "group of 3 crossed from RS into RO",
        "sensors": ["TH-01", "FO-02"],
        "recommended_units": ["RO-P03"],
    }
    base.update(kw)
    return Alert(**base)  # type: ignore[arg-type]


def _track() -> TrackUpdate:
    return TrackUpdate(
        t=T0, track_id="T7", lat=45.98765432101234, lon=20.5, x=1.0, y=2.0, vx=0.6, vy=0.8,
        pos_sigma_m=7.5, cls="person", class_p=0.8, status="confirmed", sector="S03",
        side="RO", border_dist_m=12.0, sensors=["TH-01"],
    )  # fmt: skip


def _check_required(xml: bytes) -> ET.Element:
    ev = ET.fromstring(xml)
    assert ev.tag == "event"
    for attr in ("version", "uid", "type", "time", "start", "stale", "how"):
        assert ev.get(attr), attr
    point = ev.find("point")
    assert point is not None
    for attr in ("lat", "lon", "hae", "ce", "le"):
        assert point.get(attr), attr
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    start = datetime.strptime(ev.get("start", ""), fmt)
    stale = datetime.strptime(ev.get("stale", ""), fmt)
    assert stale > start
    return ev


def test_alert_event_has_tak_fields_and_full_precision() -> None:
    ev = _check_required(alert_event(_alert(), stale_s=120.0))
    assert ev.get("uid") == "limes-alert-crossing-0123456789abcdef"
    assert ev.get("type") == "a-u-G"
    assert ev.get("how") == "m-f"  # two sensors: fused
    assert ev.get("time") == cot_time(T0) == "2025-11-24T16:00:00.250Z"
    assert ev.get("stale") == "2025-11-24T16:02:00.250Z"
    point = ev.find("point")
    assert point is not None
    assert float(point.get("lat", "")) == 45.123456789012
    assert float(point.get("lon", "")) == 21.000000123456
    remarks = ev.find("detail/remarks")
    assert remarks is not None
    assert remarks.text is not None
    assert "crossed from RS into RO" in remarks.text


def test_never_hostile_and_sensor_fault_marker() -> None:
    for kind in ("crossing", "approach", "digging", "vehicle", "loitering"):
        ev = ET.fromstring(alert_event(_alert(kind=kind, sensors=["TH-01"])))
        assert ev.get("type") == "a-u-G"
        assert ev.get("how") == "m-r"
    ev = ET.fromstring(alert_event(_alert(kind="sensor_fault", track_id=None)))
    assert ev.get("type") == "b-m-p-s-m"
    assert ev.get("how") == "m-c"


def test_track_event_ce_course_and_no_exponent() -> None:
    ev = _check_required(track_event(_track(), stale_s=30.0, course_deg=36.87))
    assert ev.get("uid") == "limes-track-T7"
    point = ev.find("point")
    assert point is not None
    assert point.get("ce") == "7.5"
    assert point.get("lat") == "45.98765432101234"
    track = ev.find("detail/track")
    assert track is not None
    assert track.get("course") == "36.87"
    assert float(track.get("speed", "")) == pytest.approx(1.0)
    tiny = ET.fromstring(alert_event(_alert(lat=1e-7, lon=-2.5e-6)))
    p2 = tiny.find("point")
    assert p2 is not None
    assert p2.get("lat") == "0.0000001"
    assert p2.get("lon") == "-0.0000025"


async def test_send_udp_on_loopback() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    loop = asyncio.get_running_loop()
    payload = alert_event(_alert())
    async with CotSender(f"udp://127.0.0.1:{port}") as sender:
        await sender.send(payload)
        async with asyncio.timeout(10):
            data = await loop.sock_recv(sock, 65536)
    sock.close()
    assert data == payload


async def test_send_tcp_on_loopback() -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await received.put(await reader.read())
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    events = [alert_event(_alert()), track_event(_track())]
    async with CotSender(f"tcp://127.0.0.1:{port}") as sender:
        for e in events:
            await sender.send(e)
    async with asyncio.timeout(10):
        data = await received.get()
    server.close()
    await server.wait_closed()
    assert data == b"".join(events)


def test_bad_endpoint() -> None:
    with pytest.raises(ValueError, match="udp://host:port"):
        CotSender("http://127.0.0.1:80")


async def test_service_sends_one_cot_event_per_published_alert() -> None:
    import geo
    from alerts import AlertEngine, AlertService, HealthEvent, MemoryAlertStore

    sent: list[bytes] = []

    async def publish(topic: str, payload: bytes, qos: int) -> None:
        return None

    async def cot(event: bytes) -> None:
        sent.append(event)

    service = AlertService(AlertEngine(geo.default_site()), MemoryAlertStore(), publish, cot=cot)
    d = await service.submit(HealthEvent(t=T0, device="TH-01", state="offline"))
    (a,) = d.alerts
    (ev,) = [ET.fromstring(x) for x in sent]
    assert ev.get("uid") == f"limes-alert-{a.alert_id}"
