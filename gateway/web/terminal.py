"""The ttyd-compatible terminal WebSocket, and the direct writer under it.

``GET /agents/{id}/ws`` speaks ttyd's protocol (subprotocol ``tty``): a
handshake, then input and resizes from operators, output and the gateway's
status and notice frames to every viewer. Output frames are encoded once by
the hub and written straight to each socket that keeps up
(:func:`direct_writer`); a viewer that does not is sent to from its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

from aiohttp import WSCloseCode, WSMsgType, web

from ..appkeys import (
    AUDIT,
)
from ..core import ttyd
from ..core.hub import Hub
from ..core.viewer import Viewer
from ..errors import InputUnconfirmed, PeerProtocolError, RedisUnavailable, UpstreamUnavailable
from ..limits import MAX_INBOUND_MESSAGE, InputLimit
from .closing import HandlerClose
from .common import audit_input
from .identity import client_address, connection_slot, current_user, hub_of, tracked, user_of
from .wsmask import MaskedWebSocketResponse

log = logging.getLogger(__name__)


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


async def agent_ws(request: web.Request) -> web.StreamResponse:
    hub = hub_of(request)  # before the upgrade: unknown agents are a plain 404
    async with connection_slot(request) as refused:
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
        closer = HandlerClose(ws, request.transport)
        with tracked(request, closer, hub.agent_id):
            await closer.serve(_serve_viewer(request, closer, hub))
        return ws


def _bound_send_buffer(request: web.Request) -> None:
    transport = request.transport
    sock = None if transport is None else transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, VIEWER_SEND_BUFFER)


async def _serve_viewer(
    request: web.Request, closer: HandlerClose, hub: Hub
) -> tuple[int, bytes] | None:
    """The viewer's life on this socket; returns the close it ends with."""
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            first = await closer.receive()
    except TimeoutError:
        return WSCloseCode.POLICY_VIOLATION, b"handshake timeout"
    if first is None or first.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
        return None
    try:
        handshake = ttyd.parse_client(first.data)
    except PeerProtocolError as exc:
        return WSCloseCode.PROTOCOL_ERROR, str(exc).encode()[:120]
    if not isinstance(handshake, ttyd.Handshake):
        return WSCloseCode.PROTOCOL_ERROR, b"expected handshake"
    # An operator's handshake size resizes the agent, as ttyd's spawn would;
    # a read-only viewer's is ignored (the agent has one size). The join does
    # not wait for ttyd to take it: a frozen ttyd must not withhold the screen.
    writer = user_of(request).can_write
    resizing = None
    if writer and handshake.columns is not None and handshake.rows is not None:
        resizing = hub.resize_soon(handshake.columns, handshake.rows, who=user_of(request).name)
    try:
        return await _joined(request, closer, hub)
    finally:
        if resizing is not None:
            # Bounded by the upstream's send deadline; cancelled with the handler.
            await resizing


async def _joined(request: web.Request, closer: HandlerClose, hub: Hub) -> tuple[int, bytes] | None:
    """The joined viewer's life: the screen, then output and input until the end."""
    ws = closer.ws
    await ws.send_bytes(ttyd.SetTitle(hub.title).serialize())
    await ws.send_bytes(ttyd.SetPreferences({}).serialize())
    audit, user = request.app[AUDIT], user_of(request)
    viewer = hub.join(user.name)
    if request.transport is not None:
        viewer.attach(direct_writer(ws, request.transport))
    who = {"user": user.name, "role": user.role.value, "agent": hub.agent_id}
    audit.record("viewer_joined", **who, address=client_address(request))
    pump = asyncio.create_task(_pump(viewer, closer), name=f"pump:{hub.agent_id}")
    try:
        close = await _read(request, closer, hub, viewer)
        if close is not None:
            viewer.close(close[0])
        return close
    finally:
        # Nothing is sent after this: the close frame must be the last one.
        viewer.close(WSCloseCode.OK)
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        audit.record("viewer_left", **who, refused_writes=viewer.refused)


def direct_writer(
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


async def _pump(viewer: Viewer, closer: HandlerClose) -> None:
    """Send the viewer's batches until it is closed; then have the socket closed."""
    try:
        async for batch in viewer.batches():
            for frame in batch:
                await closer.ws.send_bytes(frame)
    except ConnectionError:
        return
    closer.ask(viewer.close_code or WSCloseCode.OK)


async def _read(
    request: web.Request, closer: HandlerClose, hub: Hub, viewer: Viewer
) -> tuple[int, bytes] | None:
    """Apply client messages; return a close (code, reason) to end with."""
    limit = InputLimit()
    while (msg := await closer.receive()) is not None:
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            break
        try:
            user = await current_user(request)
        except RedisUnavailable:
            # Whether this caller may still type cannot be checked: not sent.
            viewer.notice("input_refused", "input not sent: the gateway cannot check your session")
            continue
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
            except InputUnconfirmed as exc:
                viewer.notice("input_unconfirmed", f"input not confirmed: {exc}")
                audit_input(request, user.name, hub.agent_id, message.data, confirmed=False)
            except UpstreamUnavailable as exc:
                viewer.notice("input_refused", f"input not sent: {exc}")
            else:
                audit_input(request, user.name, hub.agent_id, message.data)
        elif isinstance(message, ttyd.Resize):
            await hub.resize(message.columns, message.rows, who=user.name, viewer=viewer)
        elif isinstance(message, ttyd.Pause):
            viewer.pause()
        else:
            viewer.resume()
    return None
