"""Container logs: the SSE endpoint on a real engine (a private dockerd, tests/dockerd.py)."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.test_utils import TestClient

from gateway.appkeys import DISCOVERY
from gateway.auth import hash_password
from gateway.config import DockerSettings
from gateway.docker.logdecode import LogLine, parse_timestamp
from gateway.ring import Ring
from gateway.users import Role, User
from gateway.web.streams import logged_since

from .conftest import EventReader, GatewayFactory, browser, eventually
from .dockerd import Containers, DockerEngine


async def logs_gateway(
    gateway: GatewayFactory, engine: DockerEngine, **docker: Any
) -> TestClient[Any, Any]:
    return await gateway(docker=DockerSettings(url=engine.url, **docker))


async def open_logs(
    http: TestClient[Any, Any] | aiohttp.ClientSession,
    agent_id: str,
    query: str = "",
    last_id: str | None = None,
) -> EventReader:
    headers = {} if last_id is None else {"Last-Event-ID": last_id}
    response = await http.get(f"/api/agents/{agent_id}/logs{query}", headers=headers)
    assert response.status == 200, await response.text()
    return EventReader(response)


async def wait_agent(client: TestClient[Any, Any], agent_id: str) -> None:
    async def present() -> bool:
        agents = (await (await client.get("/api/agents")).json())["agents"]
        return any(a["id"] == agent_id and a["status"] == "connected" for a in agents)

    await eventually(present, within=20, message=f"agent {agent_id}")


def key(event_id: str) -> tuple[int, int]:
    """A log id's (timestamp, count), to order ids by."""
    _, ns, count = event_id.split("-")
    return int(ns), int(count)


def followers(container_id: str) -> int:
    return sum(t.name == f"logs:{container_id[:12]}" for t in threading.enumerate())


def line_is(text: str) -> Any:
    return lambda event: event["event"] == "log" and event["data"]["line"] == text


def texts(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["line"] for e in events if e["event"] == "log"]


async def test_log_lines_stream_with_ids_stream_names_and_timestamps(
    gateway: GatewayFactory, docker_engine: DockerEngine, containers: Containers
) -> None:
    client = await logs_gateway(gateway, docker_engine)
    box = containers.run("talker")
    await wait_agent(client, "talker")
    containers.log(box, "out-1")
    containers.log(box, "err-1", stream=2)
    reader = await open_logs(client, "talker", "?tail=all")
    assert reader.response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert reader.response.headers["X-Accel-Buffering"] == "no"
    events = await reader.until(line_is("err-1"))
    # stdout and stderr are separate pipes: their order is Docker's to pick.
    by_text = {e["data"]["line"]: e for e in events}
    assert by_text["container talker starting"]["data"]["stream"] == "stdout"
    assert any(e["data"]["stream"] == "stderr" and "ttyd" in e["data"]["line"] for e in events)
    assert by_text["out-1"]["data"]["stream"] == "stdout"
    assert by_text["err-1"]["data"]["stream"] == "stderr"
    # Ids come from the source: the container, Docker's timestamp and a count at it.
    assert all(e["id"].startswith(box.id[:12] + "-") for e in events)
    keys = [key(e["id"]) for e in events]
    assert keys == sorted(set(keys))
    assert key(by_text["out-1"]["id"])[0] == parse_timestamp(by_text["out-1"]["data"]["ts"])
    assert parse_timestamp(by_text["out-1"]["data"]["ts"]) <= parse_timestamp(
        by_text["err-1"]["data"]["ts"]
    )
    # Live lines follow, and ?tail=N cuts the history for a first connect.
    containers.log(box, "live-1")
    assert (await reader.next())["data"]["line"] == "live-1"
    short = await open_logs(client, "talker", "?tail=2")
    assert texts(await short.take(2)) == ["err-1", "live-1"]


