"""The command line, run as a real process: what `make run` does."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import argon2
import pytest

from .conftest import eventually, timeout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )  # fmt: skip


async def test_demo_serves_and_exits_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    private, cwd = tmp_path / "tmp", tmp_path / "cwd"
    private.mkdir()
    cwd.mkdir()
    proc = await run_cli(
        "serve", "--demo", "--listen", f"127.0.0.1:{port}", env={"TMPDIR": str(private)}, cwd=cwd
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                try:
                    async with http.get(f"{base}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            async def agents_connected() -> bool:
                async with http.get(f"{base}/api/agents") as response:
                    agents = (await response.json())["agents"]
                return {a["id"]: a["status"] for a in agents} == {
                    "busy-agent": "connected",
                    "shell": "connected",
                }

            await eventually(healthy, within=30, message="/healthz")
            await eventually(agents_connected, within=20, message="both demo agents connected")

            async def busy_agent_draws() -> bool:
                async with http.get(f"{base}/api/agents/busy-agent/screen") as response:
                    return "Demo Agent" in await response.text()

            await eventually(busy_agent_draws, within=20, message="busy agent banner")
        assert any(private.iterdir()), "the demo keeps its sockets in a private folder"
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), timeout(30))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stdout = (await proc.stdout.read()).decode() if proc.stdout else ""
    assert proc.returncode == 0
    assert "/agents/shell/" in stdout
    # tmux servers, ttyd processes and sockets are gone with it.
    assert list(private.iterdir()) == []
    assert (cwd / "state" / "audit.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to serve"),
        (("--listen", "0.0.0.0:8080", "--demo"), "only listens on loopback"),
        (("--config", "/nonexistent/gateway.toml"), "does not exist"),
    ],
)
async def test_bad_invocations_exit_2_with_one_line(args: tuple[str, ...], message: str) -> None:
    proc = await run_cli("serve", *args, env={"GATEWAY_CONFIG": ""})
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout(30))
    assert proc.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]


async def test_hash_password_reads_stdin_and_prints_argon2id() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "hash-password",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, _ = await asyncio.wait_for(proc.communicate(b"tr0ub4dor\n"), timeout(30))
    assert proc.returncode == 0
    digest = stdout.decode().strip()
    assert digest.startswith("$argon2id$")
    assert argon2.PasswordHasher().verify(digest, "tr0ub4dor")


async def test_new_api_token_prints_the_token_and_its_digest() -> None:
    proc = await run_cli("new-api-token")
    stdout, _ = await asyncio.wait_for(proc.communicate(), timeout(30))
    token_line, config_line = stdout.decode().strip().splitlines()
    token = token_line.rsplit(" ", 1)[1]
    assert f'"{hashlib.sha256(token.encode()).hexdigest()}"' in config_line
