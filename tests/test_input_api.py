"""Operator commands over HTTP: one agent, a broadcast, and bearer tokens."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.appkeys import FLEET
from gateway.auth import hash_password, new_api_token
from gateway.local import LocalAgent
from gateway.users import Role, User

from .conftest import AgentFactory, GatewayFactory, eventually, frozen, origin_of, timeout

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


# --- a frozen ttyd (SIGSTOP) -----------------------------------------------------------


async def _status(client: TestClient[Any, Any], agent_id: str) -> tuple[str, str]:
    agents = (await (await client.get("/api/agents")).json())["agents"]
    (mine,) = [a for a in agents if a["id"] == agent_id]
    return mine["status"], mine["message"]


async def test_input_to_a_frozen_agent_is_refused_and_never_typed(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    origin = {"Origin": origin_of(client)}
    url = f"/api/agents/{agent.name}/input"
    await eventually(lambda: _connected(client), message="upstream")
    with frozen(agent):

        async def reported() -> bool:
            status, message = await _status(client, agent.name)
            return status != "connected" and "has not answered" in message

        await eventually(reported, message="the freeze reported")
        refused = await asyncio.wait_for(
            client.post(url, json={"data": "echo never-$((6*7))\r"}, headers=origin), timeout(10)
        )
        assert refused.status == 503
        assert (await refused.json())["error"] == "unavailable"
    await eventually(lambda: _connected(client), message="reconnected")
    typed = await client.post(url, json={"data": "echo resumed-$((6*7))\r"}, headers=origin)
    assert (await typed.json())["ok"] is True
    # The marker went after the refused input: once it shows, the shell has read both.
    await eventually(lambda: pane_has(agent, "resumed-42"), message="marker")
    assert "never-42" not in await agent.capture()


async def test_a_broadcast_answers_for_the_healthy_agent_while_another_is_frozen(
    make_agent: AgentFactory, gateway: GatewayFactory
) -> None:
    healthy = await make_agent("healthy")
    # Input nobody echoes, so the frozen agent's socket buffers can be filled.
    stuck = await make_agent("stuck", command=("sh", "-c", "stty raw -echo; exec cat >/dev/null"))
    client = await gateway(healthy, stuck)
    origin = {"Origin": origin_of(client)}
    await eventually(lambda: _connected(client), message="upstreams")
    await eventually(lambda: pane_has(healthy, "$"), message="prompt")

    async def flood() -> None:
        while (
            await client.post(
                f"/api/agents/{stuck.name}/input", json={"data": "x" * 60_000}, headers=origin
            )
        ).status == 200:
            pass

    with frozen(stuck):
        pushing = asyncio.create_task(flood())
        try:
            # The flood fills the kernel's buffers, then waits in ours: input pending.
            upstream = client.app[FLEET].get(stuck.name).upstream
            assert upstream is not None
            await eventually(lambda: upstream.statistics().buffered > 0, message="input pending")
            answer = await asyncio.wait_for(
                client.post(
                    "/api/input",
                    json={"agents": [healthy.name, stuck.name], "data": "echo both-$((6*7))\r"},
                    headers=origin,
                ),
                timeout(10),
            )
            results = (await answer.json())["results"]
            assert results[healthy.name]["ok"] is True
            assert results[stuck.name]["ok"] is False
            assert results[stuck.name]["error"] in ("unavailable", "timeout")
        finally:
            pushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pushing
    await eventually(lambda: pane_has(healthy, "both-42"), message="typed into the healthy one")


async def test_input_a_frozen_ttyd_stopped_taking_is_unconfirmed_not_unavailable(
    make_agent: AgentFactory, gateway: GatewayFactory, tmp_path: Path
) -> None:
    # Input nobody echoes, so the frozen agent's socket buffers can be filled.
    stuck = await make_agent(command=("sh", "-c", "stty raw -echo; exec cat >/dev/null"))
    client = await gateway(stuck)
    origin = {"Origin": origin_of(client)}
    url = f"/api/agents/{stuck.name}/input"
    await eventually(lambda: _connected(client), message="upstream")
    with frozen(stuck):
        async with asyncio.timeout(timeout(30)):
            while (
                response := await client.post(url, json={"data": "x" * 60_000}, headers=origin)
            ).status == 200:
                pass
        body = await response.json()
    # The first input not answered "ok" was written to the socket, then waited for a
    # ttyd that took none of it until the connection was reset: it may be in
    # ttyd's buffers, to be typed if ttyd resumes. Before, a 503 said "not sent".
    assert (response.status, body["error"]) == (504, "unconfirmed"), body
    assert "may be typed if it resumes" in body["message"]

    def unconfirmed() -> list[dict[str, Any]]:
        path = tmp_path / "state" / "audit.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return [r for r in rows if r["event"] == "input" and r.get("confirmed") is False]

    await eventually(lambda: len(unconfirmed()) == 1, message="audited as unconfirmed")
    await eventually(lambda: _connected(client), message="reconnected")
