"""Cursor-on-Target (CoT 2.0) events for TAK handhelds, and a UDP/TCP sender.

One ``<event>`` per alert or track, written with :mod:`xml.etree.ElementTree`:

* ``uid``: ``limes-alert-<alert_id>`` / ``limes-track-<track_id>`` (a later event with the
  same uid replaces the earlier one on the map);
* ``type``: ``a-u-G`` (atom, *unknown* affiliation, ground) for tracks and alerts —
  never hostile: a detection is not an identification; ``b-m-p-s-m`` (a map spot marker)
  for ``sensor_fault`` alerts, which mark equipment, not a person;
* ``time`` = ``start`` = the event's ``t``; ``stale`` = ``t + stale_s`` (ISO 8601 UTC, ms);
* ``how`` (how the coordinates were made, CoT 2.0 schema): ``m-f`` "machine, fused —
  corroborated from multiple sources" when two or more sensors contributed, ``m-r``
  "machine, relayed — imported from another system" for a single sensor, ``m-c``
  "configured" for a sensor-fault marker placed from the site file;
* ``<point lat lon hae ce le>``: full double precision (``repr``, never the 4-decimal
  rounding of some helpers; plain decimal notation, as ``xs:decimal`` requires);
  ``ce`` is the track's ``pos_sigma_m`` (1-sigma circular error), ``hae``/``le`` are
  unknown (``9999999.0``, the TAK convention);
* ``<detail>``: ``<contact callsign>``, ``<remarks>`` (the summary), and for tracks
  ``<track course speed>`` (course from true north, m/s).

:class:`CotSender` sends each event as one UDP datagram, or over one TCP connection
(events back to back, as TAK servers read them).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from alerts._errors import CotSendError
from alerts.model import Alert, TrackUpdate

__all__ = ["UNKNOWN_HAE", "CotSender", "alert_event", "cot_time", "track_event"]

#: TAK's "unknown" value for hae, ce and le
UNKNOWN_HAE = "9999999.0"


def cot_time(t: float) -> str:
    """UNIX seconds -> ``YYYY-MM-DDThh:mm:ss.sssZ`` (UTC)."""
    dt = datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _dec(v: float) -> str:
    """Shortest round-trip decimal text of ``v`` without an exponent."""
    s = repr(float(v))
    if "e" in s or "E" in s:
        s = format(Decimal(s), "f")
    return s


def _event(
    uid: str,
    type_: str,
    how: str,
    t: float,
    stale_s: float,
    lat: float,
    lon: float,
    ce: float | None,
) -> tuple[ET.Element, ET.Element]:
    ev = ET.Element(
        "event",
        {
            "version": "2.0",
            "uid": uid,
            "type": type_,
            "how": how,
            "time": cot_time(t),
            "start": cot_time(t),
            "stale": cot_time(t + stale_s),
        },
    )
    ce_txt = _dec(ce) if ce is not None and math.isfinite(ce) and ce >= 0 else UNKNOWN_HAE
    ET.SubElement(
        ev,
        "point",
        {"lat": _dec(lat), "lon": _dec(lon), "hae": UNKNOWN_HAE, "ce": ce_txt, "le": UNKNOWN_HAE},
    )
    detail = ET.SubElement(ev, "detail")
    return ev, detail


def alert_event(alert: Alert, *, stale_s: float = 120.0, ce_m: float | None = None) -> bytes:
    """CoT event (UTF-8 XML bytes) for a contract alert."""
    fault = alert.kind == "sensor_fault"
    how = "m-c" if fault else ("m-f" if len(alert.sensors) >= 2 else "m-r")
    ev, detail = _event(
        f"limes-alert-{alert.alert_id}",
        "b-m-p-s-m" if fault else "a-u-G",
        how,
        alert.t,
        stale_s,
        alert.lat,
        alert.lon,
        ce_m,
    )
    callsign = f"{alert.kind} P{alert.priority} {alert.state} {alert.sector}"
    ET.SubElement(detail, "contact", {"callsign": callsign})
    remarks = ET.SubElement(detail, "remarks")
    remarks.text = f"{alert.summary} [alert {alert.alert_id}, track {alert.track_id or '-'}]"
    return bytes(ET.tostring(ev, encoding="utf-8", xml_declaration=False))


def track_event(u: TrackUpdate, *, stale_s: float = 30.0, course_deg: float | None = None) -> bytes:
    """CoT event for a contract track update; ``course_deg`` is its true heading."""
    ev, detail = _event(
        f"limes-track-{u.track_id}",
        "a-u-G",
        "m-f" if len(u.sensors) >= 2 else "m-r",
        u.t,
        stale_s,
        u.lat,
        u.lon,
        u.pos_sigma_m,
    )
    ET.SubElement(detail, "contact", {"callsign": f"{u.cls} {u.track_id}"})
    speed = math.hypot(u.vx, u.vy)
    track = {"speed": _dec(speed)}
    if course_deg is not None:
        track["course"] = _dec(course_deg)
    ET.SubElement(detail, "track", track)
    remarks = ET.SubElement(detail, "remarks")
    remarks.text = (
        f"{u.status} {u.cls} p={u.class_p:.2f}, {u.border_dist_m:.0f} m from the border "
        f"on the {u.side} side; sensors {', '.join(u.sensors) or '-'}"
    )
    return bytes(ET.tostring(ev, encoding="utf-8", xml_declaration=False))


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.error: Exception | None = None

    def error_received(self, exc: Exception) -> None:
        self.error = exc


class CotSender:
    """Send CoT events to ``udp://host:port`` or ``tcp://host:port``.

    ``async with CotSender(url) as s: await s.send(xml)``. TCP reconnects once per
    send after a broken connection; failures raise :class:`CotSendError`.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("udp", "tcp") or not parts.hostname or not parts.port:
            msg = f"CoT endpoint must be udp://host:port or tcp://host:port, got {url!r}"
            raise ValueError(msg)
        self.url = url
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self._udp: asyncio.DatagramTransport | None = None
        self._proto: _Datagram | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Self:
        await self._connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _connect(self) -> None:
        try:
            if self.scheme == "udp":
                loop = asyncio.get_running_loop()
                transport, proto = await loop.create_datagram_endpoint(
                    _Datagram, remote_addr=(self.host, self.port)
                )
                self._udp, self._proto = transport, proto
            else:
                _, self._writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise CotSendError(self.url, f"connect: {exc}") from exc

    async def send(self, event: bytes) -> None:
        """Send one event."""
        if self.scheme == "udp":
            if self._udp is None:
                await self._connect()
            assert self._udp is not None
            self._udp.sendto(event)
            if self._proto is not None and self._proto.error is not None:
                err, self._proto.error = self._proto.error, None
                raise CotSendError(self.url, f"send: {err}") from err
            return
        for attempt in (1, 2):
            if self._writer is None or self._writer.is_closing():
                await self._connect()
            assert self._writer is not None
            try:
                self._writer.write(event)
                await self._writer.drain()
                return
            except OSError as exc:
                self._writer = None
                if attempt == 2:
                    raise CotSendError(self.url, f"send: {exc}") from exc

    async def aclose(self) -> None:
        """Close the socket."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = None
