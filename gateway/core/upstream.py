"""One client connection from the gateway to an agent's ttyd.

:class:`Upstream` keeps a single WebSocket to ttyd open for as long as the
agent exists, whether or not anybody watches, so the agent's screen stays
current. When ttyd goes away or restarts it reconnects with capped
exponential backoff and jitter (:class:`Backoff`, sans-I/O). While it is down,
:meth:`Upstream.send` raises :class:`~gateway.errors.UpstreamUnavailable`:
input is refused explicitly, never queued and replayed into a terminal whose
state the operator can no longer see.

What arrives is handed to an :class:`UpstreamSink` (the hub); the sink may
make the read loop wait (emulator backpressure), never a viewer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import websockets
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.typing import Subprotocol

from ..errors import (
    PeerProtocolError,
    UpstreamRejected,
    UpstreamUnavailable,
)
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

    @property
    def state(self) -> AgentState:
        return self._state

    @property
    def mirrors(self) -> bool:
        return False  # it holds the terminal: the hub's size is the size

    def statistics(self) -> UpstreamStatistics:
        return UpstreamStatistics(
            self._state, self._connects, self._bytes_in, self._bytes_out, self._last_error
        )

    async def send(self, message: ttyd.ClientMessage) -> None:
        """Send a client message to ttyd, or refuse it when not connected."""
        ws = self._ws
        if ws is None or self._state is not AgentState.CONNECTED:
            raise UpstreamUnavailable(f"agent terminal is {self._state.value}")
        if isinstance(message, ttyd.Resize):
            message = message.for_ttyd()
        frame = message.serialize()
        try:
            await ws.send(frame)
        except websockets.ConnectionClosed as exc:
            raise UpstreamUnavailable("agent terminal connection closed") from exc
        self._bytes_out += len(frame)

    async def run(self) -> None:
        """Connect, relay, and reconnect forever; returns only when cancelled."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                started = loop.time()
                try:
                    await self._session()
                    message = "ttyd closed the connection"
                except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                    message = _describe(exc)
                except UpstreamRejected as exc:
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

    async def _session(self) -> None:
        async with self._open() as ws:
            columns, rows = self._size()
            await ws.send(ttyd.Handshake(self.target.auth_token, columns, rows).serialize())
            self._ws = ws
            self._connects += 1
            self._set_state(AgentState.CONNECTED, None, "")
            received = False
            async for message in ws:
                received = True
                await self._dispatch(message)
            if not received and ws.close_code == 1008:
                # ttyd answers a wrong AuthToken with a policy-violation close.
                raise UpstreamRejected("ttyd refused the credential")

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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out connecting to ttyd"
    if isinstance(exc, websockets.ConnectionClosed):
        return f"connection lost ({exc})"
    if isinstance(exc, websockets.InvalidStatus):
        return f"ttyd answered HTTP {exc.response.status_code}"
    if isinstance(exc, OSError):
        return f"cannot reach ttyd: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__
