"""The audit trail in replica mode: each replica's file, and the whole fleet in GET /api/audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.appkeys import AUDIT
from gateway.audit import AuditLog
from gateway.config import RedisSettings
from gateway.errors import RedisUnavailable
from gateway.replica import audit as fleet_audit
from gateway.replica.audit import FleetAudit
from gateway.replica.client import RedisLink

from .conftest import GatewayFactory, browser, eventually
from .redisserver import RedisServer
from .replicas import PASSWORD, PairFactory, pair_factory


@pytest.fixture
def pair(gateway: GatewayFactory, redis_server: RedisServer, tmp_path: Path) -> PairFactory:
    return pair_factory(gateway, redis_server, tmp_path)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_every_replica_shows_the_whole_fleet_and_keeps_its_own_file(
    pair: PairFactory, tmp_path: Path
) -> None:
    a, b = await pair()
    on_a = await browser(a, "op", PASSWORD)
    on_b = await browser(b, "admin", PASSWORD)
    # The admin's session, used on A too.
    admin_on_a = await browser(a)
    admin_on_a.cookie_jar.update_cookies({c.key: c.value for c in on_b.cookie_jar})
    try:
        for http in (on_b, admin_on_a):
            body = await (await http.get("/api/audit")).json()
            logins = {e["user"]: e["replica"] for e in body["entries"] if e["event"] == "login"}
            assert set(logins) == {"op", "admin"}
            assert logins["op"] != logins["admin"]  # one came through each replica
            assert body["total"] == len(body["entries"])
        await a.app[AUDIT].flush()  # type: ignore[attr-defined]
        await b.app[AUDIT].flush()  # type: ignore[attr-defined]
        # Each file has its own replica's entries only.
        assert [e["user"] for e in lines(tmp_path / "a" / "audit.jsonl")] == ["op"]
        assert [e["user"] for e in lines(tmp_path / "b" / "audit.jsonl")] == ["admin"]
    finally:
        for http in (on_a, on_b, admin_on_a):
            await http.close()


async def test_the_fleet_list_is_capped_and_offsets_stay_absolute(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fleet_audit, "CAPACITY", 10)
    link = RedisLink(RedisSettings(redis_server.url), "r1")
    await link.open()
    audit = FleetAudit(AuditLog(tmp_path / "audit.jsonl"), link, "t:", "r1")
    await audit.start()
    try:
        for i in range(25):
            audit.record("tick", n=i)
        entries, total = await audit.read(0, 100)
        assert total == 25
        assert [e["n"] for e in entries] == list(range(15, 25))  # the oldest aged out
        entries, _ = await audit.read(20, 3)
        assert [e["n"] for e in entries] == [20, 21, 22]  # entry 20 is still entry 20
    finally:
        await audit.aclose()
        await link.aclose()
    assert len(lines(tmp_path / "audit.jsonl")) == 25  # the file keeps everything


async def test_entries_wait_while_redis_is_down(redis_server: RedisServer, tmp_path: Path) -> None:
    link = RedisLink(RedisSettings(redis_server.url), "r1")
    await link.open()
    audit = FleetAudit(AuditLog(tmp_path / "audit.jsonl"), link, "t:", "r1")
    await audit.start()
    try:
        redis_server.stop()
        audit.record("while_down", n=1)  # never raises, never blocks
        redis_server.start()

        # A down Redis lost nothing of the entry: it waited, then went out.
        async def arrived() -> bool:
            try:
                entries, _ = await audit.read(0, 10)
            except RedisUnavailable:
                return False  # the first call after the restart may meet a dead connection
            return [e["event"] for e in entries] == ["while_down"]

        await eventually(arrived, message="the entry reaches Redis")
    finally:
        await audit.aclose()
        await link.aclose()
