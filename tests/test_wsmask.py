"""Unmasked client frames close with 1002; inbound messages are capped at exactly 64 KiB.

The tracker and the guard are tested alone, byte by byte; then a tiny
aiohttp app and the gateway's own WebSocket route are driven with a raw TCP
client, since no WebSocket client library sends unmasked frames.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import struct
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from gateway.appkeys import FLEET
from gateway.core import ttyd
from gateway.core.state import AgentState
from gateway.local import LocalAgent
from gateway.web.wsmask import MaskedWebSocketResponse, MaskGuard, MaskTracker

from .conftest import GatewayFactory, contains, eventually, timeout

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(
    payload: bytes = b"",
    opcode: int = BINARY,
    *,
    fin: bool = True,
    key: bytes | None = None,
    masked: bool = True,
) -> bytes:
    """One frame as a client writes it (or, with ``masked=False``, should not)."""
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    header = bytes([(0x80 if fin else 0) | opcode])
    if size < 126:
        header += bytes([mask_bit | size])
    elif size < 1 << 16:
        header += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        header += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return header + payload
    key = os.urandom(4) if key is None else key
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


# A zero key leaves the payload as it is: this one looks like an unmasked
# frame, and is not one unless the tracker loses count.
DECOY = frame(frame(b"boo", TEXT, masked=False) * 3, key=b"\0\0\0\0")

# Every length form and every opcode, control frames between fragments.
STREAM = b"".join(
    [
        frame(),
        frame(b"0a"),
        frame(b"x" * 125, TEXT),
        frame(b"y" * 126),
        frame(b"z" * 300),
        frame(b"partial ", TEXT, fin=False),
        frame(b"ping", PING),
        frame(b"more ", CONTINUATION, fin=False),
        frame(b"", PONG),
        frame(b"end", CONTINUATION),
        DECOY,
        frame(struct.pack("!H", 1000) + b"bye", CLOSE),
    ]
)
BAD = frame(b"0echo hi\r", masked=False)


def feed_all(tracker: MaskTracker, chunks: list[bytes]) -> list[int]:
    return [tracker.feed(chunk) for chunk in chunks]


def expected(chunks: list[bytes], offset: int) -> list[int]:
    """What feed() answers when an unmasked header starts at ``offset`` of the stream.

    Bytes before it are masked; a chunk that ends one byte into it still
    counts that byte (a lone first byte cannot tell); nothing after counts.
    """
    answers, start = [], 0
    for chunk in chunks:
        end = start + len(chunk)
        answers.append(len(chunk) if end <= offset + 1 else max(0, offset - start))
        start = end
    return answers


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# --- MaskTracker ----------------------------------------------------------------


def test_masked_frames_split_at_every_byte_all_count() -> None:
    for cut in range(len(STREAM) + 1):
        tracker = MaskTracker()
        chunks = split(STREAM, [cut])
        assert feed_all(tracker, chunks) == [len(c) for c in chunks], cut
        assert not tracker.unmasked
    one_by_one = [STREAM[i : i + 1] for i in range(len(STREAM))]
    tracker = MaskTracker()
    assert feed_all(tracker, one_by_one) == [1] * len(STREAM)
    assert not tracker.unmasked


def test_an_unmasked_frame_is_found_wherever_the_reads_split() -> None:
    data = STREAM + BAD + frame(b"after")
    for cut in range(len(data) + 1):
        tracker = MaskTracker()
        chunks = split(data, [cut])
        assert feed_all(tracker, chunks) == expected(chunks, len(STREAM)), cut
        assert tracker.unmasked
    tracker = MaskTracker()
    one_by_one = [data[i : i + 1] for i in range(len(data))]
    assert feed_all(tracker, one_by_one) == expected(one_by_one, len(STREAM))


@given(st.lists(st.integers(0, len(STREAM) + len(BAD)), max_size=12))
def test_any_splitting_finds_the_same_frame(cuts: list[int]) -> None:
    data = STREAM + BAD
    chunks = split(data, cuts)
    assert feed_all(MaskTracker(), chunks) == expected(chunks, len(STREAM))


@pytest.mark.parametrize(
    ("size", "header"),
    [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (70000, 10)],
)
def test_7_16_and_64_bit_lengths(size: int, header: int) -> None:
    data = frame(b"\0" * size) + BAD
    offset = header + 4 + size
    assert data[offset:] == BAD
    # Splits inside the header, the key, the payload's ends and the next header.
    for cut in [*range(offset + 3), *range(max(0, offset - 8), len(data) + 1)]:
        tracker = MaskTracker()
        chunks = split(data, [cut])
        assert feed_all(tracker, chunks) == expected(chunks, offset), (size, cut)


def test_control_frames_unmasked_are_caught_too() -> None:
    for opcode in (PING, PONG, CLOSE, CONTINUATION, TEXT):
        tracker = MaskTracker()
        assert tracker.feed(frame(b"ok", PING) + frame(b"", opcode, masked=False)) == 8
        assert tracker.unmasked


def test_after_an_unmasked_frame_nothing_counts() -> None:
    tracker = MaskTracker()
    assert tracker.feed(BAD) == 0
    assert tracker.feed(frame(b"fine")) == 0
    assert tracker.unmasked


# --- MaskGuard ------------------------------------------------------------------


class Recorder:
    """Stands for aiohttp's parser: what reached it, and what it answered."""

    def __init__(self) -> None:
        self.fed: list[bytes] = []
        self.eof = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.fed.append(data)
        return False, b""

    def feed_eof(self) -> None:
        self.eof = True


