import assert from "node:assert/strict";
import { test } from "node:test";

import { tabState, tabTitle } from "../src/tab-title.js";
import { Phase } from "../src/terminal-model.js";

test("the agent's state while connected, our socket's otherwise", () => {
  assert.equal(tabState(Phase.OPEN, null), "running");
  assert.equal(tabState(Phase.OPEN, "connected"), "running");
  assert.equal(tabState(Phase.OPEN, "reconnecting"), "reconnecting");
  assert.equal(tabState(Phase.OPEN, "stopped"), "stopped");
  assert.equal(tabState(Phase.CONNECTING, "connected"), "connecting");
  assert.equal(tabState(Phase.WAITING, "connected"), "reconnecting");
  assert.equal(tabState(Phase.GAVE_UP, null), "disconnected");
  assert.equal(tabState(Phase.INVALID, null), "");
});

test("name, state, then the program's title when it set one", () => {
  assert.equal(tabTitle({ agentId: "a", state: "running", title: "✳ Working" }), "a (running) · ✳ Working");
  assert.equal(tabTitle({ agentId: "a", state: "running", title: "" }), "a (running)");
  // ttyd's title frame falls back to the agent's name: not a program's title.
  assert.equal(tabTitle({ agentId: "a", state: "running", title: "a" }), "a (running)");
  assert.equal(tabTitle({ agentId: "a", state: "", title: "  " }), "a");
});
