"""Typed application state shared by the app factory and the handlers.

What a replicated gateway will share is typed by its seam
(:mod:`gateway.seams`), so handlers can use nothing an implementation lacks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from .auth import Authenticator
from .awareness.watch import Awareness
from .bundle import Bundle
from .config import Settings
from .core.fleet import Fleet
from .docker.discovery import Discovery
from .docker.logs import LogHub
from .local import LocalAgent
from .metrics import Metrics
from .origins import HostPolicy, OriginPolicy
from .proxies import ProxyPolicy
from .readiness import Readiness
from .seams import (
    AuditSink,
    ConnectionBackend,
    ControlChannel,
    EventSink,
    PresenceView,
    ShareBackend,
)

if TYPE_CHECKING:
    # Imported only in replica mode (it loads redis).
    from .replica.node import Node


class Closable(Protocol):
    """A WebSocket or an SSE stream: what a session's end or shutdown closes."""

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...

    def abort(self) -> None:
        """Drop the connection at once: for a peer that does not take the close."""


SETTINGS = web.AppKey("settings", Settings)
FLEET = web.AppKey("fleet", Fleet)
ORIGINS = web.AppKey("origins", OriginPolicy)
HOSTS = web.AppKey("hosts", HostPolicy)
PROXIES = web.AppKey("proxies", ProxyPolicy)
# Spawned by `--demo`: tmux + ttyd pairs that live and die with the app.
LOCAL_AGENTS = web.AppKey("local_agents", list[LocalAgent])
AUTH = web.AppKey("auth", Authenticator)
AUDIT: web.AppKey[AuditSink] = web.AppKey("audit")
SHARES: web.AppKey[ShareBackend] = web.AppKey("shares")
# Open WebSockets and event streams by session key (auth.session_key), closed
# (1008) when their session ends, here or on another replica.
SESSION_SOCKETS = web.AppKey("session_sockets", dict[str, set[Closable]])
# Open WebSockets per user name, for the per-user connection limit.
CONNECTIONS: web.AppKey[ConnectionBackend] = web.AppKey("connections")
# Open WebSockets and event streams, each with the check of whether its
# caller may still have it open; closed (1001) at shutdown.
SOCKETS = web.AppKey("sockets", dict[Closable, Callable[[], Awaitable[bool]]])
# What this replica tells the others (a session ended); a no-op in one process.
CONTROL: web.AppKey[ControlChannel] = web.AppKey("control")
# The front-end bundle, read at start (GET /static/dist/{name}).
BUNDLE = web.AppKey("bundle", Bundle)
# The dashboard's event feed (GET /api/events).
EVENTS: web.AppKey[EventSink] = web.AppKey("events")
# Who watches each agent, counting every replica's viewers (GET /api/agents, events).
PRESENCE: web.AppKey[PresenceView] = web.AppKey("presence")
# Docker discovery and container logs: present only with a [docker] config table.
DISCOVERY = web.AppKey("discovery", Discovery)
LOGS = web.AppKey("logs", LogHub)
# Prometheus instruments and registry (GET /metrics).
METRICS = web.AppKey("metrics", Metrics)
# Starting, ready or draining (GET /readyz).
READINESS = web.AppKey("readiness", Readiness)
# What each agent is doing, from its screen (gateway.awareness).
AWARENESS = web.AppKey("awareness", Awareness)
# This replica, with [redis] only: ownership of agents, their streams, Redis's health.
REPLICA: web.AppKey[Node] = web.AppKey("replica")
