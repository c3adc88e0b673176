"""Who is calling: the session cookie or bearer token, and what they may still hold.

With no ``[[users]]`` configured the gateway is open (and loopback-only):
every caller is :data:`ANONYMOUS`, an operator of every agent. With users,
every route but the login page, ``/api/login``, ``/healthz``, the favicon
and the static bundle needs a live session; an API call without one gets 401, a page a
redirect to ``/login``.

Every open WebSocket and SSE stream is registered (:func:`tracked`) with a
check of whether its caller may still have it open. Ending a session
(logout, timeout, the user gone) closes its connections with 1008 within
:data:`SWEEP_INTERVAL` seconds; so does losing access to what a socket or
stream shows (a narrowed glob, a removed token, a link whose creator lost
the agent), at once after a reload (:func:`revalidate`).

In replica mode a session may end on another replica: :func:`end_session`
tells the others through the control channel (:data:`~gateway.appkeys.CONTROL`),
and each closes its own sockets of that session (:func:`close_session_sockets`);
the sweeper, which asks the shared store which sessions still live, is the
backstop for a message missed. While Redis does not answer, a new request
gets 503, typing into a terminal is refused (it cannot be checked), and
what is already open stays open: nothing can have ended meanwhile that the
sweeper will not find once Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

from aiohttp import WSCloseCode, web
from aiohttp.typedefs import Handler

from ..appkeys import (
    AUTH,
    CONNECTIONS,
    CONTROL,
    PROXIES,
    SESSION_SOCKETS,
    SETTINGS,
    SHARES,
    SOCKETS,
    Closable,
)
from ..auth import session_key
from ..core.hub import Hub
from ..errors import AgentNotFound, RedisUnavailable
from ..limits import CONNECTIONS_PER_USER
from ..shares import Share
from ..tasks import running
from ..users import Role, User
from .common import HOME, LINK_GONE, LOGIN, error_page, fleet_of, json_error, wants_json

ANONYMOUS = User("anonymous", "", Role.OPERATOR, ("*",))

log = logging.getLogger(__name__)


SWEEP_INTERVAL = 2.0


REVOKE_TIMEOUT = 5.0


_PUBLIC = ("/healthz", "/readyz", "/login", "/api/login", "/favicon.ico", "/favicon.svg")


_PUBLIC_PREFIXES = ("/static/dist/", "/s/", "/login/")


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


def set_cookie(request: web.Request, response: web.StreamResponse, kind: str, value: str) -> None:
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


async def current_user(request: web.Request, *, touch: bool = True) -> User | None:
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
        return await auth.user_of(session, touch=touch)
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
        try:
            user = await auth.user_of(session)
        except RedisUnavailable:
            # Outside error_middleware, so answered here: a clear 503, not a 500.
            return redis_unavailable()
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
    spectated = cookie_name(request.app, "spectate")
    if spectated in request.cookies and not wants_json(request):
        # A spectator whose link was revoked or ran out (or whose session a
        # restart ended) has no login: the login form would only mislead.
        # Said once: the dead cookie goes, so the next visit is a plain one.
        page = error_page(401, "This link does not work", f"{LINK_GONE[0].upper()}{LINK_GONE[1:]}.",
                          (HOME, LOGIN))  # fmt: skip
        page.del_cookie(spectated, path="/")
        return page
    raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")


def redis_unavailable() -> web.Response:
    return json_error(
        503,
        "redis_unavailable",
        "the gateway cannot reach its shared state (Redis); retry in a moment",
        headers={"Retry-After": "1"},
    )


def link_backed(app: web.Application, share: Share) -> bool:
    """Whether the link's creator may still share its agent (a link is only as good as they are)."""
    auth = app[AUTH]
    if not auth.enabled:
        return True
    creator = auth.users.get(share.creator)
    return creator is not None and creator.can_write and creator.sees(share.agent)


async def end_share(app: web.Application, share_id: str) -> None:
    """Disconnect every spectator who joined through this link (on every replica)."""
    for session in await app[AUTH].sessions.of_share(share_id):
        await end_session(app, session.key)


async def end_session(app: web.Application, key: str) -> None:
    """End the session with this key and close its sockets here and on every other replica."""
    await app[AUTH].sessions.end(key)
    await close_session_sockets(app, key)
    await app[CONTROL].publish("session", key)


async def close_session_sockets(app: web.Application, key: str) -> None:
    """Close (1008) this replica's sockets and streams of the session with this key."""
    for ws in list(app[SESSION_SOCKETS].pop(key, ())):
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"session ended")


async def end_lapsed_links(app: web.Application) -> None:
    """Disconnect the spectators of links revoked, expired or no longer backed."""
    shares = app[SHARES]
    for share in await shares.all():
        if not await shares.active(share.id) or not link_backed(app, share):
            await end_share(app, share.id)


