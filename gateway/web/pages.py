"""The HTML pages and the bundled front end they load.

``/`` is the wall, ``/agents/{id}/`` the terminal, ``/login`` the login
form; ``/static/dist/...`` serves the bundle by exact name from memory
(:mod:`gateway.bundle`).
"""

from __future__ import annotations

from aiohttp import web

from ..appkeys import (
    BUNDLE,
    SETTINGS,
)
from .common import json_error
from .identity import hub_of


async def index(request: web.Request) -> web.FileResponse:
    """The wall view: every agent the caller may see, live (static/index.html)."""
    return web.FileResponse(request.app[SETTINGS].static_dir / "index.html")


async def terminal_page(request: web.Request) -> web.FileResponse:
    hub_of(request)  # 404 for unknown agents
    return web.FileResponse(request.app[SETTINGS].static_dir / "terminal.html")


async def agent_redirect(request: web.Request) -> web.Response:
    hub_of(request)
    raise web.HTTPPermanentRedirect(f"/agents/{request.match_info['agent_id']}/")


async def bundle_file(request: web.Request) -> web.Response:
    """A file of the esbuild bundle, by its exact built name (see gateway/bundle.py)."""
    asset = request.app[BUNDLE].get(request.match_info["name"])
    if asset is None:
        return json_error(404, "not_found", "no such file in the bundle")
    # The names are not content-hashed: revalidate, cheaply.
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


async def login_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[SETTINGS].static_dir / "login.html")
