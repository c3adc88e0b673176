/**
 * The front end has words for every agent state gateway/core/state.py
 * defines (static/src/agent-state.js is generated from it): a state added
 * there fails here until the pages know how to show it.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

import { ATTENTION, NO_TERMINAL, STATES } from "../src/agent-state.js";
import { agentBadge } from "../src/terminal-model.js";
import { STATE_WORDS } from "../src/vocabulary.js";
import { rank, statusLabel } from "../src/wall-model.js";

/** The values `selector[attribute="..."]` rules in a stylesheet under src/ give a look to. */
function styled(sheet, selector, attribute) {
  const css = readFileSync(new URL(`../src/${sheet}`, import.meta.url), "utf8");
  const rule = new RegExp(`${selector.replace(".", "\\.")}\\[${attribute}="([^"]+)"\\]`, "g");
  return new Set([...css.matchAll(rule)].map((match) => match[1]));
}

describe("every agent state", () => {
  it("has a word of its own, and the words name no state that is gone", () => {
    // Own entries, not the fallback for states this bundle does not know.
    assert.deepEqual(Object.keys(STATE_WORDS).sort(), [...STATES].sort());
    for (const state of STATES) assert.ok(STATE_WORDS[state], state);
  });

  it("is the same word on the wall and in the terminal (issue 14, item 6)", () => {
    for (const state of STATES) {
      const terminal = agentBadge({ state, message: "why" }, 3);
      assert.equal(terminal.text, statusLabel({ status: state }), state);
      assert.equal(terminal.state, state, "the badge is coloured by the state itself");
    }
  });

  it("has an agent badge colour in terminal.css (stopped has the default grey)", () => {
    const coloured = styled("terminal.css", ".status", "data-state");
    assert.deepEqual(STATES.filter((state) => !coloured.has(state)), []);
  });

  it("has a tile colour in wall.css (connected has the default green)", () => {
    const coloured = styled("wall.css", ".tile", "data-status");
    assert.deepEqual(STATES.filter((state) => state !== "connected" && !coloured.has(state)), []);
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
