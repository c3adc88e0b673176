import assert from "node:assert/strict";
import { test } from "node:test";

import { Wall, statusLabel } from "../src/wall-model.js";

const agent = (id, status = "connected", extra = {}) => ({ id, status, title: id, viewers: 0, ...extra });

test("attention first, then the most recently changed, then by name", () => {
  const wall = new Wall();
  wall.snapshot({ agents: [agent("b"), agent("a"), agent("stopped-one", "stopped"), agent("c")] }, 0);
  wall.apply("activity", { id: "c", bytes_out: 10, title: "c" }, 5);
  wall.apply("agent", { change: "changed", agent: agent("x", "conflict") }, 1);
  assert.deepEqual(
    wall.visible().map((a) => a.id),
    ["x", "c", "a", "b", "stopped-one"],
  );
});

test("viewer-count changes do not reorder; status changes do", () => {
  const wall = new Wall();
  wall.snapshot({ agents: [agent("a"), agent("b")] }, 0);
  wall.apply("agent", { change: "changed", agent: agent("b", "connected", { viewers: 3 }) }, 9);
  assert.deepEqual(wall.visible().map((a) => a.id), ["a", "b"]);
  assert.equal(wall.agents.get("b").viewers, 3);
  wall.apply("agent", { change: "changed", agent: agent("b", "reconnecting") }, 10);
  assert.deepEqual(wall.visible().map((a) => a.id), ["b", "a"]);
});

test("added and removed", () => {
  const wall = new Wall();
  wall.snapshot({ agents: [agent("a")] }, 0);
  assert.deepEqual(wall.apply("agent", { change: "added", agent: agent("n") }, 1), ["n"]);
  wall.apply("agent", { change: "removed", agent: agent("a") }, 2);
  assert.deepEqual(wall.visible().map((a) => a.id), ["n"]);
  assert.deepEqual(wall.apply("activity", { id: "gone", bytes_out: 1, title: "" }, 3), []);
});

test("filter by name, title and status", () => {
  const wall = new Wall();
  wall.snapshot({
    agents: [agent("claude-1"), agent("gemini-1", "stopped"), agent("x", "connected", { title: "Claude Code" })],
  });
  assert.deepEqual(wall.visible({ text: "claude" }).map((a) => a.id).sort(), ["claude-1", "x"]);
  assert.deepEqual(wall.visible({ status: "stopped" }).map((a) => a.id), ["gemini-1"]);
  assert.deepEqual(wall.visible({ text: "  GEMINI " }).map((a) => a.id), ["gemini-1"]);
});

test("labels", () => {
  assert.equal(statusLabel({ status: "connected" }), "connected");
  assert.equal(statusLabel({ status: "conflict" }), "conflict");
  // A newer gateway's state, or junk: shown as it is, never a prototype's property.
  assert.equal(statusLabel({ status: "paused" }), "paused");
  assert.equal(statusLabel({ status: "toString" }), "toString");
});

test("every tile is stale until the feed is live, and again while it is down", () => {
  const wall = new Wall();
  assert.equal(wall.stale, true);
  assert.equal(wall.feed("live"), true);
  assert.equal(wall.stale, false);
  assert.equal(wall.feed("live"), false, "no change, nothing to redraw");
  assert.equal(wall.feed("offline"), true);
  assert.equal(wall.stale, true);
  assert.equal(wall.feed("ended"), false);
  assert.equal(wall.stale, true);
});
