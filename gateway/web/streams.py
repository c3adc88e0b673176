"""The two Server-Sent Events endpoints.

``GET /api/events``: fleet changes for the dashboard. A client without a
usable ``Last-Event-ID`` first gets a ``snapshot`` (every agent it may see)
whose id is the feed's position, so resuming from it misses nothing.

``GET /api/agents/{id}/logs``: a Docker agent's container log lines, one
``log`` event each. ``?tail=N`` (default 100, ``all`` for everything kept)
on a first connect; a resuming client gets exactly what it missed, or a
``reset`` event first when that has left the ring. Log ids name lines by
their source (container, Docker's timestamp, a count), so they resume on
any replica; feed ids are the feed's, the same on every replica with
``[redis]`` (:mod:`gateway.replica.events`).

Both re-check the caller at every wake-up, like the terminal WebSocket does
per message, and end when their session does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from ..appkeys import DISCOVERY, EVENTS, FLEET, LOGS
from ..docker.logdecode import LogLine
from ..errors import BadRequest, RedisUnavailable
from ..events import Event
from ..ring import Ring
from ..tasks import Signal
from ..users import Role, User
from .common import agent_json, json_error
from .identity import connection_slot, current_user, hub_of, may_keep, tracked, user_of
from .sse import EventStream, format_event

T = TypeVar("T")

# Events written per wake-up at most, so one stream cannot hog the loop.
BATCH = 500
DEFAULT_TAIL = 100
# Sees nothing: the snapshot of a caller who is gone (their stream is ending).
NOBODY = User("", "", Role.VIEWER, ())


def _last_event_id(request: web.Request) -> str | None:
    # EventSource sends the header when it reconnects; a page that starts a
    # fresh EventSource after a reload passes what it had in the query.
    return request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or None


def _reset(reason: str) -> bytes:
    return format_event(json.dumps({"reason": reason}), event="reset")


async def _pump(
    stream: EventStream,
    ring: Ring[T],
    signal: Signal,
    start: int,
    render: Callable[[int, T], bytes | None],
    allowed: Callable[[], Awaitable[bool]],
    on_gap: Callable[[], tuple[list[bytes], int]],
) -> None:
    """Send ``ring`` items from ``start`` on as they come, until closed or not allowed."""
    epoch = ring.epoch
    while not stream.closing.is_set():
        waiter = signal.waiter()
        if not await allowed():
            return
        if start < ring.first_seq or ring.epoch != epoch:
            # This client fell further behind than the ring reaches, or the
            # ring started over (replica mode: Redis lost the feed).
            epoch = ring.epoch
            events, start = on_gap()
            await stream.send(events)
            continue
        items = ring.since(start, BATCH)
        if items:
            start = items[-1][0] + 1
            await stream.send([e for seq, item in items if (e := render(seq, item))])
            continue
        await stream.wait(waiter)
        if not waiter.is_set() and not stream.closing.is_set():
            await stream.keepalive()


async def _serve(
    request: web.Request, run: Callable[[EventStream], Any], agent_id: str | None = None
) -> web.StreamResponse:
    async with connection_slot(request) as refused:
        if refused is not None:
            return refused
        stream = EventStream(request)
        with tracked(request, stream, agent_id):
            await stream.open()
            try:
                await run(stream)
            except ConnectionError:
                return stream.response
            await stream.finish()
    return stream.response


async def events(request: web.Request) -> web.StreamResponse:
    app = request.app
    bus = app[EVENTS]
    ring = bus.ring

    # The caller as of the last check (once per wake-up, not per event: in
    # replica mode each check is a round trip to Redis). A reload may have
    # narrowed what they see since the stream began.
    caller: list[User] = [user_of(request)]

    async def allowed() -> bool:
        # Touching, as a request would: an open dashboard is the user's activity.
        try:
            user = await current_user(request)
        except RedisUnavailable:
            return True  # kept as it was: see identity.may_keep
        caller[0] = user or NOBODY
        return user is not None

    def snapshot() -> tuple[list[bytes], int]:
        user = caller[0]
        discovery = app.get(DISCOVERY)
        data = {
            "agents": [agent_json(app, hub) for hub in app[FLEET] if user.sees(hub.agent_id)],
            "docker": None
            if discovery is None
            else {"status": discovery.status, "message": discovery.message},
        }
        return [format_event(json.dumps(data), event="snapshot", event_id=ring.last_id)], (
            ring.next_seq
        )

    def render(seq: int, event: Event) -> bytes | None:
        if event.agent is not None and not caller[0].sees(event.agent):
            return None
        return format_event(json.dumps(event.data), event=event.kind, event_id=ring.event_id(seq))

    def gap() -> tuple[list[bytes], int]:
        events, start = snapshot()
        return [_reset("the feed moved on; here is a fresh snapshot"), *events], start

    async def run(stream: EventStream) -> None:
        last = _last_event_id(request)
        # Awaited: in replica mode this replica may not have read yet what
        # the client saw on another one.
        start = await bus.resume(last)
        if start is None:
            if not await allowed():
                return
            first, start = gap() if last else snapshot()
            await stream.send(first)
        await _pump(stream, ring, bus.signal, start, render, allowed, gap)

    return await _serve(request, run)


async def agent_logs(request: web.Request) -> web.StreamResponse:
    asked = time.time_ns()
    hub = hub_of(request)  # 404 unless this caller sees the agent
    discovery = request.app.get(DISCOVERY)
    container = None if discovery is None else discovery.container_of(hub.agent_id)
    if discovery is None or container is None:
        return json_error(
            404, "no_logs", f"agent {hub.agent_id!r} is not a Docker container: it has no logs"
        )
    tail = _tail(request.query.get("tail"), ring_size=request.app[LOGS].capacity)
    logs = request.app[LOGS].of(container)
    ring = logs.ring
    agent_id = hub.agent_id
    # The key of the client's last line: a resumed client may be ahead of this
    # gateway's ring (it read on another replica), and gets nothing twice.
    seen: list[tuple[int, int]] = [(0, 0)]

    def render(seq: int, line: LogLine) -> bytes | None:
        if line.key <= seen[0]:
            return None
        return format_event(line.json(), event="log", event_id=logs.event_id(line))

    def gap() -> tuple[list[bytes], int]:
        return [_reset("lines were dropped from the buffer before they were sent")], (
            ring.first_seq
        )

    async def allowed() -> bool:
        # A recreated container is another log: the client reconnects and gets a reset.
        now = discovery.container_of(agent_id)
        return (
            now is not None
            and now.id == container.id
            and await may_keep(request, agent_id, touch=True)
        )

    async def run(stream: EventStream) -> None:
        async with logs.listening():
            while not logs.loaded.is_set():
                if stream.closing.is_set() or not await allowed():
                    return
                await stream.wait(logs.loaded)
                if not logs.loaded.is_set():
                    await stream.keepalive()
            last = _last_event_id(request)
            resumed = logs.resume(last)
            if resumed is None:
                if last:
                    await stream.send([_reset("what you missed is no longer buffered")])
                start = logged_since(ring, ring.tail(tail), asked)
            else:
                start, seen[0] = resumed
            await _pump(stream, ring, logs.signal, start, render, allowed, gap)

    return await _serve(request, run, agent_id)


def logged_since(ring: Ring[LogLine], start: int, asked: int) -> int:
    """``start``, moved back over lines Docker logged after the client asked.

    Until the history has loaded a first client waits, its 200 already sent;
    what the container prints meanwhile arrives as history, and the tail
    alone would skip it. (Docker's clock is the host's: the tests' engine
    and the usual socket mount share it.)
    """
    while start > ring.first_seq:
        ((seq, line),) = ring.since(start - 1, 1)
        if line.ns < asked:
            break
        start = seq
    return start


def _tail(value: str | None, *, ring_size: int) -> int:
    if value is None:
        return DEFAULT_TAIL
    if value == "all":
        return ring_size
    # Not str.isdigit(): it is true for "²", which int() refuses.
    if not value.isascii() or not value.isdigit() or int(value) > ring_size:
        raise BadRequest(f"tail must be 0..{ring_size} or 'all'")
    return int(value)
