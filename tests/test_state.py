"""The agent-state vocabulary: its transitions, and the front end's copy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.core import ttyd
from gateway.core.state import TRANSITIONS, AgentState, allowed, javascript
from gateway.errors import PeerProtocolError

GENERATED = Path(__file__).parent.parent / "static" / "src" / "agent-state.js"


def test_every_state_has_its_transitions_and_no_state_is_a_dead_end() -> None:
    assert set(TRANSITIONS) == set(AgentState)
    for state in AgentState:
        assert TRANSITIONS[state], state
        # Every state can get back to a terminal: a new target connects.
        assert allowed(state, AgentState.CONNECTING)


def test_the_upstream_cannot_skip_its_handshake() -> None:
    assert not allowed(AgentState.RECONNECTING, AgentState.CONNECTED)
    assert not allowed(AgentState.STOPPED, AgentState.CONNECTED)
    assert not allowed(AgentState.UNREACHABLE, AgentState.RECONNECTING)
    assert allowed(AgentState.CONNECTED, AgentState.CONNECTED)


def test_the_front_ends_copy_is_generated_from_this_one() -> None:
    # Regenerate with: .venv/bin/python -m gateway.core.state > static/src/agent-state.js
    assert GENERATED.read_text(encoding="utf-8") == javascript()
    printed = subprocess.run(
        [sys.executable, "-m", "gateway.core.state"], capture_output=True, check=True, text=True
    )
    assert printed.stdout == javascript()


def test_a_status_frame_carries_only_known_states() -> None:
    frame = ttyd.Status(AgentState.RECONNECTING, 80, 24, retry_in=1.5).serialize()
    parsed = ttyd.parse_server(frame)
    assert isinstance(parsed, ttyd.Status)
    assert parsed.state is AgentState.RECONNECTING
    with pytest.raises(PeerProtocolError, match="unknown state"):
        ttyd.Status.parse(b'{"state": "running\\u202e", "columns": 80, "rows": 24}')
