"""The control channel: a Redis stream every replica reads, resumed after a blip."""

from __future__ import annotations

import asyncio

from gateway.config import RedisSettings
from gateway.replica.client import RedisLink
from gateway.replica.control import RedisControl
from gateway.tasks import running

from .conftest import eventually
from .redisserver import RedisServer


async def test_messages_reach_the_others_not_the_sender_and_survive_a_restart(
    redis_server: RedisServer,
) -> None:
    links = [RedisLink(RedisSettings(redis_server.url), name) for name in ("a", "b")]
    for link in links:
        await link.open()
    a, b = (RedisControl(link, "t:", link.replica) for link in links)
    heard: dict[str, list[tuple[str, str]]] = {"a": [], "b": []}

    def listener(name: str):  # type: ignore[no-untyped-def]
        async def hear(kind: str, value: str) -> None:
            heard[name].append((kind, value))

        return hear

    a.listeners.append(listener("a"))
    b.listeners.append(listener("b"))
    try:
        async with running(a.run(), "a"), running(b.run(), "b"):
            await asyncio.wait_for(asyncio.gather(a.reading.wait(), b.reading.wait()), 10)
            await a.publish("session", "k1")
            await eventually(lambda: heard["b"] == [("session", "k1")], message="B hears A")
            assert heard["a"] == []  # the sender acted already
            redis_server.restart()  # the stream is gone with everything else
            # Publishing while the pool reconnects may fail once; it only warns.
            await eventually(lambda: _published(a, "k2", heard["b"]), message="after restart")
            assert heard["a"] == []
    finally:
        for link in links:
            await link.aclose()


async def _published(control: RedisControl, value: str, heard: list[tuple[str, str]]) -> bool:
    if ("session", value) in heard:
        return True
    await control.publish("session", value)
    return False
