"""Who is calling: the session cookie, login and logout, and ending sessions.

With no ``[[users]]`` configured the gateway is open (and loopback-only):
every caller is :data:`ANONYMOUS`, an operator of every agent. With users,
every route but the login page, ``/api/login``, ``/healthz`` and the static
bundle needs a live session; an API call without one gets 401, a page a
redirect to ``/login``.

Ending a session (logout, timeout, the user gone) closes its WebSockets with
1008 within :data:`SWEEP_INTERVAL` seconds; so does losing access to what a
socket or stream shows (a narrowed glob, a removed token, a link whose
creator lost the agent), at once after a reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from aiohttp import WSCloseCode, web
from aiohttp.typedefs import Handler

from .appkeys import AUDIT, AUTH, PROXIES, SESSION_SOCKETS, SETTINGS, SHARES, SOCKETS, Closable
from .errors import BadRequest, LoginBusy, LoginFailed, LoginThrottled, PasswordTooLong
from .jsonbody import json_error, read_object, text
from .shares import Share
from .tasks import running
from .users import Role, User

log = logging.getLogger(__name__)

ANONYMOUS = User("anonymous", "", Role.OPERATOR, ("*",))
SWEEP_INTERVAL = 2.0
REVOKE_TIMEOUT = 5.0
_PUBLIC = ("/healthz", "/login", "/api/login")
_PUBLIC_PREFIXES = ("/static/dist/", "/s/", "/login/")
# A name and a password of at most 1 KiB each, even \u-escaped, fit easily.
LOGIN_BODY_LIMIT = 8 * 1024
# The answers that carry a session cookie: never kept by a cache.
_NO_STORE = {"Cache-Control": "no-store"}
_USER = web.RequestKey("user", User)
# The resolved client address ("" for none), once per request.
_CLIENT = web.RequestKey("client", str)
_SESSION = web.RequestKey("session", str)


def cookie_name(app: web.Application, kind: str = "session") -> str:
    """The session cookie (``kind="session"``) or the spectator one ("spectate").

    Spectators get a cookie of their own, so opening a link never logs an
    operator out. __Host- binds a cookie to this exact host, https and Path=/.
    """
    https = app[SETTINGS].public_origin.startswith("https://")
    return f"__Host-gateway_{kind}" if https else f"gateway_{kind}"


def _set_cookie(request: web.Request, response: web.StreamResponse, kind: str, value: str) -> None:
    response.set_cookie(
        cookie_name(request.app, kind),
        value,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.app[SETTINGS].public_origin.startswith("https://"),
    )


def user_of(request: web.Request) -> User:
    """The caller, as the auth middleware established it."""
    # Not request.get(): aiohttp types only [] by RequestKey.
    return request[_USER] if _USER in request else ANONYMOUS  # noqa: SIM401


def session_of(request: web.Request) -> str | None:
    return request.get(_SESSION)


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if there is one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def client_address(request: web.Request) -> str | None:
    """The client's address: the TCP peer, or what a trusted proxy says it is."""
    if _CLIENT not in request:
        forwarded = request.headers.getall("X-Forwarded-For", [])
        request[_CLIENT] = request.app[PROXIES].client(request.remote, forwarded) or ""
    return request[_CLIENT] or None


def logged_address(request: web.BaseRequest) -> str | None:
    """For the access log: the client as resolved, or the TCP peer of a request never routed.

    aiohttp logs requests its parser refused too (an unknown method, a huge
    header); those have no app to ask about proxies.
    """
    resolved = request.get(_CLIENT)
    return resolved if isinstance(resolved, str) else request.remote


