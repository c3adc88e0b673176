"""Record one scenario: the CLI in tmux behind ttyd, driven by keys, then frozen.

The pane runs :mod:`capture.sandbox` (a network namespace of its own with the
mock), tmux records what the CLI writes (``pipe-pane``), and a ttyd client,
as the gateway would be, records what ttyd sends and types the scenario's
keys. At the end every process of the pane is frozen (a cgroup freezer:
SIGSTOP does not hold, tmux continues a stopped pane), the stream drained
until quiet, and the screen and history captured: a still picture that
matches the stream's end exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from gateway.core import ttyd
from gateway.local import LocalAgent, find_ttyd

from . import clis
from .script import Scenario

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
NODE_BIN = ROOT / "node_modules" / ".bin"
TYPE_INTERVAL = 0.05
QUIET = 1.0


class CaptureError(RuntimeError):
    """A scenario that did not reach its end; the message says where."""


@dataclass
class Recording:
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    titles: list[tuple[float, str]] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return round(time.monotonic() - self.started, 4)

    @property
    def last_output(self) -> float:
        return self.chunks[-1][0] if self.chunks else 0.0


async def _reader(ws: ClientConnection, rec: Recording) -> None:
    with contextlib.suppress(ConnectionClosed):
        await _read(ws, rec)


async def _read(ws: ClientConnection, rec: Recording) -> None:
    async for message in ws:
        parsed = ttyd.parse_server(message if isinstance(message, bytes) else message.encode())
        if isinstance(parsed, ttyd.Output):
            rec.chunks.append((rec.now(), parsed.data))
        elif isinstance(parsed, ttyd.SetTitle):
            rec.titles.append((rec.now(), parsed.title))


def _in_namespace(pid: int) -> list[int]:
    """Every process in ``pid``'s network namespace: the pane's, daemons included.

    The namespace is the capture's alone (the sandbox made it), so this is
    everything the CLI started, even what detached from the pane (Codex's
    app-server daemon does).
    """
    try:
        ns = os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return []
    if ns == os.readlink("/proc/self/ns/net"):
        return []  # the sandbox has not unshared yet: nothing of the CLI's runs
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns" / "net") == ns:
                    found.append(int(entry.name))
    return sorted(found)


def _kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def frozen(pids: Iterable[int], name: str) -> Any:
    """Freeze ``pids`` (cgroup v1 freezer, else v2 ``cgroup.freeze``) meanwhile."""
    v1 = Path("/sys/fs/cgroup/freezer")
    v2 = Path("/sys/fs/cgroup")
    group = v1 / name if v1.is_dir() else v2 / name
    group.mkdir()
    try:
        procs = group / ("tasks" if v1.is_dir() else "cgroup.procs")
        for pid in pids:
            with contextlib.suppress(OSError):  # gone meanwhile
                procs.write_text(str(pid))
        if v1.is_dir():
            (group / "freezer.state").write_text("FROZEN")
        else:
            (group / "cgroup.freeze").write_text("1")
        yield
    finally:
        if v1.is_dir():
            (group / "freezer.state").write_text("THAWED")
            parent = v1 / "tasks"
        else:
            (group / "cgroup.freeze").write_text("0")
            parent = v2 / "cgroup.procs"
        for task in procs.read_text().split():
            with contextlib.suppress(OSError):
                parent.write_text(task)
        with contextlib.suppress(OSError):
            group.rmdir()


def pane_command(scenario: Scenario, path: Path, work: Path, *, dump: bool = False) -> list[str]:
    """The command of a pane that runs ``scenario``'s CLI offline, set up in ``work``.

    The pane waits for a line before it starts (send it once the pane is
    watched); the CLI is then typed at its shell, ``agent@demo:demo-project$``.
    Also how the tests run a real CLI in a gateway's agent.
    """
    home, project = work / "home", work / "demo-project"
    extra = clis.prepare(scenario, home, project)
    cli = clis.CLIS.get(scenario.cli)
    spec = {
        "scenario": str(path),
        "dialect": cli.dialect if cli else "",
        "port": clis.PORT,
        "log": str(work / "mock.jsonl"),
        "dump": str(work / "dump") if dump else "",
        "ready": str(work / "mock.ready"),
        "pythonpath": str(REPO),
        "project": str(project),
        "env": {**clis.base_env(home, f"{NODE_BIN}:/usr/local/bin:/usr/bin:/bin"), **extra},
    }
    (work / "spec.json").write_text(json.dumps(spec))
    return [
        "unshare", "-n", "--", "env", f"PYTHONPATH={REPO}",
        sys.executable, "-m", "capture.sandbox", str(work / "spec.json"),
    ]  # fmt: skip


async def end_pane(agent: LocalAgent) -> None:
    """Kill everything the pane's sandbox started, daemons that left the pane included."""
    with contextlib.suppress(Exception):
        pane_pid = int(await agent.tmux("display-message", "-p", "-t", agent.name, "#{pane_pid}"))
        _kill_all(_in_namespace(pane_pid))


