"""The connection to Redis: opened and checked against a real redis-server."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import RedisSettings
from gateway.errors import RedisUnavailable, ReplicaError
from gateway.replica.client import RedisLink, parse_version

from .redisserver import RedisServer, free_port


async def test_open_checks_the_server_and_reports_health(redis_server: RedisServer) -> None:
    link = RedisLink(RedisSettings(redis_server.url), "r1")
    assert link.health == "down"
    await link.open()
    try:
        assert parse_version(link.version) >= (6, 2)
        assert link.health == "up"
        assert await link.call(link.client.ping()) is True
        name = await link.client.client_getname()
        assert name in ("gateway-r1", b"gateway-r1")
        redis_server.stop()
        with pytest.raises(RedisUnavailable):
            await link.call(link.client.ping())
        assert link.health == "down"
        redis_server.start()
        assert await link.call(link.client.ping()) is True
        assert link.health == "up"
    finally:
        await link.aclose()


async def test_a_unix_socket(redis_server: RedisServer) -> None:
    link = RedisLink(RedisSettings(redis_server.unix_url), "r1")
    await link.open()
    try:
        assert await link.call(link.client.ping()) is True
    finally:
        await link.aclose()


@pytest.fixture
def protected(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, password="correct horse")
    server.start()
    yield server
    server.stop()


async def test_the_password_comes_from_its_file(protected: RedisServer, tmp_path: Path) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text("correct horse\n")
    link = RedisLink(RedisSettings(protected.url, password_file=secret), "r1")
    await link.open()
    try:
        assert await link.call(link.client.ping()) is True
    finally:
        await link.aclose()
    # A wrong or missing password fails at once, with the reason and no secret.
    secret.write_text("battery staple\n")
    with pytest.raises(ReplicaError, match="refused us") as caught:
        await RedisLink(RedisSettings(protected.url, password_file=secret), "r1").open(wait=5)
    assert "staple" not in str(caught.value)
    with pytest.raises(ReplicaError, match="refused us"):
        await RedisLink(RedisSettings(protected.url), "r1").open(wait=5)
    secret.write_text("\n")
    with pytest.raises(ReplicaError, match="is empty"):
        await RedisLink(RedisSettings(protected.url, password_file=secret), "r1").open()
    with pytest.raises(ReplicaError, match=r"cannot read redis\.password_file"):
        await RedisLink(RedisSettings(protected.url, password_file=tmp_path / "nope"), "r").open()


async def test_nobody_listening_is_a_clear_error_after_the_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with (
        caplog.at_level(logging.WARNING, "gateway.replica.client"),
        pytest.raises(ReplicaError, match=re.escape(f"Redis at {url} did not answer within 1 s")),
    ):
        await RedisLink(RedisSettings(url), "r1").open(wait=1)
    # It retried (and said so) before giving up, rather than failing at the first refusal.
    waits = [r for r in caplog.records if r.getMessage().startswith(f"waiting for Redis at {url}")]
    assert len(waits) >= 2


async def _old_redis(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # A Redis too old for streams' MINID: a real 6.0 is not packaged, so this
    # answers the one question asked (HELLO/CLIENT SETNAME/INFO) as 6.0.9 would.
    try:
        while line := await reader.readline():
            if not line.startswith(b"*"):
                continue
            words = []
            for _ in range(int(line[1:])):
                length = int((await reader.readline())[1:])
                words.append((await reader.readexactly(length + 2))[:-2].upper())
            if words[0] == b"INFO":
                body = b"# Server\r\nredis_version:6.0.9\r\n"
                writer.write(b"$%d\r\n%s\r\n" % (len(body), body))
            else:
                writer.write(b"+OK\r\n")
            await writer.drain()
    finally:
        writer.close()


async def test_a_redis_older_than_6_2_is_refused() -> None:
    server = await asyncio.start_server(_old_redis, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ReplicaError, match=r"version 6\.0\.9; replica mode needs 6\.2"):
            await RedisLink(RedisSettings(f"redis://127.0.0.1:{port}/0"), "r1").open(wait=5)
    finally:
        server.close()
        await server.wait_closed()


def test_versions_compare_as_numbers() -> None:
    assert parse_version("6.2.0") >= (6, 2)
    assert parse_version("7.0.15") > parse_version("6.10")
    assert parse_version("6.0.20") < (6, 2)
    assert parse_version("255.255.255-rc1") > (6, 2)


@pytest.mark.parametrize("delay", [0, 0.0001, 0.0005, 0.001, 0.002])
async def test_a_task_awaiting_redis_can_be_cancelled(
    redis_server: RedisServer, delay: float
) -> None:
    # Every role change of a replica cancels a task that may be in a command;
    # with a redis-py socket timeout set, that cancellation was sometimes swallowed.
    link = RedisLink(RedisSettings(redis_server.url), "r1")
    await link.open()
    try:

        async def busy() -> None:
            for _ in range(500):
                await link.call(link.client.xrange("nothing", "-", "+"))

        task = asyncio.create_task(busy())
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await link.aclose()