async def test_a_resuming_client_gets_exactly_what_it_missed(
    gateway: GatewayFactory, docker_engine: DockerEngine, containers: Containers
) -> None:
    client = await logs_gateway(gateway, docker_engine)
    box = containers.run("resumer")
    await wait_agent(client, "resumer")
    containers.log(box, "a-1", "a-2")
    reader = await open_logs(client, "resumer", "?tail=all")
    seen = await reader.until(line_is("a-2"))
    last_id = seen[-1]["id"]
    reader.response.close()
    # Nobody listens: the Docker log stream is closed.
    await eventually(lambda: followers(box.id) == 0, message="log stream closed")

    missed = [f"b-{n}" for n in range(1, 41)]
    containers.log(box, *missed[:20])
    containers.log(box, *missed[20:], stream=2)
    again = await open_logs(client, "resumer", last_id=last_id)
    events = await again.take(len(missed))
    assert texts(events) == missed  # no gap, no repeat, no reset
    assert key(last_id) < key(events[0]["id"])
    containers.log(box, "c-1")
    assert (await again.next())["data"]["line"] == "c-1"


async def test_a_log_resumes_exactly_on_another_gateway(
    gateway: GatewayFactory, docker_engine: DockerEngine, containers: Containers, tmp_path: Any
) -> None:
    """Two replicas of the gateway (each its own ring): ids name lines by their source."""
    a = await gateway(docker=DockerSettings(url=docker_engine.url), state_dir=tmp_path / "a")
    b = await gateway(docker=DockerSettings(url=docker_engine.url), state_dir=tmp_path / "b")
    box = containers.run("roamer")
    await wait_agent(a, "roamer")
    await wait_agent(b, "roamer")
    containers.log(box, "a-1", "a-2")
    keeper = await open_logs(a, "roamer", "?tail=all")
    reader = await open_logs(a, "roamer", "?tail=all")
    last_id = (await reader.until(line_is("a-2")))[-1]["id"]
    reader.response.close()
    missed = [f"b-{n}" for n in range(1, 31)]
    containers.log(box, *missed[:15])
    containers.log(box, *missed[15:], stream=2)
    kept = await keeper.until(line_is("b-30"))
    # B has never followed this container: it loads the history from Docker itself.
    again = await open_logs(b, "roamer", last_id=last_id)
    events = await again.take(len(missed))
    assert texts(events) == missed  # no reset, no gap, none twice
    assert events == kept[-len(missed) :]  # the same ids as A's, for the same lines
    # And back to A with B's last id: still exact.
    containers.log(box, "c-1", "c-2")
    assert texts([await again.next()]) == ["c-1"]
    back = await open_logs(a, "roamer", last_id=(await again.next())["id"])
    containers.log(box, "d-1")
    assert (await back.next())["data"]["line"] == "d-1"
    # Ids that name no line of this log are a reset, never a wrong position.
    prefix = box.id[:12]
    for forged in (
        f"{prefix}-99999999999999999999-1",  # far in the future
        f"{prefix}-{key(last_id)[0]}-0",  # no line has count 0
        f"{prefix}-1-1",  # before anything kept
        f"{prefix}-{key(last_id)[0]}-{key(last_id)[1]}" + "9" * 60,
    ):
        reader = await open_logs(b, "roamer", "?tail=1", last_id=forged)
        assert [e["event"] for e in await reader.take(2)] == ["reset", "log"], forged
        reader.response.close()


async def test_a_reset_when_the_missed_lines_left_the_ring(
    gateway: GatewayFactory, docker_engine: DockerEngine, containers: Containers
) -> None:
    client = await logs_gateway(gateway, docker_engine, log_lines=5)
    box = containers.run("flood")
    await wait_agent(client, "flood")
    # Someone else keeps reading, so the ring moves on while our client is away.
    keeper = await open_logs(client, "flood", "?tail=all")
    containers.log(box, "before")
    reader = await open_logs(client, "flood", "?tail=all")
    last_id = (await reader.until(line_is("before")))[-1]["id"]
    await keeper.until(line_is("before"))
    reader.response.close()

    containers.log(box, *(f"lost-{n}" for n in range(1, 21)))
    await keeper.until(line_is("lost-20"))
    again = await open_logs(client, "flood", last_id=last_id)
    events = await again.take(6)
    assert events[0]["event"] == "reset"
    assert texts(events) == [f"lost-{n}" for n in range(16, 21)]
    # An id from another ring (another gateway run, another container) is a reset too.
    foreign = await open_logs(client, "flood", "?tail=1", last_id="0123456789abcdef-3")
    assert [e["event"] for e in await foreign.take(2)] == ["reset", "log"]
    other_box = "0123456789ab" + last_id[12:]
    foreign = await open_logs(client, "flood", "?tail=1", last_id=other_box)
    assert [e["event"] for e in await foreign.take(2)] == ["reset", "log"]


