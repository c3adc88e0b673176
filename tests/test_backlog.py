"""What the emulator has still to read: pieces in order, resizes in place, the tail."""

from __future__ import annotations

from gateway.core.backlog import Backlog, ResizeMark


def test_pieces_come_in_order_without_the_command_byte_and_resizes_in_place() -> None:
    backlog = Backlog()
    backlog.output(b"0abcdefgh")
    backlog.resize(100, 30)
    backlog.output(b"0ij")
    backlog.output(b"0")  # an empty message leaves nothing to read
    assert backlog.bytes == 10
    assert backlog.resize_pending
    assert backlog.take(3) == b"abc"
    assert backlog.tail() == b"defgh" + b"ij"  # the head offset, not a re-slice
    assert backlog.take(3) == b"def"
    assert backlog.take(3) == b"gh"
    assert backlog.take(3) == ResizeMark(100, 30)
    assert not backlog.resize_pending
    assert backlog.take(3) == b"ij"
    assert not backlog
    assert backlog.bytes == 0
    assert backlog.tail() == b""


def test_whatever_the_piece_size_the_bytes_are_the_output() -> None:
    messages = [b"0" + bytes([65 + i % 26]) * (i * 7 % 50 + 1) for i in range(200)]
    expected = b"".join(m[1:] for m in messages)
    for size in (1, 3, 64, 4096):
        backlog = Backlog()
        for message in messages:
            backlog.output(message)
        read = bytearray()
        while backlog:
            piece = backlog.take(size)
            assert isinstance(piece, bytes)
            assert 0 < len(piece) <= size
            read += piece
            assert bytes(read) + backlog.tail() == expected
        assert bytes(read) == expected
