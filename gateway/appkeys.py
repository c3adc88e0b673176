"""Typed application state shared by the app factory and the handlers."""

from __future__ import annotations

from aiohttp import web

from .config import Settings
from .hub import Fleet
from .local import LocalAgent
from .origins import OriginPolicy

SETTINGS = web.AppKey("settings", Settings)
FLEET = web.AppKey("fleet", Fleet)
ORIGINS = web.AppKey("origins", OriginPolicy)
# Spawned by `--demo`: tmux + ttyd pairs that live and die with the app.
LOCAL_AGENTS = web.AppKey("local_agents", list[LocalAgent])
# Open browser WebSockets, closed with 1001 at shutdown.
SOCKETS = web.AppKey("sockets", set[web.WebSocketResponse])
