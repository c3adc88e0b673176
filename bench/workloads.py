"""The workloads (B1-B7 of issue 6), each through the gateway and direct to ttyd.

Every function returns a list of rows: ``{"workload", "metric", "gateway",
"direct", "unit", "note"}``; ``direct`` is None where there is no direct
equivalent. The ratio gateway ÷ direct is computed when the table is
printed.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.screen import ghostty
from gateway.screen.reference import PyteScreen

from .harness import (
    Agent,
    Client,
    CpuClock,
    Stack,
    descendants,
    machine_busy_seconds,
    many,
    percentile,
    rss_bytes,
)

Row = dict[str, Any]
# The real agents' streams the tests replay (tests/fixtures/agent-tui/README.md).
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "agent-tui"


def row(
    workload: str,
    metric: str,
    gateway: float,
    direct: float | None,
    unit: str,
    note: str = "",
    nginx: float | None = None,
) -> Row:
    return {
        "workload": workload,
        "metric": metric,
        "gateway": gateway,
        "direct": direct,
        "nginx": nginx,
        "unit": unit,
        "note": note,
    }


# --- streams -------------------------------------------------------------------------


def plain_text(size: int) -> bytes:
    rng = random.Random(1)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"tests", b"passed", b"def", b"return"]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
    return _whole_lines(out, size)


def colour_text(size: int) -> bytes:
    rng = random.Random(2)
    out = bytearray()
    while len(out) < size:
        for _ in range(8):
            out += b"\x1b[38;5;%dm%s\x1b[0m " % (rng.randrange(256), b"token")
        out += b"\x1b[1;48;2;%d;%d;%dmX\x1b[0m\n" % (rng.randrange(256), rng.randrange(256), 9)
    return _whole_lines(out, size)


def _whole_lines(data: bytearray, size: int) -> bytes:
    # Never cut an escape sequence: it would swallow the end marker printed next.
    return bytes(data[: data.rfind(b"\n", 0, size) + 1])


class Marker:
    """Notices when a line of output appears in a byte stream (across chunks)."""

    def __init__(self, text: str) -> None:
        self.needle = text.encode()
        self._tail = b""
        self.at: float | None = None

    def __call__(self, chunk: bytes, now: float) -> None:
        if self.at is None:
            window = self._tail + chunk
            if self.needle in window:
                self.at = now
            self._tail = window[-len(self.needle) - 8 :]


async def _shell_ready(agent: Agent, client: Client) -> None:
    # Settle: nothing new for a moment before the clock starts.
    last = -1
    while client.received != last:
        last = client.received
        await asyncio.sleep(0.3)


# --- B1 throughput ------------------------------------------------------------------------


async def b1_throughput(stack: Stack, size: int) -> list[Row]:
    agent = stack.agents["b1"]
    rows: list[Row] = []
    for kind, make in (("plain", plain_text), ("colour", colour_text)):
        path = stack.folder / f"b1-{kind}.txt"
        path.write_bytes(make(size))
        seconds: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for side in stack.sides():
            client = stack.open(side, agent.name)
            n = random.randrange(10**5, 10**6)
            marker = Marker(f"B1-DONE-{n}")
            client.on_output = marker
            clock = stack.gateway_cpu() if side == "gateway" else _stack_clock(stack, agent)
            async with client:
                await _shell_ready(agent, client)
                clock.start()
                started = time.monotonic()
                await agent.run(f"cat {path}; echo B1-DONE-$(({n}+0))")
                await client.wait_for(lambda _, seen=marker: seen.at is not None, 300)
                assert marker.at is not None
                seconds[side] = marker.at - started
                cpu[side] = clock.read()
            await agent.run("clear")
        megabytes = size / 1e6
        rows.append(
            row(
                "B1",
                f"{kind} {megabytes:.0f} MB: time to last line",
                seconds["gateway"],
                seconds["direct"],
                "s",
                nginx=seconds.get("nginx"),
            )
        )
        rows.append(
            row(
                "B1",
                f"{kind}: gateway CPU per MB",
                cpu["gateway"] / megabytes,
                None,
                "s/MB",
                "the gateway process alone",
            )
        )
    return rows


def _stack_clock(stack: Stack, agent: Agent) -> CpuClock:
    """Direct side: ttyd and the tmux clients it spawned (the gateway is idle then)."""
    return CpuClock(agent.ttyd_pids)


# --- B2 keystroke echo latency -----------------------------------------------------------------


async def _echo_latencies(client: Client, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        before = client.received
        started = time.monotonic()
        await client.send(b"x")
        await client.wait_for(lambda c, b=before: c.received > b, 5)
        latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.005)
    await client.send(b"\x15")  # Ctrl-U: forget the typed line
    return latencies


async def b2_echo(stack: Stack, keystrokes: int) -> list[Row]:
    agent, flood = stack.agents["b2"], stack.agents["flood"]
    await agent.run("cat")
    await asyncio.sleep(0.3)
    rows: list[Row] = []
    for condition in ("idle", "flood"):
        results: dict[str, list[float]] = {}
        for side in stack.sides():
            flood_viewer = stack.open(side, flood.name)
            async with stack.open(side, agent.name) as client, flood_viewer:
                if condition == "flood":
                    await flood.run("while :; do cat /etc/services; done")
                    await asyncio.sleep(0.5)
                await _shell_ready(agent, client) if condition == "idle" else None
                results[side] = await _echo_latencies(client, keystrokes)
                if condition == "flood":
                    await flood.local.tmux("send-keys", "-t", flood.name, "C-c")
                    await asyncio.sleep(0.5)
        for q in (50, 95, 99):
            rows.append(
                row(
                    "B2",
                    f"echo p{q}, {condition}",
                    percentile(results["gateway"], q) * 1000,
                    percentile(results["direct"], q) * 1000,
                    "ms",
                    "" if condition == "idle" else "another agent floods, watched",
                    nginx=percentile(results["nginx"], q) * 1000 if "nginx" in results else None,
                )
            )
    await agent.local.tmux("send-keys", "-t", agent.name, "C-c")
    return rows


# --- B3 fan-out ---------------------------------------------------------------------------------

_STAMP = re.compile(rb"T(\d{19})")


STAMPER = """\
import sys, time
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
pad = "." * 80
per_tick = max(1, rate // 100 // 102)  # 100 ticks a second, ~102-byte lines
end = time.time() + seconds
while time.time() < end:
    tick = time.time()
    sys.stdout.write("".join("T%d %s\\n" % (time.time_ns(), pad) for _ in range(per_tick)))
    sys.stdout.flush()
    time.sleep(max(0, 0.01 - (time.time() - tick)))
"""


def _stamper(folder: Path, rate: int, seconds: float) -> str:
    """A command printing ~``rate`` bytes/s of lines stamped with the wall clock."""
    script = folder / "stamper.py"
    script.write_text(STAMPER)
    return f"{sys.executable} {script} {rate} {seconds}"


class StampWindow:
    """From when on stamps count: lines stamped before (a join's screen and
    history carry those of earlier runs, seconds old) are not delays."""

    def __init__(self) -> None:
        self.since = 2**63

    def open(self) -> None:
        self.since = time.time_ns()


def _delay_recorder(delays: list[float], window: StampWindow) -> Callable[[bytes, float], None]:
    def record(chunk: bytes, now: float) -> None:
        wall = time.time_ns()
        for match in _STAMP.finditer(chunk):
            stamp = int(match[1])
            if stamp >= window.since:
                delays.append((wall - stamp) / 1e9)

    return record


MEASURED_VIEWERS = 50


async def b3_fanout(
    stack: Stack, counts: list[int], direct_max: int, rate: int, seconds: float
) -> list[Row]:
    agent = stack.agents["b3"]
    rows: list[Row] = []
    for count in counts:
        result: dict[str, dict[str, float]] = {}
        for side in ("gateway", "direct"):
            if side == "direct" and count > direct_max:
                continue
            opener = stack.viewer if side == "gateway" else stack.direct
            # Above MEASURED_VIEWERS the rest only drain their sockets: one
            # process parsing 500 streams would measure itself.
            measured = count if count <= 100 else MEASURED_VIEWERS
            delays: list[list[float]] = [[] for _ in range(measured)]
            window = StampWindow()
            clients = [opener(agent.name) for _ in range(measured)]
            for client, mine in zip(clients, delays, strict=True):
                client.on_output = _delay_recorder(mine, window)
            drainers = [stack.drainer(agent.name) for _ in range(count - measured)]
            server = await agent.tmux_server_pid()
            clock = (
                CpuClock(lambda: [stack.gateway.pid])  # type: ignore[union-attr]
                if side == "gateway"
                else CpuClock(lambda tmux=server: [*agent.ttyd_pids(), tmux])
            )
            async with many([*clients, *drainers]):
                await asyncio.sleep(0.5)
                rss_before = rss_bytes(stack.gateway.pid) if stack.gateway else 0
                clock.start()
                clients_cpu = time.process_time()
                window.open()
                await agent.run(_stamper(stack.folder, rate, seconds))
                await asyncio.sleep(seconds + 1.0)
                used = clock.read()
                clients_cpu = time.process_time() - clients_cpu
                rss_after = rss_bytes(stack.gateway.pid) if stack.gateway else 0
            p99s = [percentile(d, 99) for d in delays if d]
            result[side] = {
                "p99": percentile(p99s, 99) * 1000 if p99s else float("nan"),
                "cpu": used / count,
                "rss": (rss_after - rss_before) / count,
                "clients": clients_cpu / (seconds + 1.0),
            }
            await agent.run("clear")
            await asyncio.sleep(0.3)
        direct = result.get("direct")
        note = "" if direct else f"no direct run above {direct_max} viewers (a tmux client each)"
        if count > 100:
            note += f"; {MEASURED_VIEWERS} measured, the rest drain their sockets"
        rows.append(
            row(
                "B3",
                f"{count} viewers: delivery p99",
                result["gateway"]["p99"],
                direct and direct["p99"],
                "ms",
                note,
            )
        )
        rows.append(
            row(
                "B3",
                f"{count} viewers: CPU per viewer",
                result["gateway"]["cpu"] * 1000,
                direct and direct["cpu"] * 1000,
                "ms",
                "gateway process vs ttyd + its tmux clients + tmux server",
            )
        )
        rows.append(
            row(
                "B3",
                f"{count} viewers: memory per viewer",
                result["gateway"]["rss"] / 1024,
                None,
                "KiB",
                "gateway RSS growth",
            )
        )
        rows.append(
            row(
                "B3",
                f"{count} viewers: the measuring clients' CPU",
                result["gateway"]["clients"],
                direct and direct["clients"],
                "cores",
                "the benchmark process reading the viewers: near 1, it is what lags",
            )
        )
    return rows


# --- B4 slow viewer --------------------------------------------------------------------------


async def _scrape(stack: Stack) -> list[str]:
    """The lines of one scrape of the gateway's /metrics (open mode: no login needed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    writer.write(f"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1:{stack.port}\r\n\r\n".encode())
    answer = (await reader.read()).decode()
    writer.close()
    head, _, body = answer.partition("\r\n\r\n")
    if not head.startswith("HTTP/1.1 200") and not head.startswith("HTTP/1.0 200"):
        # A refused scrape must not pass as figures of nan and 0.
        raise RuntimeError(f"/metrics answered {head.splitlines()[:1]}")
    return body.splitlines()


async def _metric(stack: Stack, name: str, agent: str) -> float:
    """One agent's sample of a metric."""
    needle = f'{name}{{agent="{agent}"}} '
    for line in await _scrape(stack):
        if line.startswith(needle):
            return float(line[len(needle) :])
    return float("nan")


async def _metric_total(stack: Stack, name: str) -> float:
    """The sum of a metric over every agent, from one scrape."""
    lines = await _scrape(stack)
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name + "{"))


