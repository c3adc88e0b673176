import assert from "node:assert/strict";
import { test } from "node:test";

import { Wall, arrange, statusLabel } from "../src/wall-model.js";

const agent = (id, status = "connected", extra = {}) => ({ id, status, title: id, viewers: 0, ...extra });

test("attention first, then by name; output never moves a tile", () => {
  const wall = new Wall();
  wall.snapshot({ agents: [agent("b"), agent("a"), agent("stopped-one", "stopped"), agent("c")] });
  wall.apply("activity", { id: "c", bytes_out: 10, title: "busy" });
  wall.apply("agent", { change: "changed", agent: agent("x", "conflict") });
  assert.deepEqual(
    wall.visible().map((a) => a.id),
    ["x", "a", "b", "c", "stopped-one"],
  );
});

test("names sort as people sort them", () => {
  const wall = new Wall();
  wall.snapshot({ agents: ["agent-10", "agent-2", "Agent-3", "agent-1"].map((id) => agent(id)) });
  assert.deepEqual(wall.visible().map((a) => a.id), ["agent-1", "agent-2", "Agent-3", "agent-10"]);
});

test("viewer-count changes do not reorder; a change of attention does", () => {
  const wall = new Wall();
  wall.snapshot({ agents: [agent("a"), agent("b")] });
  wall.apply("agent", { change: "changed", agent: agent("b", "connected", { viewers: 3 }) });
  assert.deepEqual(wall.visible().map((a) => a.id), ["a", "b"]);
  assert.equal(wall.agents.get("b").viewers, 3);
  wall.apply("agent", { change: "changed", agent: agent("b", "reconnecting") });
  assert.deepEqual(wall.visible().map((a) => a.id), ["b", "a"]);
  wall.apply("agent", { change: "changed", agent: agent("b", "connected") });
  assert.deepEqual(wall.visible().map((a) => a.id), ["a", "b"]);
});

test("a held order keeps the tiles shown where they are; new ones go last", () => {
  assert.deepEqual(arrange(["a", "b", "c"], ["c", "a", "b"], false), ["c", "a", "b"]);
  assert.deepEqual(arrange(["a", "b", "c"], ["c", "a", "b"], true), ["a", "b", "c"]);
  // Removed tiles go (nothing to keep), added ones come after the kept ones.
  assert.deepEqual(arrange(["a", "b", "c"], ["n", "c", "a"], true), ["a", "c", "n"]);
  assert.deepEqual(arrange([], ["b", "a"], true), ["b", "a"]);
});

test("added and removed", () => {
  const wall = new Wall();
  wall.snapshot({ agents: [agent("a")] });
  assert.deepEqual(wall.apply("agent", { change: "added", agent: agent("n") }), ["n"]);
  wall.apply("agent", { change: "removed", agent: agent("a") });
  assert.deepEqual(wall.visible().map((a) => a.id), ["n"]);
  assert.deepEqual(wall.apply("activity", { id: "gone", bytes_out: 1, title: "" }), []);
});

test("a fetched screen's title replaces the feed's; none is the agent's name", () => {
  const wall = new Wall();
  wall.snapshot({ agents: [agent("a")] });
  wall.apply("activity", { id: "a", bytes_out: 5, title: "old" });
  assert.deepEqual(wall.apply("screen", { id: "a", title: "new" }), ["a"]);
  assert.equal(wall.agents.get("a").title, "new");
  wall.apply("screen", { id: "a", title: "" });
  assert.equal(wall.agents.get("a").title, "a");
  assert.deepEqual(wall.apply("screen", { id: "gone", title: "x" }), []);
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
