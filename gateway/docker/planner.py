"""The label planner, pure: ``docker inspect`` documents in, what each agent should be out.

Containers labelled ``<prefix>.agent=<id>`` are agents. :func:`describe`
reads one container's inspect document, :func:`plan` turns all of them into
what each agent should be (connected to a target, stopped, in conflict,
unreachable), and :func:`changes` into what changed since the last plan,
which is what discovery hands to whoever owns the fleet. Nothing here talks
to Docker or needs an event loop, so all of it is tested on hand-written
documents; :mod:`gateway.docker.discovery` is the adapter that feeds it.

Where an agent's ttyd is, first match wins:

1. the label ``<prefix>.ttyd.url``: ``ws://host:port/ws`` or ``unix:/path``
   (a path the gateway can open, e.g. a shared volume);
2. the container's address on ``docker.network``, port ``<prefix>.ttyd.port``
   or ``docker.port`` (7681);
3. that port published on the host (``docker run -p``).

The credential is the label ``<prefix>.ttyd.credential`` or the first line of
``docker.credential_file``. Only running containers claim an id: two running
containers with one id are a conflict (reported, neither is connected), a
stopped one keeps its agent shown as stopped with the last screen. An id the
config file defines already belongs to the config.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import AGENT_ID, DockerSettings
from ..core.state import AgentState
from ..core.target import Target
from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class Container:
    """What one labelled container says about itself."""

    id: str
    name: str
    agent_id: str
    state: str  # created, running, paused, restarting, exited, dead
    health: str | None
    tty: bool
    target: Target | None
    # Why ``target`` is None while running ("" otherwise).
    problem: str = ""
    # When it last started or stopped (RFC 3339), to pick among stopped ones.
    changed_at: str = ""
    # The label <prefix>.profile: which CLI runs there ("auto": detected). As
    # labelled: the awareness service warns of one it does not know.
    profile: str = "auto"

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def short(self) -> str:
        return f"{self.name} ({self.id[:12]})"


@dataclass(frozen=True, slots=True)
class Desired:
    """What one Docker agent should be: connected to ``target``, or ``state``."""

    agent_id: str
    target: Target | None
    # CONNECTING with a target; otherwise why there is none.
    state: AgentState
    message: str
    container: Container | None


def describe(
    attrs: Mapping[str, Any], settings: DockerSettings, credential: str | None = None
) -> Container | None:
    """A container from its inspect document; None if it is not an agent."""
    config = attrs.get("Config") or {}
    labels: Mapping[str, str] = config.get("Labels") or {}
    agent_id = labels.get(settings.agent_label)
    if agent_id is None:
        return None
    state = attrs.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    prefix = settings.label_prefix
    credential = labels.get(f"{prefix}.ttyd.credential", credential)
    target, problem = None, ""
    try:
        target = _target(attrs, labels, settings, credential)
        if target is None:
            problem = (
                f"no ttyd address: label the container {prefix}.ttyd.url, set docker.network, "
                f"or publish port {labels.get(f'{prefix}.ttyd.port', settings.port)}"
            )
    except ConfigError as exc:
        problem = str(exc)
    status = str(state.get("Status", "unknown"))
    return Container(
        id=str(attrs.get("Id", "")),
        name=str(attrs.get("Name", "")).lstrip("/"),
        agent_id=agent_id,
        state=status,
        health=health,
        tty=bool(config.get("Tty")),
        target=target,
        problem=problem,
        changed_at=str(
            state.get("StartedAt" if status == "running" else "FinishedAt", "")
            or attrs.get("Created", "")
        ),
        profile=str(labels.get(f"{prefix}.profile", "auto"))[:32],
    )


def _target(
    attrs: Mapping[str, Any],
    labels: Mapping[str, str],
    settings: DockerSettings,
    credential: str | None,
) -> Target | None:
    prefix = settings.label_prefix
    url = labels.get(f"{prefix}.ttyd.url")
    if url:
        return Target(url, credential)
    port_label = labels.get(f"{prefix}.ttyd.port", str(settings.port))
    if not port_label.isdigit() or not 1 <= int(port_label) <= 65535:
        raise ConfigError(f"label {prefix}.ttyd.port must be a port number, got {port_label!r}")
    port = int(port_label)
    network_settings = attrs.get("NetworkSettings") or {}
    if settings.network:
        networks = network_settings.get("Networks") or {}
        address = (networks.get(settings.network) or {}).get("IPAddress")
        if address:
            return Target(f"ws://{address}:{port}/ws", credential)
    published = (network_settings.get("Ports") or {}).get(f"{port}/tcp") or []
    for binding in published:
        host, host_port = binding.get("HostIp", ""), binding.get("HostPort", "")
        if not host_port:
            continue
        if host in ("", "0.0.0.0"):  # noqa: S104 - a wildcard bind, reached on loopback
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        host = f"[{host}]" if ":" in host else host
        return Target(f"ws://{host}:{host_port}/ws", credential)
    return None


def plan(
    containers: Iterable[Container], reserved: Collection[str]
) -> tuple[dict[str, Desired], list[str]]:
    """What every Docker agent should be, and the problems worth a log line."""
    claims: dict[str, list[Container]] = defaultdict(list)
    problems: list[str] = []
    for container in containers:
        if not AGENT_ID.fullmatch(container.agent_id):
            problems.append(
                f"container {container.short}: agent id {container.agent_id!r} is not valid "
                "(1-63 letters, digits, '.', '_' or '-')"
            )
        elif container.agent_id in reserved:
            problems.append(
                f"container {container.short} claims agent id {container.agent_id!r}, "
                "which the config file defines; the container is ignored"
            )
        else:
            claims[container.agent_id].append(container)
    desired: dict[str, Desired] = {}
    for agent_id, candidates in claims.items():
        running = sorted((c for c in candidates if c.running), key=lambda c: c.name)
        if len(running) > 1:
            names = ", ".join(c.short for c in running)
            message = f"{len(running)} running containers claim this agent id: {names}"
            problems.append(f"agent {agent_id!r}: {message}")
            desired[agent_id] = Desired(agent_id, None, AgentState.CONFLICT, message, None)
        elif running:
            (container,) = running
            if container.target is None:
                desired[agent_id] = Desired(
                    agent_id, None, AgentState.UNREACHABLE, container.problem, container
                )
            else:
                desired[agent_id] = Desired(
                    agent_id, container.target, AgentState.CONNECTING, "", container
                )
        else:
            latest = max(candidates, key=lambda c: c.changed_at)
            message = f"container {latest.name} is {latest.state}"
            desired[agent_id] = Desired(agent_id, None, AgentState.STOPPED, message, latest)
    return desired, problems


@dataclass(frozen=True, slots=True)
class DesiredChange:
    """One agent's desired state changed: ``before`` None is new, ``after`` None is gone."""

    agent_id: str
    before: Desired | None
    after: Desired | None


def changes(before: Mapping[str, Desired], after: Mapping[str, Desired]) -> list[DesiredChange]:
    """What changed from one plan to the next: new and changed agents, then gone ones.

    New and changed ones come in ``after``'s order, gone ones in ``before``'s.
    """
    changed = [
        DesiredChange(agent_id, before.get(agent_id), want)
        for agent_id, want in after.items()
        if before.get(agent_id) != want
    ]
    gone = [DesiredChange(a, had, None) for a, had in before.items() if a not in after]
    return changed + gone


def reconnect_needed(had: Desired | None, want: Desired) -> bool:
    """Whether an agent's hub must be set to ``want`` anew, dropping its connection.

    A new container's health or name alone is no reason: only a new target,
    state or message is, or the same address in a recreated container.
    """
    if had is None:
        return True
    if (had.target, had.state, had.message) != (want.target, want.state, want.message):
        return True
    # The same address in a new container (recreated): the old connection is dead.
    return want.target is not None and (had.container and had.container.id) != (
        want.container and want.container.id
    )