async def b4_slow_viewer(stack: Stack, count: int, rate: int, seconds: float) -> list[Row]:
    agent = stack.agents["b3"]
    p99: dict[tuple[str, bool], float] = {}
    slow_queue = 0.0
    resyncs = 0.0
    for side in ("gateway", "direct"):
        opener = stack.viewer if side == "gateway" else stack.direct
        for with_slow in (False, True):
            delays: list[list[float]] = [[] for _ in range(count - 1)]
            window = StampWindow()
            clients = [opener(agent.name) for _ in range(count - 1)]
            for client, mine in zip(clients, delays, strict=True):
                client.on_output = _delay_recorder(mine, window)
            if with_slow:
                slow = opener(agent.name)
                slow.read_rate = 50_000
                slow.receive_buffer = 16_384
                clients.append(slow)
            async with many(clients):
                # Every normal viewer has its first screen (with the gateway,
                # its history too) before the clock starts: B4 is about delivery
                # beside a slow viewer, not about joining.
                for client in clients[: count - 1]:
                    await client.wait_for(lambda c: c.received > 0, 30)
                await asyncio.sleep(0.5)
                if side == "gateway" and with_slow:
                    resyncs = -await _metric(stack, "gateway_agent_resyncs_total", agent.name)
                window.open()
                await agent.run(_stamper(stack.folder, rate, seconds))
                deadline = time.monotonic() + seconds + 1.0
                while time.monotonic() < deadline:
                    if side == "gateway" and with_slow:
                        queued = await _metric(
                            stack, "gateway_agent_viewer_queue_bytes_max", agent.name
                        )
                        slow_queue = max(slow_queue, queued)
                    await asyncio.sleep(0.25)
                if side == "gateway" and with_slow:
                    resyncs += await _metric(stack, "gateway_agent_resyncs_total", agent.name)
            p99s = [percentile(d, 99) for d in delays if d]
            p99[(side, with_slow)] = percentile(p99s, 99) * 1000 if p99s else float("nan")
            await agent.run("clear")
            await asyncio.sleep(0.3)
    return [
        row(
            "B4",
            f"{count - 1} normal viewers: p99 without a slow one",
            p99[("gateway", False)],
            p99[("direct", False)],
            "ms",
        ),
        row(
            "B4",
            f"{count - 1} normal viewers: p99 beside one at 50 KB/s",
            p99[("gateway", True)],
            p99[("direct", True)],
            "ms",
        ),
        row(
            "B4",
            "the slow viewer's queue, largest seen",
            slow_queue / 1024,
            None,
            "KiB",
            "bounded by server.viewer_queue_bytes (512 KiB), past which it is resynced",
        ),
        row("B4", "the slow viewer's resyncs", resyncs, None, "", "backlog dropped, snapshot sent"),
    ]


