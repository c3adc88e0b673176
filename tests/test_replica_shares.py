"""Share links in replica mode: one store, redeemed atomically across replicas."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from gateway.local import LocalAgent

from .conftest import GatewayFactory, browser
from .redisserver import RedisServer
from .replicas import PASSWORD, PairFactory, pair_factory


@pytest.fixture
def pair(gateway: GatewayFactory, redis_server: RedisServer, tmp_path: Path) -> PairFactory:
    return pair_factory(gateway, redis_server, tmp_path)


async def create_share(http: aiohttp.ClientSession, agent: str, max_uses: int | None) -> str:
    body: dict[str, int] = {"ttl_seconds": 3600}
    if max_uses is not None:
        body["max_uses"] = max_uses
    response = await http.post(f"/api/agents/{agent}/shares", json=body)
    assert response.status == 201, await response.text()
    url: str = (await response.json())["url"]
    return url.rsplit("/s/", 1)[1]


async def redeem(http: aiohttp.ClientSession, token: str) -> int:
    async with http.get(f"/s/{token}", allow_redirects=False) as response:
        return response.status


async def test_a_single_use_link_redeemed_on_both_replicas_at_once_lets_one_in(
    pair: PairFactory, agent: LocalAgent
) -> None:
    a, b = await pair(agent)
    op = await browser(a, "op", PASSWORD)
    spectators = [await browser(a), await browser(b)]
    try:
        for _ in range(10):
            token = await create_share(op, agent.name, max_uses=1)
            statuses = await asyncio.gather(*(redeem(http, token) for http in spectators))
            assert sorted(statuses) == [303, 404], statuses
            assert {await redeem(http, token) for http in spectators} == {404}
        # A link of three uses: three in, whichever replica they open it on.
        token = await create_share(op, agent.name, max_uses=3)
        many = [await browser(c) for c in (a, b, a, b, a, b)]
        statuses = await asyncio.gather(*(redeem(http, token) for http in many))
        assert sorted(statuses) == [303] * 3 + [404] * 3
        for http in many:
            await http.close()
    finally:
        await op.close()
        for http in spectators:
            await http.close()


async def test_links_made_on_a_are_listed_and_used_on_b(
    pair: PairFactory, agent: LocalAgent
) -> None:
    a, b = await pair(agent)
    on_a, on_b = await browser(a, "op", PASSWORD), await browser(b, "op", PASSWORD)
    viewer = await browser(b)
    try:
        token = await create_share(on_a, agent.name, max_uses=None)
        listed = (await (await on_b.get("/api/shares")).json())["shares"]
        assert [s["agent"] for s in listed] == [agent.name]
        assert "token_sha256" not in listed[0]
        assert await redeem(viewer, token) == 303
        listed = (await (await on_a.get("/api/shares")).json())["shares"]
        assert listed[0]["uses"] == 1
    finally:
        for http in (on_a, on_b, viewer):
            await http.close()


async def test_revoking_on_a_closes_spectators_on_b(
    pair: PairFactory, agent: LocalAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the control channel can close B's socket: the sweeper is off.
    monkeypatch.setattr("gateway.web.identity.SWEEP_INTERVAL", 3600.0)
    a, b = await pair(agent)
    op = await browser(a, "op", PASSWORD)
    viewer = await browser(b)
    try:
        token = await create_share(op, agent.name, max_uses=None)
        assert await redeem(viewer, token) == 303
        ws = await viewer.ws_connect(f"/agents/{agent.name}/ws", protocols=("tty",))
        await ws.send_bytes(b'{"AuthToken": ""}')
        (share,) = (await (await op.get("/api/shares")).json())["shares"]
        assert (await op.delete(f"/api/shares/{share['id']}")).status == 204
        async with asyncio.timeout(10):
            async for _ in ws:
                pass
        assert ws.close_code == 1008
        latecomer = await browser(b)
        assert await redeem(latecomer, token) == 404
        await latecomer.close()
    finally:
        await op.close()
        await viewer.close()


async def test_a_label_made_on_a_is_listed_on_b(pair: PairFactory, agent: LocalAgent) -> None:
    a, b = await pair(agent)
    on_a, on_b = await browser(a, "op", PASSWORD), await browser(b, "op", PASSWORD)
    try:
        body = {"ttl_seconds": 3600, "max_uses": 2, "label": "for the <i>review</i>"}
        made = await on_a.post(f"/api/agents/{agent.name}/shares", json=body)
        assert made.status == 201
        plain = await on_a.post(f"/api/agents/{agent.name}/shares", json={"ttl_seconds": 3600})
        assert plain.status == 201
        listed = (await (await on_b.get("/api/shares")).json())["shares"]
        assert [(s["label"], s["max_uses"]) for s in listed] == [
            ("for the <i>review</i>", 2),
            (None, None),
        ]
        refused = await on_b.post(
            f"/api/agents/{agent.name}/shares",
            json={"ttl_seconds": 3600, "label": "rtl\u202eoverride"},
        )
        assert refused.status == 400
        assert len((await (await on_a.get("/api/shares")).json())["shares"]) == 2
    finally:
        await on_a.close()
        await on_b.close()
