"""Two gateway replicas sharing one real redis-server, for the replica-state tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from gateway.auth import hash_password
from gateway.config import RedisSettings
from gateway.local import LocalAgent
from gateway.users import Role, User

from .conftest import GatewayFactory
from .redisserver import RedisServer

PASSWORD = "correct horse"
# Hashed once: argon2id takes a good part of a second.
_HASH = hash_password(PASSWORD)
OPERATOR = User("op", _HASH, Role.OPERATOR, ("*",))
ADMIN = User("admin", _HASH, Role.ADMIN, ("*",))
VIEWER = User("watcher", _HASH, Role.VIEWER, ("*",))
USERS = (OPERATOR, ADMIN)

Client = TestClient[Any, Any]
PairFactory = Callable[..., Awaitable[tuple[Client, Client]]]


def pair_factory(gateway: GatewayFactory, server: RedisServer, tmp_path: Path) -> PairFactory:
    """Start replicas A and B with the same users and Redis, each with its own files."""

    async def make(*agents: LocalAgent, **overrides: Any) -> tuple[Client, Client]:
        overrides.setdefault("users", USERS)
        overrides.setdefault("redis", RedisSettings(server.url, key_prefix="t:"))
        replicas = []
        for name in ("a", "b"):
            folder = tmp_path / name
            replicas.append(
                await gateway(
                    *agents, state_dir=folder, audit_log=folder / "audit.jsonl", **overrides
                )
            )
        return replicas[0], replicas[1]

    return make


def direct(server: RedisServer) -> aioredis.Redis:
    """A plain client of our own, to look at what the replicas wrote."""
    return aioredis.Redis.from_url(server.url)