# --- B6 many agents ----------------------------------------------------------------------------


async def _loop_lag_buckets(
    stack: Stack, metric: str = "gateway_event_loop_lag_seconds"
) -> dict[float, float]:
    buckets = {}
    for line in await _scrape(stack):
        if line.startswith(f"{metric}_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def _bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound of the bucket holding the q-quantile of what was observed in between."""
    counts = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    total = counts[-1][1] if counts else 0.0
    for bound, cumulative in counts:
        if total and cumulative >= q / 100 * total:
            return bound
    return float("nan")


CPU_LAG = "gateway_event_loop_lag_cpu_seconds"
CANARY = """\
import sys, time
lags, end = [], time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    started = time.monotonic()
    time.sleep(0.1)
    lags.append(time.monotonic() - started - 0.1)
lags.sort()
print(lags[min(len(lags) - 1, int(len(lags) * 0.99))])
"""


async def b6_many_agents(stack: Stack, names: list[str], rate: int, seconds: float) -> list[Row]:
    """Twice: all processes on all cores, then the gateway alone on a core of its own."""
    rows = await _b6_run(stack, names, rate, seconds, "shared cores")
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return rows
    assert stack.gateway is not None
    own, rest = {cores[0]}, set(cores[1:])
    agents = [
        pid
        for name in names
        for pid in [
            *descendants(await stack.agents[name].tmux_server_pid()),
            *stack.agents[name].ttyd_pids(),
        ]
    ]
    for pid in [os.getpid(), *agents]:
        with contextlib.suppress(OSError):  # gone in between
            os.sched_setaffinity(pid, rest)
    os.sched_setaffinity(stack.gateway.pid, own)
    try:
        rows += await _b6_run(stack, names, rate, seconds, "the gateway on a core of its own")
    finally:
        for pid in [os.getpid(), stack.gateway.pid, *agents]:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, set(cores))
    return rows


