"""The ttyd wire codec: every message type, both directions, and bad input."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from gateway.core import ttyd
from gateway.errors import GatewayError, LocalProtocolError, PeerProtocolError, ProtocolError

sizes = st.tuples(
    st.integers(ttyd.MIN_COLUMNS, ttyd.MAX_COLUMNS), st.integers(ttyd.MIN_ROWS, ttyd.MAX_ROWS)
)
client_messages = st.one_of(
    st.builds(ttyd.Input, st.binary(max_size=512)),
    sizes.map(lambda s: ttyd.Resize(*s)),
    st.just(ttyd.Pause()),
    st.just(ttyd.Resume()),
    st.builds(ttyd.Handshake, st.text(max_size=64)),
    st.tuples(st.text(max_size=64), sizes).map(lambda t: ttyd.Handshake(t[0], *t[1])),
)
server_messages = st.one_of(
    st.builds(ttyd.Output, st.binary(max_size=512)),
    st.builds(ttyd.SetTitle, st.text(max_size=64)),
    st.builds(
        ttyd.SetPreferences,
        st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4),
    ),
    st.builds(
        ttyd.Status,
        st.sampled_from(["connecting", "connected", "reconnecting", "stopped"]),
        st.integers(2, 500),
        st.integers(1, 200),
        st.none() | st.floats(0, 60).map(lambda f: round(f, 3)),
        st.text(max_size=32),
    ),
    st.builds(ttyd.Notice, st.text(max_size=16), st.text(max_size=64)),
)


@given(client_messages)
def test_client_messages_round_trip(message: ttyd.ClientMessage) -> None:
    frame = message.serialize()
    assert frame[0] == message.command
    assert ttyd.parse_client(frame) == message


@given(server_messages)
def test_server_messages_round_trip(message: ttyd.ServerMessage) -> None:
    frame = message.serialize()
    assert frame[0] == message.command
    assert ttyd.parse_server(frame) == message


@given(st.binary(max_size=256))
@example(b"")
@example(b"1")
@example(b"1[]")
@example(b"1{}")
@example(b'1{"columns": true, "rows": 3}')
@example(b"{")
@example(b'{"AuthToken": 5}')
@example(b"\xff")
def test_any_client_bytes_parse_or_raise_peer_error(data: bytes) -> None:
    with contextlib.suppress(PeerProtocolError):
        ttyd.parse_client(data)


@given(st.binary(max_size=256))
def test_any_server_bytes_parse_or_raise_peer_error(data: bytes) -> None:
    with contextlib.suppress(PeerProtocolError):
        ttyd.parse_server(data)


@given(client_messages, st.data())
def test_every_prefix_of_a_client_frame_parses_or_raises(
    message: ttyd.ClientMessage, data: st.DataObject
) -> None:
    # What a torn or fragmented frame would look like if reassembled wrongly.
    frame = message.serialize()
    cut = data.draw(st.integers(0, len(frame)))
    with contextlib.suppress(PeerProtocolError):
        ttyd.parse_client(frame[:cut])


def test_ttyd_web_client_frames() -> None:
    # Exactly what ttyd's html client sends (html/src/components/terminal/xterm).
    hello = json.dumps({"AuthToken": "dTpw", "columns": 120, "rows": 40}).encode()
    assert ttyd.parse_client(hello) == ttyd.Handshake("dTpw", 120, 40)
    assert ttyd.parse_client("0ls\r") == ttyd.Input(b"ls\r")
    assert ttyd.parse_client(b'1{"columns":100,"rows":30}') == ttyd.Resize(100, 30)
    assert ttyd.parse_client(b"2") == ttyd.Pause()
    assert ttyd.parse_client(b"3") == ttyd.Resume()


def test_input_keeps_arbitrary_bytes() -> None:
    raw = bytes(range(256))
    assert ttyd.parse_client(b"0" + raw) == ttyd.Input(raw)


def test_ttyd_server_frames() -> None:
    assert ttyd.parse_server(b"0\x1b[1mhi") == ttyd.Output(b"\x1b[1mhi")
    assert ttyd.parse_server(b"1bash (host)") == ttyd.SetTitle("bash (host)")
    assert ttyd.parse_server(b"2{}") == ttyd.SetPreferences({})
    assert ttyd.parse_server(b'2{"fontSize":14}') == ttyd.SetPreferences({"fontSize": 14})


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"columns": 0, "rows": 0}, (ttyd.MIN_COLUMNS, ttyd.MIN_ROWS)),
        ({"columns": -5, "rows": -1}, (ttyd.MIN_COLUMNS, ttyd.MIN_ROWS)),
        ({"columns": 10**9, "rows": 10**9}, (ttyd.MAX_COLUMNS, ttyd.MAX_ROWS)),
        ({"columns": 80, "rows": 24}, (80, 24)),
    ],
)
def test_resize_is_clamped(payload: dict[str, int], expected: tuple[int, int]) -> None:
    message = ttyd.parse_client(b"1" + json.dumps(payload).encode())
    assert isinstance(message, ttyd.Resize)
    assert (message.columns, message.rows) == expected


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"[80, 24]",
        b'{"columns": 80}',
        b'{"columns": "80", "rows": 24}',
        b'{"columns": 80.5, "rows": 24}',
        b'{"columns": true, "rows": 24}',
        b'{"columns": 1e999, "rows": 24}',
        b'{"columns": ' + b"9" * 5000 + b', "rows": 1}',
        b"[" * 100000,
        b'{"columns": 80, "rows": 24, "x": "' + b"a" * 5000 + b'"}',
    ],
)
def test_malformed_resize_is_a_peer_error(payload: bytes) -> None:
    with pytest.raises(PeerProtocolError):
        ttyd.parse_client(b"1" + payload)


def test_handshake_without_size_means_default() -> None:
    assert ttyd.parse_client(b'{"AuthToken": ""}') == ttyd.Handshake("")
    assert ttyd.parse_client(b'{"AuthToken": null, "columns": 0, "rows": 0}') == ttyd.Handshake()
    assert ttyd.parse_client(b'{"columns": 9999, "rows": 9999}') == ttyd.Handshake(
        "", ttyd.MAX_COLUMNS, ttyd.MAX_ROWS
    )


def test_handshake_token_is_not_in_repr() -> None:
    assert "s3cret" not in repr(ttyd.Handshake("s3cret", 80, 24))


@pytest.mark.parametrize("frame", [b"4", b"x", b"\x00", b"\xff", b"Sx"])
def test_unknown_client_command_is_refused(frame: bytes) -> None:
    with pytest.raises(PeerProtocolError, match="unknown client command"):
        ttyd.parse_client(frame)


def test_empty_frames_are_refused() -> None:
    with pytest.raises(PeerProtocolError):
        ttyd.parse_client(b"")
    with pytest.raises(PeerProtocolError):
        ttyd.parse_server("")


def test_local_errors_are_ours_not_the_peers() -> None:
    with pytest.raises(LocalProtocolError):
        ttyd.Resize(0, 24)
    assert not issubclass(LocalProtocolError, PeerProtocolError)
    assert issubclass(PeerProtocolError, ProtocolError)
    assert issubclass(ProtocolError, GatewayError)


def test_status_and_notice_are_json() -> None:
    status = ttyd.Status("reconnecting", 80, 24, retry_in=1.23456, message="down")
    assert json.loads(status.serialize()[1:]) == {
        "state": "reconnecting",
        "columns": 80,
        "rows": 24,
        "retry_in": 1.235,
        "message": "down",
    }
    notice = ttyd.Notice("input_refused", "agent is down")
    assert json.loads(notice.serialize()[1:]) == {
        "code": "input_refused",
        "message": "agent is down",
    }


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_websocket_frame_is_what_a_websocket_server_sends(size: int) -> None:
    message = bytes(range(256)) * (size // 256) + bytes(size % 256)
    expected = Frame(Opcode.BINARY, message).serialize(mask=False, extensions=[])
    assert ttyd.websocket_frame(message) == expected