def current_user(request: web.Request, *, touch: bool = True) -> User | None:
    """The caller as of now, or None if their session or token is gone.

    WebSocket handlers call this for every message, so a logout, a timeout,
    a revoked link or a user removed or downgraded by a config reload takes
    effect on the next frame, not at the next connect. ``touch=False`` for
    checks the gateway makes by itself: they are no activity of the user's
    and must not keep an idle session alive.
    """
    auth = request.app[AUTH]
    if not auth.enabled:
        return ANONYMOUS
    session = session_of(request)
    if session is not None:
        return auth.user_of(session, touch=touch)
    token = bearer_token(request)
    return None if token is None else auth.user_of_token(token)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    auth = request.app[AUTH]
    if not auth.enabled:
        return await handler(request)
    bearer = bearer_token(request)
    if bearer is not None:
        token_user = auth.user_of_token(bearer)
        if token_user is None:
            return json_error(401, "unauthorized", "unknown API token")
        request[_USER] = token_user
        return await handler(request)
    for kind in ("session", "spectate"):
        session = request.cookies.get(cookie_name(request.app, kind))
        user = auth.user_of(session)
        if session is not None and user is not None:
            request[_USER] = user
            request[_SESSION] = session
            return await handler(request)
    path = request.path
    if path in _PUBLIC or path.startswith(_PUBLIC_PREFIXES):
        return await handler(request)
    # Machines (scripts, sockets, scrapers) get a status, people the login page.
    if path.startswith("/api/") or path.endswith("/ws") or path == "/metrics":
        return json_error(401, "unauthorized", "log in first")
    raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")


async def login_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[SETTINGS].static_dir / "login.html")


async def login(request: web.Request) -> web.Response:
    """``POST /api/login {"username", "password"}`` → a session cookie."""
    body = await read_object(request, LOGIN_BODY_LIMIT)
    if not isinstance(body.get("username"), str) or not isinstance(body.get("password"), str):
        raise BadRequest('send {"username": ..., "password": ...}')
    name, password = text(body, "username"), text(body, "password")
    auth, audit = request.app[AUTH], request.app[AUDIT]
    address = client_address(request)
    try:
        session = await auth.login(name, password, address)
    except PasswordTooLong as exc:
        raise BadRequest(str(exc)) from None
    except LoginBusy as exc:
        # Not audited: nothing was checked, and a flood must not fill the trail.
        status = 429 if exc.scope == "client" else 503
        return json_error(status, "busy", str(exc), headers={"Retry-After": "1"})
    except LoginThrottled as exc:
        if exc.first:  # once per lock: refusals cost nothing, so could fill the trail
            audit.record("login_throttled", user=auth.recorded_name(name), address=address)
        retry = str(max(1, round(exc.retry_after)))
        return json_error(429, "throttled", str(exc), headers={"Retry-After": retry})
    except LoginFailed as exc:
        audit.record("login_failed", user=auth.recorded_name(name), address=address)
        return json_error(401, "login_failed", str(exc))
    # A session id from before the login is never reused (no fixation).
    old = request.cookies.get(cookie_name(request.app))
    if old:
        await end_session(request.app, old)
    user = auth.users[session.user]
    audit.record("login", user=user.name, role=user.role.value, address=client_address(request))
    response = web.json_response({"user": user.name, "role": user.role.value})
    _set_cookie(request, response, "session", session.id)
    return response


async def logout(request: web.Request) -> web.Response:
    """``POST /api/logout``: end the session server side; its sockets close."""
    session = session_of(request)
    if session is not None:
        request.app[AUDIT].record(
            "logout", user=user_of(request).name, address=client_address(request)
        )
        await end_session(request.app, session)
    response = web.Response(status=204)
    response.del_cookie(cookie_name(request.app), path="/")
    return response


async def one_time_login(request: web.Request) -> web.StreamResponse:
    """``GET /login/{token}``: a login link that works once (the demo's)."""
    session = request.app[AUTH].redeem_one_time_login(request.match_info["token"])
    if session is None:
        return json_error(404, "link_invalid", "this login link was used or is invalid")
    request.app[AUDIT].record("login", user=session.user, via="one-time link",
                              address=client_address(request))  # fmt: skip
    response = web.Response(status=303, headers={"Location": "/", **_NO_STORE})
    _set_cookie(request, response, "session", session.id)
    return response


