"""The aiohttp application: typed state, lifecycles, graceful shutdown.

``create_app(settings)`` builds everything from validated settings and reads
nothing else (no environment, no files but the ones settings name). The
lifecycles run in ``cleanup_ctx`` order and unwind in reverse:

0. the audit log and the share store (first in, last out);
1. local agents (``--demo``): spawn tmux + ttyd in a private folder;
2. the fleet: one :class:`~gateway.core.hub.Hub` per agent, connected upstream;
3. Docker discovery (with ``[docker]``): as labelled containers come and
   go it emits what each agent should be, and :class:`FleetApplier` adds,
   parks and removes hubs to match; stops before the fleet does;
4. background loops: ``activity`` events, the event-loop lag sampler, the
   session sweeper, and SIGHUP reloading of users (with a config file).

Changes of the fleet and of Docker's status are published on the event bus
that ``GET /api/events`` reads.

On shutdown every open WebSocket and event stream is closed first (1001).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, web

from . import config, metrics
from .appkeys import (
    AUDIT,
    AUTH,
    AWARENESS,
    BUNDLE,
    CONNECTIONS,
    CONTROL,
    DISCOVERY,
    EVENTS,
    FLEET,
    HOSTS,
    LOCAL_AGENTS,
    LOGS,
    METRICS,
    ORIGINS,
    PRESENCE,
    PROXIES,
    READINESS,
    REPLICA,
    SESSION_SOCKETS,
    SETTINGS,
    SHARES,
    SOCKETS,
)
from .audit import AuditLog
from .auth import Authenticator, SessionStore, hash_password
from .awareness.watch import Awareness
from .bundle import Bundle
from .config import Settings
from .core.fleet import Fleet
from .core.hub import Hub
from .core.seams import PaneHistory
from .core.target import Target
from .docker.discovery import Discovery
from .docker.logs import LogHub
from .docker.pane import DockerPane
from .docker.planner import DesiredChange, reconnect_needed
from .errors import ConfigError
from .events import EventBus, LocalPresence, Loopback
from .limits import ConnectionCount
from .local import LocalAgent, find_ttyd
from .readiness import Readiness
from .screen import screen_backend
from .shares import ShareStore
from .tasks import running
from .users import Role, User
from .web import identity, routes
from .web.common import agent_json

if TYPE_CHECKING:
    from .replica.node import Node

log = logging.getLogger(__name__)

# How often agents' output is summarised as ``activity`` events.
ACTIVITY_INTERVAL = 1.0
# Shutdown: how long open sockets get to take their 1001 before they are dropped.
CLOSE_DEADLINE = 2.0


def create_app(settings: Settings) -> web.Application:
    """Build the gateway application for ``settings``."""
    # Before anything opens or starts: refuses a server.screen that cannot load.
    screen_backend(settings.screen)
    if settings.redis is not None:
        # Replica mode only: this is what imports redis.
        from .replica.node import Node

        node = Node(settings.redis)
        fleet = Fleet(source=node.source)
    else:
        fleet = Fleet()
    audit = AuditLog(settings.audit_log)
    app_metrics = metrics.Metrics(fleet, audit)
    app = web.Application(
        middlewares=[
            metrics.middleware(app_metrics),
            *routes.MIDDLEWARES,
        ]
    )
    app[METRICS] = app_metrics
    app[SETTINGS] = settings
    app[READINESS] = Readiness()
    if settings.redis is not None:
        app[REPLICA] = node
        # First in, last out: everything after it may use Redis.
        app.cleanup_ctx.append(_replica)
    app[ORIGINS] = settings.origin_policy()
    app[HOSTS] = settings.host_policy()
    app[PROXIES] = settings.proxy_policy()
    users = settings.users
    if settings.demo:
        # The demo's admin logs in only through the one-time link: its
        # password is random and never shown.
        users = (*users, User("demo", hash_password(secrets.token_urlsafe(24)), Role.ADMIN))
    sessions = SessionStore(
        idle_timeout=settings.session_idle_seconds,
        absolute_timeout=settings.session_max_seconds,
    )
    app[AUTH] = Authenticator(users, sessions)
    app[AUDIT] = audit
    app[SHARES] = ShareStore(settings.state_dir / "shares.json")
    app[SESSION_SOCKETS] = {}
    app[CONNECTIONS] = ConnectionCount()
    app[CONTROL] = Loopback()
    app[FLEET] = fleet
    app[EVENTS] = EventBus()
    app[PRESENCE] = LocalPresence()
    if settings.redis is not None:
        _replica_state(app, node, audit)
    app.cleanup_ctx.append(_state)
    app[LOCAL_AGENTS] = []
    app[SOCKETS] = {}
    app[FLEET].listeners.append(lambda change, hub: _publish_agent(app, change.value, hub))
    if settings.docker is not None:

        def docker_hub(agent_id: str, target: Target | None) -> Hub:
            # Its tmux is asked inside its container (docker exec), never directly.
            pane = DockerPane(agent_id, discovery.container_of, discovery.client)
            return _hub(fleet, settings, agent_id, target, pane=pane)

        applier = FleetApplier(fleet, docker_hub)
        app[DISCOVERY] = discovery = Discovery(settings.docker, applier)
        app[LOGS] = LogHub(discovery, settings.docker.log_lines)
        discovery.status_listeners.append(
            lambda status, message: app[EVENTS].publish(
                "docker", {"status": status, "message": message}
            )
        )
        discovery.container_listeners.append(lambda agent_id, _: _container_changed(app, agent_id))
    app[AWARENESS] = Awareness(
        fleet,
        profile_of=lambda agent_id: _profile_of(app, agent_id),
        viewers_of=lambda hub: app[PRESENCE].fleet_wide(hub.agent_id, hub.statistics().viewers,
                                                         {})[0],
        on_change=lambda hub, _: app[EVENTS].publish(
            "agent_state",
            {"id": hub.agent_id, **app[AWARENESS].state_json(hub.agent_id)},
            agent=hub.agent_id,
        ),
    )  # fmt: skip
    app[METRICS].watch_awareness(app[AWARENESS])
    app.cleanup_ctx.append(_local_agents)
    app.cleanup_ctx.append(_fleet)
    app.cleanup_ctx.append(_awareness)
    app.cleanup_ctx.append(_docker)
    app.cleanup_ctx.append(_activity)
    app.cleanup_ctx.append(lambda app: metrics.watch_loop_lag(app[METRICS]))
    app.cleanup_ctx.append(identity.sweeper)
    app.on_shutdown.append(_drain)
    app.on_shutdown.append(_close_sockets)
    if settings.config_path is not None:
        app.cleanup_ctx.append(_reload_on_sighup)
    # Last: ready once everything above has started.
    app.cleanup_ctx.append(_ready)
    routes.setup(app)
    return app


def demo_agents(workdir: Path) -> list[LocalAgent]:
    """The two embedded demo agents: a shell, and a busy fake coding agent."""
    ttyd_binary = find_ttyd(workdir)
    return [
        LocalAgent("shell", ["bash", "--noprofile", "--norc", "-i"], workdir, ttyd_binary),
        LocalAgent(
            "busy-agent", [sys.executable, "-m", "gateway.demo_agent"], workdir, ttyd_binary
        ),
    ]


async def _replica(app: web.Application) -> AsyncIterator[None]:
    node = app[REPLICA]
    await node.start()
    try:
        yield
    finally:
        await node.aclose()


def _replica_state(app: web.Application, node: Node, local_audit: AuditLog) -> None:
    """Replica mode: sessions, links, throttle, caps, audit, presence and the feed in Redis.

    The in-process defaults built before are replaced; the modules (and so
    the ``redis`` package) are imported here only, never in a single gateway.
    Logout, expiry, revocation and a SIGHUP's removals end sessions in
    Redis; the control channel tells the other replicas to close their
    sockets of those sessions (1008), as :func:`identity.end_session` does here.
    The event feed is one Redis stream (issue 13, item 4: the same ids on
    every replica; who publishes what is in :mod:`gateway.replica.events`),
    and presence counts every replica's viewers: a replica that wrote its
    part says so on the control channel, and the others read it again.
    """
    from .replica.audit import FleetAudit
    from .replica.connections import RedisConnections
    from .replica.control import RedisControl
    from .replica.events import RedisEvents
    from .replica.presence import Part, RedisPresence
    from .replica.sessions import RedisLoginLinks, RedisSessions
    from .replica.shares import RedisShares
    from .replica.throttle import RedisThrottle

    settings, link, fleet = app[SETTINGS], node.link, app[FLEET]
    assert settings.redis is not None
    prefix, replica = settings.redis.key_prefix, link.replica
    auth = app[AUTH]
    auth.sessions = RedisSessions(
        link,
        prefix,
        idle_timeout=settings.session_idle_seconds,
        absolute_timeout=settings.session_max_seconds,
        users=auth.users,
    )
    auth.throttle = RedisThrottle(link, prefix)
    auth.links = RedisLoginLinks(link, prefix)
    app[SHARES] = RedisShares(link, prefix)
    app[CONNECTIONS] = connections = RedisConnections(link, prefix, replica)
    app[AUDIT] = FleetAudit(local_audit, link, prefix, replica)
    app[CONTROL] = control = RedisControl(link, prefix, replica)

    def holder(agent_id: str) -> str | None:
        # None: no upstream (parked, removed); "": one, but no holder known yet.
        upstream = fleet.get(agent_id).upstream if agent_id in fleet else None
        return None if upstream is None else upstream.statistics().holder or ""

    app[EVENTS] = events = RedisEvents(link, prefix, replica, holder=holder, live=lambda: node.live)

    def part(hub: Hub) -> Part:
        return Part(len(hub.viewers), hub.presence)

    def local() -> dict[str, Part]:
        return {hub.agent_id: part(hub) for hub in fleet}

    app[PRESENCE] = presence = RedisPresence(link, prefix, replica, local)
    presence.announce = lambda agent_id: control.publish("presence", agent_id)
    presence.listeners.append(
        lambda agent_id: (
            _publish_agent(app, "changed", fleet.get(agent_id)) if agent_id in fleet else None
        )
    )
    fleet.listeners.append(lambda change, hub: presence.local_changed(hub.agent_id, part(hub)))

    async def on_control(kind: str, value: str) -> None:
        if kind == "session":
            await identity.close_session_sockets(app, value)
        elif kind == "presence":
            await presence.others_changed(value)

    control.listeners.append(on_control)

    async def shared_state(app: web.Application) -> AsyncIterator[None]:
        async with (
            connections.refreshing(),
            running(control.run(), "control-reader"),
            running(events.run(), "events"),
            presence.refreshing(),
        ):
            yield

    app.cleanup_ctx.append(shared_state)


async def _state(app: web.Application) -> AsyncIterator[None]:
    # First in, last out: every other lifecycle may still record on the way down.
    await app[AUDIT].start()
    settings = app[SETTINGS]
    if settings.demo_login_token is not None:
        await app[AUTH].add_one_time_login(settings.demo_login_token.reveal(), "demo")
    await app[SHARES].load()
    app[BUNDLE] = await asyncio.to_thread(Bundle.load, app[SETTINGS].static_dir / "dist")
    try:
        yield
    finally:
        app[AUTH].close()
        app[SHARES].close()
        await app[AUDIT].aclose()


async def _local_agents(app: web.Application) -> AsyncIterator[None]:
    if not app[SETTINGS].demo:
        yield
        return
    workdir = Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    agents = app[LOCAL_AGENTS]
    try:
        for agent in demo_agents(workdir):
            await agent.start()
            agents.append(agent)
        yield
    finally:
        for agent in agents:
            await agent.aclose()
        shutil.rmtree(workdir, ignore_errors=True)


async def _fleet(app: web.Application) -> AsyncIterator[None]:
    fleet, settings = app[FLEET], app[SETTINGS]
    for agent in settings.agents:
        await fleet.add(_hub(fleet, settings, agent.id, agent.target(), agent.columns, agent.rows))
    # The demo's tmux is the gateway's own: it may be asked for its history.
    for local in app[LOCAL_AGENTS]:
        hub = _hub(fleet, settings, local.name, Target(local.url), local.columns, local.rows, local)
        await fleet.add(hub)
    await fleet.start()
    try:
        yield
    finally:
        await fleet.aclose(WSCloseCode.GOING_AWAY)


def _profile_of(app: web.Application, agent_id: str) -> str:
    """The agent's ``profile``: its config's, its container's label, else detected."""
    for agent in app[SETTINGS].agents:
        if agent.id == agent_id:
            return agent.profile
    discovery = app.get(DISCOVERY)
    container = None if discovery is None else discovery.container_of(agent_id)
    return "auto" if container is None else container.profile


