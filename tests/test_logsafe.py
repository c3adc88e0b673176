"""Log lines nobody outside can forge: controls escaped, parser noise made one line."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.server import ServerConnection, serve

from gateway.core.target import Target
from gateway.core.upstream import Upstream
from gateway.logsafe import escape_controls, handler

from .conftest import GatewayFactory, eventually, raw_http, timeout
from .test_cli import free_port, read_until, serving
from .test_upstream import RecordingSink, running

FORGED = "bye\n2026-12-01 10:00:00,000 INFO gateway.login: login ok user=admin\r\x1b[2J"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text, café, 漢字, 😀", "plain text, café, 漢字, 😀"),
        ("a\nb", "a\\x0ab"),
        ("a\r\nb", "a\\x0d\\x0ab"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("tab\there", "tab\\x09here"),
        ("nul\x00 del\x7f c1\x85\x9b", "nul\\x00 del\\x7f c1\\x85\\x9b"),
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
    ],
)
def test_controls_are_escaped(text: str, expected: str) -> None:
    assert escape_controls(text) == expected


@pytest.fixture
def gateway_log() -> Iterator[io.StringIO]:
    """The handler `gateway serve` installs, on the root logger, into a buffer."""
    stream = io.StringIO()
    out = handler(stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(out)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(out)
    root.setLevel(level)


async def test_a_hostile_ttyd_cannot_forge_log_lines(gateway_log: io.StringIO) -> None:
    """A ttyd (a fake: real ttyd never sends such a reason) closes with newlines."""

    async def hostile(connection: ServerConnection) -> None:
        await connection.recv()  # the handshake
        await connection.close(1011, FORGED)

    async with serve(
        hostile, "127.0.0.1", 0, subprotocols=[websockets.Subprotocol("tty")]
    ) as server:
        port = server.sockets[0].getsockname()[1]
        upstream = Upstream(Target(f"ws://127.0.0.1:{port}/ws"), RecordingSink(), lambda: (80, 24))
        async with running(upstream):
            await eventually(lambda: "retrying" in gateway_log.getvalue(), message="a log line")
            await asyncio.sleep(0)
    lines = gateway_log.getvalue().splitlines()
    assert lines
    assert all(" gateway." in line or " websockets" in line for line in lines)
    assert not any(line.startswith("2026-12-01 10:00:00,000") for line in lines)
    assert "\x1b" not in gateway_log.getvalue()
    assert "login ok user=admin" in gateway_log.getvalue()  # still there, escaped


def test_a_traceback_keeps_its_lines(gateway_log: io.StringIO) -> None:
    try:
        raise RuntimeError("from\noutside")
    except RuntimeError:
        logging.getLogger("gateway.test").exception("failed: %s", "x\ny")
    text = gateway_log.getvalue()
    print("LOG", text)
    assert "failed: x\\x0ay" in text
    assert "Traceback (most recent call last):" in text.splitlines()[1]


async def test_requests_the_parser_refuses_are_logged_in_one_line(
    gateway: GatewayFactory, gateway_log: io.StringIO
) -> None:
    client = await gateway()
    host = f"Host: 127.0.0.1:{client.port}\r\n".encode()
    secret = b"gateway_session=SECRET-COOKIE-VALUE"
    malformed = [
        b"FOO / HTTP/1.1\r\n" + host + b"\r\n",
        b"GET / HTTP/1.1\r\n" + host + b"X-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + host + b"Bad Header\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n" + host + b"\r\n",
        # A cookie bomb, and a header with a bad byte: the parser's message quotes them.
        b"GET / HTTP/1.1\r\n" + host + b"Cookie: " + secret + b"x" * 9000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + host + b"Authorization: Bearer SECRET-TOKEN\x01\r\n\r\n",
    ]
    for request in malformed:
        answer = await raw_http(client.port, request)
        assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer[:80]
    await eventually(
        lambda: gateway_log.getvalue().count("aiohttp.access") >= len(malformed),
        message="an access log line per request",
    )
    text = gateway_log.getvalue()
    print("LOG", text)
    assert "Traceback" not in text
    assert "Unhandled exception" not in text
    assert "SECRET" not in text
    for line in text.splitlines():
        if "aiohttp.access" in line:
            assert "127.0.0.1" in line


async def test_a_client_that_leaves_mid_body_is_no_error(tmp_path: Path) -> None:
    """As `gateway serve` runs: a reset in the middle of a body is not a 500."""
    port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\npublic_origin = "http://127.0.0.1:{port}"\n'
    )
    loop = asyncio.get_running_loop()
    async with serving("serve", "--config", str(config)) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        await asyncio.wait_for(read_until(proc.stdout, "press Ctrl-C", []), timeout(30))
        for path in ("/api/login", "/api/input"):
            with socket.socket() as sock:
                sock.setblocking(False)
                await loop.sock_connect(sock, ("127.0.0.1", port))
                head = (
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    f"Origin: http://127.0.0.1:{port}\r\n"
                    "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
                )
                await loop.sock_sendall(sock, head.encode())
                await asyncio.sleep(0.2)
                # Linger 0: closing sends a reset, mid-body.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        logged: list[str] = []
        for path in ("/api/login", "/api/input"):
            line = await asyncio.wait_for(read_until(proc.stderr, "", logged), timeout(10))
            while f'"POST {path}"' not in line:
                line = await asyncio.wait_for(read_until(proc.stderr, "", logged), timeout(10))
    text = "".join(logged)
    assert "Traceback" not in text
    assert '" 500 ' not in text
    assert '" 400 ' in text
