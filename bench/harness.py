"""What every workload needs: agents, a gateway process, ttyd clients, CPU clocks.

Each workload runs the same thing twice in one run — through the gateway
and straight to the agent's ttyd — with the same client code, so the ratio
between the two is what the gateway costs (or saves).

* Agents are real tmux + ttyd pairs (:class:`gateway.local.LocalAgent`) on
  unix sockets in a private folder. A direct client is one more
  ``tmux attach`` spawned by ttyd, exactly as a browser on ttyd would get.
* The gateway runs as its own process (``python -m gateway serve``), so its
  CPU time is read from ``/proc`` apart from the benchmark's own.
* :class:`Client` speaks ttyd's protocol over ``websockets`` to either side.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.typing import Subprotocol

from gateway.core import ttyd
from gateway.local import LocalAgent, find_ttyd

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, in seconds."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(value) for value in fields[11:15]) / TICKS
    return 0.0


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent not idle (from /proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / TICKS


def rss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return 0


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (ttyd and the tmux clients it spawned)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


class CpuClock:
    """CPU seconds spent by a set of processes (found again at each reading)."""

    def __init__(self, pids: Callable[[], Sequence[int]]) -> None:
        self._pids = pids
        self._start: dict[int, float] = {}

    def start(self) -> None:
        self._start = {pid: cpu_seconds(pid) for pid in self._pids()}

    def read(self) -> float:
        return sum(cpu_seconds(pid) - self._start.get(pid, 0.0) for pid in self._pids())


@dataclass
class Agent:
    """A tmux + ttyd pair and the pids that serve it."""

    local: LocalAgent

    @property
    def name(self) -> str:
        return self.local.name

    async def tmux_server_pid(self) -> int:
        return int((await self.local.tmux("display-message", "-p", "#{pid}")).strip())

    def ttyd_pids(self) -> list[int]:
        process = self.local._ttyd  # the benchmark measures ttyd's own CPU
        return descendants(process.pid) if process is not None else []

    async def run(self, command: str) -> None:
        """Type a command line into the agent's shell (through tmux, not a viewer)."""
        await self.local.tmux("send-keys", "-t", self.name, "-l", command)
        await self.local.tmux("send-keys", "-t", self.name, "Enter")


