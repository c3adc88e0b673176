"""Shared fixtures: real ttyd + tmux agents, and the gateway in front of them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient, TestServer, unused_port

from gateway.app import create_app
from gateway.config import AgentSettings, DockerSettings, Settings
from gateway.core import ttyd
from gateway.local import LocalAgent, find_ttyd
from gateway.screen.reference import PyteScreen
from gateway.web.accesslog import AccessLogger

from .browser import browsers  # noqa: F401 - a fixture, used by the E2E tests
from .dockerd import Containers, DockerEngine, build_image, unavailable_reason
from .redisserver import RedisServer
from .redisserver import unavailable_reason as redis_unavailable

# Every wait in the tests is a multiple of this: raise it on a slow machine.
SCALE = float(os.environ.get("TEST_TIMEOUT_SCALE", "1"))


def timeout(seconds: float) -> float:
    return seconds * SCALE


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    within: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
) -> None:
    """Poll ``check`` until it is true, failing after ``within`` (scaled) seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout(within)
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {message}")
        await asyncio.sleep(interval)


async def equals(value: Awaitable[object], expected: object) -> bool:
    """For ``eventually``: does this query (a tmux command, a page script) answer ``expected``?"""
    return await value == expected


async def contains(text: Awaitable[str], needle: str) -> bool:
    return needle in await text


# --- REQUIRE_ALL: in CI a skipped test is a failed test ----------------------

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # An expected failure (a pinned gap, strict) reports as skipped; it ran.
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("REQUIRE_ALL") == "1" and _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if os.environ.get("REQUIRE_ALL") == "1" and _skipped:
        terminalreporter.write_line(
            f"REQUIRE_ALL=1: {len(_skipped)} skipped test(s) count as failures", red=True
        )


# --- real agents ---------------------------------------------------------------


