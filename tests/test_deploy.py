"""The Docker deployment in deploy/.

The compose files are checked as Compose itself reads them: Debian's
``docker-compose config`` (1.29) validates and normalises the single-gateway
deployment (docker-compose.yml) and replica mode (with
docker-compose.replicas.yml over it), and the tests assert the properties the
deployment's security rests on. The gateway's configs are loaded by the
gateway's own loader; the agent image's entrypoint is run for real (tmux +
ttyd on a unix socket, the gateway's upstream client in front), and so is the
redis service's (Debian's redis-server on deploy/redis.conf, the gateway's
Redis client in front).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from gateway import config
from gateway.core import ttyd
from gateway.core.backoff import Backoff
from gateway.core.state import AgentState
from gateway.core.target import Target
from gateway.core.upstream import Upstream
from gateway.replica.client import RedisLink

from .conftest import eventually, timeout
from .redisserver import free_port
from .redisserver import unavailable_reason as redis_unavailable

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
REPLICAS_FILE = DEPLOY / "docker-compose.replicas.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
GATEWAY_TOML = DEPLOY / "gateway.toml"
REPLICAS_TOML = DEPLOY / "gateway.replicas.toml"
REDIS_CONF = DEPLOY / "redis.conf"
REDIS_ENTRYPOINT = DEPLOY / "redis-entrypoint.sh"
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


def _compose_config(*files: Path) -> ComposeConfig:
    binary = _compose_binary()
    # Only PATH: variables from the caller's shell would override .env.example.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    args = [binary]
    for file in files:
        args += ["-f", str(file)]
    args += ["--env-file", str(ENV_EXAMPLE), "config"]
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


@pytest.fixture(scope="module")
def compose() -> ComposeConfig:
    """The single-gateway deployment: docker-compose.yml alone."""
    return _compose_config(COMPOSE_FILE)


@pytest.fixture(scope="module")
def replicas() -> ComposeConfig:
    """Replica mode: docker-compose.replicas.yml over docker-compose.yml."""
    return _compose_config(COMPOSE_FILE, REPLICAS_FILE)


@pytest.fixture(scope="module", params=["single", "replicas"])
def deployment(request: pytest.FixtureRequest) -> ComposeConfig:
    """Each deployment in turn, for what must hold in both."""
    if request.param == "single":
        return _compose_config(COMPOSE_FILE)
    return _compose_config(COMPOSE_FILE, REPLICAS_FILE)


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


def test_compose_config_is_valid_with_the_example_env(deployment: ComposeConfig) -> None:
    assert deployment.returncode == 0, deployment.stderr
    # Every variable the compose files use has a value or a default.
    assert "is not set" not in deployment.stderr, deployment.stderr
    # The Compose Specification: no version key.
    for file in (COMPOSE_FILE, REPLICAS_FILE):
        assert not re.search(r"(?m)^version\s*:", file.read_text()), file


def test_only_traefik_publishes_ports(deployment: ComposeConfig) -> None:
    published = {name: _published_ports(s) for name, s in deployment.services.items()}
    assert published.pop("traefik") == {80, 443}
    assert all(not ports for ports in published.values()), published
    assert all("network_mode" not in s for s in deployment.services.values())


def test_gateway_runs_unprivileged(deployment: ComposeConfig) -> None:
    gateway = deployment.services["gateway"]
    user = str(gateway.get("user", ""))
    assert user.split(":")[0] not in {"", "0", "root"}, user
    assert "ALL" in gateway.get("cap_drop", [])
    assert not gateway.get("cap_add")
    assert gateway.get("read_only") is True
    assert _no_new_privileges(gateway)
    assert not gateway.get("privileged")
    assert "/tmp" in [str(t).split(":")[0] for t in gateway.get("tmpfs") or []]


def test_only_the_socket_proxy_mounts_the_docker_socket_read_only(
    deployment: ComposeConfig,
) -> None:
    holders = {
        name: [m for m in _mounts(s) if "docker.sock" in m.source + m.target]
        for name, s in deployment.services.items()
    }
    holders = {name: mounts for name, mounts in holders.items() if mounts}
    assert set(holders) == {"socket-proxy"}
    assert all(m.read_only for m in holders["socket-proxy"])
    assert not any(s.get("privileged") for s in deployment.services.values())


def test_agents_are_labelled_with_a_unix_socket(deployment: ComposeConfig) -> None:
    agents = _agents(deployment)
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
    deployment: ComposeConfig,
) -> None:
    gateway_mounts = {m.source: m for m in _mounts(deployment.services["gateway"])}
    for name, service in _agents(deployment).items():
        sockets = [m for m in _mounts(service) if m.target == AGENT_SOCKET_DIR]
        assert len(sockets) == 1, f"{name} mounts no volume on {AGENT_SOCKET_DIR}"
        volume = sockets[0].source
        assert volume in deployment.data["volumes"], f"{name}: {volume} is not a named volume"
        # The gateway sees the agent's socket where the agent's label says.
        in_gateway = gateway_mounts.get(volume)
        assert in_gateway is not None, f"the gateway does not mount {volume}"
        url = _labels(service)["gateway.ttyd.url"]
        assert url == f"unix:{in_gateway.target}/ttyd.sock"
        assert in_gateway.read_only
        others = [
            other
            for other, s in deployment.services.items()
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


def test_socket_proxy_forwards_only_the_read_endpoints(deployment: ComposeConfig) -> None:
    proxy = deployment.services["socket-proxy"]
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


# --- replica mode: docker-compose.replicas.yml over docker-compose.yml ---------------

# The secret the redis service and every gateway replica read.
REDIS_SECRET = "redis_password"


def _secrets(service: dict[str, Any]) -> dict[str, str]:
    """Each secret a service has, by name, and where it is mounted."""
    mounted = {}
    for secret in service.get("secrets") or []:
        source = secret if isinstance(secret, str) else secret["source"]
        target = source if isinstance(secret, str) else secret.get("target") or source
        mounted[source] = target if target.startswith("/") else f"/run/secrets/{target}"
    return mounted


def _redis_conf() -> dict[str, str]:
    """deploy/redis.conf as directive -> arguments (the last one wins, as in Redis)."""
    directives = {}
    for line in REDIS_CONF.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.strip().partition(" ")
            directives[name.lower()] = value.strip()
    return directives


def _entrypoint_default(variable: str) -> str:
    """A path redis-entrypoint.sh uses unless the environment says otherwise."""
    match = re.search(rf"\$\{{{variable}:-([^}}]+)\}}", REDIS_ENTRYPOINT.read_text())
    assert match, f"redis-entrypoint.sh has no default for {variable}"
    return match.group(1)


def _healthcheck_command(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    test = test.split(maxsplit=1) if isinstance(test, str) else list(test)
    assert test[0] == "CMD-SHELL", test
    # Compose keeps $$ (an escaped $) in its normalised output; the shell gets $.
    return str(test[1]).replace("$$", "$")


def test_the_single_gateway_deployment_has_no_redis(compose: ComposeConfig) -> None:
    # docker-compose.yml alone stays the one-process gateway of gateway.toml.
    assert "redis" not in compose.services
    assert "redis" not in compose.data.get("networks", {})
    assert REDIS_SECRET not in compose.data.get("secrets", {})
    assert "redis" not in tomllib.loads(GATEWAY_TOML.read_text())


def test_redis_publishes_no_port_and_is_only_on_an_internal_network(
    replicas: ComposeConfig,
) -> None:
    redis = replicas.services["redis"]
    assert not redis.get("ports")
    assert "network_mode" not in redis
    assert _networks(redis) == {"redis"}
    assert replicas.data["networks"]["redis"].get("internal") is True
    members = {name for name, s in replicas.services.items() if "redis" in _networks(s)}
    assert members == {"redis", "gateway"}


def test_replica_networks_add_only_redis_to_the_gateway(replicas: ComposeConfig) -> None:
    assert _networks(replicas.services["gateway"]) == {"edge", "docker-api", "redis"}
    assert _networks(replicas.services["traefik"]) == {"public", "edge", "docker-api"}
    for name in AGENTS:
        assert _networks(replicas.services[name]) == {"egress"}, name


def test_redis_runs_unprivileged_from_a_pinned_image(replicas: ComposeConfig) -> None:
    redis = replicas.services["redis"]
    image = str(redis["image"])
    match = re.fullmatch(r"redis:(\d+)\.(\d+)(?:\.\d+)?(?:-[a-z0-9]+)?", image)
    assert match, f"{image}: the official image, pinned to a version"
    # Replica mode needs Redis 6.2 or later (MINID trimming).
    assert (int(match[1]), int(match[2])) >= (6, 2), image
    user = str(redis.get("user", ""))
    assert user.split(":")[0] not in {"", "0", "root"}, user
    assert "ALL" in redis.get("cap_drop", [])
    assert not redis.get("cap_add")
    assert redis.get("read_only") is True
    assert _no_new_privileges(redis)
    assert not redis.get("privileged")


def test_redis_persists_and_never_evicts(replicas: ComposeConfig) -> None:
    conf = _redis_conf()
    assert conf["appendonly"] == "yes"
    assert conf["appendfsync"] in {"everysec", "always"}
    assert conf["maxmemory-policy"] == "noeviction"
    # With a limit, a full Redis refuses writes instead of being OOM-killed.
    assert conf["maxmemory"] not in {"", "0"}
    # Its files go to the working directory, a named volume.
    redis = replicas.services["redis"]
    assert "dir" not in conf
    mounts = {m.target: m for m in _mounts(redis)}
    data = mounts[str(redis["working_dir"])]
    assert data.source in replicas.data["volumes"]
    assert not data.read_only
    # The entrypoint starts redis-server on this file, mounted read-only.
    config_mount = mounts[_entrypoint_default("REDIS_CONF")]
    assert config_mount.read_only
    assert config_mount.source.endswith("deploy/redis.conf")
    script = mounts[_command(redis)[-1]]
    assert _command(redis)[0] == "sh"
    assert script.source.endswith("deploy/redis-entrypoint.sh")
    assert script.read_only


def test_the_redis_password_comes_from_a_secret_file(replicas: ComposeConfig) -> None:
    redis = replicas.services["redis"]
    secret_file = replicas.data["secrets"][REDIS_SECRET]["file"]
    assert secret_file.endswith("deploy/secrets/redis_password")
    # deploy/secrets/ is never committed.
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(DEPLOY / "secrets" / "redis_password")], cwd=REPO
    )
    assert ignored.returncode == 0, "deploy/secrets/redis_password would be committed"
    # Redis reads it where the compose file mounts it; no password anywhere else.
    assert _secrets(redis)[REDIS_SECRET] == _entrypoint_default("REDIS_PASSWORD_FILE")
    assert not redis.get("environment")
    assert "requirepass" not in _redis_conf()
    assert not [arg for arg in _command(redis) if "pass" in arg.lower()]
    # The health check authenticates with the same file.
    assert f"/run/secrets/{REDIS_SECRET}" in _healthcheck_command(redis)


def test_the_gateway_scales(replicas: ComposeConfig) -> None:
    gateway = replicas.services["gateway"]
    # Names, host ports, addresses and host names that would collide.
    assert "container_name" not in gateway
    assert not gateway.get("ports")
    assert "hostname" not in gateway
    for network, settings in (gateway.get("networks") or {}).items():
        assert not (settings or {}).get("ipv4_address"), network
    assert int(gateway.get("scale", 1)) >= 2
    # Each replica has its own state volume (anonymous), not one shared file set.
    state_dir = str(config.load(REPLICAS_TOML).state_dir)
    (state,) = [m for m in _mounts(gateway) if m.target == state_dir]
    assert state.source == "", f"{state.source} would be shared by every replica"
    # Every replica reaches Redis with the password and keeps the ttyd credential.
    assert set(_secrets(gateway)) >= {REDIS_SECRET, "ttyd_credential"}
    # One config at the config's path: the replica one, read-only.
    configs = [m for m in _mounts(gateway) if m.target == "/etc/gateway/config.toml"]
    assert [(m.source.rsplit("/", 1)[-1], m.read_only) for m in configs] == [
        ("gateway.replicas.toml", True)
    ]
    # Redis is up before the replicas start.
    depends = gateway["depends_on"]
    assert isinstance(depends, dict)
    assert depends["redis"]["condition"] == "service_healthy"


def test_traefik_balances_the_replicas_without_sticky_sessions(
    replicas: ComposeConfig,
) -> None:
    labels = {
        name: _labels(service)
        for name, service in replicas.services.items()
        if _labels(service).get("traefik.enable") == "true"
    }
    assert set(labels) == {"gateway"}
    gateway = labels["gateway"]
    assert not [key for key in gateway if "sticky" in key.lower()]
    assert not [arg for arg in _command(replicas.services["traefik"]) if "sticky" in arg]
    # To the port each replica listens on, probed on /readyz.
    settings = config.load(REPLICAS_TOML)
    service = "traefik.http.services.gateway.loadbalancer"
    assert gateway[f"{service}.server.port"] == str(settings.port)
    assert settings.host == "0.0.0.0"
    assert gateway[f"{service}.healthcheck.path"] == "/readyz"
    # With the public host name: any other Host is answered 421, every replica
    # would look down.
    host = _env_example()["GATEWAY_HOST"]
    assert gateway[f"{service}.healthcheck.hostname"] == host
    assert settings.public_origin == f"https://{host}"
    # A draining replica leaves the rotation within seconds.
    interval = re.fullmatch(r"(\d+)(ms|s)", gateway[f"{service}.healthcheck.interval"])
    assert interval, gateway[f"{service}.healthcheck.interval"]
    assert int(interval[1]) / (1000 if interval[2] == "ms" else 1) <= 5


def test_the_replica_config_loads_with_a_redis_table(replicas: ComposeConfig) -> None:
    settings = config.load(REPLICAS_TOML)
    assert settings.redis is not None
    # The redis service, on the port its config names.
    assert settings.redis.url == f"redis://redis:{_redis_conf()['port']}/0"
    # The password is the mounted secret.
    assert settings.redis.password_file == Path(
        _secrets(replicas.services["gateway"])[REDIS_SECRET]
    )
    assert settings.redis.key_prefix == "gateway:"
    assert settings.redis.lease_ms == config.DEFAULT_LEASE_MS


def test_the_replica_config_is_the_single_config_plus_redis() -> None:
    # Users, origins and trusted proxies cannot drift apart between the two.
    single = tomllib.loads(GATEWAY_TOML.read_text())
    replica = tomllib.loads(REPLICAS_TOML.read_text())
    assert set(replica) - set(single) == {"redis"}
    replica.pop("redis")
    assert replica == single


# --- the redis service's entrypoint, for real ----------------------------------------


@dataclass
class DeployRedis:
    port: int
    password: str
    process: subprocess.Popen[bytes]
    data: Path
    folder: Path

    def client(self, password: str | None) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=password, decode_responses=True
        )


def _start_redis_entrypoint(folder: Path, secret_text: str, port: int) -> subprocess.Popen[bytes]:
    """deploy/redis-entrypoint.sh with Debian's redis-server, data in ``folder/data``."""
    if (reason := redis_unavailable()) is not None:
        pytest.skip(reason)
    (folder / "data").mkdir(exist_ok=True)
    secret = folder / "redis_password"
    secret.write_text(secret_text)
    return subprocess.Popen(
        # Loopback and a free port here; the container listens on 6379.
        ["sh", str(REDIS_ENTRYPOINT), "--bind", "127.0.0.1", "--port", str(port)],
        cwd=folder / "data",
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "REDIS_CONF": str(REDIS_CONF),
            "REDIS_PASSWORD_FILE": str(secret),
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def deploy_redis(tmp_path: Path) -> Iterator[DeployRedis]:
    password = secrets.token_hex(32)
    port = free_port()
    # As README.md makes it: printf '%s\n' "$(openssl rand -hex 32)".
    process = _start_redis_entrypoint(tmp_path, f"{password}\n", port)
    server = DeployRedis(port, password, process, tmp_path / "data", tmp_path)
    try:
        deadline = time.monotonic() + timeout(10)
        while True:
            assert process.poll() is None, "redis-entrypoint.sh exited"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            assert time.monotonic() < deadline, "redis-server did not listen"
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        process.communicate(timeout=timeout(10))


def test_redis_entrypoint_requires_the_secret_and_keeps_it_out_of_sight(
    deploy_redis: DeployRedis,
) -> None:
    with pytest.raises(redis.AuthenticationError):
        deploy_redis.client(None).ping()
    with pytest.raises(redis.AuthenticationError):
        deploy_redis.client("0" * 64).ping()
    client = deploy_redis.client(deploy_redis.password)
    assert client.ping() is True
    # exec: the container's main process is redis-server itself (SIGTERM reaches it).
    # (Redis sets its title to "redis-server <address>".)
    title = Path(f"/proc/{deploy_redis.process.pid}/cmdline").read_bytes()
    assert title.startswith(b"redis-server "), title
    # Not in its command line nor its environment.
    for name in ("cmdline", "environ"):
        exposed = Path(f"/proc/{deploy_redis.process.pid}/{name}").read_bytes()
        assert deploy_redis.password.encode() not in exposed, name


def test_redis_runs_with_append_only_persistence_and_no_eviction(
    deploy_redis: DeployRedis,
) -> None:
    client = deploy_redis.client(deploy_redis.password)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert int(str(client.config_get("maxmemory")["maxmemory"])) > 0
    client.set(b"gateway:probe", b"1")
    # The append-only file is in the working directory (the redis-data volume).
    assert (deploy_redis.data / "appendonlydir").is_dir()
    assert Path(str(client.config_get("dir")["dir"])).resolve() == deploy_redis.data.resolve()


def test_redis_healthcheck_needs_the_right_password(
    replicas: ComposeConfig, deploy_redis: DeployRedis
) -> None:
    command = _healthcheck_command(replicas.services["redis"])
    here = command.replace("redis-cli", f"redis-cli -p {deploy_redis.port}")

    def check(secret: Path) -> int:
        script = here.replace(f"/run/secrets/{REDIS_SECRET}", str(secret))
        return subprocess.run(["sh", "-c", script], timeout=timeout(10)).returncode

    assert check(deploy_redis.folder / "redis_password") == 0
    wrong = deploy_redis.folder / "wrong"
    wrong.write_text("0" * 64 + "\n")
    # redis-cli itself exits 0 on NOAUTH/WRONGPASS: the check must not.
    assert check(wrong) != 0


async def test_the_gateways_redis_client_connects_with_the_replica_config(
    deploy_redis: DeployRedis,
) -> None:
    settings = config.load(REPLICAS_TOML).redis
    assert settings is not None
    # Only the address differs from the deployment's; the secret has the same form.
    here = dataclasses.replace(
        settings,
        url=f"redis://127.0.0.1:{deploy_redis.port}/0",
        password_file=deploy_redis.folder / "redis_password",
    )
    link = RedisLink(here, "deploy-test")
    try:
        await link.open(wait=timeout(5))
        assert link.health == "up"
    finally:
        await link.aclose()


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "must hold one line of letters and digits"),
        ("short\n", "at least 32 characters"),
        ("has space " + "0" * 32 + "\n", "must hold one line of letters and digits"),
        ("0" * 32 + "\nrequirepass other\n", "must hold one line of letters and digits"),
    ],
)
def test_redis_entrypoint_refuses_a_bad_secret(tmp_path: Path, password: str, message: str) -> None:
    process = _start_redis_entrypoint(tmp_path, password, free_port())
    output, _ = process.communicate(timeout=timeout(10))
    assert process.returncode == 1
    assert message in output.decode()


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