class Stack:
    """The agents, the gateway process in front of them, and their folder."""

    def __init__(self, columns: int = 120, rows: int = 40, screen: str = "auto") -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="gwb-"))
        self.screen = screen
        self.columns, self.rows = columns, rows
        self.agents: dict[str, Agent] = {}
        self.gateway: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._ttyd: Path | None = None
        self.nginx: subprocess.Popen[bytes] | None = None
        self.nginx_port = 0

    async def add_agent(
        self, name: str, command: Sequence[str] | None = None, **size: int
    ) -> Agent:
        if self._ttyd is None:
            self._ttyd = find_ttyd(self.folder)
        ttyd_binary = self._ttyd
        local = LocalAgent(
            name,
            command or ["env", "PS1=$ ", "bash", "--noprofile", "--norc", "-i"],
            self.folder,
            ttyd_binary,
            columns=size.get("columns", self.columns),
            rows=size.get("rows", self.rows),
        )
        await local.start()
        agent = Agent(local)
        self.agents[name] = agent
        await wait_for_prompt(agent)
        return agent

    async def start_gateway(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = self.folder / "gateway.toml"
        lines = [
            "[server]",
            f'listen = "127.0.0.1:{self.port}"',
            f'state_dir = "{self.folder / "state"}"',
            f'screen = "{self.screen}"',
        ]
        for agent in self.agents.values():
            lines += [
                "[[agents]]",
                f'id = "{agent.name}"',
                f'url = "{agent.local.url}"',
                f"columns = {agent.local.columns}",
                f"rows = {agent.local.rows}",
            ]
        config.write_text("\n".join(lines) + "\n")
        log = (self.folder / "gateway.log").open("wb")
        self.gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                break
            await asyncio.sleep(0.05)
        # Every agent's upstream connected: a viewer then gets its first screen.
        for agent in self.agents.values():
            async with self.viewer(agent.name) as client:
                await client.wait_for(lambda c: c.received > 0, 10)

    def start_nginx(self) -> bool:
        """Debian's nginx as a plain WebSocket reverse proxy to each ttyd (the baseline)."""
        binary = shutil.which("nginx") or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
        )
        if binary is None:
            return False
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.nginx_port = probe.getsockname()[1]
        here = self.folder / "nginx"
        here.mkdir()
        locations = "".join(
            f"""
        location /{agent.name}/ {{
            proxy_pass http://unix:{agent.local.ttyd_socket}:/;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }}"""
            for agent in self.agents.values()
        )
        temp = " ".join(
            f"{kind}_temp_path {here / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (here / "nginx.conf").write_text(
            f"""daemon off;
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {here / "nginx.pid"};
error_log {here / "error.log"};
events {{ worker_connections 4096; }}
http {{
    access_log off;
    {temp}
    server {{
        listen 127.0.0.1:{self.nginx_port};{locations}
    }}
}}
"""
        )
        self.nginx = subprocess.Popen(
            [binary, "-p", str(here), "-c", str(here / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.nginx_port)) == 0:
                    return True
            time.sleep(0.05)
        return False

    def via_nginx(self, agent: str) -> Client:
        return Client(nginx=self, direct=self.agents[agent], agent=agent)

    def open(self, side: str, agent: str) -> Client:
        """A viewer of ``agent`` on one side: gateway, direct or nginx."""
        if side == "gateway":
            return self.viewer(agent)
        if side == "nginx":
            return self.via_nginx(agent)
        return self.direct(agent)

    def sides(self) -> tuple[str, ...]:
        return ("gateway", "direct", "nginx") if self.nginx is not None else ("gateway", "direct")

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def gateway_cpu(self) -> CpuClock:
        assert self.gateway is not None
        pid = self.gateway.pid
        return CpuClock(lambda: [pid])

    def viewer(self, agent: str) -> Client:
        return Client(gateway=self, agent=agent)

    def direct(self, agent: str) -> Client:
        return Client(direct=self.agents[agent], agent=agent)

    def drainer(self, agent: str) -> Drainer:
        return Drainer(self, agent)

    async def aclose(self) -> None:
        if self.nginx is not None:
            self.nginx.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.nginx.wait(10)
        if self.gateway is not None:
            self.gateway.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.gateway.wait(10)
            if self.gateway.poll() is None:
                self.gateway.kill()
        for agent in self.agents.values():
            await agent.local.aclose()
        shutil.rmtree(self.folder, ignore_errors=True)


async def wait_for_prompt(agent: Agent, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while "$" not in await agent.local.capture():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{agent.name}: no shell prompt")
        await asyncio.sleep(0.05)


@dataclass
class Client:
    """One ttyd-protocol viewer, through the gateway or straight to ttyd.

    It counts what arrives and keeps the output when asked (``keep``); an
    ``on_output`` callback sees every output chunk with its arrival time.
    """

    agent: str
    gateway: Stack | None = None
    direct: Agent | None = None
    # Through nginx to ``direct``'s ttyd (the plain reverse-proxy baseline).
    nginx: Stack | None = None
    keep: bool = False
    # Read at most this many bytes per second (a slow viewer), or 0 for no limit.
    read_rate: int = 0
    # A small kernel receive buffer, so reading slowly pushes back at once.
    receive_buffer: int = 0
    on_output: Callable[[bytes, float], None] | None = None
    received: int = 0
    output: bytearray = field(default_factory=bytearray)
    _ws: ClientConnection | None = None
    _reader: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> Client:
        common: dict[str, Any] = {
            "subprotocols": [Subprotocol("tty")],
            "compression": None,
            "max_size": None,
            "open_timeout": 20,
            "ping_interval": None,
            # Hold few frames, so a slow reader is slow all the way down.
            "max_queue": 4,
        }
        if self.receive_buffer:
            common["sock"] = self._small_socket()
        if self.gateway is not None:
            url = f"ws://127.0.0.1:{self.gateway.port}/agents/{self.agent}/ws"
            self._ws = await connect(url, origin=self.gateway.origin, proxy=None, **common)  # type: ignore[arg-type]
            await self._ws.send(ttyd.Handshake("").serialize())
        elif self.nginx is not None:
            assert self.direct is not None
            url = f"ws://127.0.0.1:{self.nginx.nginx_port}/{self.agent}/ws"
            self._ws = await connect(url, proxy=None, **common)
            local = self.direct.local
            await self._ws.send(ttyd.Handshake("", local.columns, local.rows).serialize())
        else:
            assert self.direct is not None
            path = None if self.receive_buffer else str(self.direct.local.ttyd_socket)
            self._ws = await unix_connect(path, uri="ws://localhost/ws", **common)
            local = self.direct.local
            await self._ws.send(ttyd.Handshake("", local.columns, local.rows).serialize())
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2)

    def _small_socket(self) -> socket.socket:
        if self.gateway is not None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address: Any = ("127.0.0.1", self.gateway.port)
        else:
            assert self.direct is not None
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address = str(self.direct.local.ttyd_socket)
        # Before connecting, so TCP's window is sized by it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        sock.connect(address)
        sock.setblocking(False)
        return sock

    async def _read(self) -> None:
        assert self._ws is not None
        started = time.monotonic()
        async for message in self._ws:
            data = message if isinstance(message, bytes) else message.encode()
            if data[:1] != b"0":
                continue
            now = time.monotonic()
            chunk = data[1:]
            self.received += len(chunk)
            if self.keep:
                self.output += chunk
            if self.on_output is not None:
                self.on_output(chunk, now)
            self._changed.set()
            if self.read_rate:
                # Fall behind the way a slow link would: by not reading.
                due = started + self.received / self.read_rate
                if due > now:
                    await asyncio.sleep(due - now)

    async def send(self, data: bytes) -> None:
        assert self._ws is not None
        await self._ws.send(ttyd.Input(data).serialize())

    async def wait_for(self, check: Callable[[Client], bool], within: float) -> None:
        deadline = time.monotonic() + within
        while True:
            # Clear before looking: output arriving after the look wakes the wait.
            self._changed.clear()
            if check(self):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"viewer of {self.agent}: condition not met in {within}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@contextlib.asynccontextmanager
async def many(clients: Sequence[Client | Drainer]) -> AsyncIterator[Sequence[Client | Drainer]]:
    """Open clients a few at a time (ttyd spawns a process per direct one)."""
    opened: list[Client] = []
    try:
        for start in range(0, len(clients), 20):
            batch = clients[start : start + 20]
            await asyncio.gather(*(client.__aenter__() for client in batch))
            opened.extend(batch)
        yield clients
    finally:
        await asyncio.gather(*(client.__aexit__() for client in opened))


class _DrainProtocol(asyncio.Protocol):
    def __init__(self, upgrade: bytes, handshake: bytes) -> None:
        self.upgrade, self.handshake = upgrade, handshake
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.received = 0
        self.open = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.upgrade)

    def data_received(self, data: bytes) -> None:
        if self.open.done():
            self.received += len(data)
            return
        self.head += data
        if b"\r\n\r\n" in self.head:
            head, _, rest = self.head.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                self.open.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode()))
                return
            assert self.transport is not None
            self.transport.write(self.handshake)
            self.received += len(rest)
            self.open.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open.done():
            self.open.set_exception(exc or ConnectionError("closed during the upgrade"))


def _masked_frame(message: bytes) -> bytes:
    """A client's WebSocket frame (binary, final, masked), for a message under 126 bytes."""
    key = os.urandom(4)
    payload = bytes(byte ^ key[i % 4] for i, byte in enumerate(message))
    return bytes((0x82, 0x80 | len(message))) + key + payload


@dataclass
class Drainer:
    """A gateway viewer that only reads and counts: a browser tab nobody measures.

    500 viewers parsed by one Python process measure that process; most of a
    big audience is drainers, so the clients that measure are not starved.
    """

    stack: Stack
    agent: str
    _protocol: _DrainProtocol | None = None

    @property
    def received(self) -> int:
        return 0 if self._protocol is None else self._protocol.received

    async def __aenter__(self) -> Drainer:
        key = base64.b64encode(os.urandom(16)).decode()
        upgrade = (
            f"GET /agents/{self.agent}/ws HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.stack.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: tty\r\nOrigin: {self.stack.origin}\r\n\r\n"
        ).encode()
        handshake = _masked_frame(ttyd.Handshake("").serialize())
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: _DrainProtocol(upgrade, handshake), "127.0.0.1", self.stack.port
        )
        self._protocol = protocol
        await asyncio.wait_for(protocol.open, 20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
