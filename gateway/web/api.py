"""The JSON API and the operational endpoints; errors become statuses.

Routes::

    GET /healthz                  liveness: agents, Docker, the audit log
    GET /metrics                  Prometheus
    GET /api/me                   who is calling, and what they may do
    GET /api/agents               every agent with status, size, viewers, title
    GET /api/agents/{id}/screen   ?format=text|ansi|json[&ansi=1]: the current screen
    POST /api/agents/{id}/input   {"data"}: type into one agent (operators)
    POST /api/input               {"agents", "data"}: one command to many, per-agent results
    GET /api/audit                ?offset=&limit=: the audit trail (admins)
    POST /api/agents/{id}/shares  {"ttl_seconds", "max_uses"?, "label"?}: a spectator link
    GET /api/shares               the links the caller may manage
    DELETE /api/shares/{id}       revoke a link, disconnecting its spectators
    GET /agents/{id}/token        {"token": ""}, like ttyd's /token
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from .. import metrics
from ..appkeys import (
    AUDIT,
    AUTH,
    AWARENESS,
    DISCOVERY,
    METRICS,
    READINESS,
    REPLICA,
    SETTINGS,
    SHARES,
)
from ..core.hub import Hub
from ..errors import AgentNotFound, BadRequest, InputUnconfirmed, UpstreamUnavailable
from ..limits import MAX_INBOUND_MESSAGE
from ..shares import MAX_TTL, MAX_USES, MIN_TTL, Share, clean_label
from ..users import Role
from .common import agent_json, audit_input, fleet_of, json_error, read_object, text
from .identity import ANONYMOUS, end_share, hub_of, session_of, user_of

# Broadcast input is refused to agents in these states unless overridden: at
# a dialog, the command line's Enter takes whatever option is highlighted.
AWAITING = ("waiting_approval", "waiting_input", "setup_required")
SCREEN_WAIT = 2.0


MAX_INPUT_BODY = 256 * 1024


MAX_BROADCAST = 100


# Each agent's share of a broadcast: one that has not answered in this long is
# reported as timed out, so a stuck agent never holds the others' answers. Above
# the replica holder's answer wait (2 s), below the upstream's send deadline (5 s).
BROADCAST_TIMEOUT = 3.0


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
    body = {"status": "ok" if healthy else "degraded", "docker": docker, "audit": audit}
    # Reported, not failed on: restarting a gateway would not bring Redis back.
    node = request.app.get(REPLICA)
    body["redis"] = "disabled" if node is None else node.link.health
    if node is not None:
        body["replica"] = node.replica
    return web.json_response(body, status=200 if healthy else 503)


async def readyz(request: web.Request) -> web.Response:
    """Whether to send traffic here: 200 once started, 503 while starting or draining."""
    readiness = request.app[READINESS]
    return web.json_response(
        {"status": readiness.phase.value}, status=200 if readiness.ready else 503
    )


async def me(request: web.Request) -> web.Response:
    """Who the caller is, for the pages: what to show and what to offer."""
    user, auth = user_of(request), request.app[AUTH]
    session_id = session_of(request)
    session = await auth.sessions.get(session_id, touch=False) if session_id else None
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
            # Lines of history a join brings: the page's xterm.js keeps as many.
            "scrollback": request.app[SETTINGS].scrollback,
        }
    )


async def list_agents(request: web.Request) -> web.Response:
    user = user_of(request)
    visible = [agent_json(request.app, hub) for hub in fleet_of(request) if user.sees(hub.agent_id)]
    return web.json_response({"agents": visible})


async def screen(request: web.Request) -> web.Response:
    hub = hub_of(request)
    fmt = request.query.get("format", "text")
    if fmt not in ("text", "ansi", "json"):
        return json_error(400, "bad_request", "format must be one of text, ansi, json")
    with_ansi = request.query.get("ansi", "0")
    if with_ansi not in ("0", "1") or (with_ansi == "1" and fmt != "json"):
        return json_error(400, "bad_request", "ansi=1 goes with format=json only")
    # Everything published so far, emulated: the answer is current, not lagging.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(hub.wait_emulated(), SCREEN_WAIT)
    if fmt == "json":
        data = {"id": hub.agent_id, **hub.screen.to_json()}
        if with_ansi == "1":
            # The wall's tiles: the coloured picture with the size, cursor and
            # title of the same moment (an activity event's title can be a
            # step behind the emulator, this one is not).
            data["ansi"] = hub.screen.ansi()
        return web.json_response(data)
    text = hub.screen.text() if fmt == "text" else hub.screen.ansi()
    return web.Response(text=text, content_type="text/plain")


async def _json_body(request: web.Request) -> dict[str, Any]:
    return await read_object(request, MAX_INPUT_BODY)


def _input_data(body: dict[str, Any]) -> bytes:
    encoded = text(body, "data", empty=False).encode()
    if len(encoded) > MAX_INBOUND_MESSAGE:
        raise BadRequest(f"'data' is limited to {MAX_INBOUND_MESSAGE} bytes")
    return encoded


# Unconfirmed (replica mode: the holder's answer did not come) is no 503:
# retrying what may have been typed could type it twice.
_STATUS = {"read_only": 403, "unconfirmed": 504}


async def _send(request: web.Request, hub: Hub, data: bytes, writer: bool) -> dict[str, Any]:
    """One agent's answer to an input request."""
    if not writer:
        return {"ok": False, "error": "read_only", "message": "this user may only watch"}
    try:
        await hub.send_input(data)
    except InputUnconfirmed as exc:
        audit_input(request, user_of(request).name, hub.agent_id, data, confirmed=False)
        return {"ok": False, "error": "unconfirmed", "message": str(exc)}
    except UpstreamUnavailable as exc:
        return {"ok": False, "error": "unavailable", "message": str(exc)}
    audit_input(request, user_of(request).name, hub.agent_id, data)
    return {"ok": True, "sent": len(data)}


