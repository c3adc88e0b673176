"""A Docker agent's tmux history, through ``docker exec`` into its container.

Real dockerd, real tmux in the container. The hostile cases are a container
whose ``tmux`` is a script of its own, as an agent that controls its image
(or its PATH) can arrange: it may print without end, fail, or hang.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from gateway.docker import pane as pane_module
from gateway.docker.pane import DockerPane
from gateway.docker.planner import Container
from gateway.errors import PaneUnavailable

from .conftest import eventually, timeout
from .dockerd import Containers

TMUX = (
    "echo 'set -g history-limit 50000' > /tmp/tmux.conf;"
    " tmux -u -f /tmp/tmux.conf new-session -d -x 80 -y 24"
)


def run(containers: Containers, script: str, **env: str) -> Any:
    container = containers.client.containers.run(
        containers.image,
        ["/bin/sh", "-c", script],
        detach=True,
        network_mode="none",
        environment={"HOME": "/tmp", "LANG": "C.UTF-8", **env},
    )
    containers.started.append(container)
    return container


def pane_of(containers: Containers, container: Any, state: str = "running") -> DockerPane:
    seen = Container(container.id, container.name, "a", state, None, False, None)
    return DockerPane(
        "a", lambda agent_id: seen if agent_id == "a" else None, containers.engine.client
    )


async def test_the_history_comes_from_tmux_in_the_container(containers: Containers) -> None:
    container = run(containers, f"{TMUX} 'seq 1 3000; exec sleep 1000000'; exec sleep 1000000")
    pane = pane_of(containers, container)

    async def printed() -> bool:
        try:
            return b"\n3000\n" in await pane.history(5000)
        except PaneUnavailable:
            return False  # tmux not started yet

    await eventually(printed, within=timeout(20), message="tmux's history")
    lines = (await pane.history(5000)).decode().split("\n")
    assert lines[:3] == ["1", "2", "3"]
    assert lines.index("3000") == 2999
    # Only the newest lines asked for, then the screen.
    assert len((await pane.history(100)).decode().split("\n")[:-1]) == 100 + 24


async def test_no_running_container_is_refused_at_once(containers: Containers) -> None:
    container = run(containers, "exec sleep 1000000")
    with pytest.raises(PaneUnavailable, match="no running container"):
        await pane_of(containers, container, state="exited").history(10)
    missing = DockerPane("b", lambda agent_id: None, containers.engine.client)
    with pytest.raises(PaneUnavailable, match="no running container"):
        await missing.history(10)


HOSTILE_TMUX = {
    "floods": (
        "while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done",
        "more than",
    ),
    "fails": ("echo partial; exit 3", "exited with 3"),
    "hangs": ("exec sleep 1000000", "took more than"),
}


@pytest.mark.parametrize("case", HOSTILE_TMUX)
async def test_a_tmux_of_the_agents_own_is_bounded(
    containers: Containers, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body, error = HOSTILE_TMUX[case]
    script = (
        f"mkdir -p /tmp/bin; printf '#!/bin/sh\\n{body}\\n' > /tmp/bin/tmux;"
        " chmod +x /tmp/bin/tmux; exec sleep 1000000"
    )
    container = run(containers, script, PATH="/tmp/bin:/bin")
    monkeypatch.setattr(pane_module, "EXEC_TIMEOUT", 2.0)
    monkeypatch.setattr(pane_module, "BYTES_PER_LINE", 64)
    pane = pane_of(containers, container)

    async def installed() -> bool:
        return container.exec_run(["/bin/sh", "-c", "test -x /tmp/bin/tmux"]).exit_code == 0

    await eventually(installed, within=timeout(20), message="the script")
    with pytest.raises(PaneUnavailable, match=error):
        await asyncio.wait_for(pane.history(10), timeout(30))


@pytest.fixture
def read_only_api(containers: Containers, tmp_path: Path) -> Iterator[str]:
    """Debian's nginx in front of the engine, passing GET and HEAD only.

    As the deploy's socket proxy does: no exec for the gateway.
    """
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.skip("nginx not found (apt-get install nginx)")
    engine = containers.engine.url.removeprefix("unix://")
    temp = " ".join(f"{kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy"))
    (tmp_path / "nginx.conf").write_text(
        f"""daemon off;
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {tmp_path / "nginx.pid"};
error_log {tmp_path / "error.log"};
events {{ worker_connections 64; }}
http {{
    access_log off;
    {temp}
    server {{
        listen unix:{tmp_path / "api.sock"};
        location / {{
            limit_except GET {{ deny all; }}
            proxy_pass http://unix:{engine}:;
        }}
    }}
}}
"""
    )
    nginx = subprocess.Popen([binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")])
    try:
        deadline = time.monotonic() + timeout(10)
        while not (tmp_path / "api.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"unix://{tmp_path / 'api.sock'}"
    finally:
        nginx.terminate()
        nginx.wait()


async def test_an_api_that_allows_no_exec_is_asked_once(
    containers: Containers, read_only_api: str, caplog: pytest.LogCaptureFixture
) -> None:
    container = run(containers, f"{TMUX} 'exec sleep 1000000'; exec sleep 1000000")
    seen = Container(container.id, container.name, "a", "running", None, False, None)
    asked: list[str] = []

    def client() -> docker.DockerClient:
        asked.append("client")
        return docker.DockerClient(base_url=read_only_api, version="1.41", timeout=10)

    pane = DockerPane("a", lambda agent_id: seen, client)
    for _ in range(3):
        with pytest.raises(PaneUnavailable, match="not allowed"):
            await pane.history(10)
    assert asked == ["client"]
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "is what tmux drew" in warnings[0].getMessage()
