"""What every handler module shares: JSON in and out, and agents as JSON.

A body is read up to a limit of the route's own (a login needs a few
hundred bytes; input up to 256 KiB), and everything a client can put in
one becomes a :class:`~gateway.errors.BadRequest` (400) rather than a 500:
bytes that are not JSON or not UTF-8, nesting deep enough to exhaust the
parser's recursion, and strings that are not valid Unicode (a lone
surrogate such as ``"\\ud800"`` is legal JSON but cannot be encoded, typed
into a terminal or written to the audit log).

Handler modules never import each other: what two of them need lives here
or in :mod:`gateway.web.identity`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ..appkeys import (
    AUDIT,
    DISCOVERY,
    FLEET,
    PRESENCE,
)
from ..core.fleet import Fleet
from ..core.hub import Hub
from ..errors import BadRequest

# aiohttp's own default, for routes that do not say.
DEFAULT_LIMIT = 1024 * 1024


def json_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``{"error": code, "message": message}`` with ``status``."""
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


async def read_object(request: web.Request, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The body as a JSON object; BadRequest, or 413 past ``limit`` bytes."""
    raw = await read_body(request, limit)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


async def read_body(request: web.Request, limit: int) -> bytes:
    """At most ``limit`` bytes of body, whatever Content-Length says (or does not)."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(limit, request.content_length)
    body = bytearray()
    try:
        while chunk := await request.content.read(64 * 1024):
            body += chunk
            if len(body) > limit:
                raise web.HTTPRequestEntityTooLarge(limit, len(body))
    except ConnectionResetError:
        # The client left mid-body: nobody reads the answer, and it is no error of ours.
        raise BadRequest("the request body was cut short") from None
    return bytes(body)


def text(body: Mapping[str, Any], key: str, *, empty: bool = True) -> str:
    """``body[key]`` if it is a string of valid Unicode, else BadRequest naming the key."""
    value = body.get(key)
    if not isinstance(value, str) or (not empty and not value):
        raise BadRequest(f"{key!r} must be a {'' if empty else 'non-empty '}string")
    if not is_text(value):
        raise BadRequest(f"{key!r} is not valid Unicode text")
    return value


def is_text(value: str) -> bool:
    """False for a string holding a lone surrogate (it has no UTF-8 form)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def fleet_of(request: web.Request) -> Fleet:
    return request.app[FLEET]


def agent_json(app: web.Application, hub: Hub) -> dict[str, Any]:
    """An agent as /api/agents and /api/events show it."""
    stats = hub.statistics()
    discovery = app.get(DISCOVERY)
    container = None if discovery is None else discovery.container_of(hub.agent_id)
    viewers, presence = app[PRESENCE].fleet_wide(hub.agent_id, stats.viewers, stats.presence)
    return {
        "id": stats.agent_id,
        "status": stats.state,
        "message": stats.message,
        "viewers": viewers,
        "presence": presence,
        "cols": stats.columns,
        "rows": stats.rows,
        "title": stats.title,
        "bytes_out": stats.offset,
        "upstream": None
        if stats.upstream is None
        else {
            "connects": stats.upstream.connects,
            "last_error": stats.upstream.last_error,
            # Replica mode: which replica holds the agent's one ttyd connection.
            **({"holder": stats.upstream.holder} if stats.upstream.holder is not None else {}),
        },
        "container": None
        if container is None
        else {
            "id": container.id[:12],
            "name": container.name,
            "state": container.state,
            "health": container.health,
        },
    }


def audit_input(
    request: web.Request, user: str, agent_id: str, data: bytes, *, confirmed: bool = True
) -> None:
    """Record input sent to an agent; ``confirmed=False``: it may or may not have been typed."""
    text = data.decode(errors="backslashreplace")
    extra = {} if confirmed else {"confirmed": False}
    request.app[AUDIT].record(
        "input", user=user, agent=agent_id, bytes=len(data), text=text, **extra
    )