@pytest.fixture(scope="session")
def ttyd_binary() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="gw-ttyd-"))
    yield find_ttyd(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Unix socket paths are limited to 108 bytes: keep them short.
    folder = Path(tempfile.mkdtemp(prefix="gw-"))
    folder.chmod(0o700)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


AgentFactory = Callable[..., Awaitable[LocalAgent]]


@pytest.fixture
async def make_agent(workdir: Path, ttyd_binary: Path) -> AsyncIterator[AgentFactory]:
    """Start real tmux + ttyd agents; all are stopped at teardown."""
    agents: list[LocalAgent] = []

    async def make(
        name: str = "agent",
        command: Sequence[str] = ("env", "PS1=$ ", "bash", "--noprofile", "--norc", "-i"),
        **kwargs: Any,
    ) -> LocalAgent:
        kwargs.setdefault("columns", 80)
        kwargs.setdefault("rows", 24)
        agent = LocalAgent(name, command, workdir, ttyd_binary, **kwargs)
        await agent.start()
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        await agent.aclose()


@pytest.fixture
async def agent(make_agent: AgentFactory) -> LocalAgent:
    """A bash shell in tmux behind ttyd, 80x24, with a predictable prompt."""
    shell = await make_agent()
    await eventually(lambda: _prompt_ready(shell), message="shell prompt")
    return shell


@contextlib.contextmanager
def frozen(agent: LocalAgent) -> Iterator[None]:
    """ttyd stopped (SIGSTOP) for the block; it always resumes, whatever the test did."""
    pid = agent.ttyd_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def _prompt_ready(agent: LocalAgent) -> bool:
    return (await agent.capture()).strip() == "$"


def settings_for(*agents: LocalAgent, **overrides: Any) -> Settings:
    return Settings(
        agents=tuple(AgentSettings(a.name, a.url, None, a.columns, a.rows) for a in agents),
        **overrides,
    )


GatewayFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def gateway(aiohttp_client: Any, tmp_path: Path) -> GatewayFactory:
    """A real gateway (TestServer on 127.0.0.1) in front of the given agents."""

    async def make(*agents: LocalAgent, **overrides: Any) -> TestClient[Any, Any]:
        # The origin names the port, so the port is chosen before the app.
        port = unused_port()
        overrides.setdefault("public_origin", f"http://127.0.0.1:{port}")
        overrides.setdefault("state_dir", tmp_path / "state")
        overrides.setdefault("audit_log", tmp_path / "state" / "audit.jsonl")
        server = TestServer(create_app(settings_for(*agents, **overrides)), port=port)
        # As `gateway serve` runs it: tokens redacted from the access log.
        await server.start_server(access_log_class=AccessLogger)
        client: TestClient[Any, Any] = await aiohttp_client(server)
        return client

    return make


def origin_of(client: TestClient[Any, Any]) -> str:
    return f"http://127.0.0.1:{client.port}"


async def ws_connect(
    client: TestClient[Any, Any], path: str, *, origin: str | None = ""
) -> ClientWebSocketResponse:
    """Open a WebSocket like a browser on the gateway's own page would."""
    headers = {} if origin is None else {"Origin": origin or origin_of(client)}
    return await client.ws_connect(path, protocols=("tty",), headers=headers)


async def browser(
    client: TestClient[Any, Any], user: str | None = None, password: str = ""
) -> aiohttp.ClientSession:
    """A browser of its own (cookie jar, the gateway's Origin), logged in as ``user``."""
    http = aiohttp.ClientSession(
        base_url=str(client.make_url("")),
        cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies for 127.0.0.1
        headers={"Origin": origin_of(client)},
    )
    if user is not None:
        response = await http.post("/api/login", json={"username": user, "password": password})
        if response.status != 200:
            await http.close()
            pytest.fail(f"login as {user} failed: {response.status} {await response.text()}")
    return http


async def raw_http(port: int, request: bytes) -> bytes:
    """Send ``request`` byte for byte (no client library tidies it) and read to EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), timeout(10))
    finally:
        writer.close()


# --- a ttyd client for tests ----------------------------------------------------


class Terminal:
    """What a browser viewer sees: frames from a WebSocket fed into a PyteScreen."""

    def __init__(self, ws: ClientWebSocketResponse, columns: int, rows: int) -> None:
        self.ws = ws
        self.screen = PyteScreen(columns, rows)
        self.output = bytearray()
        self.statuses: list[ttyd.Status] = []
        self.notices: list[ttyd.Notice] = []
        self.first_output: bytes | None = None
        self.close_code: int | None = None
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY:
                continue
            message = ttyd.parse_server(msg.data)
            if isinstance(message, ttyd.Output):
                if self.first_output is None:
                    self.first_output = message.data
                self.output += message.data
                self.screen.feed(message.data)
            elif isinstance(message, ttyd.Status):
                self.statuses.append(message)
            elif isinstance(message, ttyd.Notice):
                self.notices.append(message)
        self.close_code = self.ws.close_code

    async def send_input(self, data: bytes) -> None:
        await self.ws.send_bytes(ttyd.Input(data).serialize())

    async def wait_text(self, needle: str, within: float = 10.0) -> None:
        await eventually(lambda: needle in self.screen.text(), within=within, message=needle)

    async def wait_closed(self, within: float = 10.0) -> int | None:
        await asyncio.wait_for(self._task, timeout(within))
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        await self._task


async def open_terminal(
    client: TestClient[Any, Any],
    agent_id: str,
    columns: int | None = None,
    rows: int | None = None,
    *,
    size: tuple[int, int] = (80, 24),
) -> Terminal:
    """Connect like ttyd's web client; without columns/rows it resizes nothing."""
    ws = await ws_connect(client, f"/agents/{agent_id}/ws")
    await ws.send_bytes(ttyd.Handshake("", columns, rows).serialize())
    return Terminal(ws, *(size if columns is None or rows is None else (columns, rows)))


# --- Docker -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A private dockerd for this test session (skipped, i.e. failed in CI, if impossible)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="gwd-"))
    engine = DockerEngine(root)
    engine.start()
    yield engine
    engine.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_image(docker_engine: DockerEngine) -> str:
    with contextlib.closing(docker_engine.client()) as client:
        return build_image(client)


@pytest.fixture
def containers(docker_engine: DockerEngine, docker_image: str) -> Iterator[Containers]:
    made = Containers(docker_engine, docker_image)
    yield made
    made.close()


def docker_settings(engine: DockerEngine, **overrides: Any) -> DockerSettings:
    return DockerSettings(url=engine.url, **overrides)


# --- Server-Sent Events ------------------------------------------------------------


class EventReader:
    """Reads ``text/event-stream`` events (id, event, data) from a response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments = 0

    async def next(self, within: float = 10.0) -> dict[str, Any]:
        """The next event: {"id", "event", "data"} with data parsed as JSON."""
        fields: dict[str, Any] = {"id": None, "event": "message"}
        data: list[str] = []
        async with asyncio.timeout(timeout(within)):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("the event stream ended")
                line = raw.decode().rstrip("\n")
                if line == "":
                    if data:
                        fields["data"] = json.loads("\n".join(data))
                        return fields
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                elif name in ("id", "event"):
                    fields[name] = value

    async def take(self, count: int, within: float = 10.0) -> list[dict[str, Any]]:
        return [await self.next(within) for _ in range(count)]

    async def until(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = 10.0
    ) -> list[dict[str, Any]]:
        """Events up to and including the first that satisfies ``predicate``."""
        seen = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout(within)
        while True:
            event = await self.next(max(0.1, (deadline - loop.time()) / SCALE))
            seen.append(event)
            if predicate(event):
                return seen

    async def ended(self, within: float = 10.0) -> bool:
        async with asyncio.timeout(timeout(within)):
            while await self.response.content.readline():
                pass
        return True


# --- Redis --------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private, empty redis-server per test (skipped, i.e. failed in CI, if impossible)."""
    reason = redis_unavailable()
    if reason is not None:
        pytest.skip(reason)
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