async def revalidate(app: web.Application) -> None:
    """Close (1008) every open socket and stream whose caller lost access to it.

    Run after a reload and by the sweeper: a removed user or token, a glob
    that no longer matches, a link whose creator lost the agent. Viewers
    never send a byte, so waiting for their next message is no check.
    """
    lapsed = [
        connection for connection, allowed in list(app[SOCKETS].items()) if not await allowed()
    ]
    await asyncio.gather(*(_revoke(connection) for connection in lapsed))


async def _revoke(connection: Closable) -> None:
    # A peer that stopped reading can hold a close for ever; the sweeper
    # that called this must go on (it also ends expired sessions), and the
    # connection must not outlive its access: dropped, then.
    try:
        async with asyncio.timeout(REVOKE_TIMEOUT):
            await connection.close(code=WSCloseCode.POLICY_VIOLATION, message=b"access revoked")
    except TimeoutError:
        connection.abort()


async def sweeper(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: end expired sessions and close their sockets, periodically."""

    async def sweep_once() -> None:
        auth = app[AUTH]
        for session in await auth.sessions.expire(auth.users):
            await end_session(app, session.key)
        await end_lapsed_links(app)
        # Sockets of sessions that ended some other way (timed out, or ended
        # on another replica whose message this one missed).
        open_sessions: dict[str, Any] = app[SESSION_SOCKETS]
        live = await auth.sessions.alive([*open_sessions])
        for key in [key for key in open_sessions if key not in live]:
            await close_session_sockets(app, key)
        await revalidate(app)

    async def sweep() -> None:
        down = False
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await sweep_once()
                down = False
            except RedisUnavailable as exc:
                # Nothing to sweep against; said once per outage, no traceback.
                if not down:
                    log.warning("session sweeper: Redis unavailable (%s); will retry", exc)
                down = True
            except Exception:
                # Sessions must keep expiring whatever one pass ran into.
                log.exception("session sweeper")

    async with running(sweep(), "session-sweeper"):
        yield


async def may_see(request: web.Request, agent_id: str | None = None, *, touch: bool = True) -> bool:
    """Whether the caller, as of now, is still someone (and sees ``agent_id``)."""
    user = await current_user(request, touch=touch)
    return user is not None and (agent_id is None or user.sees(agent_id))


async def may_keep(
    request: web.Request, agent_id: str | None = None, *, touch: bool = False
) -> bool:
    """Whether an open socket or stream may stay open: :func:`may_see`.

    True while Redis does not answer: see this module's docstring.
    """
    try:
        return await may_see(request, agent_id, touch=touch)
    except RedisUnavailable:
        return True


@contextlib.asynccontextmanager
async def connection_slot(request: web.Request) -> AsyncIterator[web.Response | None]:
    """A place among this user's open terminals and streams, held for the block.

    Yields the 429 answer instead when the user holds the most already. The
    place is taken before the upgrade, so concurrent upgrades cannot pass
    the cap together (on every replica: the count is shared), and given
    back however the block ends.
    """
    user, connections = user_of(request), request.app[CONNECTIONS]
    # Open mode (no users, loopback only) has one anonymous user: no cap there.
    limit = None if user is ANONYMOUS else CONNECTIONS_PER_USER
    if not await connections.acquire(user.name, limit):
        yield json_error(
            429,
            "too_many_connections",
            f"at most {CONNECTIONS_PER_USER} terminals and streams per user",
        )
        return
    try:
        yield None
    finally:
        await connections.release(user.name)


@contextlib.contextmanager
def tracked(
    request: web.Request, connection: Closable, agent_id: str | None = None
) -> Iterator[None]:
    """Make a long-lived connection closable by logout, revocation and shutdown.

    It is closed too once its caller may no longer see ``agent_id`` (or is
    gone): :func:`revalidate` checks every open one.
    """
    session = session_of(request)
    sockets = request.app[SESSION_SOCKETS]
    by_session = sockets.setdefault(session_key(session), set()) if session else set()
    request.app[SOCKETS][connection] = lambda: may_keep(request, agent_id)
    by_session.add(connection)
    try:
        yield
    finally:
        request.app[SOCKETS].pop(connection, None)
        by_session.discard(connection)
        if session and not by_session and sockets.get(session_key(session)) is by_session:
            del sockets[session_key(session)]


def hub_of(request: web.Request) -> Hub:
    """The agent in the URL, if this caller may see it (else 404, like a missing one)."""
    agent_id = request.match_info["agent_id"]
    if not user_of(request).sees(agent_id):
        raise AgentNotFound(agent_id)
    return fleet_of(request).get(agent_id)
