"""The Docker deployment in deploy/.

The compose file is checked as Compose itself reads it: Debian's
``docker-compose config`` (1.29) validates and normalises it, and the tests
assert the properties the deployment's security rests on. The gateway's
config is loaded by the gateway's own loader, and the agent image's
entrypoint is run for real (tmux + ttyd on a unix socket, the gateway's
upstream client in front).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import os
import re
import shutil
import stat
import subprocess
import tomllib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import config
from gateway.core import ttyd
from gateway.core.backoff import Backoff
from gateway.core.state import AgentState
from gateway.core.target import Target
from gateway.core.upstream import Upstream

from .conftest import eventually, timeout

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
GATEWAY_TOML = DEPLOY / "gateway.toml"
ENTRYPOINT = DEPLOY / "agent-entrypoint.sh"
AGENTS = {"claude", "gemini", "codex"}
# The agent image's ttyd socket folder (agent.Dockerfile, TTYD_SOCKET).
AGENT_SOCKET_DIR = "/run/ttyd"

# YAML to JSON with the YAML library docker-compose 1.x itself runs on.
YAML_TO_JSON = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"


# --- docker-compose config ------------------------------------------------------


@dataclass(frozen=True)
class ComposeConfig:
    returncode: int
    stderr: str
    data: dict[str, Any]

    @property
    def services(self) -> dict[str, Any]:
        services: dict[str, Any] = self.data["services"]
        return services


def _compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "docker-compose is not installed, so deploy/docker-compose.yml cannot be "
            "checked: apt-get install docker-compose (Debian's 1.29)"
        )
    return binary


def _yaml_interpreter(binary: str) -> list[str]:
    """The Python interpreter a docker-compose 1.x script runs on."""
    first_line = Path(binary).read_bytes().split(b"\n", 1)[0].decode(errors="replace")
    if not first_line.startswith("#!") or "python" not in first_line:
        pytest.fail(
            f"{binary} is not a Python script, so its normalised YAML cannot be read "
            "without PyYAML: install Debian's docker-compose (apt-get install docker-compose)"
        )
    return first_line[2:].split()


@pytest.fixture(scope="module")
def compose() -> ComposeConfig:
    binary = _compose_binary()
    # Only PATH: variables from the caller's shell would override .env.example.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    args = [binary, "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "config"]
    version = subprocess.run(
        [binary, "version", "--short"], capture_output=True, text=True, env=env, timeout=60
    ).stdout.strip()
    if version.startswith("1."):
        run = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
        data: dict[str, Any] = {}
        if run.returncode == 0:
            parsed = subprocess.run(
                [*_yaml_interpreter(binary), "-c", YAML_TO_JSON],
                input=run.stdout,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert parsed.returncode == 0, parsed.stderr
            data = _json(parsed.stdout)
    else:  # Compose v2 installed as docker-compose speaks JSON itself.
        run = subprocess.run(
            [*args, "--format", "json"], capture_output=True, text=True, env=env, cwd=REPO
        )
        data = _json(run.stdout) if run.returncode == 0 else {}
    return ComposeConfig(run.returncode, run.stderr, data)


def _json(text: str) -> dict[str, Any]:
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


# Compose normalises some fields to strings in one version and to mappings in
# another: these read both.


def _published_ports(service: dict[str, Any]) -> set[int]:
    ports: set[int] = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            published = port.get("published")
        else:
            parts = str(port).split("/", 1)[0].split(":")
            published = parts[-2] if len(parts) >= 2 else None
        if published is None:
            pytest.fail(f"port {port!r} is published on a random host port")
        ports.add(int(published))
    return ports


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool


def _mounts(service: dict[str, Any]) -> list[Mount]:
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts.append(
                Mount(
                    str(volume.get("source", "")),
                    str(volume["target"]),
                    bool(volume.get("read_only", False)),
                )
            )
            continue
        parts = str(volume).split(":")
        mode = parts[2] if len(parts) > 2 else ""
        source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
        mounts.append(Mount(source, target, "ro" in mode.split(",")))
    return mounts


def _networks(service: dict[str, Any]) -> set[str]:
    return set(service.get("networks") or {"default"})


def _labels(service: dict[str, Any]) -> dict[str, str]:
    labels = service.get("labels") or {}
    if isinstance(labels, list):
        return dict(str(item).split("=", 1) for item in labels)
    return {str(key): str(value) for key, value in labels.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(arg) for arg in command]


def _flags(service: dict[str, Any], name: str) -> list[str]:
    prefix = f"-{name}="
    return [arg.removeprefix(prefix) for arg in _command(service) if arg.startswith(prefix)]


def _no_new_privileges(service: dict[str, Any]) -> bool:
    options = {str(option).replace("=", ":") for option in service.get("security_opt") or []}
    return bool(options & {"no-new-privileges", "no-new-privileges:true"})


def _agents(compose: ComposeConfig) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose.services.items()
        if "gateway.agent" in _labels(service)
    }


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_compose_config_is_valid_with_the_example_env(compose: ComposeConfig) -> None:
    assert compose.returncode == 0, compose.stderr
    # Every variable the compose file uses has a value or a default.
    assert "is not set" not in compose.stderr, compose.stderr
    # The Compose Specification: no version key.
    assert not re.search(r"(?m)^version\s*:", COMPOSE_FILE.read_text())


def test_only_traefik_publishes_ports(compose: ComposeConfig) -> None:
    published = {name: _published_ports(s) for name, s in compose.services.items()}
    assert published.pop("traefik") == {80, 443}
    assert all(not ports for ports in published.values()), published
    assert all("network_mode" not in s for s in compose.services.values())


def test_gateway_runs_unprivileged(compose: ComposeConfig) -> None:
    gateway = compose.services["gateway"]
    user = str(gateway.get("user", ""))
    assert user.split(":")[0] not in {"", "0", "root"}, user
    assert "ALL" in gateway.get("cap_drop", [])
    assert not gateway.get("cap_add")
    assert gateway.get("read_only") is True
    assert _no_new_privileges(gateway)
    assert not gateway.get("privileged")
    assert "/tmp" in [str(t).split(":")[0] for t in gateway.get("tmpfs") or []]


def test_only_the_socket_proxy_mounts_the_docker_socket_read_only(
    compose: ComposeConfig,
) -> None:
    holders = {
        name: [m for m in _mounts(s) if "docker.sock" in m.source + m.target]
        for name, s in compose.services.items()
    }
    holders = {name: mounts for name, mounts in holders.items() if mounts}
    assert set(holders) == {"socket-proxy"}
    assert all(m.read_only for m in holders["socket-proxy"])
    assert not any(s.get("privileged") for s in compose.services.values())


def test_agents_are_labelled_with_a_unix_socket(compose: ComposeConfig) -> None:
    agents = _agents(compose)
    assert set(agents) == AGENTS
    for name, service in agents.items():
        labels = _labels(service)
        assert labels["gateway.agent"] == name
        url = labels["gateway.ttyd.url"]
        assert re.fullmatch(r"unix:/run/ttyd/[a-z0-9-]+/ttyd\.sock", url), url
        assert not _published_ports(service)
        assert "ALL" in service.get("cap_drop", [])
        assert _no_new_privileges(service)


def test_each_socket_volume_is_shared_by_its_agent_and_the_gateway_only(
    compose: ComposeConfig,
) -> None:
    gateway_mounts = {m.source: m for m in _mounts(compose.services["gateway"])}
    for name, service in _agents(compose).items():
        sockets = [m for m in _mounts(service) if m.target == AGENT_SOCKET_DIR]
        assert len(sockets) == 1, f"{name} mounts no volume on {AGENT_SOCKET_DIR}"
        volume = sockets[0].source
        assert volume in compose.data["volumes"], f"{name}: {volume} is not a named volume"
        # The gateway sees the agent's socket where the agent's label says.
        in_gateway = gateway_mounts.get(volume)
        assert in_gateway is not None, f"the gateway does not mount {volume}"
        url = _labels(service)["gateway.ttyd.url"]
        assert url == f"unix:{in_gateway.target}/ttyd.sock"
        assert in_gateway.read_only
        others = [
            other
            for other, s in compose.services.items()
            if other not in {name, "gateway"} and volume in {m.source for m in _mounts(s)}
        ]
        assert not others, f"{volume} is also mounted in {others}"


def test_networks_separate_the_proxy_the_gateway_and_the_agents(
    compose: ComposeConfig,
) -> None:
    networks = compose.data["networks"]
    members: dict[str, set[str]] = {}
    for name, service in compose.services.items():
        for network in _networks(service):
            members.setdefault(network, set()).add(name)
    assert networks["docker-api"].get("internal") is True
    assert members["docker-api"] == {"socket-proxy", "gateway", "traefik"}
    assert networks["edge"].get("internal") is True
    assert members["edge"] == {"traefik", "gateway"}
    assert members["egress"] == AGENTS
    assert not networks["egress"].get("internal"), "agents need their model APIs"
    assert _networks(compose.services["socket-proxy"]) == {"docker-api"}
    assert _networks(compose.services["gateway"]) == {"edge", "docker-api"}


def test_socket_proxy_forwards_only_the_read_endpoints(compose: ComposeConfig) -> None:
    proxy = compose.services["socket-proxy"]
    allow = {
        arg.split("=", 1)[0].removeprefix("-allow"): arg.split("=", 1)[1]
        for arg in _command(proxy)
        if re.match(r"-allow[A-Z]+=", arg)
    }
    assert set(allow) == {"GET", "HEAD"}
    assert _flags(proxy, "allowfrom") == ["gateway,traefik"]

    def allowed(method: str, path: str) -> bool:
        # socket-proxy anchors the pattern; this Go regexp is also Python's.
        return re.fullmatch(allow[method], path) is not None

    for path in [
        "/_ping",
        "/v1.47/_ping",
        "/version",
        "/v1.43/version",
        "/v1.47/containers/json",
        "/v1.47/containers/3f4e8a9c1b2d/json",
        "/containers/agent-gateway-claude-1/json",
        "/v1.47/containers/3f4e8a9c1b2d/logs",
        "/v1.47/events",
    ]:
        assert allowed("GET", path), path
    for path in [
        "/v1.47/containers/3f4e8a9c1b2d/exec",
        "/v1.47/containers/3f4e8a9c1b2d/attach",
        "/v1.47/containers/3f4e8a9c1b2d/archive",
        "/v1.47/containers/3f4e8a9c1b2d/export",
        "/v1.47/containers/create",
        "/v1.47/containers/a/../../images/json",
        "/v1.47/images/json",
        "/v1.47/info",
        "/v1.47/secrets",
        "/v1.47/volumes",
        "/v1.47/networks",
        "/v1.47/system/df",
        "/v1.47/exec/123/json",
    ]:
        assert not allowed("GET", path), path
    assert allowed("HEAD", "/_ping")
    assert not allowed("HEAD", "/v1.47/containers/json")


def test_gateway_toml_agrees_with_the_compose_file(compose: ComposeConfig) -> None:
    toml = tomllib.loads(GATEWAY_TOML.read_text())
    gateway = compose.services["gateway"]
    traefik = compose.services["traefik"]
    # Through the socket proxy, on the port it listens on.
    (port,) = _flags(compose.services["socket-proxy"], "proxyport")
    assert toml["docker"]["url"] == f"tcp://socket-proxy:{port}"
    assert toml["docker"]["label_prefix"] == "gateway"
    # The config file and the state volume are where the config says.
    targets = {m.target: m for m in _mounts(gateway)}
    assert targets["/etc/gateway/config.toml"].read_only
    assert targets["/etc/gateway/config.toml"].source.endswith("deploy/gateway.toml")
    assert targets[toml["server"]["state_dir"]].source in compose.data["volumes"]
    # The ttyd credential is a secret the gateway has.
    secrets = {s if isinstance(s, str) else s["source"] for s in gateway.get("secrets", [])}
    assert toml["docker"]["credential_file"] == "/run/secrets/ttyd_credential"
    assert "ttyd_credential" in secrets
    # Traefik forwards to the port the gateway listens on.
    listen_port = toml["server"]["listen"].rsplit(":", 1)[1]
    assert _labels(gateway)["traefik.http.services.gateway.loadbalancer.server.port"] == (
        listen_port
    )
    # X-Forwarded-For is believed from Traefik's fixed address, which dynamic
    # addresses on the edge network cannot take.
    (pool,) = compose.data["networks"]["edge"]["ipam"]["config"]
    address = ipaddress.ip_address(traefik["networks"]["edge"]["ipv4_address"])
    assert toml["server"]["trusted_proxies"] == [str(address)]
    assert address in ipaddress.ip_network(pool["subnet"])
    assert address not in ipaddress.ip_network(pool["ip_range"])
    # The origin browsers send is the host Traefik routes.
    host = _env_example()["GATEWAY_HOST"]
    assert toml["server"]["public_origin"] == f"https://{host}"
    assert f"Host(`{host}`)" in _labels(gateway)["traefik.http.routers.gateway.rule"]


# --- the gateway's config ---------------------------------------------------------


def test_gateway_toml_loads_with_the_gateways_loader() -> None:
    settings = config.load(GATEWAY_TOML)
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert settings.public_origin.startswith("https://")
    assert settings.docker is not None
    assert settings.docker.url == "tcp://socket-proxy:2375"
    assert settings.docker.agent_label == "gateway.agent"
    assert [user.role.value for user in settings.users] == ["admin"]


# --- the agent entrypoint, for real ------------------------------------------------


@dataclass
class Entrypoint:
    folder: Path
    env: dict[str, str]

    @property
    def socket(self) -> Path:
        return self.folder / "tty" / "ttyd.sock"

    def run(self, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ENTRYPOINT)],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout(10),
        )

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", *args], env=self.env, capture_output=True, text=True, timeout=timeout(10)
        )


@pytest.fixture
def entrypoint(workdir: Path, ttyd_binary: Path) -> Iterator[Entrypoint]:
    (workdir / "tty").mkdir(mode=0o770)
    (workdir / "tmux").mkdir(mode=0o700)
    env = {
        "PATH": f"{ttyd_binary.parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "TMUX_TMPDIR": str(workdir / "tmux"),
        "TTYD_SOCKET": str(workdir / "tty" / "ttyd.sock"),
    }
    runner = Entrypoint(workdir, env)
    yield runner
    runner.tmux("kill-server")


@contextlib.asynccontextmanager
async def serving(runner: Entrypoint, **env: str) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        str(ENTRYPOINT),
        env={**runner.env, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await eventually(
            lambda: runner.socket.is_socket() or proc.returncode is not None,
            message="ttyd's socket",
        )
        if proc.returncode is not None:
            assert proc.stderr is not None
            pytest.fail(f"entrypoint exited: {(await proc.stderr.read()).decode()}")
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), timeout(10))


class Sink:
    def __init__(self) -> None:
        self.output = bytearray()

    async def upstream_output(self, message: bytes) -> None:
        assert message[:1] == b"0"  # a whole ttyd output message
        self.output += message[1:]

    def upstream_state(self, state: AgentState, retry_in: float | None, message: str) -> None:
        pass

    def upstream_resized(self, columns: int, rows: int) -> None:
        raise AssertionError("ttyd's upstream never reports a size")


async def _token_status(socket: Path, credential: str | None = None) -> int:
    headers = {}
    if credential is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(credential.encode()).decode()
    connector = aiohttp.UnixConnector(path=str(socket))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get("http://localhost/token", headers=headers) as response,
    ):
        return response.status


async def test_entrypoint_serves_the_agent_session_on_a_private_socket(
    entrypoint: Entrypoint,
) -> None:
    folder = entrypoint.folder
    (folder / "anthropic_api_key").write_text("sk-test-key\n")
    (folder / "ttyd_credential").write_text("gateway:s3cret\n")
    environment = folder / "agent.env"
    command = f"env > {environment}; exec env PS1='$ ' bash --noprofile --norc -i"
    async with serving(
        entrypoint,
        AGENT_COMMAND=command,
        ANTHROPIC_API_KEY_FILE=str(folder / "anthropic_api_key"),
        TTYD_CREDENTIAL_FILE=str(folder / "ttyd_credential"),
    ):
        # Owner and group only (the gateway is in the group), never others.
        assert stat.S_IMODE(entrypoint.socket.stat().st_mode) & 0o007 == 0
        assert await _token_status(entrypoint.socket) == 401
        assert await _token_status(entrypoint.socket, "gateway:s3cret") == 200

        # The tmux session runs the agent with its key; no *_FILE is left behind.
        assert entrypoint.tmux("has-session", "-t", "=agent").returncode == 0
        await eventually(lambda: environment.exists(), message="the agent's environment")
        env = dict(
            line.split("=", 1) for line in environment.read_text().splitlines() if "=" in line
        )
        assert env["ANTHROPIC_API_KEY"] == "sk-test-key"
        assert not [name for name in env if name.endswith("_FILE")]

        # The gateway's own upstream client types into the session.
        sink = Sink()
        target = Target(f"unix:{entrypoint.socket}", "gateway:s3cret")
        upstream = Upstream(target, sink, lambda: (80, 24), backoff=Backoff(base=0.05, cap=0.2))
        task = asyncio.create_task(upstream.run())
        try:
            await eventually(lambda: upstream.state is AgentState.CONNECTED, message="connect")
            await eventually(lambda: b"$" in sink.output, message="the prompt")
            await upstream.send(ttyd.Input(b"echo up$((40+2))deploy\r"))
            await eventually(lambda: b"up42deploy" in sink.output, message="echo output")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TTYD_SOCKET": "/tmp/ttyd"}, "must be an absolute path ending in .sock"),
        ({"TTYD_CREDENTIAL_FILE": "{folder}/bad"}, "must hold user:password"),
        ({"ANTHROPIC_API_KEY_FILE": "{folder}/missing"}, "cannot read"),
        ({"TTYD_SOCKET": "{folder}/nowhere/ttyd.sock"}, "must be a folder"),
    ],
)
def test_entrypoint_refuses_a_bad_setup(
    entrypoint: Entrypoint, env: dict[str, str], message: str
) -> None:
    (entrypoint.folder / "bad").write_text("no-colon\n")
    result = entrypoint.run(
        **{key: value.format(folder=entrypoint.folder) for key, value in env.items()}
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert entrypoint.tmux("has-session", "-t", "=agent").returncode != 0


def test_entrypoint_is_executable_bash() -> None:
    assert os.access(ENTRYPOINT, os.X_OK)
    assert ENTRYPOINT.read_text().startswith("#!/bin/bash\n")
    subprocess.run(["bash", "-n", str(ENTRYPOINT)], check=True)