async def _awareness(app: web.Application) -> AsyncIterator[None]:
    """What each agent is doing: after the fleet, so it stops before the hubs do."""
    async with running(app[AWARENESS].run(), "awareness"):
        yield


def _hub(
    fleet: Fleet,
    settings: Settings,
    agent_id: str,
    target: Target | None,
    columns: int = 120,
    rows: int = 40,
    pane: PaneHistory | None = None,
) -> Hub:
    return fleet.new_hub(
        agent_id,
        target,
        columns=columns,
        rows=rows,
        viewer_queue_bytes=settings.viewer_queue_bytes,
        screen=functools.partial(screen_backend(settings.screen), scrollback=settings.scrollback),
        pane=pane,
    )


HubFactory = Callable[[str, Target | None], Hub]


class FleetApplier:
    """Applies Docker discovery's changes to the fleet: adds, retargets, parks, removes hubs.

    Discovery decides what each Docker agent should be; the hubs are the
    app's, and so is changing them (see :class:`~gateway.docker.discovery.Applier`).
    """

    def __init__(self, fleet: Fleet, make_hub: HubFactory) -> None:
        self._fleet = fleet
        self._make_hub = make_hub

    def agent_ids(self) -> list[str]:
        return [hub.agent_id for hub in self._fleet]

    async def apply(self, change: DesiredChange) -> None:
        agent_id, want = change.agent_id, change.after
        if want is None:
            await self._fleet.remove(agent_id)
        elif agent_id not in self._fleet:
            hub = self._make_hub(agent_id, want.target)
            await self._fleet.add(hub)
            if want.target is None:
                await hub.set_target(None, state=want.state, message=want.message)
        elif reconnect_needed(change.before, want):
            await self._fleet.get(agent_id).set_target(
                want.target, state=want.state, message=want.message
            )


