"""Thin HTTP and WebSocket handlers; errors become statuses and close codes.

Routes::

    GET /                         index of agents (HTML)
    GET /healthz                  liveness
    GET /api/agents               every agent with status, size, viewers, title
    GET /api/agents/{id}/screen   ?format=text|ansi|json: the current screen
    POST /api/agents/{id}/input   {"data"}: type into one agent (operators)
    POST /api/input               {"agents", "data"}: one command to many, per-agent results
    GET /api/audit                ?offset=&limit=: the audit trail (admins)
    POST /api/agents/{id}/shares  {"ttl_seconds", "max_uses"?}: a spectator link
    GET /api/shares               the links the caller may manage
    DELETE /api/shares/{id}       revoke a link, disconnecting its spectators
    GET /agents/{id}/             the terminal page
    GET /agents/{id}/token        {"token": ""}, like ttyd's /token
    GET /agents/{id}/ws           ttyd-compatible WebSocket (subprotocol "tty")
    GET /static/dist/...          the bundled front end
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.typedefs import Handler

from . import metrics
from .appkeys import (
    AUDIT,
    AUTH,
    BUNDLE,
    CONNECTIONS,
    DISCOVERY,
    FLEET,
    HOSTS,
    METRICS,
    ORIGINS,
    SESSION_SOCKETS,
    SETTINGS,
    SHARES,
    SOCKETS,
    Closable,
)
from .config import is_loopback
from .core import ttyd
from .core.fleet import Fleet
from .core.hub import Hub
from .core.viewer import Viewer
from .errors import AgentNotFound, BadRequest, PeerProtocolError, UpstreamUnavailable
from .jsonbody import json_error, read_object, text
from .limits import CONNECTIONS_PER_USER, InputLimit
from .login import (
    ANONYMOUS,
    bearer_token,
    client_address,
    cookie_name,
    current_user,
    end_share,
    session_of,
    user_of,
)
from .shares import MAX_TTL, MAX_USES, MIN_TTL, Share
from .users import Role
from .wsmask import MaskedWebSocketResponse

log = logging.getLogger(__name__)

# Inbound WebSocket messages are keystrokes, pastes and tiny JSON.
MAX_INBOUND_MESSAGE = 64 * 1024
HANDSHAKE_TIMEOUT = 10.0
HEARTBEAT = 30.0
# A frame is written straight to a viewer's socket only while the socket's
# own (user-space) buffer holds less than this; beyond, the viewer's sender
# takes over and waits for the socket to drain.
DIRECT_WRITE_LIMIT = 64 * 1024
# The kernel's send buffer for a viewer's socket (Linux doubles it). Left to
# autotuning, a viewer that stops reading parks megabytes there, out of the
# hub's sight; this small, what it does not take waits in the viewer's
# bounded queue, where falling behind ends in a resync.
VIEWER_SEND_BUFFER = 64 * 1024
SCREEN_WAIT = 2.0
MAX_INPUT_BODY = 256 * 1024
MAX_BROADCAST = 100


# Requests a cross-site page could make with the user's cookies and that
# change state; no GET or HEAD route changes anything.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# Health checks from the gateway's own host (Docker's HEALTHCHECK, a local
# probe) name it by whatever address they use; they may skip the Host rule.
LOOPBACK_HEALTH_PATHS = frozenset({"/healthz"})


@web.middleware
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse (421) requests whose Host is not this gateway's: DNS rebinding."""
    client_address(request)  # resolved once per request, for the access log too
    if not request.app[HOSTS].allows(request.headers.get("Host")) and not (
        # The TCP peer, never a forwarded header.
        request.path in LOOPBACK_HEALTH_PATHS and is_loopback(request.remote or "")
    ):
        return json_error(
            421,
            "misdirected_request",
            "this gateway does not serve that host name (see server.public_origin)",
        )
    return await handler(request)


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse WebSocket upgrades and unsafe methods from any other origin, first."""
    upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
    # A script authenticating with a bearer token (and no cookie) cannot be a
    # forged cross-site request: browsers never attach that header themselves.
    scripted = bearer_token(request) is not None and cookie_name(request.app) not in request.cookies
    if (
        (upgrade or request.method in UNSAFE_METHODS)
        and not scripted
        and not request.app[ORIGINS].allows(request.headers.get("Origin"))
    ):
        return json_error(403, "forbidden_origin", "this Origin may not use the gateway")
    return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Our errors, and aiohttp's 4xx on API paths, as JSON bodies."""
    try:
        return await handler(request)
    except AgentNotFound as exc:
        return json_error(404, "not_found", str(exc))
    except BadRequest as exc:
        return json_error(400, "bad_request", str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400 and not exc.content_type.startswith("application/json"):
            return json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise


def _fleet(request: web.Request) -> Fleet:
    return request.app[FLEET]


def may_see(request: web.Request, agent_id: str | None = None, *, touch: bool = True) -> bool:
    """Whether the caller, as of now, is still someone (and sees ``agent_id``)."""
    user = current_user(request, touch=touch)
    return user is not None and (agent_id is None or user.sees(agent_id))


def hub_of(request: web.Request) -> Hub:
    """The agent in the URL, if this caller may see it (else 404, like a missing one)."""
    agent_id = request.match_info["agent_id"]
    if not user_of(request).sees(agent_id):
        raise AgentNotFound(agent_id)
    return _fleet(request).get(agent_id)


def agent_json(app: web.Application, hub: Hub) -> dict[str, Any]:
    """An agent as /api/agents and /api/events show it."""
    stats = hub.statistics()
    discovery = app.get(DISCOVERY)
    container = None if discovery is None else discovery.container_of(hub.agent_id)
    return {
        "id": stats.agent_id,
        "status": stats.state,
        "message": stats.message,
        "viewers": stats.viewers,
        "presence": stats.presence,
        "cols": stats.columns,
        "rows": stats.rows,
        "title": stats.title,
        "bytes_out": stats.offset,
        "upstream": None
        if stats.upstream is None
        else {"connects": stats.upstream.connects, "last_error": stats.upstream.last_error},
        "container": None
        if container is None
        else {
            "id": container.id[:12],
            "name": container.name,
            "state": container.state,
            "health": container.health,
        },
    }


async def prometheus(request: web.Request) -> web.Response:
    """``GET /metrics`` in Prometheus' text format (admins, or open mode)."""
    user = user_of(request)
    if user is not ANONYMOUS and user.role is not Role.ADMIN:
        return json_error(403, "forbidden", "only admins read the metrics")
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


async def healthz(request: web.Request) -> web.Response:
    """Liveness; 503 while the audit trail is not being written (it is a control)."""
    discovery = request.app.get(DISCOVERY)
    docker = "disabled" if discovery is None else discovery.status
    audit = request.app[AUDIT].status
    healthy = audit == "ok"
    return web.json_response(
        {"status": "ok" if healthy else "degraded", "docker": docker, "audit": audit},
        status=200 if healthy else 503,
    )


async def index(request: web.Request) -> web.FileResponse:
    """The wall view: every agent the caller may see, live (static/index.html)."""
    return web.FileResponse(request.app[SETTINGS].static_dir / "index.html")


async def me(request: web.Request) -> web.Response:
    """Who the caller is, for the pages: what to show and what to offer."""
    user, auth = user_of(request), request.app[AUTH]
    session_id = session_of(request)
    session = auth.sessions.get(session_id, touch=False) if session_id else None
    spectator = session.agent if session is not None and session.share_id else None
    return web.json_response(
        {
            "name": user.name,
            "role": user.role.value,
            "can_write": user.can_write,
            # Links need someone to answer for them: not in open (no-login) mode.
            "can_share": auth.enabled and user.role in (Role.ADMIN, Role.OPERATOR),
            "spectator_of": spectator,
            "login": auth.enabled,
        }
    )


async def list_agents(request: web.Request) -> web.Response:
    user = user_of(request)
    visible = [agent_json(request.app, hub) for hub in _fleet(request) if user.sees(hub.agent_id)]
    return web.json_response({"agents": visible})


async def screen(request: web.Request) -> web.Response:
    hub = hub_of(request)
    fmt = request.query.get("format", "text")
    if fmt not in ("text", "ansi", "json"):
        return json_error(400, "bad_request", "format must be one of text, ansi, json")
    # Everything published so far, emulated: the answer is current, not lagging.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(hub.wait_emulated(), SCREEN_WAIT)
    if fmt == "json":
        return web.json_response({"id": hub.agent_id, **hub.screen.to_json()})
    text = hub.screen.text() if fmt == "text" else hub.screen.ansi()
    return web.Response(text=text, content_type="text/plain")


async def _json_body(request: web.Request) -> dict[str, Any]:
    return await read_object(request, MAX_INPUT_BODY)


def _input_data(body: dict[str, Any]) -> bytes:
    encoded = text(body, "data", empty=False).encode()
    if len(encoded) > MAX_INBOUND_MESSAGE:
        raise BadRequest(f"'data' is limited to {MAX_INBOUND_MESSAGE} bytes")
    return encoded


async def _send(request: web.Request, hub: Hub, data: bytes, writer: bool) -> dict[str, Any]:
    """One agent's answer to an input request."""
    if not writer:
        return {"ok": False, "error": "read_only", "message": "this user may only watch"}
    try:
        await hub.send_input(data)
    except UpstreamUnavailable as exc:
        return {"ok": False, "error": "unavailable", "message": str(exc)}
    _audit_input(request, user_of(request).name, hub.agent_id, data)
    return {"ok": True, "sent": len(data)}


def _audit_input(request: web.Request, user: str, agent_id: str, data: bytes) -> None:
    text = data.decode(errors="backslashreplace")
    request.app[AUDIT].record("input", user=user, agent=agent_id, bytes=len(data), text=text)


async def agent_input(request: web.Request) -> web.Response:
    """``POST /api/agents/{id}/input {"data"}``: type into one agent."""
    hub = hub_of(request)
    data = _input_data(await _json_body(request))
    result = await _send(request, hub, data, user_of(request).can_write)
    status = 200 if result["ok"] else 403 if result["error"] == "read_only" else 503
    return web.json_response({"agent": hub.agent_id, **result}, status=status)


async def broadcast_input(request: web.Request) -> web.Response:
    """``POST /api/input {"agents": [...], "data"}``: one command, many agents."""
    body = await _json_body(request)
    data = _input_data(body)
    agents = body.get("agents")
    if (
        not isinstance(agents, list)
        or not 1 <= len(agents) <= MAX_BROADCAST
        or not all(isinstance(a, str) for a in agents)
    ):
        raise BadRequest(f"'agents' must be a list of 1 to {MAX_BROADCAST} agent ids")
    user, fleet = user_of(request), _fleet(request)
    ids = list(dict.fromkeys(agents))

    async def one(agent_id: str) -> dict[str, Any]:
        try:
            if not user.sees(agent_id):
                raise AgentNotFound(agent_id)
            hub = fleet.get(agent_id)
        except AgentNotFound as exc:
            return {"ok": False, "error": "not_found", "message": str(exc)}
        return await _send(request, hub, data, user.can_write)

    results = await asyncio.gather(*(one(agent_id) for agent_id in ids))
    return web.json_response({"results": dict(zip(ids, results, strict=True))})


async def create_share(request: web.Request) -> web.Response:
    """``POST /api/agents/{id}/shares {"ttl_seconds", "max_uses"?}`` → a spectator link."""
    hub = hub_of(request)
    user = user_of(request)
    if not user.can_write:
        return json_error(403, "forbidden", "viewers cannot create spectator links")
    body = await _json_body(request)
    ttl, max_uses = body.get("ttl_seconds"), body.get("max_uses")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL <= ttl <= MAX_TTL:
        raise BadRequest(f"'ttl_seconds' must be an integer in {MIN_TTL}..{MAX_TTL}")
    if max_uses is not None and (
        isinstance(max_uses, bool) or not isinstance(max_uses, int) or not 1 <= max_uses <= MAX_USES
    ):
        raise BadRequest(f"'max_uses' must be an integer in 1..{MAX_USES}")
    share, share_token = await request.app[SHARES].create(hub.agent_id, user.name, ttl, max_uses)
    request.app[AUDIT].record(
        "share_created", user=user.name, share=share.id, agent=hub.agent_id, ttl_seconds=ttl
    )
    url = f"{request.app[SETTINGS].public_origin}/s/{share_token}"
    return web.json_response(
        {"id": share.id, "url": url, "expires_at": share.expires_at}, status=201
    )


def _shares_of(request: web.Request) -> list[Share]:
    """Admins see every link; others the ones they created."""
    user = user_of(request)
    return [
        share
        for share in request.app[SHARES].all()
        if user.role is Role.ADMIN or share.creator == user.name
    ]


async def list_shares(request: web.Request) -> web.Response:
    return web.json_response({"shares": [share.public() for share in _shares_of(request)]})


async def revoke_share(request: web.Request) -> web.Response:
    """``DELETE /api/shares/{id}``: the link stops working and its spectators are cut off."""
    share_id = request.match_info["share_id"]
    if not any(share.id == share_id for share in _shares_of(request)):
        return json_error(404, "not_found", "no such share")
    await request.app[SHARES].revoke(share_id)
    await end_share(request.app, share_id)
    request.app[AUDIT].record("share_revoked", user=user_of(request).name, share=share_id)
    return web.Response(status=204)


async def audit_entries(request: web.Request) -> web.Response:
    """``GET /api/audit?offset=&limit=``: the audit trail, oldest first (admins)."""
    if user_of(request).role is not Role.ADMIN:
        return json_error(403, "forbidden", "only admins read the audit log")
    try:
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise BadRequest("offset and limit must be integers") from None
    if offset < 0 or not 1 <= limit <= 1000:
        raise BadRequest("offset must be >= 0 and limit 1..1000")
    entries, total = await request.app[AUDIT].read(offset, limit)
    return web.json_response({"entries": entries, "offset": offset, "total": total})


async def terminal_page(request: web.Request) -> web.FileResponse:
    hub_of(request)  # 404 for unknown agents
    return web.FileResponse(request.app[SETTINGS].static_dir / "terminal.html")


async def agent_redirect(request: web.Request) -> web.Response:
    hub_of(request)
    raise web.HTTPPermanentRedirect(f"/agents/{request.match_info['agent_id']}/")


async def token(request: web.Request) -> web.Response:
    hub_of(request)
    # Browsers authenticate with their cookie (later); ttyd's client wants a token.
    return web.json_response({"token": ""})


def over_connection_limit(request: web.Request) -> web.Response | None:
    """The 429 answer when this user has too many terminals and streams open."""
    user = user_of(request)
    # Open mode (no users, loopback only) has one anonymous user: no cap there.
    if user is not ANONYMOUS and request.app[CONNECTIONS][user.name] >= CONNECTIONS_PER_USER:
        return json_error(
            429,
            "too_many_connections",
            f"at most {CONNECTIONS_PER_USER} terminals and streams per user",
        )
    return None


@contextlib.contextmanager
def tracked(
    request: web.Request, connection: Closable, agent_id: str | None = None
) -> Iterator[None]:
    """Count a long-lived connection and make it closable by logout and shutdown.

    It is closed too once its caller may no longer see ``agent_id`` (or is
    gone): :func:`~gateway.login.revalidate` checks every open one.
    """
    user, connections = user_of(request), request.app[CONNECTIONS]
    session = session_of(request)
    by_session = request.app[SESSION_SOCKETS].setdefault(session, set()) if session else set()
    request.app[SOCKETS][connection] = lambda: may_see(request, agent_id, touch=False)
    by_session.add(connection)
    connections[user.name] += 1
    try:
        yield
    finally:
        request.app[SOCKETS].pop(connection, None)
        by_session.discard(connection)
        connections[user.name] -= 1
        if connections[user.name] <= 0:
            del connections[user.name]


async def agent_ws(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)  # before the upgrade: unknown agents are a plain 404
    refused = over_connection_limit(request)
    if refused is not None:
        return refused
    ws = MaskedWebSocketResponse(
        protocols=("tty",),
        compress=False,
        # aiohttp refuses a message of max_msg_size bytes: exactly 64 KiB is fine.
        max_msg_size=MAX_INBOUND_MESSAGE + 1,
        heartbeat=HEARTBEAT,
    )
    await ws.prepare(request)
    _bound_send_buffer(request)
    with tracked(request, ws, hub.agent_id):
        await _serve_viewer(request, ws, hub)
    return ws


def _bound_send_buffer(request: web.Request) -> None:
    transport = request.transport
    sock = None if transport is None else transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, VIEWER_SEND_BUFFER)


