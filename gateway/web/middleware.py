"""The middlewares every request passes, and the headers every response gets.

In order (see :func:`gateway.web.setup`): metrics, the Host rule (421), the
Origin rule for unsafe methods and WebSocket upgrades (403), who is calling
(:mod:`gateway.web.identity`), then errors turned into statuses. Every
response gets the security headers (CSP, HSTS, no sniffing, no framing).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from ..appkeys import (
    HOSTS,
    ORIGINS,
    SETTINGS,
)
from ..config import is_loopback
from ..errors import AgentNotFound, BadRequest, RedisUnavailable
from .common import error_answer, json_error, shown
from .identity import bearer_token, client_address, cookie_name, redis_unavailable

# Requests a cross-site page could make with the user's cookies and that
# change state; no GET or HEAD route changes anything.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# Health checks from the gateway's own host (Docker's HEALTHCHECK, a local
# probe) name it by whatever address they use; they may skip the Host rule.
LOOPBACK_HEALTH_PATHS = frozenset({"/healthz", "/readyz"})


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
    """Our errors, and aiohttp's 4xx, as JSON bodies, or as a page for a browser."""
    try:
        return await handler(request)
    except AgentNotFound as exc:
        # The same words whether it does not exist or the caller may not see
        # it (a spectator opening another agent): nothing tells them apart.
        return error_answer(
            request,
            404,
            "not_found",
            str(exc),
            heading="No such agent",
            page=f"There is no agent {shown(exc.agent_id)} here that you may open.",
        )
    except BadRequest as exc:
        return json_error(400, "bad_request", str(exc))
    except RedisUnavailable:
        # Replica mode, Redis down: a clear answer to retry, not a 500 and a traceback.
        return redis_unavailable()
    except web.HTTPException as exc:
        if exc.status >= 400 and not exc.content_type.startswith("application/json"):
            return error_answer(
                request,
                exc.status,
                exc.reason.lower().replace(" ", "_"),
                exc.reason,
                heading=exc.reason,
                page="There is nothing at this address." if exc.status == 404 else None,
            )
        raise


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
