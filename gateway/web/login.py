"""Logging in and out: the password form, one-time links and spectator links.

A login sets a server-side session in an HttpOnly, SameSite cookie; the
password check is throttled per name and address (:mod:`gateway.auth`).
A one-time link (``/login/{token}``, what ``make run`` prints) or a spectator
link (``/s/{token}``) is used up by a GET only, and answers with a redirect
that is never stored.
"""

from __future__ import annotations

from aiohttp import web

from ..appkeys import AUDIT, AUTH, SETTINGS, SHARES
from ..auth import session_key
from ..errors import BadRequest, LoginBusy, LoginFailed, LoginThrottled, PasswordTooLong
from .common import HOME, LINK_GONE, LOGIN, error_answer, json_error, read_object, text
from .identity import (
    client_address,
    cookie_name,
    end_session,
    link_backed,
    session_of,
    set_cookie,
    user_of,
)

# A name and a password of at most 1 KiB each, even \u-escaped, fit easily.
LOGIN_BODY_LIMIT = 8 * 1024


# The answers that carry a session cookie: never kept by a cache.
_NO_STORE = {"Cache-Control": "no-store"}


# Where a demo's admin gets a login link: its password is random and never shown.
DEMO_HINT = (
    "Use the one-time login link `make run` printed; press Enter in its console for a fresh one."
)


async def login_options(request: web.Request) -> web.Response:
    """``GET /api/login``: how one logs in here, for the login page (public).

    ``demo`` when the one-time link is the way (``gateway serve --demo``);
    ``password`` when some configured user has one (not the demo's admin).
    """
    settings, auth = request.app[SETTINGS], request.app[AUTH]
    configured = any(user.name != "demo" or not settings.demo for user in auth.users.values())
    return web.json_response(
        {
            "demo": settings.demo,
            "password": configured,
            "hint": DEMO_HINT if settings.demo else None,
        }
    )


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
        await end_session(request.app, session_key(old))
    user = auth.users[session.user]
    audit.record("login", user=user.name, role=user.role.value, address=client_address(request))
    response = web.json_response({"user": user.name, "role": user.role.value})
    set_cookie(request, response, "session", session.id)
    return response


async def logout(request: web.Request) -> web.Response:
    """``POST /api/logout``: end the session server side; its sockets close."""
    session = session_of(request)
    if session is not None:
        request.app[AUDIT].record(
            "logout", user=user_of(request).name, address=client_address(request)
        )
        await end_session(request.app, session_key(session))
    response = web.Response(status=204)
    response.del_cookie(cookie_name(request.app), path="/")
    return response


async def one_time_login(request: web.Request) -> web.StreamResponse:
    """``GET /login/{token}``: a login link that works once (the demo's)."""
    session = await request.app[AUTH].redeem_one_time_login(request.match_info["token"])
    if session is None:
        demo = request.app[SETTINGS].demo
        return error_answer(
            request,
            404,
            "link_invalid",
            "this login link was used or is invalid",
            heading="This login link does not work",
            page="A login link works once: this one was used already, or it is not valid."
            + (f" {DEMO_HINT}" if demo else ""),
            ways=(LOGIN,),
        )
    request.app[AUDIT].record("login", user=session.user, via="one-time link",
                              address=client_address(request))  # fmt: skip
    response = web.Response(status=303, headers={"Location": "/", **_NO_STORE})
    set_cookie(request, response, "session", session.id)
    return response


async def spectate(request: web.Request) -> web.StreamResponse:
    """``GET /s/{token}``: trade a share link for a read-only cookie on its agent."""
    app = request.app
    share = await app[SHARES].redeem(request.match_info["token"], lambda s: link_backed(app, s))
    if share is None:
        # Unknown, tampered, expired, revoked, used up, or its creator may no
        # longer share that agent: one answer for all.
        return error_answer(
            request,
            404,
            "link_invalid",
            LINK_GONE,
            heading="This link does not work",
            page=f"{LINK_GONE[0].upper()}{LINK_GONE[1:]}.",
            ways=(HOME, LOGIN),
        )
    session = await request.app[AUTH].sessions.create(
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
    set_cookie(request, response, "spectate", session.id)
    return response
