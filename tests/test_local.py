"""gateway/local.py's agents: a program's title and bell reach the gateway, as in the deploy
image, and nothing an agent runs outlives the process that spawned it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.local import TITLES_AND_BELLS, LocalAgent

from .conftest import AgentFactory, GatewayFactory, eventually, open_terminal, timeout
from .test_cli import free_port, read_until, run_cli
from .test_events import open_events

OSC = re.compile(rb"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
DEPLOY_TMUX_CONF = Path(__file__).resolve().parent.parent / "deploy" / "agent-tmux.conf"


async def screen_json(client: TestClient[Any, Any], agent_id: str, **params: str) -> Any:
    response = await client.get(
        f"/api/agents/{agent_id}/screen", params={"format": "json", **params}
    )
    assert response.status == 200, await response.text()
    return await response.json()


async def listed_title(client: TestClient[Any, Any], agent_id: str) -> str:
    response = await client.get("/api/agents")
    (agent,) = [a for a in (await response.json())["agents"] if a["id"] == agent_id]
    title: str = agent["title"]
    return title


async def shell(make_agent: AgentFactory, name: str) -> LocalAgent:
    agent = await make_agent(name)

    async def prompt() -> bool:
        return (await agent.capture()).strip() == "$"

    await eventually(prompt, message=f"{name} prompt")
    return agent


async def test_a_program_title_reaches_the_screen_the_list_and_the_feed(
    make_agent: AgentFactory, gateway: GatewayFactory
) -> None:
    agent = await shell(make_agent, "titled")
    client = await gateway(agent)
    # No program has set one: not tmux's default (the host name), the agent's name.
    assert (await screen_json(client, "titled"))["title"] == ""
    assert await listed_title(client, "titled") == "titled"
    assert socket.gethostname() not in json.dumps(await screen_json(client, "titled"))

    events = await open_events(client)
    assert (await events.next())["event"] == "snapshot"
    await agent.tmux("send-keys", "-t", "titled", r"printf '\033]2;%s\007' 'step 2 of 5'", "Enter")

    async def titled() -> bool:
        return (await screen_json(client, "titled"))["title"] == "step 2 of 5"

    await eventually(titled, message="the title in the screen")
    assert await listed_title(client, "titled") == "step 2 of 5"
    await events.until(
        lambda e: e["event"] == "activity" and e["data"]["title"] == "step 2 of 5",
    )
    events.response.close()


async def test_a_bell_reaches_the_viewers(
    make_agent: AgentFactory, gateway: GatewayFactory
) -> None:
    agent = await shell(make_agent, "ringing")
    client = await gateway(agent)
    viewer = await open_terminal(client, "ringing")
    await viewer.wait_text("$")
    start = len(viewer.output)
    await agent.tmux("send-keys", "-t", "ringing", r"printf 'ding\a\n'", "Enter")
    await viewer.wait_text("\nding\n")
    # Typed, the command echoes as text; besides the bell itself, only a
    # title's end is a BEL byte. tmux sends the bell from its alerts queue,
    # after it has drawn the line: it may come a moment after the text.
    await eventually(
        lambda: b"\x07" in OSC.sub(b"", bytes(viewer.output[start:])), message="the bell"
    )
    await viewer.close()


def test_the_deploy_image_sets_the_same_titles_and_bells() -> None:
    deploy = [line for line in DEPLOY_TMUX_CONF.read_text().splitlines() if line.startswith("set")]
    for line in TITLES_AND_BELLS.splitlines():
        assert line in deploy, f"deploy/agent-tmux.conf lacks {line!r}"


# --- the demo killed with SIGKILL ----------------------------------------------------------


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def mentioning(text: str) -> set[int]:
    """Processes whose command line holds ``text`` (ttyd, tmux, the watchdogs)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes() and alive(int(entry.name)):
                    found.add(int(entry.name))
    return found


def tmux_pids(socket_path: Path) -> set[int]:
    """The tmux server behind ``socket_path`` and the programs in its panes."""
    answer = subprocess.run(
        ["tmux", "-S", str(socket_path), "list-panes", "-a", "-F", "#{pid} #{pane_pid}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {int(pid) for pid in answer.stdout.split()}


async def test_the_demo_killed_with_sigkill_leaves_no_tmux_or_ttyd_behind(tmp_path: Path) -> None:
    private = tmp_path / "tmp"
    private.mkdir()
    port = free_port()
    proc = await run_cli(
        "serve", "--demo", "--listen", f"127.0.0.1:{port}", env={"TMPDIR": str(private)},
        cwd=tmp_path,
    )  # fmt: skip
    left: set[int] = set()
    sockets: list[Path] = []
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(read_until(proc.stdout, "log in (works once): ", []), timeout(60))
        (workdir,) = private.iterdir()
        sockets = sorted(workdir.glob("*.tmux"))
        assert [s.name for s in sockets] == ["busy-agent.tmux", "shell.tmux"]
        spawned = mentioning(str(workdir))  # both ttyds, tmux servers and clients
        for socket_path in sockets:
            spawned |= tmux_pids(socket_path)  # the shell and the busy agent, too
        assert len(spawned) >= 6, spawned
        proc.kill()
        await proc.wait()

        def ended() -> bool:
            left.clear()
            left.update(pid for pid in spawned if alive(pid))
            return not left

        # Before, both tmux servers, their programs and both ttyds lived on.
        await eventually(ended, within=10, message="the demo's processes ended")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for pid in left:  # a failed run must not leave the machine busy
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for socket_path in sockets:
            subprocess.run(["tmux", "-S", str(socket_path), "kill-server"], capture_output=True)
