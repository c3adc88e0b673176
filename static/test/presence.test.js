import assert from "node:assert/strict";
import { test } from "node:test";

import { displayName, presenceText } from "../src/presence.js";

test("spectators are named as such, users by their name", () => {
  assert.equal(displayName("spectator:7-abc"), "spectator");
  assert.equal(displayName("olga"), "olga");
});

test("viewers and their names", () => {
  const agent = { id: "a", viewers: 3, presence: { olga: 2, "spectator:7-abc": 1 } };
  assert.equal(presenceText(agent), "3 watching: olga, spectator");
});

test("viewers the gateway names nobody for: the count alone, no dangling colon", () => {
  assert.equal(presenceText({ viewers: 1, presence: {} }), "1 watching");
  assert.equal(presenceText({ viewers: 2 }), "2 watching");
});

test("nobody watching: nothing to say", () => {
  assert.equal(presenceText({ viewers: 0, presence: {} }), "");
  assert.equal(presenceText({}), "");
});
