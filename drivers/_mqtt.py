"""Live MQTT transport (aiomqtt 2.x): subscribe, hand each message on, *then* acknowledge.

Delivery guarantee: QoS 1 subscriptions on a persistent session (fixed client id,
``clean_session=False``) with **manual acknowledgement**: the PUBACK for a message is sent
only after the handler returned, i.e. after the message was durably handed on. If the
process dies or the connection drops before that, the broker still holds the message in
the session and redelivers it on the next connection (the ingest de-duplicates it).

aiomqtt 2.5.1 itself has no manual-ack API (it acknowledges before the caller sees a
message); paho-mqtt 2.x underneath has ``manual_ack_set`` / ``ack(mid, qos)``. We switch it
on, in :func:`_enable_manual_ack` only, before connecting. Messages are handled one at a
time in arrival order, so PUBACKs go out in order as MQTT requires.

TLS: :class:`MqttSettings` ``tls`` / ``ca_file`` (and optionally a client certificate)
give aiomqtt a :class:`aiomqtt.TLSParameters`; the broker's certificate and host name are
verified (``deploy/mosquitto/limes.conf`` is the production broker side).

Bounded intake (backpressure): a broker may send QoS 1 messages faster than the handler
takes them, far beyond its in-flight window (Mosquitto 2.0.11 sends a whole window of 20
more on *every* PUBACK), and aiomqtt queues every one in memory. :class:`_Intake` stops
reading the socket while ``max_waiting`` messages wait and reads again when half of them
are handled; the rest of the backlog waits in the broker (TCP flow control), not in this
process. Reading resumes for the duration of an outbound publish (its PUBACK must be
read) and the window is checked again after it; the bound starts only once the session
is set up (a resumed session's backlog arrives right after the CONNACK, before the
SUBACK the set-up waits for) and ends with the session.

Presence: ``limes/v1/service/available`` is published retained ``online`` on every
connection, is the last will (``offline``, retained, QoS 1), and is set ``offline`` on a
clean shutdown. The reconnect loop is ours (as aiomqtt recommends): jittered, capped
exponential backoff, a warning per failure and an info line on recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiomqtt

from drivers._errors import DriverConnectError, map_exceptions
from drivers._models import DeadLetter, encode_dead_letter
from drivers._topics import AVAILABLE_TOPIC, DEADLETTER_TOPIC, PREFIX, SUBSCRIPTIONS

if TYPE_CHECKING:
    from drivers._health import HealthEvent
    from drivers._ingest import Ingest, IngestResult

log = logging.getLogger("limes.drivers.mqtt")

Handler = Callable[[str, bytes], Awaitable[None]]
ResultSink = Callable[["IngestResult"], Awaitable[None]]
HealthSink = Callable[[list["HealthEvent"]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Connection settings. ``client_id`` must be fixed: it names the persistent session."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "limes-service"
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    timeout_s: float = 10.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0
    subscriptions: tuple[str, ...] = SUBSCRIPTIONS
    #: MQTT over TLS: on when ``tls`` is set or ``ca_file`` is given. The broker's
    #: certificate is verified against ``ca_file`` (PEM), else the system's trust store,
    #: and its host name checked unless ``tls_insecure`` (never in production).
    tls: bool = False
    ca_file: str | None = None
    #: client certificate and key (PEM), for a broker with ``require_certificate true``
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    #: received messages waiting for the handler above which the socket is not read
    max_waiting: int = 500

    @property
    def endpoint(self) -> str:
        """``host:port`` for messages and :class:`DriverConnectError`."""
        return f"{self.host}:{self.port}"

    @property
    def uses_tls(self) -> bool:
        """Whether connections use TLS."""
        return self.tls or self.ca_file is not None

    def tls_params(self) -> aiomqtt.TLSParameters | None:
        """aiomqtt's TLS parameters, or None for plain TCP."""
        if not self.uses_tls:
            return None
        return aiomqtt.TLSParameters(
            ca_certs=self.ca_file,
            certfile=self.cert_file,
            keyfile=self.key_file,
            cert_reqs=ssl.CERT_REQUIRED,
        )


def backoff_delay(attempt: int, initial: float, cap: float, rng: random.Random) -> float:
    """Delay before reconnect ``attempt`` (1, 2, ...): "equal jitter" on a capped doubling,
    ``d/2 + U(0, d/2)`` with ``d = min(cap, initial * 2**(attempt-1))``."""
    d = min(cap, initial * 2.0 ** min(attempt - 1, 30))
    return d / 2.0 + rng.uniform(0.0, d / 2.0)


def _enable_manual_ack(client: aiomqtt.Client) -> None:
    """Make paho hold PUBACKs until :func:`_ack` (aiomqtt 2.5.1 has no public switch)."""
    client._client.manual_ack_set(True)