async def agent_input(request: web.Request) -> web.Response:
    """``POST /api/agents/{id}/input {"data"}``: type into one agent."""
    hub = hub_of(request)
    data = _input_data(await _json_body(request))
    result = await _send(request, hub, data, user_of(request).can_write)
    status = 200 if result["ok"] else _STATUS.get(result["error"], 503)
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
    override = body.get("override", False)
    if not isinstance(override, bool):
        raise BadRequest("'override' must be true or false")
    user, fleet = user_of(request), fleet_of(request)
    ids = list(dict.fromkeys(agents))
    awareness = request.app[AWARENESS]

    async def one(agent_id: str) -> dict[str, Any]:
        try:
            if not user.sees(agent_id):
                raise AgentNotFound(agent_id)
            hub = fleet.get(agent_id)
        except AgentNotFound as exc:
            return {"ok": False, "error": "not_found", "message": str(exc)}
        verdict = awareness.verdict(agent_id)
        # The verdict, and a look now (a dialog that appeared since the last look).
        states = {verdict.state if verdict else "unknown", awareness.look(hub).state}
        if not override and states & set(AWAITING):
            # A command line ends in Enter, which would take whatever option
            # the agent's dialog has highlighted.
            return {
                "ok": False,
                "error": "awaiting_approval",
                "message": "the agent is at a dialog: answer its prompt,"
                ' or send with "override": true',
            }
        try:
            async with asyncio.timeout(BROADCAST_TIMEOUT):
                return await _send(request, hub, data, user.can_write)
        except TimeoutError:
            # The send was under way: its bytes may be in a socket buffer already.
            audit_input(request, user.name, hub.agent_id, data, confirmed=False)
            return {
                "ok": False,
                "error": "timeout",
                "message": f"the agent did not take it within {BROADCAST_TIMEOUT:.0f} s;"
                " it may have been typed",
            }

    results = await asyncio.gather(*(one(agent_id) for agent_id in ids))
    return web.json_response({"results": dict(zip(ids, results, strict=True))})


async def create_share(request: web.Request) -> web.Response:
    """``POST /api/agents/{id}/shares {"ttl_seconds", "max_uses"?, "label"?}``: a link."""
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
    label = clean_label(body.get("label"))
    share, share_token = await request.app[SHARES].create(
        hub.agent_id, user.name, ttl, max_uses, label
    )
    request.app[AUDIT].record(
        "share_created",
        user=user.name,
        share=share.id,
        agent=hub.agent_id,
        ttl_seconds=ttl,
        max_uses=max_uses,
        label=label,
    )
    url = f"{request.app[SETTINGS].public_origin}/s/{share_token}"
    return web.json_response(
        {
            "id": share.id,
            "url": url,
            "expires_at": share.expires_at,
            "max_uses": share.max_uses,
            "label": share.label,
        },
        status=201,
    )


async def _shares_of(request: web.Request) -> list[Share]:
    """Admins see every link; others the ones they created."""
    user = user_of(request)
    return [
        share
        for share in await request.app[SHARES].all()
        if user.role is Role.ADMIN or share.creator == user.name
    ]


async def list_shares(request: web.Request) -> web.Response:
    return web.json_response({"shares": [share.public() for share in await _shares_of(request)]})


async def revoke_share(request: web.Request) -> web.Response:
    """``DELETE /api/shares/{id}``: the link stops working and its spectators are cut off."""
    share_id = request.match_info["share_id"]
    if not any(share.id == share_id for share in await _shares_of(request)):
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


async def token(request: web.Request) -> web.Response:
    hub_of(request)
    # Browsers authenticate with their cookie (later); ttyd's client wants a token.
    return web.json_response({"token": ""})