class Recorder:
    def __init__(self, scenario: Scenario, path: Path, work: Path, *, dump: bool = False):
        self.scenario = scenario
        self.path = path
        self.work = work
        self.dump = dump
        self.rec = Recording()
        self.agent: LocalAgent | None = None
        self.ws: ClientConnection | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LocalAgent]:
        s = self.scenario
        command = pane_command(s, self.path, self.work, dump=self.dump)
        agent = LocalAgent(
            "cap", command, self.work / "agent", find_ttyd(self.work),
            columns=s.columns, rows=s.rows,
        )  # fmt: skip
        await agent.start()
        self.agent = agent
        try:
            yield agent
        finally:
            await end_pane(agent)
            await agent.aclose()

    async def send(self, data: str) -> None:
        assert self.ws is not None
        await self.ws.send(ttyd.Input(data.encode()).serialize())

    async def wait_for(self, pattern: str, timeout: float) -> None:
        assert self.agent is not None
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = await self.agent.capture()
            if regex.search(text):
                self.rec.notes.append(f"{self.rec.now()}s: saw /{pattern}/")
                return
            if time.monotonic() > deadline:
                raise CaptureError(
                    f"{self.scenario.name}: /{pattern}/ not on the screen after {timeout:g} s;"
                    f" the screen:\n{text}"
                )
            await asyncio.sleep(0.1)

    async def drain(self, quiet: float = QUIET, limit: float = 15.0) -> None:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            await asyncio.sleep(0.1)
            if self.rec.now() - self.rec.last_output >= quiet:
                return

    async def run(self) -> dict[str, Any]:
        s = self.scenario
        async with self.running() as agent:
            pane_bin = self.work / "pane.bin"
            tee = f"{sys.executable} -m capture.tee {pane_bin}"
            await agent.tmux("pipe-pane", "-o", "-t", agent.name, tee)
            reader: asyncio.Task[None] | None = None
            async with unix_connect(
                str(agent.ttyd_socket), uri="ws://localhost/ws",
                subprotocols=[Subprotocol("tty")], compression=None, max_size=None,
                ping_interval=None,
            ) as ws:  # fmt: skip
                self.ws = ws
                await ws.send(ttyd.Handshake("", s.columns, s.rows).serialize())
                reader = asyncio.create_task(_reader(ws, self.rec))
                await agent.tmux("send-keys", "-t", agent.name, "Enter")  # the sandbox starts
                await self.wait_for(r"agent@demo:\S*\$", 30)
                for step in s.steps:
                    await self.step(step)
                await self.drain()
                pane_pid = int(await agent.tmux("display-message", "-p", "-t", agent.name,
                                                "#{pane_pid}"))  # fmt: skip
                pids = _in_namespace(pane_pid)
                with frozen(pids, f"capture-{os.getpid()}"):
                    self.rec.notes.append(f"{self.rec.now()}s: froze {len(pids)} processes")
                    await self.drain()
                    out = await self.finish(agent)
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            return out

    async def step(self, step: Any) -> None:
        rec = self.rec
        if step.keys:
            rec.keys.append({"t": rec.now(), "keys": step.keys})
            await self.send(step.keys)
        elif step.type:
            t = rec.now()
            for ch in step.type:
                await self.send(ch)
                await asyncio.sleep(TYPE_INTERVAL)
            rec.keys.append({"t": t, "t_end": rec.now(), "keys": step.type, "typed": True})
        elif step.wait:
            await self.wait_for(step.wait, step.timeout)
        elif step.sleep:
            await asyncio.sleep(step.sleep)

    async def finish(self, agent: LocalAgent) -> dict[str, Any]:
        fmt = "#{pane_title}\t#{cursor_x},#{cursor_y},#{cursor_flag}\t#{alternate_on}"
        title, cursor, alternate = (
            (await agent.tmux("display-message", "-p", "-t", agent.name, fmt))
            .rstrip("\n")
            .split("\t")
        )
        screen = await agent.tmux("capture-pane", "-p", "-e", "-t", agent.name)
        history = await agent.tmux("capture-pane", "-p", "-e", "-S", "-", "-t", agent.name)
        return {
            "screen": screen,
            "history": history,
            "title": title,
            "cursor": cursor,
            "alternate": alternate == "1",
        }


