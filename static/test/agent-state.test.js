/**
 * The front end has words for every agent state gateway/core/state.py
 * defines (static/src/agent-state.js is generated from it): a state added
 * there fails here until the pages know how to show it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ATTENTION, NO_TERMINAL, STATES } from "../src/agent-state.js";
import { STATUS_LABELS, rank, statusLabel } from "../src/wall-model.js";

describe("every agent state", () => {
  it("has a wall label, and the labels name no state that is gone", () => {
    assert.deepEqual(Object.keys(STATUS_LABELS).sort(), [...STATES].sort());
    for (const state of STATES) assert.ok(statusLabel({ status: state }), state);
  });

  it("has a place on the wall: attention first, no terminal last", () => {
    for (const state of STATES) {
      const expected = ATTENTION.has(state) ? 0 : NO_TERMINAL.has(state) ? 2 : 1;
      assert.equal(rank({ status: state }), expected, state);
    }
    assert.deepEqual(
      STATES.filter((state) => rank({ status: state }) === 1),
      ["connecting", "connected"],
    );
  });
});
