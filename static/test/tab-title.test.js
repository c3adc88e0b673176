import assert from "node:assert/strict";
import { test } from "node:test";

import { tabState, tabTitle } from "../src/tab-title.js";
import { Phase } from "../src/terminal-model.js";

test("the agent's state while connected, our socket's otherwise", () => {
  assert.equal(tabState(Phase.OPEN, null), "connected");
  assert.equal(tabState(Phase.OPEN, "connected"), "connected");
  assert.equal(tabState(Phase.OPEN, "reconnecting"), "reconnecting");
  assert.equal(tabState(Phase.OPEN, "stopped"), "stopped");
  assert.equal(tabState(Phase.CONNECTING, "connected"), "connecting");
  assert.equal(tabState(Phase.WAITING, "connected"), "reconnecting");
  assert.equal(tabState(Phase.GAVE_UP, null), "disconnected");
  assert.equal(tabState(Phase.ENDED, "connected"), "session ended");
  assert.equal(tabState(Phase.INVALID, null), "");
});

test("name, state, then the program's title when it set one", () => {
  assert.equal(tabTitle({ agentId: "a", state: "connected", title: "✳ Working" }), "a (connected) · ✳ Working");
  assert.equal(tabTitle({ agentId: "a", state: "connected", title: "" }), "a (connected)");
  // ttyd's title frame falls back to the agent's name: not a program's title.
  assert.equal(tabTitle({ agentId: "a", state: "connected", title: "a" }), "a (connected)");
  assert.equal(tabTitle({ agentId: "a", state: "", title: "  " }), "a");
});
