"""One replica's connections to Redis: opened, checked, and watched.

redis-py's asyncio client, with what its known pitfalls ask for
(``../shared/SCALEOUT.md``): raw bytes, never decoded (terminal output); no
automatic retries, since a retried ``ACQUIRE`` or append could apply twice
(the node retries whole steps itself); and a connection of its own for
every blocking read, since a blocked read holds its connection.

No redis-py socket timeout: with one set, a task cancelled while it awaits
a reply sometimes goes on as if nothing happened (seen with redis-py 7.4
and 8.1 on Python 3.11; ``tests/test_replica_client.py`` holds us to it),
and every role change of a replica cancels such tasks. :meth:`RedisLink.call`
puts its own deadline around each command instead.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from ..config import RedisSettings
from ..errors import RedisUnavailable, ReplicaError

log = logging.getLogger(__name__)

# Streams need MINID trimming and exclusive XRANGE starts.
MIN_VERSION = (6, 2)
# How long a start waits for Redis before giving up with a clear error.
START_TIMEOUT = 30.0
# A blocking read waits at most this long (ms) in one command.
BLOCK_MS = 1000
# How long any command may take before Redis counts as down (a blocking read: plus BLOCK_MS).
COMMAND_TIMEOUT = 5.0

Health = Literal["up", "down"]


def read_password(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReplicaError(f"cannot read redis.password_file {path}: {exc.strerror}") from None
    password = text.strip("\r\n")
    if not password:
        raise ReplicaError(f"redis.password_file {path} is empty")
    return password


def parse_version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


class RedisLink:
    """The command client (a small pool) and blocking readers, for one replica."""

    def __init__(self, settings: RedisSettings, replica: str) -> None:
        self.settings = settings
        self.replica = replica
        self._password: str | None = None
        self._client: aioredis.Redis | None = None
        self._readers: list[aioredis.Redis] = []
        self.health: Health = "down"
        self.version = ""

    @property
    def client(self) -> aioredis.Redis:
        assert self._client is not None, "RedisLink.open() first"
        return self._client

    def _options(self, **extra: Any) -> dict[str, Any]:
        return {
            "password": self._password,
            "decode_responses": False,
            "retry": Retry(NoBackoff(), 0),
            "client_name": f"gateway-{self.replica}",
            "socket_timeout": None,
            "socket_connect_timeout": COMMAND_TIMEOUT,
            **extra,
        }

    def _new(self, **extra: Any) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.settings.url, **self._options(**extra))

    async def open(self, wait: float = START_TIMEOUT) -> None:
        """Connect and check the server; waits up to ``wait`` seconds for Redis to answer."""
        if self.settings.password_file is not None:
            self._password = await asyncio.to_thread(read_password, self.settings.password_file)
        # A blocking pool: a burst of requests beyond its connections waits
        # for one (up to 5 s) instead of failing as if Redis were down.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.settings.url, max_connections=32, timeout=COMMAND_TIMEOUT, **self._options()
        )
        self._client = aioredis.Redis.from_pool(pool)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        delay = 0.1
        while True:
            try:
                async with asyncio.timeout(COMMAND_TIMEOUT):
                    info = await self._client.info("server")
                break
            except (AuthenticationError, ResponseError) as exc:
                # Waiting will not fix a wrong password or a refused command.
                await self.aclose()
                raise ReplicaError(f"Redis at {self.settings.url} refused us: {exc}") from None
            except (RedisError, TimeoutError) as exc:
                if loop.time() + delay > deadline:
                    await self.aclose()
                    raise ReplicaError(
                        f"Redis at {self.settings.url} did not answer within {wait:.0f} s: {exc}"
                    ) from None
                log.warning("waiting for Redis at %s: %s", self.settings.url, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.version = str(info.get("redis_version", "0"))
        if parse_version(self.version) < MIN_VERSION:
            await self.aclose()
            raise ReplicaError(
                f"Redis at {self.settings.url} is version {self.version}; replica mode "
                f"needs {'.'.join(map(str, MIN_VERSION))} or newer (stream MINID trimming)"
            )
        self.health = "up"
        log.info("replica %s: Redis %s at %s", self.replica, self.version, self.settings.url)

    def reader(self) -> aioredis.Redis:
        """A client with one connection of its own, for blocking reads."""
        reader = self._new(single_connection_client=True)
        self._readers.append(reader)
        return reader

    def answered(self, ok: bool) -> None:
        """Record whether Redis just answered (health, and its transitions in the log)."""
        health: Health = "up" if ok else "down"
        if health != self.health:
            log.warning("replica %s: Redis is %s", self.replica, health)
        self.health = health

    async def call(self, command: Any, *, blocking: bool = False) -> Any:
        """Await a redis-py coroutine under a deadline, translating its errors into ours."""
        limit = COMMAND_TIMEOUT + (BLOCK_MS / 1000 if blocking else 0)
        try:
            async with asyncio.timeout(limit):
                result = await command
        except ResponseError:
            # Redis answered, with an error (a script's FENCED): it is up.
            self.answered(True)
            raise
        except (RedisError, TimeoutError) as exc:
            # A timed-out command's connection is dropped by redis-py, never reused.
            self.answered(False)
            raise RedisUnavailable(str(exc) or f"no answer within {limit:.0f} s") from exc
        self.answered(True)
        return result

    async def aclose(self) -> None:
        for reader in self._readers:
            await reader.aclose()
        self._readers.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