async def test_all_listeners_share_one_docker_stream(
    gateway: GatewayFactory, docker_engine: DockerEngine, containers: Containers
) -> None:
    client = await logs_gateway(gateway, docker_engine)
    box = containers.run("shared")
    await wait_agent(client, "shared")
    readers = [await open_logs(client, "shared", "?tail=0") for _ in range(3)]
    containers.log(box, "for-all")
    got = [await reader.next() for reader in readers]
    assert {e["id"] for e in got} == {got[0]["id"]}
    assert texts(got) == ["for-all"] * 3
    assert followers(box.id) == 1
    for reader in readers:
        reader.response.close()
    await eventually(lambda: followers(box.id) == 0, message="the stream closed after the last")


async def test_who_may_read_which_logs(
    gateway: GatewayFactory, docker_engine: DockerEngine, containers: Containers, agent: Any
) -> None:
    hashed = hash_password("pw")
    client = await gateway(
        agent,
        docker=DockerSettings(url=docker_engine.url),
        users=(
            User("olga", hashed, Role.OPERATOR),
            User("vic", hashed, Role.VIEWER, ("public-*",)),
        ),
    )
    containers.run("public-1")
    containers.run("secret-1")
    olga = await browser(client, "olga", "pw")
    vic = await browser(client, "vic", "pw")
    guest = await browser(client)
    try:
        await eventually(
            lambda: len(client.app[DISCOVERY].container_ids()) == 2, within=20, message="two"
        )
        assert (await guest.get("/api/agents/public-1/logs")).status == 401
        assert (await vic.get("/api/agents/secret-1/logs")).status == 404
        readable = await vic.get("/api/agents/public-1/logs")
        assert readable.status == 200
        readable.close()
        # A spectator link opens its own agent's logs, and no other's.
        link = await olga.post("/api/agents/public-1/shares", json={"ttl_seconds": 600})
        url = (await link.json())["url"]
        await guest.get(urlsplit(url).path)
        assert (await guest.get("/api/agents/secret-1/logs")).status == 404
        spectated = await guest.get("/api/agents/public-1/logs")
        assert spectated.status == 200
        spectated.close()
        # Agents that are not containers have no logs; a bad tail is a clear 400.
        no_logs = await olga.get(f"/api/agents/{agent.name}/logs")
        assert no_logs.status == 404
        assert (await no_logs.json())["error"] == "no_logs"
        bad = await olga.get("/api/agents/public-1/logs?tail=lots")
        assert bad.status == 400
        assert "tail must be" in (await bad.json())["message"]
    finally:
        for http in (olga, vic, guest):
            await http.close()


def test_a_first_tail_keeps_what_was_logged_after_the_request() -> None:
    # While the history loads, the client waits with its 200 already sent;
    # lines printed meanwhile arrive as history and must not fall outside tail=0.
    ring: Ring[LogLine] = Ring(10)
    for ns in (10, 20, 30, 40):
        ring.append(LogLine(f"t{ns}", ns, "stdout", f"line {ns}"))
    assert logged_since(ring, ring.tail(0), asked=25) == ring.tail(2)
    assert logged_since(ring, ring.tail(1), asked=25) == ring.tail(2)
    assert logged_since(ring, ring.tail(0), asked=50) == ring.tail(0)
    assert logged_since(ring, ring.tail(0), asked=0) == ring.first_seq
