"""Settings, loaded once at start from a TOML file and validated strictly.

Every problem is a :class:`~gateway.errors.ConfigError` with a one-line
message naming the key; unknown keys are errors, not silently ignored. Paths
are relative to the config file's folder. Secrets are :class:`Secret`, whose
repr never shows the value.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .awareness.profile import PROFILES
from .core import ttyd
from .core.target import Target
from .errors import ConfigError
from .limits import DEFAULT_VIEWER_QUEUE_BYTES
from .origins import HostPolicy, OriginPolicy, normalize_origin
from .proxies import ProxyPolicy, parse_networks
from .screen.base import BACKENDS, DEFAULT_SCROLLBACK, MAX_SCROLLBACK
from .users import ABSOLUTE_TIMEOUT, IDLE_TIMEOUT, Role, User

# A viewer queue must hold a few output frames, and must not hold a flood.
MIN_VIEWER_QUEUE_BYTES, MAX_VIEWER_QUEUE_BYTES = 4096, 64 * 1024 * 1024

AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class Secret:
    """A string that does not show itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """A statically configured agent."""

    id: str
    url: str
    credential: Secret | None = None
    columns: int = 120
    rows: int = 40
    # Which CLI runs there (gateway/awareness/profiles), or "auto": detected.
    profile: str = "auto"

    def target(self) -> Target:
        return Target(self.url, self.credential.reveal() if self.credential else None)


