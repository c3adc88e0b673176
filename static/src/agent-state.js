// Generated from gateway/core/state.py by `python -m gateway.core.state`: do not edit.
export const STATES = Object.freeze(["connecting", "connected", "reconnecting", "stopped", "conflict", "unreachable"]);
export const ATTENTION = new Set(["conflict", "reconnecting", "unreachable"]);
export const NO_TERMINAL = new Set(["conflict", "stopped", "unreachable"]);
export const TRANSITIONS = Object.freeze({
  "connecting": [
    "conflict",
    "connected",
    "reconnecting",
    "stopped",
    "unreachable"
  ],
  "connected": [
    "conflict",
    "connecting",
    "reconnecting",
    "stopped",
    "unreachable"
  ],
  "reconnecting": [
    "conflict",
    "connecting",
    "stopped",
    "unreachable"
  ],
  "stopped": [
    "conflict",
    "connecting",
    "stopped",
    "unreachable"
  ],
  "conflict": [
    "conflict",
    "connecting",
    "stopped",
    "unreachable"
  ],
  "unreachable": [
    "conflict",
    "connecting",
    "stopped",
    "unreachable"
  ]
});
