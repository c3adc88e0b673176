"""The resumable ring behind both event streams."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.ring import Ring


def filled(count: int, capacity: int = 5) -> Ring[int]:
    ring: Ring[int] = Ring(capacity)
    for value in range(count):
        ring.append(value)
    return ring


def test_a_client_continues_right_after_the_last_id_it_saw() -> None:
    ring = filled(4)
    start = ring.resume(ring.event_id(2))
    assert start == 3
    assert ring.since(start) == [(3, 2), (4, 3)]
    # Caught up: the next item is the first one it gets.
    assert ring.resume(ring.last_id) == 5
    assert ring.since(5) == []


def test_ids_that_cannot_be_resumed_exactly_are_refused() -> None:
    ring = filled(12)  # 1..7 have left a ring of 5
    assert ring.first_seq == 8
    assert ring.resume(ring.event_id(7)) == 8  # saw 7: 8.. are all here
    assert ring.resume(ring.event_id(6)) is None  # 7 is gone: a gap
    assert ring.resume(ring.event_id(13)) is None  # from the future
    assert ring.resume(filled(12).event_id(7)) is None  # another ring's epoch
    for junk in (None, "", "7", "x-7", f"{ring.epoch}-", f"{ring.epoch}-7" + "0" * 80):
        assert ring.resume(junk) is None, junk


def test_before_anything_is_position_zero() -> None:
    ring: Ring[int] = Ring(3)
    assert ring.resume(ring.last_id) == 1
    ring.append(9)
    assert ring.since(1) == [(1, 9)]


def test_tail_and_limit() -> None:
    ring = filled(5, capacity=10)
    assert ring.since(ring.tail(2)) == [(4, 3), (5, 4)]
    assert ring.since(ring.tail(50)) == ring.since(1)
    assert ring.since(1, limit=2) == [(1, 0), (2, 1)]


def test_the_byte_bound_evicts_too_but_keeps_the_newest() -> None:
    ring: Ring[str] = Ring(100, max_bytes=10, size=len)
    for text in ("aaaa", "bbbb", "cccc"):
        ring.append(text)
    assert [item for _, item in ring.since(1)] == ["bbbb", "cccc"]
    ring.append("x" * 50)  # alone over the bound: kept, it is the newest
    assert [item for _, item in ring.since(1)] == ["x" * 50]


@given(st.integers(1, 20), st.integers(0, 60), st.integers(0, 60))
def test_resume_never_gives_a_gap_or_a_repeat(capacity: int, total: int, seen: int) -> None:
    ring = filled(total, capacity)
    start = ring.resume(ring.event_id(seen))
    if start is None:
        assert seen >= ring.next_seq or seen + 1 < ring.first_seq
    else:
        assert [seq for seq, _ in ring.since(start)] == list(range(seen + 1, total + 1))
