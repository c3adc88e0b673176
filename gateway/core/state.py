"""The one vocabulary for where an agent's terminal stands.

Every layer speaks it: the upstream reports the first four, whoever owns the
agent (config, Docker discovery) sets the last three when there is no
terminal to connect to, the hub tells viewers in its status frame (``'S'``),
``/api/agents`` and the event feed carry it, metrics label by it, and the
front end reads the same list from ``static/src/agent-state.js``, which is
generated from this module (``python -m gateway.core.state``; a test fails
when it is stale).

The transitions, in one place (:data:`TRANSITIONS`)::

    connecting ──► connected ──► reconnecting ──► connecting ...
         ▲  (ttyd answers)   (it went away)    (its delay is over)
         │
    stopped / conflict / unreachable      no terminal now; a new target
         ▲                                connects (connecting), and the
         └── from any state               owner may say why it has none

A hub starts ``connecting`` with a target and ``stopped`` without one.
"""

from __future__ import annotations

import enum
import json
import sys


class AgentState(enum.StrEnum):
    # The upstream's own states: it is dialling, it is up, or it waits to retry.
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    # No terminal to connect to, and why (set by the agent's owner).
    STOPPED = "stopped"  # the container (or the gateway's hold on it) stopped
    CONFLICT = "conflict"  # two containers claim the same agent id
    UNREACHABLE = "unreachable"  # its labels name no terminal we can reach


_WITH_TERMINAL = frozenset({AgentState.CONNECTING, AgentState.CONNECTED, AgentState.RECONNECTING})
_NO_TERMINAL = frozenset(AgentState) - _WITH_TERMINAL
# What the wall puts first: something is wrong.
_ATTENTION = frozenset({AgentState.RECONNECTING, AgentState.CONFLICT, AgentState.UNREACHABLE})

#: Which states may follow which. Staying in a state (a new retry delay, a new
#: message) is always allowed and not listed.
TRANSITIONS: dict[AgentState, frozenset[AgentState]] = {
    AgentState.CONNECTING: frozenset({AgentState.CONNECTED, AgentState.RECONNECTING})
    | _NO_TERMINAL,
    AgentState.CONNECTED: frozenset({AgentState.RECONNECTING, AgentState.CONNECTING})
    | _NO_TERMINAL,
    AgentState.RECONNECTING: frozenset({AgentState.CONNECTING}) | _NO_TERMINAL,
    **{state: frozenset({AgentState.CONNECTING}) | _NO_TERMINAL for state in _NO_TERMINAL},
}


def allowed(before: AgentState, after: AgentState) -> bool:
    """Whether ``after`` may follow ``before`` (the same state always may)."""
    return before is after or after in TRANSITIONS[before]


def javascript() -> str:
    """The front end's copy of this vocabulary, as an ES module."""
    table = {state.value: sorted(s.value for s in TRANSITIONS[state]) for state in AgentState}
    return (
        "// Generated from gateway/core/state.py by `python -m gateway.core.state`: do not edit.\n"
        f"export const STATES = Object.freeze({json.dumps([s.value for s in AgentState])});\n"
        "export const ATTENTION = new Set("
        f"{json.dumps(sorted(s.value for s in _ATTENTION))});\n"
        "export const NO_TERMINAL = new Set("
        f"{json.dumps(sorted(s.value for s in _NO_TERMINAL))});\n"
        f"export const TRANSITIONS = Object.freeze({json.dumps(table, indent=2)});\n"
    )


if __name__ == "__main__":
    sys.stdout.write(javascript())
