"""Docker discovery: the pure core on inspect documents, then a real Docker Engine."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import DockerSettings
from gateway.core.state import AgentState
from gateway.core.target import Target
from gateway.discovery import Container, describe, plan

from .conftest import (
    EventReader,
    GatewayFactory,
    eventually,
    open_terminal,
)
from .dockerd import Containers, DockerEngine

SETTINGS = DockerSettings()


def inspect_document(
    labels: dict[str, str],
    *,
    status: str = "running",
    networks: dict[str, Any] | None = None,
    ports: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The parts of `docker inspect` that discovery reads, shaped as Docker 20.10 returns them."""
    return {
        "Id": "f" * 64,
        "Name": "/agent-1",
        "Created": "2026-11-23T10:00:00.000000000Z",
        "Config": {"Labels": labels, "Tty": False},
        "State": {
            "Status": status,
            "StartedAt": "2026-11-23T10:00:01.000000000Z",
            "FinishedAt": "0001-01-01T00:00:00Z",
        },
        "NetworkSettings": {"Networks": networks or {}, "Ports": ports or {}},
    }


# --- describe -------------------------------------------------------------------------


def test_unlabelled_containers_are_not_agents() -> None:
    assert describe(inspect_document({"other": "x"}), SETTINGS) is None


def test_the_url_label_wins() -> None:
    doc = inspect_document(
        {"gateway.agent": "a", "gateway.ttyd.url": "unix:/run/ttyd/a.sock"},
        ports={"7681/tcp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}]},
    )
    container = describe(doc, SETTINGS)
    assert container is not None
    assert container.target == Target("unix:/run/ttyd/a.sock")
    assert (container.agent_id, container.name, container.running) == ("a", "agent-1", True)


def test_the_configured_network_gives_the_address() -> None:
    doc = inspect_document(
        {"gateway.agent": "a", "gateway.ttyd.port": "7000"},
        networks={"agents": {"IPAddress": "10.9.0.5"}, "other": {"IPAddress": "10.8.0.5"}},
    )
    container = describe(doc, DockerSettings(network="agents"))
    assert container is not None
    assert container.target == Target("ws://10.9.0.5:7000/ws")
    # Without the setting, a network address is never guessed.
    unset = describe(doc, SETTINGS)
    assert unset is not None
    assert unset.target is None
    assert "no ttyd address" in unset.problem


@pytest.mark.parametrize(
    ("host_ip", "expected"),
    [
        ("0.0.0.0", "ws://127.0.0.1:49153/ws"),
        ("", "ws://127.0.0.1:49153/ws"),
        ("::", "ws://[::1]:49153/ws"),
        ("127.0.0.2", "ws://127.0.0.2:49153/ws"),
    ],
)
def test_a_published_port_is_reached_on_the_host(host_ip: str, expected: str) -> None:
    doc = inspect_document(
        {"gateway.agent": "a"}, ports={"7681/tcp": [{"HostIp": host_ip, "HostPort": "49153"}]}
    )
    container = describe(doc, SETTINGS)
    assert container is not None
    assert container.target == Target(expected)


def test_credentials_from_the_label_or_the_file() -> None:
    labels = {"gateway.agent": "a", "gateway.ttyd.url": "ws://127.0.0.1:1/ws"}
    from_file = describe(inspect_document(labels), SETTINGS, "file:secret")
    assert from_file is not None
    assert from_file.target is not None
    assert from_file.target.credential == "file:secret"
    labels["gateway.ttyd.credential"] = "label:secret"
    from_label = describe(inspect_document(labels), SETTINGS, "file:secret")
    assert from_label is not None
    assert from_label.target is not None
    assert from_label.target.credential == "label:secret"
    assert "secret" not in repr(from_label)


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ({"gateway.ttyd.url": "http://x/"}, "must start with ws://"),
        ({"gateway.ttyd.port": "seventy"}, "must be a port number"),
        ({"gateway.ttyd.url": "ws://h/ws", "gateway.ttyd.credential": "nocolon"}, "user:password"),
    ],
)
def test_bad_labels_are_a_problem_not_a_crash(labels: dict[str, str], problem: str) -> None:
    container = describe(inspect_document({"gateway.agent": "a", **labels}), SETTINGS)
    assert container is not None
    assert container.target is None
    assert problem in container.problem


def test_the_label_prefix_is_configurable() -> None:
    doc = inspect_document({"acme.agent": "a", "acme.ttyd.url": "unix:/s"})
    assert describe(doc, SETTINGS) is None
    container = describe(doc, DockerSettings(label_prefix="acme"))
    assert container is not None
    assert container.target == Target("unix:/s")


# --- plan -----------------------------------------------------------------------------


def container(
    agent_id: str, name: str, state: str = "running", changed_at: str = "2026-11-23T10:00:00Z"
) -> Container:
    return Container(
        id=name * 4,
        name=name,
        agent_id=agent_id,
        state=state,
        health=None,
        tty=False,
        target=Target(f"unix:/run/{name}.sock"),
        changed_at=changed_at,
    )


def test_one_running_container_is_connected() -> None:
    desired, problems = plan([container("a", "one")], reserved=())
    assert problems == []
    assert desired["a"].state is AgentState.CONNECTING
    assert desired["a"].target == Target("unix:/run/one.sock")


def test_two_running_containers_with_one_id_are_a_conflict() -> None:
    desired, problems = plan([container("a", "one"), container("a", "two")], reserved=())
    assert desired["a"].state == "conflict"
    assert desired["a"].target is None
    assert "one (" in desired["a"].message
    assert "two (" in desired["a"].message
    assert len(problems) == 1
    assert "2 running containers" in problems[0]


def test_a_running_container_outranks_stopped_ones_with_its_id() -> None:
    desired, problems = plan(
        [container("a", "old", "exited"), container("a", "new"), container("a", "x", "created")],
        reserved=(),
    )
    assert problems == []
    assert desired["a"].state is AgentState.CONNECTING
    assert desired["a"].container is not None
    assert desired["a"].container.name == "new"


def test_the_latest_stopped_container_stands_for_a_stopped_agent() -> None:
    desired, _ = plan(
        [
            container("a", "older", "exited", "2026-11-23T09:00:00Z"),
            container("a", "newer", "exited", "2026-11-23T11:00:00Z"),
        ],
        reserved=(),
    )
    assert desired["a"].state == "stopped"
    assert desired["a"].message == "container newer is exited"


def test_ids_of_the_config_and_invalid_ids_are_refused() -> None:
    desired, problems = plan(
        [container("static", "c1"), container("no/slash", "c2"), container("ok", "c3")],
        reserved={"static"},
    )
    assert set(desired) == {"ok"}
    assert any("config file defines" in p for p in problems)
    assert any("is not valid" in p for p in problems)


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
    assert health == {"status": "ok", "docker": "up", "audit": "ok"}
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