async def _serve_viewer(request: web.Request, ws: web.WebSocketResponse, hub: Hub) -> None:
    try:
        first = await ws.receive(timeout=HANDSHAKE_TIMEOUT)
    except TimeoutError:
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"handshake timeout")
        return
    if first.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
        await ws.close()
        return
    try:
        handshake = ttyd.parse_client(first.data)
    except PeerProtocolError as exc:
        await ws.close(code=WSCloseCode.PROTOCOL_ERROR, message=str(exc).encode()[:120])
        return
    if not isinstance(handshake, ttyd.Handshake):
        await ws.close(code=WSCloseCode.PROTOCOL_ERROR, message=b"expected handshake")
        return
    # An operator's handshake size resizes the agent, as ttyd's spawn would;
    # a read-only viewer's is ignored (the agent has one size).
    writer = user_of(request).can_write
    if writer and handshake.columns is not None and handshake.rows is not None:
        await hub.resize(handshake.columns, handshake.rows)
    await ws.send_bytes(ttyd.SetTitle(hub.title).serialize())
    await ws.send_bytes(ttyd.SetPreferences({}).serialize())
    audit, user = request.app[AUDIT], user_of(request)
    viewer = hub.join(user.name)
    if request.transport is not None:
        viewer.attach(_direct_writer(ws, request.transport))
    who = {"user": user.name, "role": user.role.value, "agent": hub.agent_id}
    audit.record("viewer_joined", **who, address=client_address(request))
    pump = asyncio.create_task(_pump(viewer, ws), name=f"pump:{hub.agent_id}")
    try:
        close = await _read(request, ws, hub, viewer)
        if close is not None:
            viewer.close(close[0])
            await ws.close(code=close[0], message=close[1])
    finally:
        viewer.close(WSCloseCode.OK)
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        audit.record("viewer_left", **who, refused_writes=viewer.refused)