async def _b6_run(
    stack: Stack, names: list[str], rate: int, seconds: float, where: str
) -> list[Row]:
    assert stack.gateway is not None
    clock = stack.gateway_cpu()
    before = await _loop_lag_buckets(stack)
    before_cpu = await _loop_lag_buckets(stack, CPU_LAG)
    relayed = await _metric_total(stack, "gateway_agent_upstream_bytes_total")
    # The same timer, in a process that does nothing: how late the machine
    # itself wakes a sleeper while the agents and their writers run.
    script = stack.folder / "canary.py"
    script.write_text(CANARY)
    canary = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(seconds + 1.0), stdout=asyncio.subprocess.PIPE
    )
    clock.start()
    busy = machine_busy_seconds()
    await asyncio.gather(
        *(stack.agents[name].run(_stamper(stack.folder, rate, seconds)) for name in names)
    )
    await asyncio.sleep(seconds)
    machine = (machine_busy_seconds() - busy) / seconds
    await asyncio.sleep(1.0)
    used = clock.read()
    after = await _loop_lag_buckets(stack)
    after_cpu = await _loop_lag_buckets(stack, CPU_LAG)
    relayed = await _metric_total(stack, "gateway_agent_upstream_bytes_total") - relayed
    canary_lag = float((await canary.communicate())[0])
    for name in names:
        await stack.agents[name].run("clear")
    note = f"{len(names)} agents x {rate // 1000} KB/s asked, no viewers; {where}"
    return [
        row(
            "B6",
            f"event-loop lag p99, {where}",
            _bucket_quantile(before, after, 99) * 1000,
            None,
            "ms",
            "histogram bucket bound",
        ),
        row(
            "B6",
            f"event-loop lag p99, the gateway's own work, {where}",
            _bucket_quantile(before_cpu, after_cpu, 99) * 1000,
            None,
            "ms",
            "the part its loop thread was on a CPU",
        ),
        row("B6", f"output relayed, {where}", relayed / seconds / 1e6, None, "MB/s", note),
        row("B6", f"gateway CPU, {where}", used / seconds, None, "cores", note),
        row(
            "B6",
            f"machine CPU, {where}",
            machine,
            None,
            "cores",
            f"of {os.cpu_count()} cores: agents, their writers, the gateway",
        ),
        row(
            "B6",
            f"an idle process's timer lag p99, {where}",
            canary_lag * 1000,
            None,
            "ms",
            "machine noise",
        ),
    ]