def test_masked_frames_reach_the_parser_unchanged() -> None:
    parser, refused = Recorder(), []
    guard = MaskGuard(parser, lambda: refused.append(True))
    chunks = split(STREAM, [1, 7, 100, 101, 400])
    for chunk in chunks:
        assert guard.feed_data(chunk) == (False, b"")
    assert parser.fed == chunks  # the same reads, byte for byte
    assert all(a is b for a, b in zip(parser.fed, chunks, strict=True))  # not even copied
    assert guard.feed_data(bytearray(b"")) == (False, b"")
    assert parser.fed[-1] == b""
    guard.feed_eof()
    assert parser.eof
    assert refused == []


def test_an_unmasked_frame_stops_the_stream_before_its_header() -> None:
    parser, refused = Recorder(), []
    guard = MaskGuard(parser, lambda: refused.append(True))
    good = frame(b"0ls\r")
    assert guard.feed_data(good[:3]) == (False, b"")
    assert guard.feed_data(good[3:] + BAD + frame(b"0late")) == (True, b"")
    assert b"".join(parser.fed) == good
    assert refused == [True]
    assert guard.feed_data(frame(b"0more")) == (True, b"")
    assert b"".join(parser.fed) == good
    assert refused == [True]  # once


# --- a real aiohttp server ------------------------------------------------------


class RawWebSocket:
    """A WebSocket client over a bare TCP stream: it writes whatever frames it is given."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, port: int, path: str, *, early: bytes = b"", origin: str | None = None
    ) -> RawWebSocket:
        """Upgrade; ``early`` goes out in the same write as the request."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        origin = origin or f"http://127.0.0.1:{port}"
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {origin}\r\nSec-WebSocket-Protocol: tty\r\n\r\n"
        )
        writer.write(request.encode() + early)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout(5))
        assert head.startswith(b"HTTP/1.1 101 "), head
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def receive(self) -> tuple[int, bytes]:
        """The next frame from the server: (opcode, payload)."""
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        assert not second & 0x80, "servers do not mask"
        return first & 0x0F, await self.reader.readexactly(size)

    async def close_code(self, within: float = 10.0) -> int | None:
        """Skip data frames until the server's close frame; its code (None: no close frame)."""

        async def wait() -> int | None:
            try:
                while True:
                    opcode, payload = await self.receive()
                    if opcode == CLOSE:
                        return int(struct.unpack("!H", payload[:2])[0]) if payload else None
            except asyncio.IncompleteReadError:
                return None

        try:
            return await asyncio.wait_for(wait(), timeout(within))
        finally:
            await self.close()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest.fixture