DEFAULT_LOG_LINES = 10_000
MAX_LOG_LINES = 1_000_000
LABEL_PREFIX = re.compile(r"[a-z0-9]+([._-][a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class DockerSettings:
    """``[docker]``: find agents among the containers of a Docker Engine."""

    # unix:///path, tcp://host:port, ...; None means $DOCKER_HOST or the local socket.
    url: str | None = None
    # Containers labelled <prefix>.agent=<id> are agents; see gateway/docker/planner.py.
    label_prefix: str = "gateway"
    # Reach ttyd at the container's address on this network...
    network: str | None = None
    # ... on this port (also the container port looked up among published ones).
    port: int = 7681
    # "user:password" for ttyd -c, for containers without a credential label; read at
    # each listing, not here (gateway.docker.discovery.read_credential), so it can be rotated.
    credential_file: Path | None = None
    # Container log lines kept per agent for SSE resume.
    log_lines: int = DEFAULT_LOG_LINES

    @property
    def agent_label(self) -> str:
        return f"{self.label_prefix}.agent"


DEFAULT_LEASE_MS = 2000
MIN_LEASE_MS, MAX_LEASE_MS = 500, 60_000
KEY_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """``[redis]``: replica mode, several gateways made one by a Redis server."""

    # redis://host:port/db, rediss://... (TLS) or unix:///path/to/socket.
    url: str
    # The password (AUTH), read when connecting (gateway.replica.client), never here.
    password_file: Path | None = None
    # Every key this gateway writes starts with it: several fleets can share one Redis.
    key_prefix: str = "gateway:"
    # How long an agent stays with a replica that stopped renewing its lease.
    lease_ms: int = DEFAULT_LEASE_MS


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway reads from its config, validated."""

    host: str = "127.0.0.1"
    port: int = 8080
    public_origin: str = "http://127.0.0.1:8080"
    # Other exact origins browsers may use (e.g. http://localhost:8080).
    extra_origins: tuple[str, ...] = ()
    # Reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: tuple[str, ...] = ()
    state_dir: Path = Path("state")
    audit_log: Path = Path("state/audit.jsonl")
    agents: tuple[AgentSettings, ...] = ()
    users: tuple[User, ...] = ()
    # Docker discovery, when the config has a [docker] table.
    docker: DockerSettings | None = None
    # Replica mode, when the config has a [redis] table.
    redis: RedisSettings | None = None
    # Session lifetimes in seconds: since the last request, and in all.
    session_idle_seconds: int = IDLE_TIMEOUT
    session_max_seconds: int = ABSOLUTE_TIMEOUT
    # How far one viewer may fall behind before it is resynced by snapshot.
    viewer_queue_bytes: int = DEFAULT_VIEWER_QUEUE_BYTES
    # The terminal emulator behind snapshots: auto (ghostty where it loads), ghostty, pyte.
    screen: str = "auto"
    # Lines of history each agent's screen keeps and sends to joining viewers.
    scrollback: int = DEFAULT_SCROLLBACK
    # Spawn the two local demo agents (``gateway serve --demo``).
    demo: bool = False
    # The file these settings came from: SIGHUP reloads its [[users]].
    config_path: Path | None = None
    # The demo's one-time login link token (set by the command line).
    demo_login_token: Secret | None = None
    static_dir: Path = field(
        default_factory=lambda: Path(__file__).resolve().parent.parent / "static"
    )

    def proxy_policy(self) -> ProxyPolicy:
        return ProxyPolicy(parse_networks(self.trusted_proxies, "server.trusted_proxies"))

    def origin_policy(self) -> OriginPolicy:
        return OriginPolicy.of(self.public_origin, *self.extra_origins)

    def host_policy(self) -> HostPolicy:
        return HostPolicy.of(self.public_origin, *self.extra_origins)

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"server.listen must be 'host:port', got {value!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ConfigError(f"server.listen port {port} is out of range")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(value: str, key: str) -> str:
    try:
        return normalize_origin(value)
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _take(table: Mapping[str, Any], where: str, spec: Mapping[str, type]) -> dict[str, Any]:
    """Check a table's keys and value types against ``spec``."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in spec:
            known = ", ".join(sorted(spec))
            raise ConfigError(f"unknown key {where}.{key} (known: {known})")
        expected = spec[key]
        if (expected is int and isinstance(value, bool)) or not isinstance(value, expected):
            raise ConfigError(f"{where}.{key} must be {expected.__name__}")
        out[key] = value
    return out


def _require(values: Mapping[str, Any], where: str, *keys: str) -> None:
    for key in keys:
        if key not in values:
            raise ConfigError(f"{where}.{key} is required")


def _agent(raw: Any, index: int) -> AgentSettings:
    where = f"agents[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    values = _take(
        raw,
        where,
        {"id": str, "url": str, "credential": str, "columns": int, "rows": int, "profile": str},
    )
    _require(values, where, "id", "url")
    agent_id = values["id"]
    if not AGENT_ID.fullmatch(agent_id):
        raise ConfigError(
            f"{where}.id {agent_id!r} must be 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    columns, rows = ttyd.clamp_size(values.get("columns", 120), values.get("rows", 40))
    credential = Secret(values["credential"]) if "credential" in values else None
    profile = values.get("profile", "auto")
    if profile not in PROFILES:
        raise ConfigError(f"{where}.profile must be one of {', '.join(PROFILES)}, not {profile!r}")
    agent = AgentSettings(agent_id, values["url"], credential, columns, rows, profile)
    try:
        agent.target()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return agent


def _user(raw: Any, index: int) -> User:
    where = f"users[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    values = _take(
        raw,
        where,
        {"name": str, "password_hash": str, "role": str, "agents": list, "api_token_sha256": str},
    )
    _require(values, where, "name", "password_hash", "role")
    if not USER_NAME.fullmatch(values["name"]):
        raise ConfigError(f"{where}.name must be 1-64 letters, digits, '.', '_', '@' or '-'")
    if not values["password_hash"].startswith("$argon2id$"):
        raise ConfigError(f"{where}.password_hash must be an argon2id hash (gateway hash-password)")
    try:
        role = Role(values["role"])
    except ValueError:
        raise ConfigError(f"{where}.role must be one of admin, operator, viewer") from None
    patterns = values.get("agents", ["*"])
    if not all(isinstance(p, str) and p for p in patterns):
        raise ConfigError(f"{where}.agents must be a list of glob patterns")
    token = values.get("api_token_sha256")
    if token is not None and not re.fullmatch(r"[0-9a-f]{64}", token):
        raise ConfigError(f"{where}.api_token_sha256 must be 64 hex digits (gateway new-api-token)")
    return User(values["name"], values["password_hash"], role, tuple(patterns), token)


