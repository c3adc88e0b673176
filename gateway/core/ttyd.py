"""The ttyd wire protocol, sans I/O.

ttyd (1.7.x) frames are WebSocket messages whose first byte is a command and
whose rest is the payload (src/server.h, src/protocol.c, html/src/.../xterm):

client → server                          server → client
  ``'0'`` + bytes   input                  ``'0'`` + bytes  terminal output
  ``'1'`` + JSON    resize {columns,rows}  ``'1'`` + text   window title
  ``'2'``           pause output           ``'2'`` + JSON   preferences
  ``'3'``           resume output
  ``'{'`` ...       handshake: the whole message is JSON
                    {"AuthToken", "columns", "rows"}

The gateway speaks the same protocol on both sides and adds two server
commands that ttyd's own web client ignores (it only logs unknown commands):

  ``'S'`` + JSON   status of the agent's upstream connection (:class:`Status`)
  ``'N'`` + JSON   a notice for this viewer, e.g. refused input (:class:`Notice`)

Nothing here does I/O: :func:`parse_client` and :func:`parse_server` turn one
complete message into a frozen dataclass, ``serialize()`` turns it back. A
malformed message raises :class:`~gateway.errors.PeerProtocolError`; nothing
else escapes.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import LocalProtocolError, PeerProtocolError
from .state import AgentState

_STATES = frozenset(AgentState)

__all__ = [
    "MAX_COLUMNS",
    "MAX_ROWS",
    "MIN_COLUMNS",
    "MIN_ROWS",
    "ClientCommand",
    "ClientMessage",
    "Handshake",
    "Input",
    "Notice",
    "Output",
    "Pause",
    "Resize",
    "Resume",
    "ServerCommand",
    "ServerMessage",
    "SetPreferences",
    "SetTitle",
    "Status",
    "clamp_size",
    "parse_client",
    "parse_server",
    "websocket_frame",
]

# Resize policy: whatever a peer asks for is clamped into these bounds before
# the screen or ttyd sees it. 500x200 cells is far beyond any real window and
# keeps a snapshot (and pyte's per-cell dicts) within a few MB.
MIN_COLUMNS, MAX_COLUMNS = 2, 500
MIN_ROWS, MAX_ROWS = 1, 200

# JSON payloads are tiny in practice; refusing big ones bounds parsing work.
MAX_JSON_PAYLOAD = 4096
# Who resized, as replicas pass it on: a user name or a connection id, never long.
MAX_NAME = 200


class ClientCommand(enum.IntEnum):
    """First byte of a client → server message."""

    INPUT = ord("0")
    RESIZE = ord("1")
    PAUSE = ord("2")
    RESUME = ord("3")
    HANDSHAKE = ord("{")


class ServerCommand(enum.IntEnum):
    """First byte of a server → client message."""

    OUTPUT = ord("0")
    SET_WINDOW_TITLE = ord("1")
    SET_PREFERENCES = ord("2")
    # Gateway extensions.
    STATUS = ord("S")
    NOTICE = ord("N")


def clamp_size(columns: int, rows: int) -> tuple[int, int]:
    """Clamp a terminal size into the gateway's policy bounds."""
    return (
        min(max(columns, MIN_COLUMNS), MAX_COLUMNS),
        min(max(rows, MIN_ROWS), MAX_ROWS),
    )


def _load_object(payload: bytes, what: str) -> dict[str, Any]:
    if len(payload) > MAX_JSON_PAYLOAD:
        raise PeerProtocolError(f"{what}: JSON payload of {len(payload)} bytes is too large")
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise PeerProtocolError(f"{what}: payload is not valid JSON") from exc
    if not isinstance(obj, dict):
        raise PeerProtocolError(f"{what}: payload must be a JSON object")
    return obj