def _direct_writer(
    ws: web.WebSocketResponse, transport: asyncio.Transport
) -> Callable[[bytes], bool]:
    """Write whole WebSocket frames to the socket, while it keeps up.

    Frames the hub encoded once for every viewer (compression is off, server
    frames are unmasked). aiohttp's own writer shares the transport: whole
    frames from either interleave safely on the one event-loop thread, and
    ``ws.closed`` turns true before aiohttp writes its close frame, after
    which nothing more is written here.
    """

    def write(frame: bytes) -> bool:
        if ws.closed or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > DIRECT_WRITE_LIMIT:
            return False
        transport.write(frame)
        return True

    return write


async def _pump(viewer: Viewer, ws: web.WebSocketResponse) -> None:
    """Send the viewer's batches until it is closed; then close the socket."""
    try:
        async for batch in viewer.batches():
            for frame in batch:
                await ws.send_bytes(frame)
    except ConnectionError:
        return
    await ws.close(code=viewer.close_code or WSCloseCode.OK)


async def _read(
    request: web.Request, ws: web.WebSocketResponse, hub: Hub, viewer: Viewer
) -> tuple[int, bytes] | None:
    """Apply client messages; return a close (code, reason) to end with."""
    limit = InputLimit()
    async for msg in ws:
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            break
        user = current_user(request)
        if user is None or not user.sees(hub.agent_id):
            return WSCloseCode.POLICY_VIOLATION, b"session ended"
        if not limit.allow(len(msg.data)):
            log.info("closing a flooding connection of %s to %s", user.name, hub.agent_id)
            return WSCloseCode.POLICY_VIOLATION, b"input rate limit exceeded"
        try:
            message = ttyd.parse_client(msg.data)
        except PeerProtocolError as exc:
            return WSCloseCode.PROTOCOL_ERROR, str(exc).encode()[:120]
        if isinstance(message, ttyd.Handshake):
            continue  # a repeated handshake changes nothing
        if not user.can_write:
            # Read-only: not a byte reaches ttyd, not even pause/resume,
            # whose only effect would be on this viewer anyway.
            viewer.refused += 1
            if viewer.refused == 1:
                viewer.notice("read_only", "this view is read-only: input is not sent")
                request.app[AUDIT].record(
                    "write_refused", user=user.name, role=user.role.value, agent=hub.agent_id
                )
            continue
        if isinstance(message, ttyd.Input):
            try:
                await hub.send_input(message.data)
            except UpstreamUnavailable as exc:
                viewer.notice("input_refused", f"input not sent: {exc}")
            else:
                _audit_input(request, user.name, hub.agent_id, message.data)
        elif isinstance(message, ttyd.Resize):
            await hub.resize(message.columns, message.rows)
        elif isinstance(message, ttyd.Pause):
            viewer.pause()
        else:
            viewer.resume()
    return None


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