def _docker(raw: Mapping[str, Any], base: Path) -> DockerSettings:
    values = _take(
        raw,
        "docker",
        {
            "url": str,
            "label_prefix": str,
            "network": str,
            "port": int,
            "credential_file": str,
            "log_lines": int,
        },
    )
    url = values.get("url")
    if url is not None and not re.match(r"(unix|tcp|ssh|npipe|http|https)://", url):
        raise ConfigError(f"docker.url must look like unix:///path or tcp://host:port, got {url!r}")
    prefix = values.get("label_prefix", "gateway")
    if not LABEL_PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"docker.label_prefix {prefix!r} must be lower-case letters and digits "
            "separated by '.', '_' or '-'"
        )
    port = values.get("port", 7681)
    if not 1 <= port <= 65535:
        raise ConfigError(f"docker.port {port} is out of range")
    lines = values.get("log_lines", DEFAULT_LOG_LINES)
    if not 1 <= lines <= MAX_LOG_LINES:
        raise ConfigError(f"docker.log_lines must be 1..{MAX_LOG_LINES}")
    credential_file = values.get("credential_file")
    return DockerSettings(
        url=url,
        label_prefix=prefix,
        network=values.get("network"),
        port=port,
        credential_file=None if credential_file is None else base / credential_file,
        log_lines=lines,
    )


def _redis(raw: Mapping[str, Any], base: Path) -> RedisSettings:
    values = _take(
        raw,
        "redis",
        {"url": str, "password_file": str, "key_prefix": str, "lease_ms": int},
    )
    _require(values, "redis", "url")
    url = values["url"]
    scheme, _, rest = url.partition("://")
    if scheme not in ("redis", "rediss", "unix") or not rest.strip("/"):
        raise ConfigError(
            "redis.url must look like redis://host:6379/0, rediss://host:6379/0 "
            "or unix:///path/to/redis.sock"
        )
    userinfo, at, _ = rest.partition("/")[0].rpartition("@")
    if at and ":" in userinfo:
        # The URL shows up in logs and errors; a password in it would too.
        raise ConfigError("redis.url must not hold a password: put it in redis.password_file")
    prefix = values.get("key_prefix", "gateway:")
    if not KEY_PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"redis.key_prefix {prefix!r} must be 1-64 letters, digits or '_.:-' "
            "(braces are the gateway's own hash tags)"
        )
    lease = values.get("lease_ms", DEFAULT_LEASE_MS)
    if not MIN_LEASE_MS <= lease <= MAX_LEASE_MS:
        raise ConfigError(f"redis.lease_ms must be {MIN_LEASE_MS}..{MAX_LEASE_MS}")
    password_file = values.get("password_file")
    return RedisSettings(
        url=url,
        password_file=None if password_file is None else base / password_file,
        key_prefix=prefix,
        lease_ms=lease,
    )