def _ack(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    if message.qos > 0:
        client._client.ack(message.mid, message.qos)


class _Intake:
    """Bounded intake of one connection (see the module doc): at most about
    ``high`` received messages wait in aiomqtt's queue (plus what one socket read and
    one outbound publish's round trip bring in).

    Pausing removes the event loop's reader of the socket (the selector event loop's
    handle is kept and re-added on resume); on an event loop without a selector
    (uvloop) it does nothing.
    """

    def __init__(self, client: aiomqtt.Client, high: int) -> None:
        self.client = client
        self.high = max(2, high)
        self.low = self.high // 2
        self.pauses = 0
        self._active = False  # not before the session's set-up (its SUBACK) is read
        self._closed = False
        self._saved: tuple[int, Any, tuple[Any, ...]] | None = None
        self._publishing = 0
        paho = client._client
        inner = paho.on_message

        def on_message(c: Any, userdata: Any, message: Any) -> None:
            if inner is not None:
                inner(c, userdata, message)
            if self.waiting >= self.high and not self._publishing:
                self._pause()

        paho.on_message = on_message

    @property
    def waiting(self) -> int:
        """Messages received and not yet taken by the handler."""
        return self.client._queue.qsize()

    @property
    def paused(self) -> bool:
        """Whether the socket is not being read now."""
        return self._saved is not None

    def after_handled(self) -> None:
        """Resume reading once the queue is down to ``low``."""
        if self._saved is not None and self.waiting <= self.low:
            self._resume()

    @contextlib.contextmanager
    def publishing(self) -> Iterator[None]:
        """Read during an outbound publish (its PUBACK), then re-check the window."""
        self._publishing += 1
        self._resume()
        try:
            yield
        finally:
            self._publishing -= 1
            if not self._publishing and self.waiting >= self.high:
                self._pause()

    def start(self) -> None:
        """The session is set up (CONNACK, presence PUBACK, SUBACK read): bound from here."""
        self._active = True
        if self.waiting >= self.high and not self._publishing:
            self._pause()

    def close(self) -> None:
        """Read again for good (the session ends: its disconnect must be read)."""
        self._closed = True
        self._resume()

    def _pause(self) -> None:
        if self._saved is not None or self._closed or not self._active:
            return
        sock = self.client._client.socket()
        loop = asyncio.get_running_loop()
        selector = getattr(loop, "_selector", None)
        if sock is None or selector is None:
            return
        fd = sock.fileno()
        try:
            handle = selector.get_key(fd).data[0]
        except (KeyError, ValueError):
            return
        if handle is None or handle._callback is None:
            return
        saved = (fd, handle._callback, tuple(handle._args or ()))
        loop.remove_reader(fd)  # cancels the handle: its callback is kept above
        self._saved = saved
        self.pauses += 1

    def _resume(self) -> None:
        saved, self._saved = self._saved, None
        if saved is None:
            return
        fd, callback, args = saved
        sock = self.client._client.socket()
        if sock is None or sock.fileno() != fd:  # the connection is gone meanwhile
            return
        asyncio.get_running_loop().add_reader(fd, callback, *args)


_MQTT_ERRORS: dict[type[BaseException], type[DriverConnectError]] = {
    aiomqtt.MqttError: DriverConnectError
}


class MqttSource:
    """Async context manager owning one TaskGroup with the task ``drivers[<name>].ingest``.

    ``handler(topic, payload)`` is awaited for every message, one at a time; when it
    returns, the message is acknowledged. If it raises, the message is *not* acknowledged,
    the connection is closed and the exception leaves the ``async with`` block (the broker
    redelivers the message to the next session with the same client id).
    """

    def __init__(self, settings: MqttSettings, handler: Handler, *, name: str = "mqtt") -> None:
        self.settings = settings
        self.name = name
        self._handler = handler
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()  # noqa: S311  (jitter, not crypto)
        self.connections = 0  # successful connections so far
        self.intake_pauses = 0  # times the socket was not read (backpressure), all sessions
        self._intake: _Intake | None = None
        self.publisher = Publisher(self)

    async def __aenter__(self) -> Self:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._task = self._tg.create_task(self._run(), name=f"drivers[{self.name}].ingest")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        client = self._client
        if self._intake is not None:
            self._intake.close()  # the goodbye's PUBACK and the disconnect must be read
        if client is not None and self._connected.is_set() and exc_type is None:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await client.publish(AVAILABLE_TOPIC, b"offline", qos=1, retain=True, timeout=2.0)
        if self._task is not None:
            self._task.cancel()
        await self._tg.__aexit__(exc_type, exc, tb)

    @property
    def connected(self) -> bool:
        """Whether a session is up now."""
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Wait until connected and subscribed (wrap in ``asyncio.timeout`` to bound it)."""
        await self._connected.wait()

    async def _run(self) -> None:
        s = self.settings
        failures = 0
        while True:
            try:
                with map_exceptions(_MQTT_ERRORS, endpoint=s.endpoint):
                    await self._session(recovering=failures > 0, failures=failures)
                return  # pragma: no cover  (the message iterator never ends cleanly)
            except DriverConnectError as exc:
                self._connected.clear()
                self._client = None
                failures += 1
                delay = backoff_delay(failures, s.backoff_initial_s, s.backoff_max_s, self._rng)
                log.warning(
                    "MQTT %s: %s; retry %d in %.2f s", s.endpoint, exc.detail, failures, delay
                )
                await asyncio.sleep(delay)
            else:  # pragma: no cover
                failures = 0

    async def _session(self, *, recovering: bool, failures: int) -> None:
        s = self.settings
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.client_id,
            clean_session=False,
            username=s.username,
            password=s.password,
            keepalive=s.keepalive_s,
            timeout=s.timeout_s,
            will=aiomqtt.Will(AVAILABLE_TOPIC, b"offline", qos=1, retain=True),
            tls_params=s.tls_params(),
            tls_insecure=s.tls_insecure if s.uses_tls else None,
        )
        _enable_manual_ack(client)
        intake = _Intake(client, s.max_waiting)
        try:
            async with client:
                await client.publish(AVAILABLE_TOPIC, b"online", qos=1, retain=True)
                await client.subscribe([(topic, 1) for topic in s.subscriptions])
                self._client = client
                self._intake = intake
                intake.start()
                self.connections += 1
                self._connected.set()
                if recovering:
                    log.info("MQTT %s: connected again after %d failures", s.endpoint, failures)
                else:
                    log.info("MQTT %s: connected as %s", s.endpoint, s.client_id)
                try:
                    async for message in client.messages:
                        payload = message.payload
                        data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
                        await self._handler(message.topic.value, data)
                        _ack(client, message)
                        intake.after_handled()
                finally:
                    intake.close()
        finally:
            self._connected.clear()
            self._client = None
            self._intake = None
            self.intake_pauses += intake.pauses


class Publisher:
    """Publishing through the current connection of a :class:`MqttSource`.

    Raises :class:`DriverConnectError` when there is no connection or it drops during the
    call; the caller decides whether to retry (alerts) or drop (QoS 0 track updates).
    """

    def __init__(self, source: MqttSource) -> None:
        self._source = source

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish ``payload`` on ``topic`` (waits for the PUBACK at QoS 1)."""
        client = self._source._client
        endpoint = self._source.settings.endpoint
        if client is None:
            raise DriverConnectError(endpoint, "not connected")
        intake = self._source._intake
        with (
            intake.publishing() if intake is not None else contextlib.nullcontext(),
            map_exceptions(_MQTT_ERRORS, endpoint=endpoint),
        ):
            await client.publish(topic, payload, qos=qos, retain=retain)

    async def dead_letter(self, dl: DeadLetter) -> None:
        """``limes/v1/deadletter``, QoS 1."""
        await self.publish(DEADLETTER_TOPIC, encode_dead_letter(dl), qos=1)

    async def track(self, sector: str, payload: bytes) -> None:
        """``limes/v1/tracks/{sector}``, QoS 0."""
        await self.publish(f"{PREFIX}/tracks/{sector}", payload, qos=0)

    async def alert(self, sector: str, payload: bytes) -> None:
        """``limes/v1/alerts/{sector}``, QoS 1."""
        await self.publish(f"{PREFIX}/alerts/{sector}", payload, qos=1)

    async def tasking(self, unit: str, payload: bytes) -> None:
        """``limes/v1/tasking/{unit}``, QoS 1."""
        await self.publish(f"{PREFIX}/tasking/{unit}", payload, qos=1)

    async def ccp(self, payload: bytes) -> None:
        """``limes/v1/ccp/outbox``, QoS 1."""
        await self.publish(f"{PREFIX}/ccp/outbox", payload, qos=1)


class MqttDriver:
    """Live ingest: :class:`MqttSource` -> :meth:`Ingest.handle` -> dead letters + ``on_result``.

    For every message: ``ingest.handle(topic, payload, clock())``; its dead letters are
    published (QoS 1); then ``await on_result(result)`` must hand the result on durably
    (journal, tracker step); only then is the message acknowledged. A second task,
    ``drivers[<name>].heartbeat``, calls ``ingest.tick`` every ``tick_s`` and passes device
    state changes to ``on_health``.
    """

    def __init__(
        self,
        ingest: Ingest,
        settings: MqttSettings,
        on_result: ResultSink,
        *,
        on_health: HealthSink | None = None,
        clock: Callable[[], float] = time.time,
        tick_s: float = 1.0,
        name: str = "mqtt",
    ) -> None:
        self.ingest = ingest
        self.source = MqttSource(settings, self._handle, name=name)
        self.publisher = self.source.publisher
        self._on_result = on_result
        self._on_health = on_health
        self._clock = clock
        self._tick_s = tick_s
        self._name = name
        self._tg: asyncio.TaskGroup | None = None
        self._hb: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.source.__aenter__()
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._hb = self._tg.create_task(self._heartbeat(), name=f"drivers[{self._name}].heartbeat")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        assert self._hb is not None
        self._hb.cancel()
        try:
            await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            await self.source.__aexit__(exc_type, exc, tb)

    async def wait_connected(self) -> None:
        """See :meth:`MqttSource.wait_connected`."""
        await self.source.wait_connected()

    async def _handle(self, topic: str, payload: bytes) -> None:
        res = self.ingest.handle(topic, payload, self._clock())
        for dl in res.dead_letters:
            await self.publisher.dead_letter(dl)
        await self._on_result(res)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            events = self.ingest.tick(self._clock())
            if events and self._on_health is not None:
                await self._on_health(events)
