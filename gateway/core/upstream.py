"""One client connection from the gateway to an agent's ttyd.

:class:`Upstream` keeps a single WebSocket to ttyd open for as long as the
agent exists, whether or not anybody watches, so the agent's screen stays
current. When ttyd goes away or restarts it reconnects with capped
exponential backoff and jitter (:class:`Backoff`, sans-I/O). While it is down,
:meth:`Upstream.send` raises :class:`~gateway.errors.UpstreamUnavailable`:
input is refused explicitly, never queued and replayed into a terminal whose
state the operator can no longer see.

A ttyd that stops answering while its socket stays open (frozen, SIGSTOP, a
dead path) is found by a liveness check of our own (:meth:`Upstream._watch`):
a ping every :data:`PING_INTERVAL`, each sent from a task of its own so a
send blocked on a full socket does not hold the check. Input is refused once
ttyd has been silent for :data:`QUIET_LIMIT`; after :data:`LIVENESS_DEADLINE`
the connection is dropped and redialled with the usual backoff. Every send
has a deadline too (:data:`SEND_TIMEOUT`).

ttyd accepts a handshake whether or not its command can run: with the
agent's tmux gone, every retry's ``tmux attach`` prints "no server running"
and exits at once. So a new connection is on probation
(:meth:`Upstream._probation`) until it has shown it is a session: output
that the connection outlives by :data:`SETTLE`, or :data:`ESTABLISH_MAX` of
life. Only then is it announced ``connected`` and its output handed on; one
that ends before is a failed attempt, and what it printed never reaches the
screen the viewers keep.

What arrives is handed to an :class:`UpstreamSink` (the hub); the sink may
make the read loop wait (emulator backpressure), never a viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import websockets
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.typing import Subprotocol

from ..errors import (
    InputUnconfirmed,
    PeerProtocolError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from ..screen.cells import plain
from ..tasks import cancel
from . import ttyd
from .backoff import Backoff
from .state import AgentState
from .target import Target

log = logging.getLogger(__name__)

# ttyd sends a pty read per message; 1 MiB bounds a single frame from a
# misbehaving peer while being far above what ttyd produces (it reads ≤ 64 KiB).
MAX_UPSTREAM_FRAME = 1 << 20
# Seconds our close of a ttyd connection waits for ttyd's answer.
CLOSE_TIMEOUT = 1.0
# ttyd answers a ping within milliseconds on any link the gateway serves; one a
# second keeps the silence we can measure close to the truth at a few bytes a second.
PING_INTERVAL = 1.0
# Silent this long (about three missed pongs), ttyd is taken for frozen: input
# is refused instead of sitting in socket buffers until it resumes.
QUIET_LIMIT = 3.0
# Silent this long, the connection is dropped and redialled (the status says why).
LIVENESS_DEADLINE = 5.0
# A send that ttyd's socket has not taken in this long fails the connection:
# a 64 KiB message drains in milliseconds unless the peer stopped reading.
SEND_TIMEOUT = 5.0
# A new connection becomes a session once ttyd's command has printed and the
# connection lived this long after: a command that cannot run (`tmux attach`
# with its server gone) prints its complaint and ttyd closes within 20 ms, even
# on two busy cores. Every reconnect (a replica's hand-over too) pays it once.
SETTLE = 0.1
# ... or once it lived this long, printing or not (a program that starts silent).
ESTABLISH_MAX = 2.0
# ... or once this much output waits: a screenful, never a one-line complaint.
ESTABLISH_BYTES = 64 * 1024
# Our socket's kernel send buffer (Linux doubles it). Left to autotuning,
# megabytes of input could wait there for a frozen ttyd, out of our sight.
UPSTREAM_SEND_BUFFER = 64 * 1024


class UpstreamSink(Protocol):
    """What an :class:`Upstream` reports to (implemented by the hub)."""

    async def upstream_output(self, message: bytes) -> None:
        """One ttyd output message, kept whole (``'0'`` + terminal output).

        The read loop awaits this: it is the backpressure point.
        """

    def upstream_state(self, state: AgentState, retry_in: float | None, message: str) -> None:
        """The connection changed state; ``retry_in`` is set while reconnecting."""

    def upstream_resized(
        self, columns: int, rows: int, *, who: str = "", viewer_id: str = ""
    ) -> None:
        """The terminal is this size now (a mirroring source's holder resized it).

        ``who`` asked for it, from connection ``viewer_id`` (any replica's).
        """


@dataclass(slots=True)
class UpstreamStatistics:
    """Counters for introspection (``/api/agents``, tests, later ``/metrics``)."""

    state: AgentState
    connects: int
    bytes_in: int
    bytes_out: int
    last_error: str
    # In replica mode, the replica holding the agent's terminal (None: none, or one process).
    holder: str | None = None
    # Bytes written but not yet taken by the socket (ttyd reads slowly, or not at all).
    buffered: int = 0


class Upstream:
    """The gateway's one ttyd client for one agent.

    ``size`` is called at every (re)connect for the terminal size to put in
    the handshake, so a reconnected ttyd starts at the agent's current size.
    """

    def __init__(
        self,
        target: Target,
        sink: UpstreamSink,
        size: Callable[[], tuple[int, int]],
        *,
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
        stable_after: float = 5.0,
    ) -> None:
        self.target = target
        self._sink = sink
        self._size = size
        self._backoff = backoff or Backoff()
        self._open_timeout = open_timeout
        self._stable_after = stable_after
        self._ws: ClientConnection | None = None
        self._state = AgentState.CONNECTING
        self._connects = 0
        self._bytes_in = 0
        self._bytes_out = 0
        self._last_error = ""
        # When ttyd last showed it was alive (a pong or any frame), loop time.
        self._heard_at = 0.0
        # Why this session's connection was failed by us, for the status.
        self._fault: str | None = None

    @property
    def state(self) -> AgentState:
        return self._state

    @property
    def mirrors(self) -> bool:
        return False  # it holds the terminal: the hub's size is the size

    def statistics(self) -> UpstreamStatistics:
        ws = self._ws
        return UpstreamStatistics(
            self._state,
            self._connects,
            self._bytes_in,
            self._bytes_out,
            self._last_error,
            buffered=0 if ws is None else ws.transport.get_write_buffer_size(),
        )

    async def send(self, message: ttyd.ClientMessage) -> None:
        """Send a client message to ttyd, or refuse it when not connected."""
        ws = self._ws
        if ws is None or self._state is not AgentState.CONNECTED:
            raise UpstreamUnavailable(f"agent terminal is {self._state.value}")
        silent = self.silent_for()
        if silent > QUIET_LIMIT:
            raise UpstreamUnavailable(f"ttyd has not answered for {silent:.0f} s; not sent")
        if isinstance(message, ttyd.Resize):
            message = message.for_ttyd()
        frame = message.serialize()
        # websockets writes the frame to the transport before its first wait
        # (for the socket to drain) when the connection is open: from there on
        # a failure cannot say "not sent", only "unconfirmed".
        handed = ws.state is websockets.State.OPEN
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await ws.send(frame)
        except TimeoutError:
            self._fail(ws, f"ttyd took no input for {SEND_TIMEOUT:.0f} s")
            raise InputUnconfirmed(
                f"ttyd took no input for {SEND_TIMEOUT:.0f} s; {_RESET_WHILE_SENDING}"
            ) from None
        except websockets.ConnectionClosed as exc:
            if handed:
                raise InputUnconfirmed(f"ttyd stopped answering; {_RESET_WHILE_SENDING}") from exc
            raise UpstreamUnavailable("agent terminal connection closed") from exc
        if ws.state is not websockets.State.OPEN:
            # A wait for the socket to drain that our reset cut short (the
            # liveness check found ttyd frozen) ends without an error: the
            # frame may have been in our buffer still, or in ttyd's.
            raise InputUnconfirmed(f"ttyd stopped answering; {_RESET_WHILE_SENDING}")
        self._bytes_out += len(frame)

    def silent_for(self) -> float:
        """Seconds since ttyd last answered on the current connection (0 when down)."""
        if self._ws is None:
            return 0.0
        return asyncio.get_running_loop().time() - self._heard_at

    async def run(self) -> None:
        """Connect, relay, and reconnect forever; returns only when cancelled."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                started = loop.time()
                try:
                    ended = await self._session()
                    message = self._fault or ended
                except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                    message = self._fault or _describe(exc)
                except (UpstreamRejected, _AttemptFailed) as exc:
                    message = str(exc)
                except Exception:
                    # A bug must not silence this agent for good: log it, back off, retry.
                    log.exception("upstream %s: unexpected error", self._where)
                    message = "internal error (see the gateway log)"
                self._ws = None
                self._last_error = message
                if loop.time() - started >= self._stable_after:
                    self._backoff.reset()
                delay = self._backoff.next_delay()
                log.info("upstream %s: %s; retrying in %.1fs", self._where, message, delay)
                self._set_state(AgentState.RECONNECTING, delay, message)
                await asyncio.sleep(delay)
                self._set_state(AgentState.CONNECTING, None, "")
        finally:
            self._ws = None
            self._set_state(AgentState.STOPPED, None, "")

    @property
    def _where(self) -> str:
        return self.target.url

    def _open(self) -> connect:
        common: dict[str, Any] = {
            "subprotocols": [Subprotocol("tty")],
            # Terminal output is mostly small frames; deflate costs CPU for
            # little, and ttyd does not negotiate it by default anyway.
            "compression": None,
            "open_timeout": self._open_timeout,
            # A ttyd that froze never answers our close: a shutdown or a hand-over
            # waits this long for it, not websockets' 10 s.
            "close_timeout": CLOSE_TIMEOUT,
            "max_size": MAX_UPSTREAM_FRAME,
            # Our own liveness check replaces websockets' keepalive, whose ping
            # waits behind a blocked send and gives up only after 40 s.
            "ping_interval": None,
            # Never send agent traffic through an HTTP proxy from the environment.
            "proxy": None,
            "user_agent_header": "agent-gateway",
        }
        if self.target.credential is not None:
            # ttyd -c checks HTTP basic auth on the upgrade and AuthToken after it.
            common["additional_headers"] = {"Authorization": f"Basic {self.target.auth_token}"}
        if self.target.url.startswith("unix:"):
            path = self.target.url[len("unix:") :]
            return unix_connect(path, uri="ws://localhost/ws", **common)
        return connect(self.target.url, **common)

    async def _session(self) -> str:
        """One connection, from dialling to its end; returns why it ended."""
        self._fault = None
        async with self._open() as ws:
            _bound_send_buffer(ws)
            size = self._size()
            async with asyncio.timeout(SEND_TIMEOUT):
                await ws.send(ttyd.Handshake(self.target.auth_token, *size).serialize())
            self._heard_at = asyncio.get_running_loop().time()
            self._ws = ws  # for the liveness check and statistics; send() waits for CONNECTED
            watch = asyncio.create_task(self._watch(ws), name=f"liveness:{self._where}")
            try:
                held = await self._probation(ws)
                self._connects += 1
                self._last_error = ""  # /api/agents shows the error of now, not of before
                self._set_state(AgentState.CONNECTED, None, "")
                for message in held:
                    await self._dispatch(message)
                if self._size() != size:
                    # A resize asked for while on probation was not sent: send it now.
                    with contextlib.suppress(UpstreamUnavailable):
                        await self.send(ttyd.Resize(*self._size()))
                async for message in ws:
                    self._heard_at = asyncio.get_running_loop().time()
                    await self._dispatch(message)
            finally:
                await cancel(watch)
        return _closed(ws.close_code)

    async def _probation(self, ws: ClientConnection) -> list[bytes | str]:
        """What ttyd sent until the connection proved to be a session (see SETTLE).

        A connection that ends first raises, as a lost one does, and what it
        sent is dropped: the screen keeps what the last real session drew.
        """
        loop = asyncio.get_running_loop()
        held: list[bytes | str] = []
        size = 0
        printed = False  # ttyd's title and preferences come first: they do not count
        deadline = loop.time() + ESTABLISH_MAX
        while size < ESTABLISH_BYTES:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await ws.recv()
            except TimeoutError:
                return held
            except websockets.ConnectionClosed as exc:
                if not held and ws.close_code == 1008:
                    # ttyd answers a wrong AuthToken with a policy-violation close.
                    raise UpstreamRejected("ttyd refused the credential") from None
                why, words = _describe(exc), _last_words(held)
                if why.startswith(TERMINAL_EXITED) and words:
                    # What the command said on its way out is the reason worth showing.
                    raise _AttemptFailed(f"{why}: {words}") from exc
                raise
            self._heard_at = loop.time()
            if not printed and _is_output(message):
                printed = True
                deadline = min(deadline, loop.time() + SETTLE)
            held.append(message)
            size += len(message)
        return held

    async def _watch(self, ws: ClientConnection) -> None:
        """Ping ttyd every second; fail the connection when it stays silent."""
        loop = asyncio.get_running_loop()
        pinging: asyncio.Task[None] | None = None
        try:
            while True:
                await asyncio.sleep(PING_INTERVAL)
                silent = loop.time() - self._heard_at
                if silent > LIVENESS_DEADLINE:
                    self._fail(ws, f"ttyd has not answered for {silent:.0f} s")
                    return
                # One ping in flight at a time: while it is stuck behind a full
                # socket the clock above still runs, which is the point.
                if pinging is None or pinging.done():
                    pinging = asyncio.create_task(self._ping(ws))
        finally:
            if pinging is not None:
                await cancel(pinging)

    async def _ping(self, ws: ClientConnection) -> None:
        try:
            pong = await ws.ping()
            await pong
        except websockets.ConnectionClosed:
            return  # the read loop reports the loss
        self._heard_at = asyncio.get_running_loop().time()

    def _fail(self, ws: ClientConnection, why: str) -> None:
        """Drop a connection ttyd no longer serves; the read loop ends and redials."""
        if self._fault is None:
            self._fault = why
            log.warning("upstream %s: %s; reconnecting", self._where, why)
        # No closing handshake: a peer that reads nothing would not answer it.
        ws.transport.abort()

    async def _dispatch(self, message: bytes | str) -> None:
        data = message.encode() if isinstance(message, str) else message
        self._bytes_in += len(data)
        if data[:1] == b"0":
            # Output, the hot path: handed on whole, so relaying it costs no copy.
            await self._sink.upstream_output(data)
            return
        try:
            parsed = ttyd.parse_server(data)
        except PeerProtocolError as exc:
            # A newer ttyd may add commands; one odd frame is not worth a reconnect.
            log.debug("upstream %s: ignoring frame: %s", self._where, exc)
            return
        # ttyd's title ("command (hostname)") and preferences describe the
        # container, not the agent: the gateway sends its own to viewers.
        log.debug("upstream %s: ignoring %s", self._where, type(parsed).__name__)

    def _set_state(self, state: AgentState, retry_in: float | None, message: str) -> None:
        self._state = state
        self._sink.upstream_state(state, retry_in, message)


def _bound_send_buffer(ws: ClientConnection) -> None:
    sock = ws.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UPSTREAM_SEND_BUFFER)


class _AttemptFailed(Exception):
    """A connection that ended on probation, and why (never leaves this module)."""


# Why input handed to ttyd is unconfirmed, when its connection was reset under it.
_RESET_WHILE_SENDING = (
    "the connection was reset while this was being sent"
    " (what ttyd had already received may be typed if it resumes)"
)

# What the status says when ttyd's command (tmux attach, the agent) ended.
TERMINAL_EXITED = "the agent's terminal exited"


def _is_output(message: bytes | str) -> bool:
    return message[:1] in (b"0", "0")


# The control characters left once the escape sequences are gone (not LF).
_CONTROLS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
# A status message is one line in a tile or a bar.
MAX_LAST_WORDS = 120


def _last_words(messages: list[bytes | str]) -> str:
    """The last line a failed command printed, as plain text (e.g. "no server running")."""
    raw = b"".join((m.encode() if isinstance(m, str) else m)[1:] for m in messages if _is_output(m))
    text = _CONTROLS.sub("", plain(raw))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:MAX_LAST_WORDS] if lines else ""


def _closed(code: int | None) -> str:
    """Why a connection ttyd closed cleanly ended."""
    # ttyd closes with 1000 when its command exits with status 0 (src/protocol.c).
    return TERMINAL_EXITED if code == 1000 else "ttyd closed the connection"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out connecting to ttyd"
    if isinstance(exc, websockets.ConnectionClosed):
        if exc.rcvd is not None and exc.rcvd.code == 1000:
            return TERMINAL_EXITED
        sent = exc.sent
        if exc.rcvd is None and sent is not None and sent.reason == "invalid status code":
            # ttyd closes with 1006 when its command exits with an error
            # (src/protocol.c). 1006 must never be sent (RFC 6455), so websockets
            # fails the connection with 1002 instead: this is how that shows.
            return f"{TERMINAL_EXITED} with an error"
        return f"connection lost ({exc})"
    if isinstance(exc, websockets.InvalidStatus):
        return f"ttyd answered HTTP {exc.response.status_code}"
    if isinstance(exc, OSError):
        return f"cannot reach ttyd: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__
