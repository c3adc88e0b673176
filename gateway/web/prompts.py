"""The attention inbox and safe answers to an agent's prompt.

    GET  /api/attention                                    agents waiting for someone
    POST /api/agents/{id}/prompt/{fingerprint}/answer      approve or deny, safely

An answer is refused (409) when the prompt on screen is not the one the
caller saw (``prompt_changed``), when it is younger than
:data:`~gateway.awareness.classify.SETTLE` (``not_settled``: a dialog being
drawn, or one that replaced another under the pointer), or when anyone typed
into the agent since it appeared (``input_race``: keys typed as a prompt
appears answer it, and the same digit may mean something else now). Then
the screen is looked at once more, and the option's own key is sent: its
digit, or Esc for "no"; never Enter, which takes whatever is highlighted.
The answer is confirmed when the prompt leaves the screen (``verified``)
and is never sent twice; every step is audited.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web

from ..appkeys import AUDIT, AWARENESS, METRICS
from ..awareness.classify import Prompt
from ..errors import BadRequest, UpstreamUnavailable
from .common import agent_json, fleet_of, json_error, read_object
from .identity import hub_of, user_of

__all__ = ["ACTIONS", "CONFIRM_WITHIN", "answer", "attention"]

ACTIONS: Final = ("approve_once", "approve_always", "deny", "option")
#: How long the prompt has to leave the screen for the answer to be verified.
CONFIRM_WITHIN: Final = 3.0
_KEYS: Final = {"esc": b"\x1b"}
_FINGERPRINT_CHARS: Final = frozenset("0123456789abcdef")


async def attention(request: web.Request) -> web.Response:
    """``GET /api/attention``: the agents someone has to look at, oldest first."""
    user, awareness = user_of(request), request.app[AWARENESS]
    waiting = [
        agent_json(request.app, hub)
        for hub in fleet_of(request)
        if user.sees(hub.agent_id) and awareness.needs_attention(hub.agent_id)
    ]
    waiting.sort(key=lambda agent: (agent["state_since"] or 0, agent["id"]))
    return web.json_response({"agents": waiting})


def _option(prompt: Prompt, body: dict[str, Any]) -> Any:
    action = body.get("action")
    if action not in ACTIONS:
        raise BadRequest(f"'action' must be one of {', '.join(ACTIONS)}")
    if action == "option":
        n = body.get("n")
        if not isinstance(n, int) or isinstance(n, bool):
            raise BadRequest("'n' must be the option's number")
        return next((o for o in prompt.options if o.n == n and o.key), None)
    matching = [o for o in prompt.options if o.role == action]
    # Two options with one role (Claude's plan dialog has three "yes"es): by
    # number only, or the wrong one could be sent.
    return matching[0] if len(matching) == 1 and matching[0].key else None


async def answer(request: web.Request) -> web.Response:
    """``POST /api/agents/{id}/prompt/{fingerprint}/answer {"action", "n"?}``."""
    hub = hub_of(request)
    user = user_of(request)
    if not user.can_write:
        return json_error(403, "read_only", "this user may only watch")
    fingerprint = request.match_info["fingerprint"]
    if len(fingerprint) != 16 or not set(fingerprint) <= _FINGERPRINT_CHARS:
        raise BadRequest("the fingerprint is the prompt's, as /api/agents shows it")
    body = await read_object(request, 1024)
    awareness, audit = request.app[AWARENESS], request.app[AUDIT]
    verdict = awareness.verdict(hub.agent_id)
    prompt = verdict.prompt if verdict is not None else None
    base = {"agent": hub.agent_id, "fingerprint": fingerprint, "action": body.get("action")}

    def refuse(status: int, code: str, message: str) -> web.Response:
        audit.record("prompt_refused", user=user.name, reason=code, **base)
        request.app[METRICS].prompt_answers.labels(result=code).inc()
        return json_error(status, code, message)

    if verdict is None or prompt is None or prompt.fingerprint != fingerprint:
        return refuse(409, "prompt_changed", "that prompt is not on the agent's screen now")
    option = _option(prompt, body)
    if option is None:
        return refuse(
            422, "no_such_option",
            "the prompt has no such option (or several with that role: answer by number)",
        )  # fmt: skip
    if not verdict.settled:
        return refuse(409, "not_settled", "the prompt has only just appeared: look again")
    if hub.inputs != verdict.inputs_at_prompt:
        return refuse(409, "input_race", "someone typed into the agent since the prompt appeared")
    audit.record("prompt_answer", user=user.name, option=option.n, key=option.key, **base)
    # The screen once more, as it is now: nothing may have changed since.
    await hub.wait_emulated()
    seen = awareness.look(hub)
    if seen.prompt is None or seen.prompt.fingerprint != fingerprint:
        return refuse(409, "prompt_changed", "the prompt changed as it was answered")
    if hub.inputs != verdict.inputs_at_prompt:
        return refuse(409, "input_race", "someone typed into the agent as it was answered")
    key = _KEYS.get(option.key, option.key.encode())
    try:
        await hub.send_input(key)
    except UpstreamUnavailable as exc:
        return refuse(503, "unavailable", str(exc))
    result = "unverified"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONFIRM_WITHIN
    while loop.time() < deadline:
        await asyncio.sleep(0.05)
        await hub.wait_emulated()
        now = awareness.look(hub)
        if now.prompt is None or now.prompt.fingerprint != fingerprint:
            result = "verified"
            break
    waited = loop.time() - prompt.first_seen_at
    audit.record(
        "prompt_answered", user=user.name, option=option.n, key=option.key, result=result,
        seconds_after_prompt=round(waited, 3), **base,
    )  # fmt: skip
    request.app[METRICS].prompt_answers.labels(result=result).inc()
    return web.json_response(
        {"agent": hub.agent_id, "result": result, "key": option.key, "option": option.n}
    )
