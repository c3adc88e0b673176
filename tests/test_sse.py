"""SSE framing: one event, its fields on one line each."""

from __future__ import annotations

import pytest

from gateway.errors import LocalProtocolError
from gateway.web.sse import format_event


def test_event_framing() -> None:
    assert format_event('{"a": 1}', event="log", event_id="e-1") == (
        b'id: e-1\nevent: log\ndata: {"a": 1}\n\n'
    )
    assert format_event("one\ntwo") == b"data: one\ndata: two\n\n"
    assert format_event("") == b"data: \n\n"
    with pytest.raises(LocalProtocolError):
        format_event("x", event="bad\nname")
