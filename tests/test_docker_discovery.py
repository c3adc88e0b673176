"""Docker discovery against a real Docker Engine (a private dockerd, tests/dockerd.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import DockerSettings
from gateway.core.target import Target
from gateway.docker.discovery import Discovery
from gateway.docker.planner import Container, Desired, DesiredChange, describe, plan

from .conftest import (
    EventReader,
    GatewayFactory,
    eventually,
    open_terminal,
)
from .dockerd import Containers, DockerEngine

SETTINGS = DockerSettings()


# --- what discovery emits, without an engine ------------------------------------------


class RecordingApplier:
    """Stands in for the app's FleetApplier: which ids are taken, and every change it got."""

    def __init__(self, *taken: str) -> None:
        self.taken = list(taken)
        self.changes: list[DesiredChange] = []

    def agent_ids(self) -> list[str]:
        return self.taken

    async def apply(self, change: DesiredChange) -> None:
        self.changes.append(change)


def planned(*states: str) -> dict[str, Desired]:
    found = [
        Container(f"{n}" * 12, f"box-{n}", "box", state, None, False, Target("unix:/s"))
        for n, state in enumerate(states)
    ]
    return plan(found, ())[0]


async def test_discovery_emits_each_change_then_tells_the_container_listeners() -> None:
    applier = RecordingApplier()
    discovery = Discovery(SETTINGS, applier)
    told: list[tuple[str, Container | None, int]] = []
    discovery.container_listeners.append(
        lambda agent_id, container: told.append((agent_id, container, len(applier.changes)))
    )
    running, stopped = planned("running"), planned("exited")
    await discovery.publish(running)
    assert applier.changes == [DesiredChange("box", None, running["box"])]
    assert discovery.container_of("box") == running["box"].container
    await discovery.publish(planned("running"))  # the same plan again: nothing to do
    await discovery.publish(stopped)
    await discovery.publish({})
    assert applier.changes[1:] == [
        DesiredChange("box", running["box"], stopped["box"]),
        DesiredChange("box", stopped["box"], None),
    ]
    assert discovery.container_of("box") is None
    # Each listener call comes after its change was applied.
    assert told == [
        ("box", running["box"].container, 1),
        ("box", stopped["box"].container, 2),
        ("box", None, 3),
    ]


# --- against a real Docker Engine -------------------------------------------------------


async def docker_gateway(
    gateway: GatewayFactory, engine: DockerEngine, *agents: Any, **docker: Any
) -> TestClient[Any, Any]:
    return await gateway(*agents, docker=DockerSettings(url=engine.url, **docker))


async def agent_status(client: TestClient[Any, Any], agent_id: str) -> str | None:
    agents = (await (await client.get("/api/agents")).json())["agents"]
    return next((a["status"] for a in agents if a["id"] == agent_id), None)


async def wait_status(client: TestClient[Any, Any], agent_id: str, status: str | None) -> None:
    async def check() -> bool:
        return await agent_status(client, agent_id) == status

    await eventually(check, within=20, message=f"{agent_id} {status}")


async def test_a_labelled_container_becomes_an_agent_you_can_type_into(
    gateway: GatewayFactory, docker_engine: DockerEngine, containers: Containers
) -> None:
    client = await docker_gateway(gateway, docker_engine)
    events = EventReader(await client.get("/api/events"))
    snapshot = await events.next()
    assert snapshot["event"] == "snapshot"
    assert snapshot["data"]["docker"]["status"] in ("starting", "up")

    containers.run("box")
    added = await events.until(
        lambda e: e["event"] == "agent" and e["data"]["change"] == "added", within=20
    )
    agent = added[-1]["data"]["agent"]
    assert agent["id"] == "box"
    assert agent["container"]["name"] == "box"
    await wait_status(client, "box", "connected")

    terminal = await open_terminal(client, "box", 80, 24)
    await terminal.wait_text("$")
    await terminal.send_input(b"echo hello-$((6*7))\r")
    await terminal.wait_text("hello-42")
    health = await (await client.get("/healthz")).json()
    assert health == {"status": "ok", "docker": "up", "audit": "ok", "redis": "disabled"}
    await terminal.close()


async def test_stop_start_and_remove_are_followed(
    gateway: GatewayFactory, docker_engine: DockerEngine, containers: Containers
) -> None:
    client = await docker_gateway(gateway, docker_engine)
    box = containers.run("cycle")
    await wait_status(client, "cycle", "connected")
    terminal = await open_terminal(client, "cycle", 80, 24)
    await terminal.wait_text("$")
    await terminal.send_input(b"echo before-$((1+1))\r")
    await terminal.wait_text("before-2")

    await asyncio.to_thread(box.stop, timeout=1)
    await wait_status(client, "cycle", "stopped")
    # The last screen stays viewable, and the viewer stays connected.
    screen = await (await client.get("/api/agents/cycle/screen")).text()
    assert "before-2" in screen
    assert terminal.close_code is None
    await eventually(lambda: terminal.statuses[-1].state == "stopped", message="stopped status")

    await asyncio.to_thread(box.start)
    await wait_status(client, "cycle", "connected")
    await terminal.send_input(b"echo after-$((2+2))\r")
    await terminal.wait_text("after-4")

    await asyncio.to_thread(box.remove, force=True)
    await wait_status(client, "cycle", None)
    assert await terminal.wait_closed() == 1001