# The pages load only their own bundle and talk only to this origin. xterm.js
# sets inline styles on its elements, hence 'unsafe-inline' for styles only.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


HSTS = "max-age=31536000"


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: headers every answer carries."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    if response.content_type == "text/html":
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    if request.path.startswith("/api/"):
        headers.setdefault("Cache-Control", "no-store")
    if request.app[SETTINGS].public_origin.startswith("https://"):
        # Behind a TLS proxy too: the browser should never try plain http again.
        headers.setdefault("Strict-Transport-Security", HSTS)


def setup(app: web.Application) -> None:
    """Register the routes on ``app``."""
    app.on_response_prepare.append(security_headers)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/agents", list_agents)
    app.router.add_get("/api/agents/{agent_id}/screen", screen)
    app.router.add_post("/api/agents/{agent_id}/input", agent_input)
    app.router.add_post("/api/input", broadcast_input)
    app.router.add_get("/api/audit", audit_entries)
    app.router.add_post("/api/agents/{agent_id}/shares", create_share)
    app.router.add_get("/api/shares", list_shares)
    app.router.add_delete("/api/shares/{share_id}", revoke_share)
    app.router.add_get("/agents/{agent_id}", agent_redirect)
    app.router.add_get("/agents/{agent_id}/", terminal_page)
    app.router.add_get("/agents/{agent_id}/token", token)
    app.router.add_get("/agents/{agent_id}/ws", agent_ws)
    app.router.add_get("/static/dist/{name}", bundle_file)
