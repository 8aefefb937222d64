"""The shipped broker security (deploy/mosquitto) on a real Mosquitto: TLS, passwords, ACL.

One broker for the module runs ``deploy/mosquitto/limes.conf`` with only its paths and
listener address rewritten (certificates from ``scripts/make_certs``, a password file
from ``mosquitto_passwd``, the shipped ``limes.acl`` itself). Every client here speaks
TLS with the throwaway CA. What Mosquitto 2.0 does, as observed here:

* anonymous, unknown or wrong-password clients: CONNACK "not authorized" (v5 135,
  v3.1.1 return code 5);
* a PUBLISH the ACL refuses: MQTT v5 QoS 1 gets PUBACK reason code 135 (Not authorized),
  v3.1.1 a plain PUBACK; in both cases the message is dropped (asserted on the receiving
  side, never only on the reason code);
* a refused subscription is still granted in the SUBACK, but nothing the client may not
  read is delivered (read rights are checked per message).

No mocks: the service side is :class:`drivers.MqttDriver` and ``limes run``'s
:func:`service.live.run_live` with settings built by :func:`service.cli.mqtt_settings`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

import geo
from benchmarks.servers import MosquittoServer, RedisServer, find_binary
from drivers import AVAILABLE_TOPIC, SUBSCRIPTIONS, Ingest, IngestResult, MqttDriver, MqttSettings
from service.cli import build_parser, mqtt_settings
from service.live import LiveSettings, run_live

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_CONF = ROOT / "deploy" / "mosquitto" / "limes.conf"
DEPLOY_ACL = ROOT / "deploy" / "mosquitto" / "limes.acl"
MAKE_CERTS = ROOT / "scripts" / "make_certs"
SITE = geo.default_site()
WAIT_S = 15.0
QUIET_S = 0.5  # how long "nothing else arrives" is watched after the sentinel

SERVICE = "limes-service"
USERS = ("limes-service", "FO-01", "FO-02", "RO-P01", "operator-01", "console-01")
#: MQTT v5 reason code; paho reports the v3.1.1 CONNACK return code 5 as this one too
NOT_AUTHORIZED = 135

#: deploy settings the test broker sets itself (listener address, paths, logging)
_OWN_KEYS = frozenset(
    {
        "listener",
        "persistence",
        "persistence_location",
        "persistence_file",
        "autosave_interval",
        "log_dest",
        "log_type",
        "connection_messages",
        "log_timestamp",
        "pid_file",
    }
)


def deploy_config(tls_dir: Path, passwd: Path, acl: Path) -> list[str]:
    """The shipped config's lines, minus what :class:`MosquittoServer` writes itself, with
    the production paths pointed at ``tls_dir``, ``passwd`` and ``acl``."""
    out: list[str] = []
    for raw in DEPLOY_CONF.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line.split()[0] in _OWN_KEYS:
            continue
        line = line.replace("/etc/limes/tls/", f"{tls_dir}/")
        line = line.replace("/etc/mosquitto/limes.passwd", str(passwd))
        out.append(line.replace("/etc/mosquitto/limes.acl", str(acl)))
    return out


@dataclass(frozen=True)
class Secure:
    """The module's broker and what a client needs to reach it."""

    server: MosquittoServer
    ca: Path
    passwords: dict[str, str]
    config: list[str]

    def client(
        self, user: str | None, *, v5: bool = False, password: str | None = None, **kw: Any
    ) -> aiomqtt.Client:
        """A TLS client as ``user`` (None: anonymous) with its password from the file."""
        pw = password if password is not None else self.passwords.get(user or "")
        return aiomqtt.Client(
            self.server.host,
            self.server.port,
            username=user,
            password=pw if user is not None else None,
            tls_params=aiomqtt.TLSParameters(ca_certs=str(self.ca)),
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            timeout=WAIT_S,
            **kw,
        )

    def settings(self, **kw: Any) -> MqttSettings:
        """The service's settings: TLS with the CA, user ``limes-service``."""
        return MqttSettings(
            host=self.server.host,
            port=self.server.port,
            username=SERVICE,
            password=self.passwords[SERVICE],
            ca_file=str(self.ca),
            backoff_initial_s=0.05,
            backoff_max_s=0.5,
            timeout_s=5.0,
            **kw,
        )


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    work = tmp_path_factory.mktemp("secure-mqtt")
    tls = work / "tls"
    subprocess.run([str(MAKE_CERTS), str(tls)], check=True, capture_output=True, timeout=60)
    passwd = work / "limes.passwd"
    passwords = {user: secrets.token_urlsafe(12) for user in USERS}
    tool = find_binary("mosquitto_passwd")
    for i, (user, pw) in enumerate(passwords.items()):
        argv = [tool, *(["-c"] if i == 0 else []), "-b", str(passwd), user, pw]
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
    config = deploy_config(tls, passwd, DEPLOY_ACL)
    server = MosquittoServer(work / "broker", extra_config=config, allow_anonymous=False)
    server.start()
    try:
        yield Secure(server, tls / "ca.crt", passwords, config)
    finally:
        server.kill()