def _publish_agent(app: web.Application, change: str, hub: Hub) -> None:
    app[EVENTS].publish(
        "agent", {"change": change, "agent": agent_json(app, hub)}, agent=hub.agent_id
    )


async def _activity(app: web.Application) -> AsyncIterator[None]:
    """Publish an ``activity`` event per agent whose screen changed, at most once a tick.

    Output itself is far too frequent for an event feed; this is what lets
    the wall view refresh a tile's picture of the screen when there is news.
    """
    seen: dict[str, int] = {}

    async def watch() -> None:
        while True:
            await asyncio.sleep(ACTIVITY_INTERVAL)
            for hub in app[FLEET]:
                if seen.get(hub.agent_id, 0) != hub.offset:
                    seen[hub.agent_id] = hub.offset
                    data = {"id": hub.agent_id, "bytes_out": hub.offset, "title": hub.title}
                    app[EVENTS].publish("activity", data, agent=hub.agent_id)

    async with running(watch(), "activity"):
        yield


def _container_changed(app: web.Application, agent_id: str) -> None:
    # A new container, or its health, shows in the agent's JSON, not its status.
    if agent_id in app[FLEET]:
        _publish_agent(app, "changed", app[FLEET].get(agent_id))


async def _docker(app: web.Application) -> AsyncIterator[None]:
    """Docker discovery (with [docker]): after the fleet, so it stops first."""
    discovery = app.get(DISCOVERY)
    if discovery is None:
        yield
        return
    await discovery.start()
    try:
        yield
    finally:
        app[LOGS].aclose()
        await discovery.aclose()


