"""The command line, run as a real process: what `make run` does."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import argon2
import pytest

from gateway import config
from gateway.app import create_app
from gateway.appkeys import AUTH
from gateway.auth import hash_password, new_api_token
from gateway.cli import DemoConsole

from .conftest import eventually, timeout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: int | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args,
        # Never the test runner's own terminal: the demo reads its console.
        stdin=asyncio.subprocess.DEVNULL if stdin is None else stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def serving(*args: str, **kwargs: Any) -> AsyncIterator[asyncio.subprocess.Process]:
    """A running ``gateway`` process, stopped with Ctrl-C (SIGINT) at the end."""
    proc = await run_cli(*args, **kwargs)
    try:
        yield proc
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), timeout(30))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def read_until(stream: asyncio.StreamReader, prefix: str, lines: list[str]) -> str:
    """Read console lines until one starts with ``prefix``; return its rest."""
    while True:
        line = (await stream.readline()).decode()
        if not line:
            pytest.fail(f"the gateway exited before printing {prefix!r}: {lines}")
        lines.append(line)
        if line.startswith(prefix):
            return line[len(prefix) :].strip()


async def test_demo_serves_and_exits_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    private, cwd = tmp_path / "tmp", tmp_path / "cwd"
    private.mkdir()
    cwd.mkdir()
    base = f"http://127.0.0.1:{port}"
    console: list[str] = []
    demo = serving(
        "serve", "--demo", "--listen", f"127.0.0.1:{port}", env={"TMPDIR": str(private)}, cwd=cwd
    )
    async with demo as proc:
        assert proc.stdout is not None
        link = await asyncio.wait_for(
            read_until(proc.stdout, "log in (works once): ", console), timeout(60)
        )
        assert link.startswith(f"{base}/login/")
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            assert (await http.get(f"{base}/healthz")).status == 200
            assert (await http.get(f"{base}/api/agents")).status == 401
            assert (await http.get(link)).status == 200  # redirected home, logged in
            assert (await http.get(link, allow_redirects=False)).status == 404  # used up

            async def agents_connected() -> bool:
                async with http.get(f"{base}/api/agents") as response:
                    agents = (await response.json())["agents"]
                return {a["id"]: a["status"] for a in agents} == {
                    "busy-agent": "connected",
                    "shell": "connected",
                }

            await eventually(agents_connected, within=20, message="both demo agents connected")

            async def busy_agent_draws() -> bool:
                async with http.get(f"{base}/api/agents/busy-agent/screen") as response:
                    return "Demo Agent" in await response.text()

            await eventually(busy_agent_draws, within=20, message="busy agent banner")
        assert any(private.iterdir()), "the demo keeps its sockets in a private folder"
    assert proc.returncode == 0
    assert any("/agents/shell/" in line for line in console)
    # tmux servers, ttyd processes and sockets are gone with it.
    assert list(private.iterdir()) == []
    audit = (cwd / "state" / "audit.jsonl").read_text()
    assert '"via":"one-time link"' in audit
    # The login token never reaches the logs; requests go to a file, not the console.
    stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
    access = (cwd / "state" / "access.log").read_text()
    token = link.rsplit("/", 1)[1]
    assert "/login/[redacted]" in access
    assert '"GET /healthz"' not in stderr
    assert token not in stderr
    assert token not in access
    assert token not in audit


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


async def test_sighup_reloads_users(tmp_path: Path) -> None:
    port = free_port()
    token, digest = new_api_token()
    user = (
        f"[[users]]\nname = 'bot'\npassword_hash = '{hash_password('x')}'\nrole = 'viewer'\n"
        f"api_token_sha256 = '{digest}'\n"
    )
    path = tmp_path / "gateway.toml"
    path.write_text(f"[server]\nlisten = '127.0.0.1:{port}'\n{user}")
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        serving("serve", "--config", str(path), cwd=tmp_path) as proc,
        aiohttp.ClientSession(headers=headers) as http,
    ):

        async def status() -> int:
            try:
                async with http.get(f"{base}/api/agents") as response:
                    return response.status
            except aiohttp.ClientConnectionError:
                return 0

        await eventually(lambda: _is(status(), 200), within=30, message="token accepted")
        path.write_text(f"[server]\nlisten = '127.0.0.1:{port}'\n")
        proc.send_signal(signal.SIGHUP)
        await eventually(lambda: _is(status(), 401), message="user gone after SIGHUP")
    assert proc.returncode == 0


async def _is(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def test_a_fresh_demo_link_replaces_the_last_one(tmp_path: Path) -> None:
    settings = config.Settings(
        demo=True,
        demo_login_token=config.Secret("first"),
        public_origin="http://127.0.0.1:8080",
        state_dir=tmp_path,
        audit_log=tmp_path / "audit.jsonl",
    )
    app = create_app(settings)
    auth = app[AUTH]
    await auth.add_one_time_login("first", "demo")
    console = DemoConsole(settings)
    assert console.link() == "http://127.0.0.1:8080/login/first"
    fresh = await console.fresh(app)
    token = fresh.rsplit("/", 1)[1]
    assert fresh == console.link()
    assert token != "first"
    # The one printed before no longer works, used or not; the fresh one does, once.
    assert await auth.redeem_one_time_login("first") is None
    session = await auth.redeem_one_time_login(token)
    assert session is not None
    assert session.user == "demo"
    assert await auth.redeem_one_time_login(token) is None
    auth.close()