async def test_health_and_renames_are_followed(
    gateway: GatewayFactory, docker_engine: DockerEngine, containers: Containers
) -> None:
    client = await docker_gateway(gateway, docker_engine)
    second = 1_000_000_000
    box = containers.run(
        "doctor",
        healthcheck={
            "test": ["CMD", "/bin/sh", "-c", "test -e /tmp/ok"],
            "interval": second,
            "timeout": second,
            "retries": 1,
        },
    )
    await wait_status(client, "doctor", "connected")
    events = EventReader(await client.get("/api/events"))

    async def container_of_agent() -> dict[str, Any]:
        agents = (await (await client.get("/api/agents")).json())["agents"]
        return next(a["container"] for a in agents if a["id"] == "doctor")

    async def health_is(state: str) -> bool:
        return (await container_of_agent())["health"] == state

    await eventually(lambda: health_is("unhealthy"), within=20, message="unhealthy")
    await asyncio.to_thread(box.exec_run, ["/bin/sh", "-c", "echo > /tmp/ok"])
    await eventually(lambda: health_is("healthy"), within=20, message="healthy")
    await events.until(
        lambda e: (
            e["event"] == "agent"
            and (e["data"]["agent"]["container"] or {}).get("health") == "healthy"
        )
    )
    await asyncio.to_thread(box.rename, "doctor-renamed")

    async def renamed() -> bool:
        return (await container_of_agent())["name"] == "doctor-renamed"

    await eventually(renamed, within=20, message="renamed")
    # Neither is a reason to reconnect.
    assert await agent_status(client, "doctor") == "connected"
    agents = (await (await client.get("/api/agents")).json())["agents"]
    assert next(a["upstream"]["connects"] for a in agents if a["id"] == "doctor") == 1


async def test_two_running_containers_with_one_id_are_reported_not_merged(
    gateway: GatewayFactory,
    docker_engine: DockerEngine,
    containers: Containers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await docker_gateway(gateway, docker_engine)
    first = containers.run("twin", "twin-a")
    await wait_status(client, "twin", "connected")
    containers.run("twin", "twin-b")
    await wait_status(client, "twin", "conflict")
    agents = (await (await client.get("/api/agents")).json())["agents"]
    message = next(a["message"] for a in agents if a["id"] == "twin")
    assert any("claim this agent id" in r.getMessage() for r in caplog.records)
    assert "twin-a" in message
    assert "twin-b" in message
    # The conflict ends when one of them stops: the other one is the agent.
    await asyncio.to_thread(first.stop, timeout=1)
    await wait_status(client, "twin", "connected")
    agents = (await (await client.get("/api/agents")).json())["agents"]
    assert next(a["container"]["name"] for a in agents if a["id"] == "twin") == "twin-b"


async def test_a_container_cannot_take_a_configured_agents_id(
    gateway: GatewayFactory, docker_engine: DockerEngine, containers: Containers, agent: Any
) -> None:
    client = await docker_gateway(gateway, docker_engine, agent)
    containers.run(agent.name, "impostor")
    containers.run("honest")
    await wait_status(client, "honest", "connected")
    agents = (await (await client.get("/api/agents")).json())["agents"]
    mine = next(a for a in agents if a["id"] == agent.name)
    assert mine["container"] is None
    assert mine["status"] == "connected"


async def test_an_unreachable_agent_says_why(
    gateway: GatewayFactory, docker_engine: DockerEngine, containers: Containers
) -> None:
    client = await docker_gateway(gateway, docker_engine)
    containers.run("lost", url=False)
    await wait_status(client, "lost", "unreachable")
    agents = (await (await client.get("/api/agents")).json())["agents"]
    assert "gateway.ttyd.url" in next(a["message"] for a in agents if a["id"] == "lost")


async def test_the_gateway_survives_the_docker_daemon_going_away(
    gateway: GatewayFactory, docker_engine: DockerEngine, containers: Containers
) -> None:
    client = await docker_gateway(gateway, docker_engine)
    containers.run("steady")
    await wait_status(client, "steady", "connected")
    terminal = await open_terminal(client, "steady", 80, 24)
    await terminal.wait_text("$")

    async def docker_is(state: str) -> bool:
        return (await (await client.get("/healthz")).json())["docker"] == state

    await asyncio.to_thread(docker_engine.kill)
    try:
        await eventually(lambda: docker_is("down"), within=20, message="docker down")
        # What the gateway has, it keeps serving: the agent and its terminal.
        assert await agent_status(client, "steady") == "connected"
        await terminal.send_input(b"echo alive-$((3*3))\r")
        await terminal.wait_text("alive-9")
    finally:
        await asyncio.to_thread(docker_engine.start)
    await eventually(lambda: docker_is("up"), within=60, message="docker up again")
    # ... and it follows the daemon again: a new container shows up.
    containers.run("newcomer")
    await wait_status(client, "newcomer", "connected")
    assert await agent_status(client, "steady") == "connected"
    await terminal.close()


async def test_real_inspect_documents_describe_the_same(
    containers: Containers,
) -> None:
    box = containers.run("real", labels={"gateway.ttyd.credential": "u:p"})
    box.reload()
    described = describe(box.attrs, SETTINGS)
    assert described is not None
    assert described.agent_id == "real"
    assert described.running
    assert described.target == Target(f"unix:{containers.socket_dir('real')}/ttyd.sock", "u:p")
    assert described.id == box.id
    assert described.name == "real"