async def reload_users(app: web.Application) -> None:
    """Re-read ``[[users]]`` from the config file (what SIGHUP does).

    A removed user's sessions end and their sockets close with 1008, and so
    do every socket and stream whose caller lost access (a narrowed glob, a
    removed token, a link whose creator lost the agent); a changed role
    applies from the next message. Agents and server
    settings are read at start only. A bad file changes nothing.
    """
    settings, auth = app[SETTINGS], app[AUTH]
    assert settings.config_path is not None
    try:
        fresh = await asyncio.to_thread(config.load, settings.config_path, demo=settings.demo)
    except ConfigError as exc:
        log.error("config reload refused, keeping the old users: %s", exc)
        app[AUDIT].record("config_reload_failed", error=str(exc))
        return
    demo = [auth.users["demo"]] if settings.demo and "demo" in auth.users else []
    auth.replace_users([*fresh.users, *demo])
    for session in await auth.sessions.expire(auth.users):
        await identity.end_session(app, session.key)
    await identity.end_lapsed_links(app)
    await identity.revalidate(app)
    app[AUDIT].record("config_reloaded", users=sorted(auth.users))
    log.info("config reloaded: %d users", len(auth.users))


async def _reload_on_sighup(app: web.Application) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    def on_sighup() -> None:
        task = asyncio.create_task(reload_users(app))
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


async def _ready(app: web.Application) -> AsyncIterator[None]:
    node = app.get(REPLICA)
    if node is not None:
        # Ready once an ownership pass has seen this replica's agents.
        await node.settled()
    app[READINESS].started()
    yield


async def _drain(app: web.Application) -> None:
    """First on shutdown: /readyz says so before anything closes; owned agents move on."""
    app[READINESS].draining()
    node = app.get(REPLICA)
    if node is not None:
        await node.drain()


async def _close_sockets(app: web.Application) -> None:
    """Close every socket and stream with 1001, all at once; drop what has not closed by then.

    One at a time, a single viewer that stopped reading (a frozen tab, a dead
    path) held the whole shutdown for as long as its peer lived.
    """
    sockets = [*app[SOCKETS]]
    closes = [
        asyncio.ensure_future(s.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown"))
        for s in sockets
    ]
    if not closes:
        return
    _, pending = await asyncio.wait(closes, timeout=CLOSE_DEADLINE)
    if pending:
        log.info("shutdown: %d connections did not take the close; dropped", len(pending))
        for connection, close in zip(sockets, closes, strict=True):
            if close in pending:
                connection.abort()
        await asyncio.wait(pending, timeout=CLOSE_DEADLINE)
