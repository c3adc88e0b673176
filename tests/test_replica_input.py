"""REST input in replica mode: a replica that does not hold the agent answers as its holder would.

Two gateways, one real redis-server, one real tmux + ttyd agent. What is
typed is read back from tmux itself; what is audited from the sending
replica's own audit file.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.appkeys import FLEET, REPLICA
from gateway.core.state import AgentState
from gateway.local import LocalAgent
from gateway.replica import forwarding

from .conftest import SCALE, GatewayFactory, browser, eventually
from .redisserver import RedisServer
from .replicas import OPERATOR, PASSWORD, VIEWER, Client, PairFactory, pair_factory


@pytest.fixture
def pair(gateway: GatewayFactory, redis_server: RedisServer, tmp_path: Path) -> PairFactory:
    return pair_factory(gateway, redis_server, tmp_path)


async def holder_and_other(
    pair: PairFactory, agent: LocalAgent, tmp_path: Path
) -> tuple[Client, Client, Path]:
    """(the replica holding the agent, the other one, the other's audit file), settled."""
    a, b = await pair(agent, users=(OPERATOR, VIEWER))

    def holder() -> Client | None:
        owners = [c for c in (a, b) if agent.name in c.app[REPLICA].owned]
        return owners[0] if len(owners) == 1 else None

    await eventually(lambda: holder() is not None, message="one holder")
    owner = holder()
    assert owner is not None
    other = b if owner is a else a
    hub = other.app[FLEET].get(agent.name)
    await eventually(lambda: hub.status.state is AgentState.CONNECTED, message="mirror")
    return owner, other, tmp_path / ("a" if other is a else "b") / "audit.jsonl"


def audited(path: Path, event: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [row for row in rows if row["event"] == event]


async def test_rest_input_on_the_replica_that_does_not_hold_the_agent_is_typed_once(
    pair: PairFactory, agent: LocalAgent, tmp_path: Path
) -> None:
    _, other, audit = await holder_and_other(pair, agent, tmp_path)
    http = await browser(other, "op", PASSWORD)
    try:
        line = "echo via-rest-$((40 + 2))\r"
        response = await http.post(f"/api/agents/{agent.name}/input", json={"data": line})
        assert response.status == 200
        assert await response.json() == {"agent": agent.name, "ok": True, "sent": len(line)}
        response = await http.post(
            "/api/input", json={"agents": [agent.name, "nope"], "data": "echo fanned-out\r"}
        )
        assert response.status == 200
        results = (await response.json())["results"]
        assert results[agent.name] == {"ok": True, "sent": 16}
        assert results["nope"]["error"] == "not_found"

        async def typed() -> bool:
            text = await agent.capture()
            return "fanned-out" in text.replace("echo fanned-out", "") and "via-rest-42" in text

        await eventually(typed, message="typed")
        text = await agent.capture()
        assert text.count("via-rest-42") == 1  # the output line, once: typed once
        await eventually(lambda: len(audited(audit, "input")) == 2, message="audited")
    finally:
        await http.close()


async def test_a_viewer_is_refused_on_either_replica_alike(
    pair: PairFactory, agent: LocalAgent, tmp_path: Path
) -> None:
    owner, other, _ = await holder_and_other(pair, agent, tmp_path)
    answers = []
    for client in (owner, other):
        http = await browser(client, "watcher", PASSWORD)
        try:
            response = await http.post(
                f"/api/agents/{agent.name}/input", json={"data": "echo never\r"}
            )
            answers.append((response.status, await response.json()))
        finally:
            await http.close()
    assert answers[0] == answers[1]
    assert answers[0][0] == 403
    assert "never" not in await agent.capture()


async def test_input_its_holder_never_confirms_is_504_audited_unconfirmed_and_not_typed_late(
    pair: PairFactory, agent: LocalAgent, tmp_path: Path
) -> None:
    owner, other, audit = await holder_and_other(pair, agent, tmp_path)
    # The holder stops reading its inbox (as if it hung): nobody answers the sender.
    for task in owner.app[REPLICA]._tasks:
        if task.get_name() == "replica:reader":
            task.cancel()
    http = await browser(other, "op", PASSWORD)
    try:
        response = await http.post(
            f"/api/agents/{agent.name}/input", json={"data": "echo unconfirmed-1\r"}
        )
        assert response.status == 504
        body = await response.json()
        assert body["error"] == "unconfirmed"
        assert "may have been typed" in body["message"]
        await eventually(lambda: len(audited(audit, "input")) == 1, message="audited")
        (row,) = audited(audit, "input")
        assert row["confirmed"] is False
        assert row["user"] == "op"
        # Past the age at which a holder would still type it: it never is.
        await asyncio.sleep(2 * forwarding.FORWARD_MAX_AGE_MS / 1000 * SCALE)
        assert "unconfirmed-1" not in await agent.capture()
    finally:
        await http.close()