# --- B5 reconnect ------------------------------------------------------------------------------


async def b5_reconnect(stack: Stack, tries: int) -> list[Row]:
    agent = stack.agents["b5"]
    await agent.run(f"cat {stack.folder / 'b5-screen.txt'}")
    await asyncio.sleep(0.5)
    rows: list[Row] = []
    for condition in ("idle", "flood"):
        if condition == "flood":
            await agent.run("while :; do cat /etc/services; done")
            await asyncio.sleep(0.5)
        times: dict[str, list[float]] = {side: [] for side in stack.sides()}
        sizes: list[int] = []
        for side in stack.sides():
            for _ in range(tries):
                client = stack.open(side, agent.name)
                client.keep = True
                started = time.monotonic()
                async with client:
                    if side == "gateway":
                        # The first output frame is the whole screen (ESC c + snapshot).
                        await client.wait_for(lambda c: c.received > 0, 10)
                        sizes.append(client.received)
                    else:
                        # tmux redraws a new client's whole window: wait for the last row.
                        await client.wait_for(lambda c: _full_redraw(c.output, agent), 10)
                    times[side].append(time.monotonic() - started)
        size = f"{agent.local.columns}x{agent.local.rows}"
        for q in (50, 99):
            rows.append(
                row(
                    "B5",
                    f"open to full screen p{q}, {condition} ({size})",
                    percentile(times["gateway"], q) * 1000,
                    percentile(times["direct"], q) * 1000,
                    "ms",
                    nginx=percentile(times["nginx"], q) * 1000 if "nginx" in times else None,
                )
            )
        rows.append(
            row("B5", f"snapshot size, {condition}", percentile(sizes, 50) / 1024, None, "KiB")
        )
        if condition == "flood":
            await agent.local.tmux("send-keys", "-t", agent.name, "C-c")
    return rows


