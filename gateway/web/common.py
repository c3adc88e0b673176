"""What every handler module shares: JSON in and out, error answers, and agents as JSON.

A body is read up to a limit of the route's own (a login needs a few
hundred bytes; input up to 256 KiB), and everything a client can put in
one becomes a :class:`~gateway.errors.BadRequest` (400) rather than a 500:
bytes that are not JSON or not UTF-8, nesting deep enough to exhaust the
parser's recursion, and strings that are not valid Unicode (a lone
surrogate such as ``"\\ud800"`` is legal JSON but cannot be encoded, typed
into a terminal or written to the audit log).

An error is JSON for scripts and an HTML page for people
(:func:`error_answer`): a browser that follows a used login link or opens
an agent it may not see gets the reason in words and a way back, not a
JSON body. The page is built from fixed text; what came from the request
(an agent id) is escaped, shortened and shown only where the JSON answer
would show it too, so it tells nobody more than the JSON does.

Handler modules never import each other: what two of them need lives here
or in :mod:`gateway.web.identity`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ..appkeys import (
    AUDIT,
    AWARENESS,
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


# Routes only programs call: a WebSocket, ttyd's token, probes, scrapers,
# the bundle's files. Their errors stay JSON whatever the Accept header says.
_MACHINE_PATHS = ("/healthz", "/readyz", "/metrics")
_MACHINE_SUFFIXES = ("/ws", "/token")


def wants_json(request: web.Request) -> bool:
    """Whether an error for ``request`` is answered as JSON rather than a page.

    JSON for the API (``/api/``), the machine routes, and a client that
    asks for JSON and not for HTML; a page for everything else, which is
    what a browser's address bar, a link or a reload sends.
    """
    path = request.path
    if path.startswith(("/api/", "/static/")) or path in _MACHINE_PATHS:
        return True
    if path.endswith(_MACHINE_SUFFIXES):
        return True
    accept = request.headers.get("Accept", "").lower()
    return "application/json" in accept and "text/html" not in accept


# What a spectator whose link no longer works is told, by the API and the pages.
LINK_GONE = "this link was revoked or expired — ask for a new one"


# A way back from an error page: (href, label). Fixed paths only, never
# anything from the request.
HOME = ("/", "All agents")
LOGIN = ("/login", "Log in")

# The most of a request's text an error page repeats (an agent id is at most
# a few dozen characters; a crafted one may be kilobytes).
_SHOWN_CHARS = 80


def shown(value: str) -> str:
    """``value`` cut to a length a page may repeat, as a quoted string.

    repr() writes control, format and other unprintable characters (a
    right-to-left override, a lone surrogate) as escapes, so what the page
    shows is what was asked for, not what it would render as.
    """
    cut = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "…"
    return repr(cut)


def error_page(
    status: int,
    heading: str,
    message: str,
    ways: tuple[tuple[str, str], ...] = (HOME,),
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A small HTML page: the reason in words and links back. Everything is escaped."""
    links = " ".join(
        f'<a href="{html.escape(href)}">{html.escape(label)}</a>' for href, label in ways
    )
    body = (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(heading)} · agent gateway</title>"
        '<link rel="stylesheet" href="/static/dist/login.css"></head>'
        f'<body><main class="login problem" data-status="{status}">'
        f"<h1>{html.escape(heading)}</h1>"
        f'<p class="reason">{html.escape(message)}</p>'
        f'<p class="ways">{links}</p></main></body></html>\n'
    )
    # An answer about one moment (a link used, a session gone): never cached.
    return web.Response(
        status=status,
        text=body,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def error_answer(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    *,
    heading: str,
    page: str | None = None,
    ways: tuple[tuple[str, str], ...] = (HOME,),
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """``json_error`` for programs, :func:`error_page` for a browser (see :func:`wants_json`).

    ``page`` is the page's wording where it differs from ``message``.
    """
    if wants_json(request):
        return json_error(status, code, message, headers)
    return error_page(status, heading, page or message, ways, headers)


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
        # What the agent is doing (gateway.awareness): state, since, reason, prompt.
        **app[AWARENESS].state_json(hub.agent_id),
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