# -- helpers ---------------------------------------------------------------------------------


def puback_codes(client: aiomqtt.Client) -> list[int]:
    """The PUBACK reason codes ``client`` receives, in order (aiomqtt drops them: paho's
    ``on_publish`` is wrapped; call after the client connected)."""
    codes: list[int] = []
    paho = client._client
    inner: Callable[..., None] | None = paho.on_publish
    assert inner is not None

    def on_publish(c: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        assert inner is not None
        codes.append(int(rc.value))
        inner(c, userdata, mid, rc, props)

    paho.on_publish = on_publish
    return codes


def _item(m: aiomqtt.Message) -> tuple[str, bytes]:
    assert isinstance(m.payload, bytes | bytearray)
    return m.topic.value, bytes(m.payload)


async def received_until(
    client: aiomqtt.Client, sentinel: bytes, quiet_s: float = QUIET_S
) -> list[tuple[str, bytes]]:
    """Every message ``client`` receives up to and including ``sentinel``, then for
    ``quiet_s`` more (anything refused but delayed would show up there)."""
    got: list[tuple[str, bytes]] = []
    it = aiter(client.messages)
    async with asyncio.timeout(WAIT_S):
        while not got or got[-1][1] != sentinel:
            got.append(_item(await anext(it)))
    try:
        async with asyncio.timeout(quiet_s):
            while True:
                got.append(_item(await anext(it)))
    except TimeoutError:
        pass
    return got


def batch(device: str, seq: int, n: int = 3) -> bytes:
    now = time.time()
    events = [
        {"t": now, "chainage_m": 100.0 + i, "class": "walking", "confidence": 0.7} for i in range(n)
    ]
    doc = {"v": 1, "device": device, "seq": seq, "sent": now, "events": events}
    return json.dumps(doc).encode()


def events_topic(device: str) -> str:
    return f"limes/v1/sensors/fibre/{device}/events"


@pytest.fixture
async def service_sub(secure: Secure) -> AsyncIterator[aiomqtt.Client]:
    """A subscriber authenticated as the service, with its client id, on its subscriptions."""
    async with secure.client(SERVICE, identifier=SERVICE, clean_session=True) as c:
        await c.subscribe([(t, 1) for t in SUBSCRIPTIONS])
        yield c


# -- the configuration -------------------------------------------------------------------------


def test_the_shipped_config_is_what_runs(secure: Secure) -> None:
    conf = secure.server.config_path.read_text().splitlines()
    keys = [line.split()[0] for line in conf]
    single = [k for k in keys if k != "log_type"]  # the one setting given once per type
    assert len(single) == len(set(single)), "a setting is given twice"
    for needed in (
        "allow_anonymous false",
        f"password_file {secure.ca.parent.parent / 'limes.passwd'}",
        f"acl_file {DEPLOY_ACL}",
        "use_username_as_clientid true",
        "require_certificate false",
        "max_queued_messages 500000",
    ):
        assert needed in conf
    assert "allow_anonymous true" not in conf
    assert {"cafile", "certfile", "keyfile", "tls_version"} <= set(keys)
    shipped = {
        line.split()[0]
        for line in DEPLOY_CONF.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert shipped - _OWN_KEYS <= set(keys)
    assert secure.server.running


# -- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("v5", "user", "password", "code"),
    [
        (True, None, None, NOT_AUTHORIZED),
        (False, None, None, NOT_AUTHORIZED),
        (True, "FO-01", "wrong", NOT_AUTHORIZED),
        (False, SERVICE, "wrong", NOT_AUTHORIZED),
        (True, "FO-99", "no-such-user", NOT_AUTHORIZED),
    ],
    ids=["anonymous-v5", "anonymous-v311", "bad-password-v5", "bad-password-v311", "unknown"],
)
async def test_unauthenticated_clients_refused(
    secure: Secure, v5: bool, user: str | None, password: str | None, code: int
) -> None:
    with pytest.raises(aiomqtt.MqttCodeError) as info:
        async with secure.client(user, v5=v5, password=password):
            pass
    rc = info.value.rc
    assert rc is not None
    assert (rc if isinstance(rc, int) else rc.value) == code


# -- ACL -----------------------------------------------------------------------------------------


async def test_device_cannot_spoof_another_device(
    secure: Secure, service_sub: aiomqtt.Client
) -> None:
    spoof = batch("FO-02", 7)
    own = batch("FO-01", 1)
    async with secure.client("FO-01", v5=True) as dev:
        codes = puback_codes(dev)
        await dev.publish(events_topic("FO-02"), spoof, qos=1)
        await dev.publish("limes/v1/sensors/fibre/FO-02/status", b'{"state":"fault"}', qos=1)
        await dev.publish("limes/v1/sensors/msv/FO-02/events", spoof, qos=1, retain=True)
        await dev.publish(events_topic("FO-01"), own, qos=1)
    assert codes == [NOT_AUTHORIZED, NOT_AUTHORIZED, NOT_AUTHORIZED, 0]
    last = batch("FO-01", 2)
    async with secure.client("FO-01") as dev311:  # v3.1.1: acked as usual, still dropped
        codes311 = puback_codes(dev311)
        await dev311.publish(events_topic("FO-02"), spoof, qos=1)
        await dev311.publish(events_topic("FO-01"), last, qos=1)
    assert codes311 == [0, 0]
    got = await received_until(service_sub, last)
    assert got == [(events_topic("FO-01"), own), (events_topic("FO-01"), last)]
    # nothing retained on the other device's topics either
    async with secure.client(SERVICE, clean_session=True) as fresh:
        await fresh.subscribe("limes/v1/sensors/+/FO-02/#", qos=1)
        async with secure.client("FO-02") as fo2:
            await fo2.publish(events_topic("FO-02"), sentinel := batch("FO-02", 1), qos=1)
        assert await received_until(fresh, sentinel) == [(events_topic("FO-02"), sentinel)]


async def test_device_publishes_own_events_service_receives_them(
    secure: Secure, service_sub: aiomqtt.Client
) -> None:
    own = batch("FO-01", 1)
    async with secure.client("FO-01", v5=True) as dev:
        codes = puback_codes(dev)
        await dev.publish(events_topic("FO-01"), own, qos=1)
    got = await received_until(service_sub, own)
    assert got == [(events_topic("FO-01"), own)]
    assert codes == [0]
    res = Ingest(SITE, started=time.time()).handle(got[0][0], got[0][1], time.time())
    assert res.accepted
    assert res.meas.size == 3


async def forge(secure: Secure, user: str, payload: bytes) -> list[int]:
    """``user`` (MQTT v5) publishes ``payload`` on every service-only topic; PUBACK codes."""
    async with secure.client(user, v5=True) as c:
        codes = puback_codes(c)
        for topic in (
            "limes/v1/alerts/S01",
            "limes/v1/tasking/RO-P01",
            "limes/v1/ccp/outbox",
            "limes/v1/tracks/S01",
            "limes/v1/deadletter",
            AVAILABLE_TOPIC,
        ):
            await c.publish(topic, payload, qos=1)
    return codes


async def test_only_the_service_publishes_alerts_tasking_and_tracks(secure: Secure) -> None:
    """Operators, devices and patrol units cannot publish alerts, tasking, CCP requests,
    tracks, dead letters or the service's presence. (One connection per user at a time:
    the broker's client id is the username, a second connection replaces the first.)"""
    alert = b'{"alert_id":"A-1","state":"open"}'
    order = b'{"unit":"RO-P01","alert_id":"A-1"}'
    forged = b'{"alert_id":"A-666","state":"open"}'
    async with (
        secure.client("console-01", clean_session=True) as console,
        secure.client("RO-P01", clean_session=True) as patrol,
    ):
        await console.subscribe([("limes/v1/alerts/+", 1), ("limes/v1/tracks/+", 0)])
        await patrol.subscribe("limes/v1/tasking/RO-P01", qos=1)
        refused = {u: await forge(secure, u, forged) for u in ("operator-01", "FO-01", "FO-02")}
        async with secure.client(SERVICE, v5=True) as svc:
            codes = puback_codes(svc)
            await svc.publish("limes/v1/alerts/S01", alert, qos=1)
            await svc.publish("limes/v1/tasking/RO-P01", order, qos=1)
        assert codes == [0, 0]
        assert refused == {u: [NOT_AUTHORIZED] * 6 for u in refused}
        assert await received_until(console, alert) == [("limes/v1/alerts/S01", alert)]
        assert await received_until(patrol, order) == [("limes/v1/tasking/RO-P01", order)]
    for user in ("console-01", "RO-P01"):
        assert await forge(secure, user, forged) == [NOT_AUTHORIZED] * 6


async def test_operators_may_ack_others_may_not(
    secure: Secure, service_sub: aiomqtt.Client
) -> None:
    def ack(who: str) -> bytes:
        return json.dumps({"operator": who, "t": time.time(), "note": "seen"}).encode()

    topic = "limes/v1/alerts/A-1/ack"
    results: dict[str, list[int]] = {}
    for user in ("console-01", "FO-01", "RO-P01", "operator-01"):  # the operator last
        async with secure.client(user, v5=True) as c:
            codes = puback_codes(c)
            await c.publish(topic, payload := ack(user), qos=1)
            results[user] = codes
    assert results == {
        "console-01": [NOT_AUTHORIZED],
        "FO-01": [NOT_AUTHORIZED],
        "RO-P01": [NOT_AUTHORIZED],
        "operator-01": [0],
    }
    assert await received_until(service_sub, payload) == [(topic, payload)]
    res = Ingest(SITE, started=time.time()).handle(topic, payload, time.time())
    assert res.accepted
    assert res.ack is not None
    assert res.ack.operator == "operator-01"


async def test_client_id_of_the_service_cannot_be_taken_over(
    secure: Secure, service_sub: aiomqtt.Client
) -> None:
    """``use_username_as_clientid``: a device connecting with the client id
    ``limes-service`` neither disconnects the service nor sees its messages."""
    async with secure.client("FO-02", identifier=SERVICE, clean_session=True) as impostor:
        await impostor.subscribe("limes/v1/#", qos=1)
        async with secure.client("FO-01") as dev:
            await dev.publish(events_topic("FO-01"), payload := batch("FO-01", 5), qos=1)
        # the service's connection is still up and got the batch; the impostor got nothing
        assert await received_until(service_sub, payload) == [(events_topic("FO-01"), payload)]
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(QUIET_S):
                await anext(aiter(impostor.messages))


# -- TLS ---------------------------------------------------------------------------------------


def handshake(
    secure: Secure, ca: Path | None, name: str, max_version: ssl.TLSVersion | None = None
) -> str:
    """A TLS handshake with the broker (what paho does before MQTT), verifying its
    certificate against ``ca`` (None: the system trust store) for host ``name``; the
    negotiated version."""
    ctx = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    if max_version is not None:
        ctx.maximum_version = max_version
    host, port = secure.server.host, secure.server.port
    with (
        socket.create_connection((host, port), timeout=5.0) as raw,
        ctx.wrap_socket(raw, server_hostname=name) as tls,
    ):
        return str(tls.version())


def test_tls_certificate_verified(secure: Secure) -> None:
    # the system trust store does not know the throwaway CA
    with pytest.raises(ssl.SSLCertVerificationError, match=r"self-signed|unable to get"):
        handshake(secure, None, "127.0.0.1")
    # the right CA, a name the certificate does not carry
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(secure, secure.ca, "broker.example.org")
    assert handshake(secure, secure.ca, "127.0.0.1") == "TLSv1.3"
    assert handshake(secure, secure.ca, "localhost", ssl.TLSVersion.TLSv1_2) == "TLSv1.2"


async def test_plain_mqtt_refused_tls_with_the_ca_accepted(secure: Secure) -> None:
    host, port = secure.server.host, secure.server.port
    pw = secure.passwords[SERVICE]
    with pytest.raises(aiomqtt.MqttError):  # the TLS listener does not speak plain MQTT
        async with aiomqtt.Client(host, port, username=SERVICE, password=pw, timeout=1.0):
            pass
    async with secure.client(SERVICE, clean_session=True) as c:  # paho checks 127.0.0.1
        await c.publish(AVAILABLE_TOPIC, b"probe", qos=1)


def test_cli_builds_tls_settings(
    secure: Secure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pw_file = tmp_path / "mqtt-password"
    pw_file.write_text(secure.passwords[SERVICE] + "\n")
    monkeypatch.setenv("LIMES_MQTT_USERNAME", SERVICE)
    monkeypatch.delenv("LIMES_MQTT_PASSWORD", raising=False)
    monkeypatch.setenv("LIMES_MQTT_PASSWORD_FILE", str(pw_file))
    parser = build_parser()
    s = mqtt_settings(
        parser.parse_args(["run", "--mqtt", "mqtts://broker", "--mqtt-ca", str(secure.ca)])
    )
    assert (s.host, s.port, s.uses_tls, s.ca_file) == ("broker", 8883, True, str(secure.ca))
    assert (s.username, s.password) == (SERVICE, secure.passwords[SERVICE])
    plain = mqtt_settings(parser.parse_args(["run", "--mqtt", "mqtt://broker"]))
    assert (plain.port, plain.uses_tls, plain.tls_params()) == (1883, False, None)
    for bad in (
        ["--mqtt", "mqtt://broker", "--mqtt-ca", str(secure.ca)],  # CA without TLS
        ["--mqtt", "mqtts://broker", "--mqtt-ca", str(tmp_path / "missing.crt")],
        ["--mqtt", "mqtts://broker", "--mqtt-cert", str(secure.ca)],  # cert without key
        ["--mqtt", "http://broker"],
    ):
        with pytest.raises(SystemExit):
            mqtt_settings(parser.parse_args(["run", *bad]))


# -- the service over TLS + auth -----------------------------------------------------------------


async def test_driver_over_tls_receives_a_device_batch(secure: Secure) -> None:
    results: list[IngestResult] = []
    got = asyncio.Event()

    async def on_result(res: IngestResult) -> None:
        results.append(res)
        got.set()

    ingest = Ingest(SITE, started=time.time())
    async with MqttDriver(ingest, secure.settings(client_id="ignored-by-broker"), on_result) as drv:
        async with asyncio.timeout(WAIT_S):
            await drv.wait_connected()
        async with secure.client("FO-01") as dev:
            await dev.publish(events_topic("FO-01"), batch("FO-01", 11), qos=1)
        async with asyncio.timeout(WAIT_S):
            await got.wait()
    assert len(results) == 1
    assert results[0].accepted
    assert results[0].device == "FO-01"
    assert results[0].meas.size == 3


async def test_limes_run_over_tls_and_auth_journals_a_device_batch(
    secure: Secure, redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pw_file = tmp_path / "mqtt-password"
    pw_file.write_text(secure.passwords[SERVICE])
    monkeypatch.setenv("LIMES_MQTT_USERNAME", SERVICE)
    monkeypatch.delenv("LIMES_MQTT_PASSWORD", raising=False)
    monkeypatch.setenv("LIMES_MQTT_PASSWORD_FILE", str(pw_file))
    url = f"mqtts://{secure.server.host}:{secure.server.port}"
    args = build_parser().parse_args(["run", "--mqtt", url, "--mqtt-ca", str(secure.ca)])
    settings = LiveSettings(
        mqtt=mqtt_settings(args), redis_url=redis_server.url, metrics_port=None, snapshot_s=3600
    )
    stop = asyncio.Event()
    payload = batch("FO-01", 21)
    async with secure.client("operator-01", clean_session=True) as op:
        await op.subscribe(AVAILABLE_TOPIC, qos=1)
        service = asyncio.create_task(run_live(SITE, settings, stop))
        presence = aiter(op.messages)
        try:
            async with asyncio.timeout(WAIT_S * 2):
                while (await anext(presence)).payload != b"online":
                    pass
            async with secure.client("FO-01") as dev:
                await dev.publish(events_topic("FO-01"), payload, qos=1)
            async with asyncio.timeout(WAIT_S):
                while True:
                    if _journaled(redis_server, events_topic("FO-01"), payload):
                        break
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            async with asyncio.timeout(WAIT_S):
                await service
        async with asyncio.timeout(WAIT_S):
            while (await anext(presence)).payload != b"offline":
                pass


def _journaled(redis_server: RedisServer, topic: str, payload: bytes) -> bool:
    with redis_server.client() as r:
        entries = r.xrange("limes:{journal}:in")
    return any(
        f.get(b"k") == b"m" and f.get(b"topic") == topic.encode() and f.get(b"p") == payload
        for _id, f in entries
    )
