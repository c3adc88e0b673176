"""Operator commands over HTTP: one agent, a broadcast, and bearer tokens."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.auth import hash_password, new_api_token
from gateway.local import LocalAgent
from gateway.users import Role, User

from .conftest import AgentFactory, GatewayFactory, eventually, origin_of

TOKEN, TOKEN_SHA256 = new_api_token()
VIEWER_TOKEN, VIEWER_SHA256 = new_api_token()


async def pane_has(agent: LocalAgent, text: str) -> bool:
    return text in await agent.capture()


async def test_open_gateway_input_api(agent: LocalAgent, gateway: GatewayFactory) -> None:
    client = await gateway(agent)
    origin = {"Origin": origin_of(client)}
    url = f"/api/agents/{agent.name}/input"
    await eventually(lambda: _connected(client), message="upstream")
    response = await client.post(url, json={"data": "echo via-api-$((3+4))\r"}, headers=origin)
    assert await response.json() == {"agent": agent.name, "ok": True, "sent": 22}
    await eventually(lambda: pane_has(agent, "via-api-7"), message="typed via the API")
    assert (await client.post(url, json={"data": "x"})).status == 403  # no Origin
    for bad in ({}, {"data": ""}, {"data": 5}, {"data": "x" * 70_000}):
        response = await client.post(url, json=bad, headers=origin)
        assert response.status == 400, bad
        assert (await response.json())["error"] == "bad_request"
    missing = await client.post("/api/agents/nope/input", json={"data": "x"}, headers=origin)
    assert missing.status == 404
    await agent.stop_ttyd()
    await eventually(lambda: _connected(client, False), message="upstream down")
    down = await client.post(url, json={"data": "echo never\r"}, headers=origin)
    assert down.status == 503
    assert (await down.json())["error"] == "unavailable"


async def _connected(client: TestClient[Any, Any], expected: bool = True) -> bool:
    agents = (await (await client.get("/api/agents")).json())["agents"]
    return all((a["status"] == "connected") == expected for a in agents)


@pytest.fixture(scope="module")
def users() -> tuple[User, ...]:
    hashed = hash_password("pw")
    return (
        User("ops", hashed, Role.OPERATOR, ("a*",), TOKEN_SHA256),
        User("eve", hashed, Role.VIEWER, ("*",), VIEWER_SHA256),
    )


async def test_bearer_tokens_and_broadcast(
    make_agent: AgentFactory, gateway: GatewayFactory, users: tuple[User, ...]
) -> None:
    a1, a2, b1 = await make_agent("a1"), await make_agent("a2"), await make_agent("b1")
    client = await gateway(a1, a2, b1, users=users)
    base = str(client.make_url(""))
    async with aiohttp.ClientSession(
        base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as script:
        await eventually(lambda: _all_connected(script), message="upstreams")
        response = await script.post(
            "/api/input",
            json={"agents": ["a1", "a2", "b1", "zz", "a1"], "data": "echo fan-out-$((2*5))\r"},
        )
        assert response.status == 200
        results = (await response.json())["results"]
        assert list(results) == ["a1", "a2", "b1", "zz"]
        assert results["a1"]["ok"]
        assert results["a2"]["ok"]
        # b1 exists but is outside this user's globs: the same answer as zz.
        assert results["b1"] == {**results["zz"], "message": results["b1"]["message"]}
        assert results["b1"]["error"] == "not_found"
        for agent in (a1, a2):
            await eventually(lambda a=agent: pane_has(a, "fan-out-10"), message="broadcast")
        assert not await pane_has(b1, "fan-out-10")
        bad = await script.post("/api/input", json={"agents": [], "data": "x"})
        assert bad.status == 400
    async with aiohttp.ClientSession(
        base_url=base, headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}
    ) as viewer:
        refused = await viewer.post("/api/agents/b1/input", json={"data": "echo nope\r"})
        assert refused.status == 403
        assert (await refused.json())["error"] == "read_only"
        many = await (await viewer.post("/api/input", json={"agents": ["b1"], "data": "x"})).json()
        assert many["results"]["b1"]["error"] == "read_only"
    async with aiohttp.ClientSession(
        base_url=base, headers={"Authorization": "Bearer not-a-token"}
    ) as stranger:
        assert (await stranger.get("/api/agents")).status == 401
        assert (
            await stranger.post("/api/input", json={"agents": ["a1"], "data": "x"})
        ).status == 401


async def _all_connected(http: aiohttp.ClientSession) -> bool:
    agents = (await (await http.get("/api/agents")).json())["agents"]
    return bool(agents) and all(a["status"] == "connected" for a in agents)