def _dimension(obj: dict[str, Any], key: str, what: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    # bool is an int in Python but never a size.
    if isinstance(value, bool) or not isinstance(value, int):
        raise PeerProtocolError(f"{what}: {key!r} must be an integer")
    return value


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# --- client → server ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Input:
    """Keystrokes or pasted bytes for the terminal."""

    data: bytes
    command: ClassVar[ClientCommand] = ClientCommand.INPUT

    def serialize(self) -> bytes:
        return b"0" + self.data


@dataclass(frozen=True, slots=True)
class Resize:
    """A request to resize the terminal; values are already clamped.

    ``by`` and ``viewer`` (who asked, from which connection) travel only
    between replicas, so that every replica can tell its viewers who resized
    (:meth:`for_ttyd` drops them). A browser's are never believed: the
    terminal handler names the caller itself.
    """

    columns: int
    rows: int
    by: str = ""
    viewer: str = ""
    command: ClassVar[ClientCommand] = ClientCommand.RESIZE

    def __post_init__(self) -> None:
        if (self.columns, self.rows) != clamp_size(self.columns, self.rows):
            raise LocalProtocolError(f"size {self.columns}x{self.rows} is out of bounds")

    @classmethod
    def parse(cls, payload: bytes) -> Resize:
        obj = _load_object(payload, "resize")
        columns = _dimension(obj, "columns", "resize")
        rows = _dimension(obj, "rows", "resize")
        if columns is None or rows is None:
            raise PeerProtocolError("resize: 'columns' and 'rows' are required")
        by, viewer = obj.get("by", ""), obj.get("viewer", "")
        if not isinstance(by, str) or not isinstance(viewer, str):
            raise PeerProtocolError("resize: 'by' and 'viewer' must be strings")
        return cls(*clamp_size(columns, rows), by[:MAX_NAME], viewer[:MAX_NAME])

    def serialize(self) -> bytes:
        obj: dict[str, Any] = {"columns": self.columns, "rows": self.rows}
        if self.by:
            obj["by"] = self.by
        if self.viewer:
            obj["viewer"] = self.viewer
        return b"1" + _dump(obj)

    def asker(self) -> dict[str, str]:
        """Who asked, as :meth:`Hub.resize` and ``upstream_resized`` take it."""
        return {"who": self.by, "viewer_id": self.viewer}

    def for_ttyd(self) -> Resize:
        """The size alone, as ttyd itself is sent it."""
        return Resize(self.columns, self.rows)


@dataclass(frozen=True, slots=True)
class Pause:
    """Stop sending output to this client until :class:`Resume`."""

    command: ClassVar[ClientCommand] = ClientCommand.PAUSE

    def serialize(self) -> bytes:
        return b"2"


@dataclass(frozen=True, slots=True)
class Resume:
    """Resume output after :class:`Pause`."""

    command: ClassVar[ClientCommand] = ClientCommand.RESUME

    def serialize(self) -> bytes:
        return b"3"


@dataclass(frozen=True, slots=True)
class Handshake:
    """The first client message. ``None`` sizes mean "server's default"."""

    auth_token: str = field(default="", repr=False)
    columns: int | None = None
    rows: int | None = None
    command: ClassVar[ClientCommand] = ClientCommand.HANDSHAKE

    @classmethod
    def parse(cls, message: bytes) -> Handshake:
        obj = _load_object(message, "handshake")
        token = obj.get("AuthToken", "")
        if token is None:
            token = ""
        if not isinstance(token, str):
            raise PeerProtocolError("handshake: 'AuthToken' must be a string")
        columns = _dimension(obj, "columns", "handshake")
        rows = _dimension(obj, "rows", "handshake")
        # ttyd treats 0 (and absence) as "use the default size".
        if not columns or not rows:
            return cls(token)
        return cls(token, *clamp_size(columns, rows))

    def serialize(self) -> bytes:
        obj: dict[str, Any] = {"AuthToken": self.auth_token}
        if self.columns is not None and self.rows is not None:
            obj["columns"], obj["rows"] = self.columns, self.rows
        return _dump(obj)


ClientMessage = Input | Resize | Pause | Resume | Handshake


def parse_client(message: bytes | str) -> ClientMessage:
    """Parse one complete client → server message (binary or text frame)."""
    data = message.encode() if isinstance(message, str) else message
    if not data:
        raise PeerProtocolError("empty message")
    command, payload = data[0], data[1:]
    if command == ClientCommand.INPUT:
        return Input(payload)
    if command == ClientCommand.RESIZE:
        return Resize.parse(payload)
    if command == ClientCommand.PAUSE:
        return Pause()
    if command == ClientCommand.RESUME:
        return Resume()
    if command == ClientCommand.HANDSHAKE:
        return Handshake.parse(data)
    raise PeerProtocolError(f"unknown client command byte 0x{command:02x}")


# --- server → client ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Output:
    """Terminal output bytes."""

    data: bytes
    command: ClassVar[ServerCommand] = ServerCommand.OUTPUT

    def serialize(self) -> bytes:
        return b"0" + self.data


@dataclass(frozen=True, slots=True)
class SetTitle:
    """ttyd's initial window title ("command (hostname)")."""

    title: str
    command: ClassVar[ServerCommand] = ServerCommand.SET_WINDOW_TITLE

    def serialize(self) -> bytes:
        return b"1" + self.title.encode()


@dataclass(frozen=True, slots=True)
class SetPreferences:
    """xterm.js options from ttyd's ``-t key=value`` flags."""

    preferences: dict[str, Any]
    command: ClassVar[ServerCommand] = ServerCommand.SET_PREFERENCES

    def serialize(self) -> bytes:
        return b"2" + _dump(self.preferences)


@dataclass(frozen=True, slots=True)
class Status:
    """Gateway extension ``'S'``: the state of the agent's upstream.

    ``state`` is the agent's :class:`~gateway.core.state.AgentState`;
    ``retry_in`` is the seconds until the next attempt while reconnecting;
    ``columns``/``rows`` are the agent's terminal size.
    """

    state: AgentState
    columns: int
    rows: int
    retry_in: float | None = None
    message: str = ""
    command: ClassVar[ServerCommand] = ServerCommand.STATUS

    def serialize(self) -> bytes:
        obj: dict[str, Any] = {"state": self.state, "columns": self.columns, "rows": self.rows}
        if self.retry_in is not None:
            obj["retry_in"] = round(self.retry_in, 3)
        if self.message:
            obj["message"] = self.message
        return b"S" + _dump(obj)

    @classmethod
    def parse(cls, payload: bytes) -> Status:
        obj = _load_object(payload, "status")
        state, message, retry_in = obj.get("state"), obj.get("message", ""), obj.get("retry_in")
        columns = _dimension(obj, "columns", "status")
        rows = _dimension(obj, "rows", "status")
        if not isinstance(state, str) or not isinstance(message, str):
            raise PeerProtocolError("status: 'state' and 'message' must be strings")
        if columns is None or rows is None:
            raise PeerProtocolError("status: 'columns' and 'rows' are required")
        if state not in _STATES:
            raise PeerProtocolError(f"status: unknown state {state[:40]!r}")
        if retry_in is not None and (
            isinstance(retry_in, bool) or not isinstance(retry_in, int | float)
        ):
            raise PeerProtocolError("status: 'retry_in' must be a number")
        return cls(
            AgentState(state), columns, rows, None if retry_in is None else float(retry_in), message
        )


@dataclass(frozen=True, slots=True)
class Notice:
    """Gateway extension ``'N'``: a message for one viewer (e.g. input refused)."""

    code: str
    message: str
    #: What a page may act on besides the words (a resize's who and sizes),
    #: sent beside ``code`` and ``message``.
    details: dict[str, Any] | None = None
    command: ClassVar[ServerCommand] = ServerCommand.NOTICE

    def serialize(self) -> bytes:
        return b"N" + _dump({**(self.details or {}), "code": self.code, "message": self.message})

    @classmethod
    def parse(cls, payload: bytes) -> Notice:
        obj = _load_object(payload, "notice")
        code, message = obj.pop("code", None), obj.pop("message", None)
        if not isinstance(code, str) or not isinstance(message, str):
            raise PeerProtocolError("notice: 'code' and 'message' must be strings")
        return cls(code, message, obj or None)


ServerMessage = Output | SetTitle | SetPreferences | Status | Notice


def parse_server(message: bytes | str) -> ServerMessage:
    """Parse one complete server → client message (binary or text frame)."""
    data = message.encode() if isinstance(message, str) else message
    if not data:
        raise PeerProtocolError("empty message")
    command, payload = data[0], data[1:]
    if command == ServerCommand.OUTPUT:
        return Output(payload)
    if command == ServerCommand.SET_WINDOW_TITLE:
        return SetTitle(payload.decode(errors="replace"))
    if command == ServerCommand.SET_PREFERENCES:
        # ttyd sends "{}" when no -t options are set; tolerate an empty payload.
        return SetPreferences(_load_object(payload, "preferences") if payload else {})
    if command == ServerCommand.STATUS:
        return Status.parse(payload)
    if command == ServerCommand.NOTICE:
        return Notice.parse(payload)
    raise PeerProtocolError(f"unknown server command byte 0x{command:02x}")


def websocket_frame(message: bytes) -> bytes:
    """The whole WebSocket frame a server sends ``message`` in (binary, final).

    Server frames are not masked (RFC 6455, section 5.1), so one encoding is
    the same bytes for every viewer: the hub encodes a frame once and writes
    it to each viewer's socket as it is.
    """
    size = len(message)
    if size < 126:
        header = bytes((0x82, size))
    elif size < 1 << 16:
        header = bytes((0x82, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x82, 127)) + size.to_bytes(8, "big")
    return header + message
