"""Stream ids as byte offsets, entries and checkpoints (pure)."""

from __future__ import annotations

import pytest

from gateway.core import ttyd
from gateway.core.state import AgentState
from gateway.errors import PeerProtocolError
from gateway.replica.codec import (
    ORIGIN,
    Checkpoint,
    Entry,
    Forwarded,
    Keys,
    Kind,
    Position,
    StreamId,
    answer,
    parse_answer,
)


def test_ids_are_offsets_and_order_like_redis() -> None:
    position = Position()
    assert position.event() == StreamId(0, 1)  # Redis refuses 0-0
    assert position.output(5) == StreamId(5, 0)
    assert position.event() == StreamId(5, 1)
    assert position.event() == StreamId(5, 2)
    assert position.output(3) == StreamId(8, 0)
    assert StreamId.parse(b"8-0") == StreamId(8, 0)
    assert str(StreamId(8, 2)) == "8-2"
    assert sorted([StreamId(8, 0), StreamId(5, 2), StreamId(5, 10)]) == [
        StreamId(5, 2),
        StreamId(5, 10),
        StreamId(8, 0),
    ]
    with pytest.raises(PeerProtocolError):
        StreamId.parse(b"eight-0")


def test_a_position_tells_a_gap_from_the_next_entry() -> None:
    position = Position(StreamId(5, 1))
    assert position.follows(Entry(StreamId(8, 0), Kind.OUTPUT, b"abc"))
    assert not position.follows(Entry(StreamId(9, 0), Kind.OUTPUT, b"abc"))  # a byte lost
    assert not position.follows(Entry(StreamId(7, 0), Kind.OUTPUT, b"abc"))  # one twice
    assert position.follows(Entry(StreamId(5, 2), Kind.STATUS, b"{}"))
    assert position.follows(Entry(StreamId(5, 7), Kind.STATUS, b"{}"))  # answers may be skipped
    assert not position.follows(Entry(StreamId(5, 1), Kind.STATUS, b"{}"))
    assert not position.follows(Entry(StreamId(6, 1), Kind.STATUS, b"{}"))
    assert StreamId(0, 1) > ORIGIN


def test_entries_and_checkpoints_round_trip() -> None:
    entry = Entry.parse(b"8-0", {b"k": b"o", b"d": b"\x1b[31m\xff"})
    assert entry == Entry(StreamId(8, 0), Kind.OUTPUT, b"\x1b[31m\xff")
    for fields in ({b"d": b"x"}, {b"k": b"?"}, {b"k": b"\xff"}):
        with pytest.raises(PeerProtocolError):
            Entry.parse(b"1-0", fields)
    status = ttyd.Status(AgentState.CONNECTED, 100, 30, message="line\none")
    checkpoint = Checkpoint(StreamId(42, 3), status, b"\x1bc\r\nrepaint\n")
    assert Checkpoint.decode(b"42-3", checkpoint.encode()) == checkpoint
    with pytest.raises(PeerProtocolError):
        Checkpoint.decode(b"1-0", b"no newline")


def test_forwarded_input_and_answers() -> None:
    forwarded = Forwarded("q1", "7:r1", ttyd.Input(b"ls\r").serialize())
    fields = {
        k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in forwarded.fields().items()
    }
    assert Forwarded.parse(fields) == forwarded
    with pytest.raises(PeerProtocolError):
        Forwarded.parse({b"q": b"q1"})
    assert parse_answer(answer("q1", None)) == ("q1", None)
    assert parse_answer(answer("q2", "not yours")) == ("q2", "not yours")
    for bad in (b"", b"[]", b'{"q": 1, "ok": true}', b'{"q": "x", "ok": "yes"}'):
        with pytest.raises(PeerProtocolError):
            parse_answer(bad)


def test_every_key_of_an_agent_shares_one_hash_tag() -> None:
    keys = Keys("fleet:")
    agent = [keys.lease("a.b"), keys.output("a.b"), keys.checkpoint("a.b"), keys.inbox("a.b")]
    assert all(key.startswith("fleet:a:{a.b}:") for key in agent)
    assert len(set(agent)) == len(agent)
