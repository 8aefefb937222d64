"""One background MQTT subscriber for the tests that watch what the service publishes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import aiomqtt

from benchmarks.servers import MosquittoServer

#: called with (topic, payload) for every message received
Handler = Callable[[str, bytes], None]


@contextlib.asynccontextmanager
async def observing(
    broker: MosquittoServer,
    subscriptions: list[tuple[str, int]],
    on_message: Handler,
    *,
    identifier: str,
    persistent: bool = False,
    reconnect: bool = False,
) -> AsyncIterator[None]:
    """Subscribe to ``subscriptions`` ((filter, QoS) pairs) in a background task and pass
    every message to ``on_message``; the body runs once the subscription is in place (10 s
    at most) and the task is cancelled when it ends. ``persistent``: a persistent session
    (``clean_session=False``), so QoS 1 messages published while disconnected are kept by
    the broker; ``reconnect``: connect again after a connection error (broker restarts)."""
    ready = asyncio.Event()

    async def run() -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    broker.host, broker.port, identifier=identifier, clean_session=not persistent
                ) as c:
                    await c.subscribe(subscriptions)
                    ready.set()
                    async for msg in c.messages:
                        on_message(msg.topic.value, bytes(msg.payload))  # type: ignore[arg-type,unused-ignore]
            except aiomqtt.MqttError:
                if not reconnect:
                    raise
                await asyncio.sleep(0.2)

    task = asyncio.create_task(run())
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