async def spectate(request: web.Request) -> web.StreamResponse:
    """``GET /s/{token}``: trade a share link for a read-only cookie on its agent."""
    app = request.app
    share = await app[SHARES].redeem(request.match_info["token"], lambda s: link_backed(app, s))
    if share is None:
        # Unknown, tampered, expired, revoked, used up, or its creator may no
        # longer share that agent: one answer for all.
        return json_error(404, "link_invalid", "this link is invalid or has expired")
    session = request.app[AUTH].sessions.create(
        f"spectator:{share.id}", share_id=share.id, agent=share.agent
    )
    request.app[AUDIT].record(
        "share_used",
        share=share.id,
        agent=share.agent,
        uses=share.uses,
        address=client_address(request),
    )
    # To the clean URL, so the token leaves the address bar and the history.
    location = f"/agents/{share.agent}/"
    response = web.Response(status=303, headers={"Location": location, **_NO_STORE})
    _set_cookie(request, response, "spectate", session.id)
    return response


def link_backed(app: web.Application, share: Share) -> bool:
    """Whether the link's creator may still share its agent (a link is only as good as they are)."""
    auth = app[AUTH]
    if not auth.enabled:
        return True
    creator = auth.users.get(share.creator)
    return creator is not None and creator.can_write and creator.sees(share.agent)


async def end_share(app: web.Application, share_id: str) -> None:
    """Disconnect every spectator who joined through this link."""
    for session in app[AUTH].sessions.of_share(share_id):
        await end_session(app, session.id)


async def end_session(app: web.Application, session_id: str) -> None:
    app[AUTH].sessions.end(session_id)
    for ws in list(app[SESSION_SOCKETS].pop(session_id, ())):
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"session ended")


async def end_lapsed_links(app: web.Application) -> None:
    """Disconnect the spectators of links revoked, expired or no longer backed."""
    shares = app[SHARES]
    for share in shares.all():
        if not shares.active(share.id) or not link_backed(app, share):
            await end_share(app, share.id)


async def revalidate(app: web.Application) -> None:
    """Close (1008) every open socket and stream whose caller lost access to it.

    Run after a reload and by the sweeper: a removed user or token, a glob
    that no longer matches, a link whose creator lost the agent. Viewers
    never send a byte, so waiting for their next message is no check.
    """
    lapsed = [connection for connection, allowed in app[SOCKETS].items() if not allowed()]
    await asyncio.gather(*(_revoke(connection) for connection in lapsed))


async def _revoke(connection: Closable) -> None:
    # A peer that stopped reading can hold a close for ever; the sweeper
    # that called this must go on (it also ends expired sessions).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(REVOKE_TIMEOUT):
            await connection.close(code=WSCloseCode.POLICY_VIOLATION, message=b"access revoked")


async def sweeper(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: end expired sessions and close their sockets, periodically."""

    async def sweep_once() -> None:
        auth = app[AUTH]
        for session in auth.sessions.expire(auth.users):
            await end_session(app, session.id)
        await end_lapsed_links(app)
        # Sockets of sessions that ended some other way.
        open_sessions: dict[str, Any] = app[SESSION_SOCKETS]
        for session_id in [*open_sessions]:
            if auth.sessions.get(session_id, touch=False) is None:
                await end_session(app, session_id)
        await revalidate(app)

    async def sweep() -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await sweep_once()
            except Exception:
                # Sessions must keep expiring whatever one pass ran into.
                log.exception("session sweeper")

    async with running(sweep(), "session-sweeper"):
        yield


def setup(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    # GET only: a HEAD (a chat tool's link preview) must not use up a link.
    app.router.add_get("/s/{token}", spectate, allow_head=False)
    app.router.add_get("/login/{token}", one_time_login, allow_head=False)
