"""The operator console in a real browser (Debian's chromium, driven by Playwright).

Both ways the console runs: embedded (``limes demo``'s path: simulator -> pipeline with
the memory store, in this process) and live (``limes run``'s :func:`service.live.run_live`
on a real Mosquitto and Redis, the simulated devices publishing over MQTT). In each, an
operator logs in, sees a simulated crossing appear in the alert queue within seconds of
its publication, acknowledges it with a note, and the store (Redis in the live run) holds
the acknowledgement and its audit entry. A screenshot of each run is saved under
``test-artifacts/``.

chromium is installed by ``scripts/test`` (``ensure_servers``); a missing one fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from alerts import RedisAlertStore
from benchmarks.servers import MosquittoServer, RedisServer
from console import (
    ConsoleHub,
    ConsoleOptions,
    ConsoleServer,
    ConsoleSettings,
    HubSink,
    SessionStore,
    load_users,
)
from console._auth import users_toml
from drivers import MqttSettings, ReplayItem
from geo import default_site
from service.live import LiveSettings, run_live
from service.runtime import MemorySink, Pipeline, run_items
from sim_sensors import generate, preset
from sim_sensors.live import publish

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
USERS = {"ana.ionescu": ("operator", "op-pass-1"), "vlad": ("viewer", "view-pass-1")}
NOTE = "seen on TH camera, patrol informed"
#: the browser must show a published alert within this many seconds
SHOW_WITHIN_S = 3.0


def _require_chromium() -> None:
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} not found: run ./scripts/test as root (it installs it), or "
            "sudo apt-get install -y chromium",
            pytrace=False,
        )


class SceneClock:
    """Scenario time running ``rate`` times wall time from :meth:`start` (as the devices
    publish), so the live service's ``now`` and the devices' event times agree."""

    def __init__(self, t0: float, rate: float) -> None:
        self.t0 = t0
        self.rate = rate
        self._wall0: float | None = None

    def start(self) -> None:
        """Let time run from now."""
        self._wall0 = time.monotonic()

    def __call__(self) -> float:
        if self._wall0 is None:
            return self.t0
        return self.t0 + (time.monotonic() - self._wall0) * self.rate


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian chromium (never a downloaded browser)."""
    _require_chromium()
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.toml"
    path.write_text(users_toml(dict(USERS)))  # type: ignore[arg-type]
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Published:
    """When the hub first saw each alert id (wall clock)."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}

    def watch(self, hub: ConsoleHub) -> None:
        inner = hub.on_message

        def spy(topic: str, payload: bytes) -> None:
            inner(topic, payload)
            if topic.startswith("limes/v1/alerts/") and b'"kind":"crossing"' in payload:
                aid = payload.split(b'"alert_id":"', 1)[1].split(b'"', 1)[0].decode()
                self.first.setdefault(aid, time.monotonic())

        hub.on_message = spy  # type: ignore[method-assign]


async def _operator_acks_crossing(
    browser: Browser, url: str, published: Published, shot: str, timeout_s: float
) -> str:
    """Log in, wait for a crossing alert, acknowledge it; returns its id."""
    page: Page = await browser.new_page(viewport={"width": 1600, "height": 950})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(f"console: {msg.text}")

    page.on("console", on_console)
    await page.goto(url)
    await page.fill("#username", "ana.ionescu")
    await page.fill("#password", "op-pass-1")
    await page.click("#login-btn")
    await page.wait_for_selector("#main", state="visible")
    await page.wait_for_selector("#conn.on", timeout=10_000)
    item = await page.wait_for_selector(
        '.alert-item[data-kind="crossing"]', timeout=timeout_s * 1000
    )
    assert item is not None
    seen = time.monotonic()
    alert_id = await item.get_attribute("data-alert-id")
    assert alert_id is not None
    assert alert_id in published.first, "the browser shows an alert the hub never saw"
    assert seen - published.first[alert_id] < SHOW_WITHIN_S
    await page.click(f'.alert-item[data-alert-id="{alert_id}"]')  # the list re-renders
    await page.wait_for_selector("#detail-panel", state="visible")
    # a note is required: without one the console refuses and says so
    await page.click("#btn-ack")
    assert "note is required" in (await page.text_content("#action-msg") or "")
    await page.fill("#note", NOTE)
    await page.click("#btn-ack")
    await page.wait_for_selector(
        f'.alert-item[data-alert-id="{alert_id}"][data-state="acknowledged"]', timeout=10_000
    )
    await page.wait_for_selector(f'#audit li:has-text("{NOTE}")', timeout=5_000)
    await asyncio.sleep(1.0)  # let a health refresh and the track layer settle for the picture
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / shot))
    await page.close()
    assert errors == []
    return alert_id


async def _check_store_ack(store: Any, sector: str, alert_id: str) -> None:
    stored = await store.get_alert(sector, alert_id)
    assert stored is not None
    assert stored["state"] == "acknowledged"
    acks = [e for e in await store.audit(sector) if e["alert_id"] == alert_id]
    assert ("ack", "acknowledged", "ana.ionescu", NOTE) in [
        (e["event"], e["state"], e["who"], e["why"]) for e in acks
    ]


@pytest.mark.slow
async def test_embedded_demo_console(browser: Browser, users_file: Path) -> None:
    site = default_site()
    sc = generate(site, preset("crossing-10min", seed=7))
    hub = ConsoleHub(site, clock=None)  # the demo's data clock
    published = Published()
    published.watch(hub)
    sink = HubSink(MemorySink(), hub)
    holder: dict[str, Pipeline] = {}

    async def make(t0: float) -> Pipeline:
        pipe = Pipeline(site, sink, started=t0)
        hub.attach(pipe)
        holder["pipe"] = pipe
        return pipe

    sessions = SessionStore(load_users(users_file))
    async with ConsoleServer(hub, sessions, ConsoleSettings(port=0)) as server:
        items = (ReplayItem(i, m.topic, m.payload, m.arrival) for i, m in enumerate(sc.messages))
        feed = asyncio.create_task(run_items(make, items, speed=40.0), name="test.feed")
        try:
            alert_id = await _operator_acks_crossing(
                browser, server.url, published, "console-embedded.png", timeout_s=30.0
            )
            pipe = holder["pipe"]
            await _check_store_ack(pipe.store, pipe.engine.alerts[alert_id].sector, alert_id)
        finally:
            feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed


@pytest.mark.broker
@pytest.mark.slow
async def test_live_run_console_on_redis_and_mosquitto(
    browser: Browser,
    users_file: Path,
    fresh_mqtt_broker: MosquittoServer,
    redis_server: RedisServer,
) -> None:
    site = default_site()
    speed = 6.0  # 50 s of publishing: a 2-core CI box keeps up (12x fell behind)
    sc = generate(site, preset("crossing-10min", seed=1, duration_s=300.0))
    clock = SceneClock(sc.messages[0].arrival, speed)
    broker = fresh_mqtt_broker
    settings = LiveSettings(
        mqtt=MqttSettings(host=broker.host, port=broker.port, client_id="limes-console-e2e"),
        redis_url=redis_server.url,
        metrics_port=None,
        clock=clock,
        clock_rate=speed,
    )
    port = _free_port()
    options = ConsoleOptions(port=port, users=users_file)
    published = Published()
    real_attach = ConsoleHub.attach

    def attach(hub: ConsoleHub, pipe: Pipeline) -> None:
        published.watch(hub)
        real_attach(hub, pipe)

    stop = asyncio.Event()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ConsoleHub, "attach", attach)
        service = asyncio.create_task(run_live(site, settings, stop, console=options))
        url = f"http://127.0.0.1:{port}/"
        for _ in range(200):
            if service.done():
                service.result()
            with contextlib.suppress(OSError):
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                await w.wait_closed()
                break
            await asyncio.sleep(0.05)
        clock.start()
        pub = asyncio.create_task(publish(sc.messages, broker.url, speed=speed))
        try:
            # generous: on a loaded 2-core machine the live service can fall behind the
            # publisher and only catch up once publishing ends (~50 s of wall time)
            alert_id = await _operator_acks_crossing(
                browser, url, published, "console-live.png", timeout_s=120.0
            )
        finally:
            pub.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pub
            stop.set()
            await asyncio.wait_for(service, timeout=20.0)
    with redis_server.client(decode_responses=True) as conn:
        keys = [str(k) for k in conn.scan_iter(match=f"limes:*:alert:{alert_id}")]
    assert len(keys) == 1
    sector = keys[0].split("{", 1)[1].split("}", 1)[0]
    store = RedisAlertStore.from_url(redis_server.url)
    try:
        await _check_store_ack(store, sector, alert_id)
    finally:
        await store.aclose()