def from_mapping(data: Mapping[str, Any], base: Path, *, demo: bool = False) -> Settings:
    """Build settings from parsed TOML; relative paths resolve against ``base``."""
    top = _take(
        data,
        "config",
        {"server": dict, "agents": list, "users": list, "docker": dict, "redis": dict},
    )
    server = _take(
        top.get("server", {}),
        "server",
        {
            "listen": str,
            "public_origin": str,
            "extra_origins": list,
            "trusted_proxies": list,
            "session_idle_seconds": int,
            "session_max_seconds": int,
            "state_dir": str,
            "audit_log": str,
            "viewer_queue_bytes": int,
            "screen": str,
            "scrollback": int,
        },
    )
    queue = server.get("viewer_queue_bytes", DEFAULT_VIEWER_QUEUE_BYTES)
    if not MIN_VIEWER_QUEUE_BYTES <= queue <= MAX_VIEWER_QUEUE_BYTES:
        raise ConfigError(
            f"server.viewer_queue_bytes must be {MIN_VIEWER_QUEUE_BYTES}..{MAX_VIEWER_QUEUE_BYTES}"
        )
    screen = server.get("screen", "auto")
    if screen not in BACKENDS:
        raise ConfigError(f"server.screen must be one of {', '.join(BACKENDS)}, got {screen!r}")
    scrollback = server.get("scrollback", DEFAULT_SCROLLBACK)
    if not 0 <= scrollback <= MAX_SCROLLBACK:
        raise ConfigError(f"server.scrollback must be 0..{MAX_SCROLLBACK} lines, got {scrollback}")
    host, port = parse_listen(server.get("listen", "127.0.0.1:8080"))
    default_origin = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    origin = _origin(server.get("public_origin", default_origin), "server.public_origin")
    extra = server.get("extra_origins", [])
    if not all(isinstance(item, str) for item in extra):
        raise ConfigError("server.extra_origins must be a list of strings")
    extra_origins = tuple(_origin(item, "server.extra_origins") for item in extra)
    idle = server.get("session_idle_seconds", IDLE_TIMEOUT)
    lifetime = server.get("session_max_seconds", ABSOLUTE_TIMEOUT)
    if not 1 <= idle <= lifetime <= 30 * 24 * 3600:
        raise ConfigError(
            "server.session_idle_seconds and session_max_seconds must satisfy "
            "1 <= idle <= max <= 2592000"
        )
    proxies = server.get("trusted_proxies", [])
    if not all(isinstance(item, str) for item in proxies):
        raise ConfigError("server.trusted_proxies must be a list of strings")
    parse_networks(proxies, "server.trusted_proxies")
    state_dir = base / server.get("state_dir", "state")
    audit_log = base / server["audit_log"] if "audit_log" in server else state_dir / "audit.jsonl"
    agents = tuple(_agent(raw, i) for i, raw in enumerate(top.get("agents", [])))
    seen: set[str] = set()
    for agent in agents:
        if agent.id in seen:
            raise ConfigError(f"agent id {agent.id!r} is configured twice")
        seen.add(agent.id)
    users = tuple(_user(raw, i) for i, raw in enumerate(top.get("users", [])))
    if len({user.name for user in users}) != len(users):
        raise ConfigError("a user name is configured twice")
    settings = Settings(
        host=host,
        port=port,
        public_origin=origin,
        extra_origins=extra_origins,
        trusted_proxies=tuple(proxies),
        session_idle_seconds=idle,
        session_max_seconds=lifetime,
        state_dir=state_dir,
        audit_log=audit_log,
        agents=agents,
        users=users,
        docker=_docker(top["docker"], base) if "docker" in top else None,
        redis=_redis(top["redis"], base) if "redis" in top else None,
        viewer_queue_bytes=queue,
        screen=screen,
        scrollback=scrollback,
        demo=demo,
    )
    check_exposure(settings)
    if settings.redis is not None and demo:
        raise ConfigError(
            "--demo runs its agents inside this one process; replicas ([redis]) need "
            "agents every replica reaches ([[agents]] or [docker])"
        )
    return settings


def check_exposure(settings: Settings) -> None:
    """Refuse to listen beyond loopback while nobody has to log in.

    Without ``[[users]]`` anyone who reaches the port gets a shell in every
    agent, so the only safe audience is this machine. The demo stays local
    too: it spawns shells on this machine for whoever opens its link.
    """
    if is_loopback(settings.host):
        return
    if settings.demo:
        raise ConfigError(f"--demo only listens on loopback, not {settings.listen}")
    if not settings.users:
        raise ConfigError(
            f"server.listen {settings.listen}: without [[users]] the gateway has no login, "
            "so it only listens on loopback (127.0.0.1, ::1 or localhost)"
        )


def load(path: Path, *, demo: bool = False) -> Settings:
    """Read and validate a TOML config file."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        settings = from_mapping(data, path.resolve().parent, demo=demo)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return dataclasses.replace(settings, config_path=path.resolve())
