import assert from "node:assert/strict";
import { test } from "node:test";

import { CommandHistory, HISTORY_SIZE, timeStamp } from "../src/command-history.js";

test("ArrowUp brings back the last line sent, then older ones; ArrowDown the draft", () => {
  const history = new CommandHistory();
  assert.equal(history.up(""), "", "nothing sent yet");
  history.push("make test");
  history.push("git status");
  assert.equal(history.up("half-typ"), "git status");
  assert.equal(history.up("git status"), "make test");
  assert.equal(history.up("make test"), "make test", "the oldest stays");
  assert.equal(history.down(), "git status");
  assert.equal(history.down(), "half-typ", "past the newest: what was being typed");
  assert.equal(history.down(), "half-typ");
});

test("a line sent twice in a row is kept once; an empty line never", () => {
  const history = new CommandHistory();
  history.push("ls");
  history.push("ls");
  history.push("");
  assert.equal(history.up(""), "ls");
  assert.equal(history.up("ls"), "ls");
});

test("sending starts the walk again from the newest", () => {
  const history = new CommandHistory();
  history.push("a");
  history.push("b");
  history.up("");
  history.up("b");
  history.push("c");
  assert.equal(history.up(""), "c");
});

test("the history is bounded", () => {
  const history = new CommandHistory();
  for (let i = 0; i < HISTORY_SIZE + 10; i++) history.push(`line ${i}`);
  let oldest = "";
  for (let i = 0; i < HISTORY_SIZE + 20; i++) oldest = history.up(oldest);
  assert.equal(oldest, "line 10");
});

test("results are stamped with the time of day, zero-padded, 24 hours", () => {
  assert.equal(timeStamp(new Date(2026, 0, 2, 9, 4, 7)), "09:04:07");
  assert.equal(timeStamp(new Date(2026, 0, 2, 23, 59, 59)), "23:59:59");
});
