"""Typed application state shared by the app factory and the handlers."""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from .audit import AuditLog
from .auth import Authenticator
from .config import Settings
from .hub import Fleet
from .local import LocalAgent
from .origins import OriginPolicy
from .proxies import ProxyPolicy
from .shares import ShareStore

SETTINGS = web.AppKey("settings", Settings)
FLEET = web.AppKey("fleet", Fleet)
ORIGINS = web.AppKey("origins", OriginPolicy)
PROXIES = web.AppKey("proxies", ProxyPolicy)
# Spawned by `--demo`: tmux + ttyd pairs that live and die with the app.
LOCAL_AGENTS = web.AppKey("local_agents", list[LocalAgent])
AUTH = web.AppKey("auth", Authenticator)
AUDIT = web.AppKey("audit", AuditLog)
SHARES = web.AppKey("shares", ShareStore)
# Open WebSockets by session id, closed with 1008 when their session ends.
SESSION_SOCKETS = web.AppKey("session_sockets", dict[str, set[web.WebSocketResponse]])
# Open WebSockets per user name, for the per-user connection limit.
CONNECTIONS = web.AppKey("connections", Counter[str])
# Open browser WebSockets, closed with 1001 at shutdown.
SOCKETS = web.AppKey("sockets", set[web.WebSocketResponse])