async def echo(aiohttp_server: Any) -> tuple[TestServer, list[bytes]]:
    """An app whose handler prepares its WebSocket as agent_ws does; it records what arrives."""
    received: list[bytes] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = MaskedWebSocketResponse(protocols=("tty",), compress=False, max_msg_size=65537)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is not WSMsgType.BINARY:
                break
            received.append(msg.data)
            await ws.send_bytes(b"got " + msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    server: TestServer = await aiohttp_server(app)
    return server, received


async def test_the_server_closes_on_an_unmasked_frame(echo: Any) -> None:
    server, received = echo
    ws = await RawWebSocket.connect(server.port, "/ws")
    await ws.send(frame(b"one"))
    assert await ws.receive() == (BINARY, b"got one")
    await ws.send(frame(b"two") + frame(b"three", masked=False) + frame(b"four"))
    assert await ws.close_code() == 1002
    assert received == [b"one", b"two"]


async def test_an_unmasked_frame_split_across_reads(echo: Any) -> None:
    server, received = echo
    ws = await RawWebSocket.connect(server.port, "/ws")
    data = frame(b"one") + frame(b"two", masked=False)
    # The server hangs up two bytes into the bad frame, before the rest is
    # sent: its close frame must be read before a write fails.
    closed = asyncio.create_task(ws.close_code())
    with contextlib.suppress(ConnectionError):
        for i in range(len(data)):
            await ws.send(data[i : i + 1])
            await asyncio.sleep(0.002)  # separate reads, as far as TCP lets us
    assert await closed == 1002
    assert received == [b"one"]


async def test_frames_sent_with_the_upgrade_request_are_checked(echo: Any) -> None:
    server, received = echo
    ws = await RawWebSocket.connect(server.port, "/ws", early=frame(b"early") + frame(b"x"))
    assert await ws.receive() == (BINARY, b"got early")
    assert await ws.receive() == (BINARY, b"got x")
    await ws.close()
    smuggler = await RawWebSocket.connect(
        server.port, "/ws", early=frame(b"a") + frame(b"b", masked=False)
    )
    assert await smuggler.close_code() == 1002
    assert received == [b"early", b"x", b"a"]


async def test_masked_frames_of_every_size_still_arrive(echo: Any) -> None:
    server, received = echo
    ws = await RawWebSocket.connect(server.port, "/ws")
    sizes = [0, 1, 125, 126, 65535, 65536]
    for size in sizes:
        await ws.send(frame(b"m" * size, PING if size == 1 else BINARY))
    await ws.send(frame(b"m" * 32768, fin=False) + frame(b"n" * 32768, CONTINUATION))
    replies = [await ws.receive() for _ in range(7)]
    assert [opcode for opcode, _ in replies].count(PONG) == 1
    assert [len(r) for r in received] == [0, 125, 126, 65535, 65536, 65536]
    await ws.send(frame(struct.pack("!H", 1000), CLOSE))
    assert await ws.close_code() == 1000


# --- the gateway's route (these need agent_ws to use the module) --------------------


async def raw_viewer(client: Any, agent: LocalAgent) -> RawWebSocket:
    # Input sent before the upstream is up is refused, not queued: wait for it.
    hub = client.app[FLEET].get(agent.name)
    await eventually(lambda: hub.status.state is AgentState.CONNECTED, message="agent connected")
    ws = await RawWebSocket.connect(client.port, f"/agents/{agent.name}/ws")
    await ws.send(frame(ttyd.Handshake().serialize()))
    return ws


async def test_gateway_closes_a_viewer_that_sends_an_unmasked_frame(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    ws = await raw_viewer(client, agent)
    await ws.send(frame(ttyd.Input(b"echo kept-$((6*7))\r").serialize()))
    await ws.send(frame(ttyd.Input(b"echo smuggled-$((6*7))\r").serialize(), masked=False))
    assert await ws.close_code() == 1002
    await eventually(lambda: contains(agent.capture(), "kept-42"), message="masked input")
    assert "smuggled-42" not in await agent.capture()


def padded_resume(size: int) -> bytes:
    """A message of ``size`` bytes that changes nothing: ttyd's resume ignores its payload."""
    return ttyd.Resume().serialize().ljust(size, b"r")


async def test_gateway_takes_exactly_64_kib_and_refuses_one_byte_more(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    ws = await raw_viewer(client, agent)
    # Messages are taken in order: the input runs only if the 64 KiB one was let through.
    await ws.send(frame(padded_resume(64 * 1024)))
    await ws.send(frame(ttyd.Input(b"echo taken-$((6*7))\r").serialize()))
    await eventually(
        lambda: contains(agent.capture(), "taken-42"), within=30, message="input after 64 KiB"
    )
    await ws.send(frame(struct.pack("!H", 1000), CLOSE))
    assert await ws.close_code() == 1000
    ws = await raw_viewer(client, agent)
    too_big = frame(padded_resume(64 * 1024 + 1))
    await ws.send(too_big + frame(ttyd.Input(b"echo refused-$((6*7))\r").serialize()))
    assert await ws.close_code() == 1009
    assert "refused-42" not in await agent.capture()
