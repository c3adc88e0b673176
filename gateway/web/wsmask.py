"""Close a client's WebSocket with 1002 when it sends an unmasked frame.

RFC 6455 section 5.1: a client masks every frame it sends, and "the server
MUST close the connection upon receiving a frame that is not masked".
Masking keeps a hostile page from making the browser put bytes of its
choosing on the wire, where a confused intermediary could take them for
HTTP (section 10.3). aiohttp's frame reader serves both ends of a
connection, so it looks at the mask bit only to know whether to unmask: its
server takes unmasked frames as if they were masked. A peer that skips
masking is not a browser following the protocol; the gateway answers it as
it answers any other malformed frame.

aiohttp has no hook for this. :class:`MaskedWebSocketResponse` puts a
:class:`MaskGuard` between the connection and aiohttp's parser when the
upgrade is done; the guard's :class:`MaskTracker` follows frame boundaries
by counting (it reads headers and skips payloads, never copying or unmasking
them), so aiohttp still parses every byte, once, and says what else is
wrong with a frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Protocol

from aiohttp import WebSocketError, WSCloseCode, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import WebSocketWriter

log = logging.getLogger(__name__)

# 2 bytes, a 64-bit length and the mask key.
_MAX_HEADER = 14


def _frame_length(data: bytes, at: int) -> int:
    """The length, header included, of the frame whose header starts at ``at``.

    0 while the header is incomplete, -1 when the frame is not masked: two
    bytes tell that, so an unmasked frame is caught before its length is.
    """
    available = len(data) - at
    if available < 2:
        return 0
    second = data[at + 1]
    if not second & 0x80:
        return -1
    length = second & 0x7F
    if length < 126:
        return 6 + length
    if length == 126:
        if available < 4:
            return 0
        return 8 + (data[at + 2] << 8 | data[at + 3])
    if available < 10:
        return 0
    return 14 + int.from_bytes(data[at + 2 : at + 10], "big")


class MaskTracker:
    """Follows the frames of a client's byte stream, split anywhere, by their headers.

    Sans-I/O: it sees each byte once, in order. Opcodes, fragmentation and
    lengths are aiohttp's to check; this knows only where a frame ends.
    """

    __slots__ = ("_head", "_skip", "unmasked")

    def __init__(self) -> None:
        # Bytes of the current frame (mask key and payload) not yet seen.
        self._skip = 0
        # The start of a header split across reads; only ever between frames.
        self._head = b""
        self.unmasked = False

    def feed(self, data: bytes) -> int:
        """Take the next bytes; return how many of them belong to masked frames.

        That is ``len(data)`` until an unmasked frame's header shows up, then
        the offset of that header in ``data`` (0 if it began in earlier
        data), and 0 for anything after.
        """
        if self.unmasked:
            return 0
        size = len(data)
        skip = self._skip
        if skip >= size:
            # Most reads of a paste are payload only: one comparison each.
            self._skip = skip - size
            return size
        pos = skip
        if self._head:
            joined = self._head + data[:_MAX_HEADER]
            length = _frame_length(joined, 0)
            if length < 0:
                self.unmasked = True
                return 0
            if length == 0:
                # Still short: then ``joined`` holds all of ``data``.
                self._head = joined
                return size
            pos = length - len(self._head)
            self._head = b""
        last = size - 1
        while pos < size:
            # Keystrokes, and floods, are short masked frames: 2 header bytes,
            # the key, 0 to 125 bytes of payload. They skip the call.
            if pos < last and 0x80 <= (second := data[pos + 1]) < 0xFE:
                pos += second - 0x7A
                continue
            length = _frame_length(data, pos)
            if length > 0:
                pos += length
                continue
            self._skip = 0
            if length < 0:
                self.unmasked = True
                return pos
            self._head = data[pos:]
            return size
        self._skip = pos - size
        return size


class FrameParser(Protocol):
    """What aiohttp's server connection asks of the parser of an upgraded stream."""

    def feed_data(self, data: bytes) -> tuple[bool, bytes]: ...

    def feed_eof(self) -> None: ...


class MaskGuard:
    """Stands in for aiohttp's parser: passes on what is masked, refuses the rest.

    ``on_unmasked`` runs once, at the first unmasked frame; the guard has
    then passed on every byte before that frame's header and passes on
    nothing more. If the header began in an earlier read, its first byte
    went through: with no byte after it, aiohttp never makes a frame of it.
    """

    __slots__ = ("_on_unmasked", "_parser", "_tracker")

    def __init__(self, parser: FrameParser, on_unmasked: Callable[[], None]) -> None:
        self._parser = parser
        self._on_unmasked = on_unmasked
        self._tracker = MaskTracker()

    def feed_data(self, data: bytes | bytearray | memoryview) -> tuple[bool, bytes]:
        tracker = self._tracker
        if tracker.unmasked:
            return True, b""
        if type(data) is not bytes:
            # Proactor loops hand in bytearrays; aiohttp's parser converts too.
            data = bytes(data)
        safe = tracker.feed(data)
        if safe == len(data):
            return self._parser.feed_data(data)
        if safe:
            self._parser.feed_data(data[:safe])
        self._on_unmasked()
        # What aiohttp's parser answers on a protocol error: the connection
        # reads no more.
        return True, b""

    def feed_eof(self) -> None:
        self._parser.feed_eof()


class MaskedWebSocketResponse(web.WebSocketResponse):
    """A ``WebSocketResponse`` that closes with 1002 on an unmasked client frame.

    It overrides ``_post_start``, the step of ``prepare`` that installs
    aiohttp's parser on the connection with ``RequestHandler.set_parser``:
    private, but with the same signature and job across aiohttp 3.x (mypy
    checks the override). ``prepare`` fails if it was not called, so an
    aiohttp that moves the step elsewhere refuses connections instead of
    serving them unchecked.
    """

    _mask_guard: MaskGuard | None = None

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter:
        writer = await super().prepare(request)
        if self._mask_guard is None:
            raise RuntimeError("aiohttp did not call _post_start: unmasked frames would pass")
        return writer

    def _post_start(
        self, request: web.BaseRequest, protocol: str | None, writer: WebSocketWriter
    ) -> None:
        handler = request.protocol
        # Bytes a client sent behind its upgrade request, before the 101
        # (RFC 6455 section 4.1 forbids it, so only a hostile client does),
        # wait in this tail, and set_parser() feeds them to aiohttp's parser
        # at once. A guard put in afterwards would miss their frames and
        # count the rest of the stream from the wrong byte: unmasked frames
        # could be smuggled past it. Taken out here, they go through it.
        early, handler._message_tail = handler._message_tail, b""
        super()._post_start(request, protocol, writer)
        guard = MaskGuard(handler._payload_parser, partial(self._refuse_unmasked, request.remote))
        handler._payload_parser = guard
        self._mask_guard = guard
        if early and guard.feed_data(early)[0]:
            handler.close()

    def _refuse_unmasked(self, peer: str | None) -> None:
        log.info("closing the WebSocket of %s: it sent an unmasked frame", peer)
        # aiohttp's own way with a protocol error: receive() takes what was
        # queued before it, then closes with this code.
        if self._reader is not None:
            self._reader.set_exception(
                WebSocketError(WSCloseCode.PROTOCOL_ERROR, "unmasked client frame")
            )
