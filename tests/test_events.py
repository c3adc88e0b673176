"""GET /api/events: the dashboard's feed, resumable and filtered by who may see what."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.auth import hash_password
from gateway.users import Role, User
from gateway.web import sse

from .conftest import (
    AgentFactory,
    EventReader,
    GatewayFactory,
    browser,
    eventually,
    open_terminal,
)


async def open_events(
    http: TestClient[Any, Any] | aiohttp.ClientSession, last_id: str | None = None
) -> EventReader:
    headers = {} if last_id is None else {"Last-Event-ID": last_id}
    response = await http.get("/api/events", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    return EventReader(response)


def viewers_of(agent_id: str, count: int) -> Any:
    return lambda e: (
        e["event"] == "agent"
        and e["data"]["agent"]["id"] == agent_id
        and e["data"]["agent"]["viewers"] == count
    )


async def test_snapshot_then_changes_then_exact_resume(
    make_agent: AgentFactory, gateway: GatewayFactory
) -> None:
    agent = await make_agent("watched")
    client = await gateway(agent)
    reader = await open_events(client)
    snapshot = await reader.next()
    assert snapshot["event"] == "snapshot"
    assert [a["id"] for a in snapshot["data"]["agents"]] == ["watched"]
    assert snapshot["data"]["docker"] is None

    terminal = await open_terminal(client, "watched")
    joined = (await reader.until(viewers_of("watched", 1)))[-1]
    assert joined["data"]["change"] == "changed"
    assert joined["data"]["agent"]["presence"] == {"anonymous": 1}
    reader.response.close()

    # While this client is away: two more viewers come, one goes.
    second = await open_terminal(client, "watched")
    third = await open_terminal(client, "watched")
    await third.close()
    resumed = await open_events(client, last_id=joined["id"])
    # What happened meanwhile, in order; the agent's output may add `activity` events.
    # Other changes of the agent (its status, its title) may come between,
    # repeating a count: what matters is how the count went.
    missed: list[dict[str, Any]] = []
    counts: list[int] = []
    while counts[-3:] != [2, 3, 2]:
        missed.append(await resumed.next())
        if missed[-1]["event"] == "agent":
            viewers = missed[-1]["data"]["agent"]["viewers"]
            if not counts or counts[-1] != viewers:
                counts.append(viewers)
    assert counts in ([2, 3, 2], [1, 2, 3, 2])
    # No snapshot, no reset: it was all kept.
    assert {e["event"] for e in missed} <= {"agent", "activity"}
    ids = [int(e["id"].rsplit("-", 1)[1]) for e in missed]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert ids[0] == int(joined["id"].rsplit("-", 1)[1]) + 1

    # An id this feed never gave (another run of the gateway) gets a reset and a snapshot.
    foreign = await open_events(client, last_id="00000000deadbeef-12")
    reset, fresh = await foreign.take(2)
    assert (reset["event"], fresh["event"]) == ("reset", "snapshot")
    assert fresh["data"]["agents"][0]["viewers"] == 2
    for terminal_ in (terminal, second):
        await terminal_.close()


async def test_users_only_hear_of_agents_they_may_see_and_logout_ends_the_feed(
    make_agent: AgentFactory, gateway: GatewayFactory
) -> None:
    public, secret = await make_agent("public-1"), await make_agent("secret-1")
    hashed = hash_password("pw")
    client = await gateway(
        public,
        secret,
        users=(
            User("olga", hashed, Role.OPERATOR),
            User("vic", hashed, Role.VIEWER, ("public-*",)),
        ),
    )
    assert (await client.get("/api/events")).status == 401
    olga, vic = await browser(client, "olga", "pw"), await browser(client, "vic", "pw")
    try:
        reader = await open_events(vic)
        snapshot = await reader.next()
        assert [a["id"] for a in snapshot["data"]["agents"]] == ["public-1"]
        # olga watches the secret agent, then the public one: vic hears only of the latter.
        for agent_id in ("secret-1", "public-1"):
            ws = await olga.ws_connect(f"/agents/{agent_id}/ws", protocols=("tty",))
            await ws.send_bytes(b'{"AuthToken":""}')
            await ws.receive()
            if agent_id == "public-1":
                heard = await reader.until(viewers_of("public-1", 1))
                about = {
                    e["data"]["agent"]["id"] if e["event"] == "agent" else e["data"]["id"]
                    for e in heard
                }
                assert about == {"public-1"}
                assert heard[-1]["data"]["agent"]["presence"] == {"olga": 1}
            await ws.close()
        await vic.post("/api/logout")
        assert await reader.ended()
    finally:
        await olga.close()
        await vic.close()


async def test_idle_streams_get_keepalive_comments(
    make_agent: AgentFactory, gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse, "KEEPALIVE_SECONDS", 0.2)
    client = await gateway(await make_agent("quiet"))

    async def connected() -> bool:
        agents = (await (await client.get("/api/agents")).json())["agents"]
        return bool(agents[0]["status"] == "connected" and agents[0]["state"] == "idle")

    # Else its connecting -> connected change (or its shell's state, idle at
    # its prompt) may come after the snapshot.
    await eventually(connected, message="the agent connected, idle at its prompt")
    reader = await open_events(client)
    assert reader.response.headers["X-Accel-Buffering"] == "no"
    assert reader.response.headers["Cache-Control"] == "no-store"
    await reader.next()  # the snapshot
    line = await reader.response.content.readline()
    while line == b"\n":
        line = await reader.response.content.readline()
    assert line == b": keep-alive\n"
