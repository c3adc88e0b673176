"""The log decoder: Docker's logs body, cut anywhere, in; lines, timestamps and positions out."""

from __future__ import annotations

import pytest

from gateway.docker.logdecode import (
    LogDecoder,
    LogLine,
    Numbering,
    Position,
    parse_timestamp,
    since_param,
)

TS1 = "2026-11-23T22:55:28.094898164Z"
TS2 = "2026-11-23T22:55:28.1Z"


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_timestamps() -> None:
    assert parse_timestamp(TS1) == 1795474528_094898164
    assert parse_timestamp(TS2) == 1795474528_100000000
    assert parse_timestamp("2026-11-23T23:55:28.5+01:00") == 1795474528_500000000
    assert since_param(1795474528_000000042) == "1795474528.000000042"
    with pytest.raises(ValueError, match="not a Docker timestamp"):
        parse_timestamp("yesterday")


def test_multiplexed_frames_split_anywhere_give_the_same_lines() -> None:
    body = (
        frame(1, f"{TS1} hello \x1b[32mworld\x1b[0m\n".encode())
        + frame(2, f"{TS2} oops\r\n".encode())
        + frame(1, f"{TS2} caf\u00e9 ".encode() + b"\xff\n")
    )
    expected = [
        LogLine(TS1, parse_timestamp(TS1), "stdout", "hello \x1b[32mworld\x1b[0m"),
        LogLine(TS2, parse_timestamp(TS2), "stderr", "oops"),
        LogLine(TS2, parse_timestamp(TS2), "stdout", "caf\u00e9 \ufffd"),
    ]
    assert LogDecoder(tty=False).feed(body) == expected
    for cut in range(len(body)):
        decoder = LogDecoder(tty=False)
        assert decoder.feed(body[:cut]) + decoder.feed(body[cut:]) == expected, cut


def test_a_message_docker_split_is_joined_per_stream() -> None:
    decoder = LogDecoder(tty=False)
    lines = decoder.feed(
        frame(1, f"{TS1} first half, ".encode())
        + frame(2, f"{TS1} meanwhile\n".encode())
        + frame(1, f"{TS2} second half\n".encode())
    )
    assert [(line.stream, line.text, line.ts) for line in lines] == [
        ("stderr", "meanwhile", TS1),
        ("stdout", "first half, second half", TS1),
    ]


def test_tty_containers_are_one_raw_stream() -> None:
    decoder = LogDecoder(tty=True)
    assert decoder.feed(f"{TS1} a\r\n{TS2} b".encode()) == [
        LogLine(TS1, parse_timestamp(TS1), "stdout", "a")
    ]
    assert [line.text for line in decoder.feed(b"c\n")] == ["bc"]


def test_endless_lines_are_cut() -> None:
    decoder = LogDecoder(tty=True)
    lines = decoder.feed(f"{TS1} ".encode() + b"x" * 100_000)
    assert len(lines) == 1
    assert len(lines[0].text) == 16 * 1024


def test_the_json_of_a_line() -> None:
    line = LogLine(TS1, 1, "stderr", 'say "hi"\ttab')
    assert line.json() == f'{{"ts": "{TS1}", "stream": "stderr", "line": "say \\"hi\\"\\ttab"}}'


def test_position_counts_lines_at_the_newest_timestamp() -> None:
    position = Position()
    for ns in (5, 7, 7, 6, 7):
        position.advance(LogLine("", ns, "stdout", ""))
    assert (position.ns, position.count) == (7, 3)


def test_numbering_names_lines_by_their_source() -> None:
    lines = [LogLine("", ns, "stdout", f"l{i}") for i, ns in enumerate([5, 5, 7, 6, 9])]
    first, second = Numbering("0123456789abcdef"), Numbering("0123456789abcdef")
    numbered = [first.number(line) for line in lines]
    # A timestamp that goes back (two writers) is clamped: keys only grow.
    assert [line.key for line in numbered] == [(5, 1), (5, 2), (7, 1), (7, 2), (9, 1)]
    assert first.event_id(numbered[1]) == "0123456789ab-5-2"
    # Another gateway reading the same log gives the same ids.
    assert [second.number(line).key for line in lines] == [line.key for line in numbered]
    # A history cut by its tail may have begun inside the first run: ids there are not trusted.
    first.history_loaded(5, tail=5)
    assert first.uncertain == 5
    assert first.parse("0123456789ab-5-2", now_ns=10) is None
    assert first.parse("0123456789ab-7-2", now_ns=10) == (7, 2)
    second.history_loaded(5, tail=100)  # the whole log: nothing uncertain
    assert second.parse("0123456789ab-5-2", now_ns=10) == (5, 2)
    for junk in (None, "", "0123456789ab-7", "ffffffffffff-7-1", "0123456789ab-7-0", "x" * 100):
        assert second.parse(junk, now_ns=10) is None
    # Too far ahead of our clock to be a line Docker logged.
    assert second.parse(f"0123456789ab-{10**12}-1", now_ns=10) is None