def _full_redraw(output: bytearray, agent: Agent) -> bool:
    """tmux has drawn a new client's whole window: enough cells, then the cursor shown."""
    enough = len(output) >= agent.local.columns * agent.local.rows // 8
    return enough and b"\x1b[?25h" in output


def b5_screen(columns: int, rows: int) -> bytes:
    rng = random.Random(5)
    lines = []
    for y in range(rows - 2):
        cells = "".join(
            f"\x1b[38;5;{rng.randrange(256)}m{chr(0x41 + (x + y) % 26)}" for x in range(columns - 1)
        )
        lines.append(cells + "\x1b[0m")
    return ("\n".join(lines) + "\n").encode()


# --- B7 emulator throughput ------------------------------------------------------------------


def _backends() -> dict[str, Callable[[], Callable[[bytes], object]]]:
    """The gateway's screen backends, and asciinema's avt (a native candidate) if installed."""

    def reference() -> Callable[[bytes], object]:
        return PyteScreen(120, 40).feed

    backends = {"gateway Screen (pyte)": reference}
    if ghostty.UNAVAILABLE is None:

        def native() -> Callable[[bytes], object]:
            return ghostty.GhosttyScreen(120, 40).feed

        backends["gateway GhosttyScreen (libghostty-vt)"] = native
    try:
        import avt

        def asciinema_avt() -> Callable[[bytes], object]:
            vt = avt.Vt(120, 40)
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            return lambda data: vt.feed_str(decoder.decode(data))

        backends["pyavt (asciinema avt, feed only)"] = asciinema_avt
    except ImportError:
        pass
    return backends


def b7_emulator(size: int) -> list[Row]:
    streams = {"plain": plain_text(size), "colour": colour_text(size)}
    redraws = sorted(FIXTURES.glob("*.bin")) if FIXTURES.is_dir() else []
    if redraws:
        data = b"".join(path.read_bytes() for path in redraws)
        streams["agent TUIs"] = (data * (size // max(1, len(data)) + 1))[:size]
    rows = []
    for backend, make in _backends().items():
        for name, data in streams.items():
            feed = make()
            started = time.process_time()
            for start in range(0, len(data), 4096):
                feed(data[start : start + 4096])
            used = max(time.process_time() - started, 1e-9)
            rows.append(row("B7", f"{backend}, {name}", len(data) / used / 1e6, None, "MB/s"))
    rows += _snapshot_times(streams)
    return rows


def _snapshot_times(streams: dict[str, bytes]) -> list[Row]:
    """What a joining viewer costs the gateway: one snapshot of a busy 200x60 screen."""
    makers: dict[str, Callable[[int, int], Any]] = {"gateway Screen (pyte)": PyteScreen}
    if ghostty.UNAVAILABLE is None:
        makers["gateway GhosttyScreen (libghostty-vt)"] = ghostty.GhosttyScreen
    rows = []
    for backend, make in makers.items():
        screen = make(200, 60)
        screen.feed(b5_screen(200, 60))
        started = time.process_time()
        for _ in range(20):
            snapshot = screen.snapshot()
        used = (time.process_time() - started) / 20
        rows.append(
            row(
                "B7",
                f"{backend}, snapshot 200x60",
                used * 1e3,
                None,
                "ms",
                f"{len(snapshot)} bytes",
            )
        )
    return rows
