"""B8-B10 (issue 13): three `gateway serve` replicas on one Redis, in the same run.

Every replica runs the same config (only ``--listen`` differs) in front of
the same agents, with Debian's redis-server on a free loopback port. The
rows compare a replica that does not hold the agent (its "gateway" column)
with the replica that holds it ("direct" column, so the ratio is what a
non-holder adds), or give absolute figures where there is no pair.

* B8: join (open to full screen at 200x60) and keystroke echo through a
  non-holder against the holder.
* B9: fleet output at full speed through three replicas: CPU per MB of the
  holder, of each mirror, and of redis-server.
* B10: failover: kill -9 of the holder, then SIGTERM of the next holder;
  the time from the signal to the first frame of the new holder (it starts
  with CAN + RIS) at a viewer on another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from gateway.replica.source import REPAINT

from .harness import Client, CpuClock, Stack, percentile
from .workloads import Row, _echo_latencies, b5_screen, row


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Endpoint:
    """One replica, as a :class:`Client` reaches it (a stand-in for a Stack)."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.origin + path, timeout=5) as response:  # noqa: S310 - loopback
            return json.load(response)


class Replicas:
    def __init__(self, stack: Stack, count: int = 3, lease_ms: int = 2000) -> None:
        self.stack = stack
        self.count = count
        self.lease_ms = lease_ms
        self.folder = stack.folder / "replicas"
        self.folder.mkdir()
        self.redis: subprocess.Popen[bytes] | None = None
        self.redis_port = _free_port()
        self.replicas: list[Endpoint] = []

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.redis = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ports = [_free_port() for _ in range(self.count)]
        origins = [f"http://127.0.0.1:{port}" for port in ports]
        lines = [
            "[server]",
            f'public_origin = "{origins[0]}"',
            f"extra_origins = {json.dumps(origins[1:])}",
            f'screen = "{self.stack.screen}"',
            "[redis]",
            f'url = "redis://127.0.0.1:{self.redis_port}/0"',
            f"lease_ms = {self.lease_ms}",
        ]
        for agent in self.stack.agents.values():
            lines += [
                "[[agents]]",
                f'id = "{agent.name}"',
                f'url = "{agent.local.url}"',
                f"columns = {agent.local.columns}",
                f"rows = {agent.local.rows}",
            ]
        config = self.folder / "gateway.toml"
        config.write_text("\n".join(lines) + "\n")
        for index, port in enumerate(ports):
            state = self.folder / f"state-{index}"
            state.mkdir()
            log = (self.folder / f"gateway-{index}.log").open("wb")
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "serve",
                    "--config",
                    str(config),
                    "--listen",
                    f"127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=state,
            )
            self.replicas.append(Endpoint(port, process))
        for replica in self.replicas:
            await self._ready(replica)

    async def _ready(self, replica: Endpoint, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                if (await asyncio.to_thread(replica.get, "/readyz"))["status"] == "ready":
                    return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"replica on {replica.port} not ready")

    def live(self) -> list[Endpoint]:
        return [r for r in self.replicas if r.process.poll() is None]

    async def holder(self, agent: str, within: float = 10) -> Endpoint:
        """The live replica holding ``agent``, once the others agree on it."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            names: dict[str, Endpoint] = {}
            seen = set()
            for replica in self.live():
                with contextlib.suppress(OSError, ValueError):
                    names[(await asyncio.to_thread(replica.get, "/healthz"))["replica"]] = replica
                    agents = (await asyncio.to_thread(replica.get, "/api/agents"))["agents"]
                    (found,) = [a for a in agents if a["id"] == agent]
                    seen.add((found["upstream"] or {}).get("holder"))
            if len(seen) == 1 and (name := seen.pop()) in names:
                return names[name]
            await asyncio.sleep(0.1)
        raise TimeoutError(f"no agreed holder of {agent}")

    def viewer(self, replica: Endpoint, agent: str) -> Client:
        return Client(gateway=replica, agent=agent)  # type: ignore[arg-type]

    def redis_cpu(self) -> CpuClock:
        assert self.redis is not None
        pid = self.redis.pid
        return CpuClock(lambda: [pid])

    async def aclose(self) -> None:
        for replica in self.replicas:
            if replica.process.poll() is None:
                replica.process.terminate()
        for replica in self.replicas:
            with contextlib.suppress(subprocess.TimeoutExpired):
                replica.process.wait(15)
            if replica.process.poll() is None:
                replica.process.kill()
        if self.redis is not None:
            self.redis.kill()
            self.redis.wait()


async def run_replicas(stack: Stack, quick: bool) -> list[Row]:
    """B8-B10 on agents of their own, added to ``stack`` (its gateway is not used)."""
    for name in ("r8", "r9", "r10"):
        await stack.add_agent(name, columns=200, rows=60)
    (stack.folder / "r8-screen.txt").write_bytes(b5_screen(200, 60))
    replicas = Replicas(stack)
    rows: list[Row] = []
    try:
        await replicas.start()
        rows += await b8_join_and_echo(replicas, 5 if quick else 30, 40 if quick else 200)
        rows += await b9_fanout(replicas, 3_000_000 if quick else 20_000_000)
        rows += await b10_failover(replicas, 2 if quick else 5)
    finally:
        await replicas.aclose()
    return rows


async def b8_join_and_echo(replicas: Replicas, tries: int, keystrokes: int) -> list[Row]:
    agent = replicas.stack.agents["r8"]
    await agent.run(f"cat {replicas.stack.folder / 'r8-screen.txt'}")
    await asyncio.sleep(1)
    holder = await replicas.holder(agent.name)
    other = next(r for r in replicas.live() if r is not holder)
    joins: dict[str, list[float]] = {"holder": [], "other": []}
    for side, replica in (("holder", holder), ("other", other)):
        for _ in range(tries):
            client = replicas.viewer(replica, agent.name)
            client.keep = True
            started = time.monotonic()
            async with client:
                # A gateway's first output frame is the whole screen (RIS + snapshot).
                await client.wait_for(lambda c: c.received > 0, 10)
                joins[side].append(time.monotonic() - started)
    await agent.run("clear; cat")
    await asyncio.sleep(0.5)
    echoes: dict[str, list[float]] = {}
    for side, replica in (("holder", holder), ("other", other)):
        async with replicas.viewer(replica, agent.name) as client:
            await asyncio.sleep(0.3)
            echoes[side] = await _echo_latencies(client, keystrokes)
    await agent.local.tmux("send-keys", "-t", agent.name, "C-c")
    note = "gateway column: a replica not holding the agent; direct column: its holder"
    rows = []
    for q in (50, 99):
        rows.append(
            row(
                "B8",
                f"join to full screen p{q} (200x60)",
                percentile(joins["other"], q) * 1000,
                percentile(joins["holder"], q) * 1000,
                "ms",
                note,
            )
        )
    for q in (50, 99):
        rows.append(
            row(
                "B8",
                f"echo p{q}",
                percentile(echoes["other"], q) * 1000,
                percentile(echoes["holder"], q) * 1000,
                "ms",
                note,
            )
        )
    return rows


async def b9_fanout(replicas: Replicas, size: int) -> list[Row]:
    agent = replicas.stack.agents["r9"]
    holder = await replicas.holder(agent.name)
    others = [r for r in replicas.live() if r is not holder]
    path = replicas.stack.folder / "r9.txt"
    path.write_bytes(
        b"".join(
            b"%07d the quick brown fox jumps over the lazy dog\r\n" % i for i in range(size // 58)
        )
    )
    clocks = {
        "holder": CpuClock(lambda: [holder.process.pid]),
        **{f"mirror {i}": CpuClock(lambda r=r: [r.process.pid]) for i, r in enumerate(others)},
        "redis": replicas.redis_cpu(),
    }
    viewers = [replicas.viewer(r, agent.name) for r in (holder, *others)]
    async with contextlib.AsyncExitStack() as stack:
        for viewer in viewers:
            await stack.enter_async_context(viewer)
        await asyncio.sleep(0.5)
        for clock in clocks.values():
            clock.start()
        started = time.monotonic()
        marker = f"R9-DONE-{os.getpid()}"
        await agent.run(f"cat {path}; echo {marker[:-1]}$(({marker[-1]}+0))")
        for viewer in viewers:
            viewer.keep = True
        for viewer in viewers:
            await viewer.wait_for(lambda c: marker.encode() in c.output[-4096:], 120)
        seconds = time.monotonic() - started
    megabytes = path.stat().st_size / 1e6
    spent = {name: clock.read() for name, clock in clocks.items()}
    rows = [
        row(
            "B9",
            "fleet output through 3 replicas",
            megabytes / seconds,
            None,
            "MB/s",
            "every replica has a viewer; the output is mirrored to both others",
        ),
        row(
            "B9",
            "holder CPU per MB",
            spent["holder"] / megabytes * 1000,
            None,
            "ms/MB",
            "reads ttyd, relays, emulates, appends to Redis",
        ),
    ]
    mirrors = [v for k, v in spent.items() if k.startswith("mirror")]
    rows.append(
        row(
            "B9",
            "mirror CPU per MB (mean)",
            sum(mirrors) / len(mirrors) / megabytes * 1000,
            None,
            "ms/MB",
            "reads the stream, relays, emulates",
        )
    )
    rows.append(
        row(
            "B9",
            "redis-server CPU",
            spent["redis"] / seconds * 100,
            None,
            "% of a core",
            f"at {megabytes / seconds:.1f} MB/s",
        )
    )
    return rows


async def _first_new_frame(viewer: Client, kill: Any) -> float:
    """Seconds from ``kill()`` to the first frame of a new holder at ``viewer``."""
    seen = asyncio.get_running_loop().create_future()

    def on_output(chunk: bytes, now: float) -> None:
        if REPAINT in chunk and not seen.done():
            seen.set_result(now)

    viewer.on_output = on_output
    started = time.monotonic()
    kill()
    arrived = await asyncio.wait_for(seen, 30)
    viewer.on_output = None
    return float(arrived) - started


async def b10_failover(replicas: Replicas, tries: int) -> list[Row]:
    agent = replicas.stack.agents["r10"]
    await agent.run("while :; do date +%s.%N; sleep 0.05; done")
    crash: list[float] = []
    graceful: list[float] = []
    for attempt in range(tries):
        for kind, times in (("kill", crash), ("term", graceful)):
            holder = await replicas.holder(agent.name)
            watcher = next(r for r in replicas.live() if r is not holder)
            async with replicas.viewer(watcher, agent.name) as viewer:
                await viewer.wait_for(lambda c: c.received > 0, 10)
                sig = signal.SIGKILL if kind == "kill" else signal.SIGTERM
                times.append(
                    await _first_new_frame(viewer, lambda h=holder, s=sig: h.process.send_signal(s))
                )
            await asyncio.to_thread(holder.process.wait, 15)
            await _restart(replicas, holder)
        del attempt
    await agent.local.tmux("send-keys", "-t", agent.name, "C-c")
    lease = f"lease {replicas.lease_ms} ms"
    return [
        row(
            "B10",
            "kill -9 of the holder to a new frame p50",
            percentile(crash, 50) * 1000,
            None,
            "ms",
            f"{lease}; at a viewer on another replica",
        ),
        row(
            "B10", "kill -9 of the holder to a new frame max", max(crash) * 1000, None, "ms", lease
        ),
        row(
            "B10",
            "SIGTERM of the holder to a new frame p50",
            percentile(graceful, 50) * 1000,
            None,
            "ms",
            "a graceful hand-over",
        ),
        row(
            "B10", "SIGTERM of the holder to a new frame max", max(graceful) * 1000, None, "ms", ""
        ),
    ]


async def _restart(replicas: Replicas, gone: Endpoint) -> None:
    """Bring a stopped replica back on its port, so every try has three."""
    index = replicas.replicas.index(gone)
    args = gone.process.args
    assert isinstance(args, list)
    log = (replicas.folder / f"gateway-{index}.log").open("ab")
    process = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, cwd=replicas.folder / f"state-{index}"
    )
    replicas.replicas[index] = Endpoint(gone.port, process)
    await replicas._ready(replicas.replicas[index])
    # Let the placement settle (a new replica takes its share after a while).
    await asyncio.sleep(4)