async def record(scenario: Scenario, path: Path, out: Path, *, dump: bool = False) -> Path:
    """Record ``scenario`` (read from ``path``) into ``out``; return its JSON file."""
    # Always the same folder: its path is on the screen (the CLIs print it),
    # and a capture made again should differ only where the CLI did.
    work = Path(tempfile.gettempdir()) / "capture" / scenario.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        recorder = Recorder(scenario, path, work, dump=dump)
        final = await recorder.run()
        rec = recorder.rec
        name = scenario.name
        out.mkdir(parents=True, exist_ok=True)
        stream = b"".join(data for _, data in rec.chunks)
        (out / f"{name}.bin").write_bytes(stream)
        offsets, offset = [], 0
        for t, data in rec.chunks:
            offsets.append([t, offset])
            offset += len(data)
        (out / f"{name}.times.json").write_text(json.dumps(offsets))
        shutil.copyfile(work / "pane.bin", out / f"{name}.pane.bin")
        pane_times = [
            [float(t), int(o)] for t, o in
            (line.split() for line in (work / "pane.bin.times").read_text().splitlines())
        ]  # fmt: skip
        (out / f"{name}.pane.times.json").write_text(json.dumps(pane_times))
        (out / f"{name}.screen.ansi").write_text(final["screen"])
        (out / f"{name}.history.ansi").write_text(final["history"])
        mock_log = work / "mock.jsonl"
        requests = (
            [json.loads(x) for x in mock_log.read_text().splitlines()] if mock_log.exists() else []
        )
        meta = {
            "name": name,
            "cli": scenario.cli,
            "cli_version": await cli_version(scenario.cli),
            "description": scenario.description,
            "terminal": {"columns": scenario.columns, "rows": scenario.rows},
            "label": label_json(scenario),
            "keys": rec.keys,
            "notes": rec.notes,
            "mock_requests": requests,
            "final_title": final["title"],
            "final_cursor_x_y_visible": final["cursor"],
            "alternate_screen": final["alternate"],
            "ttyd_titles": rec.titles,
            "bytes": len(stream),
            "chunks": len(rec.chunks),
        }
        path_json = out / f"{name}.json"
        path_json.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
        if dump:
            print(f"capture: work folder kept: {work}")
        return path_json
    finally:
        if not dump:
            shutil.rmtree(work, ignore_errors=True)


def label_json(scenario: Scenario) -> dict[str, Any]:
    label = scenario.label
    out: dict[str, Any] = {"state": label.state}
    if label.notes:
        out["notes"] = label.notes
    if label.timeline:
        out["timeline"] = list(label.timeline)
    if label.prompt is not None:
        p = label.prompt
        out["prompt"] = {
            "kind": p.kind,
            "question": p.question,
            "subject": p.subject,
            "selected": p.selected,
            "options": [o.__dict__ for o in p.options],
        }
    return out


async def cli_version(cli: str) -> str:
    if cli not in clis.CLIS:
        return ""
    proc = await asyncio.create_subprocess_exec(
        str(NODE_BIN / clis.CLIS[cli].binary), "--version",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={"PATH": f"{NODE_BIN}:/usr/bin:/bin", "HOME": tempfile.gettempdir()},
    )  # fmt: skip
    out, _ = await proc.communicate()
    return out.decode().split()[0] if out else ""
