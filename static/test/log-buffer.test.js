import assert from "node:assert/strict";
import { test } from "node:test";

import { LogBuffer, levelOf, parseId } from "../src/log-buffer.js";

const line = (text, stream = "stdout") => ({ ts: "2026-11-23T00:00:00Z", stream, line: text });

test("repeats are dropped, ids from a new epoch are taken", () => {
  const buffer = new LogBuffer();
  assert.equal(buffer.add("ab-1", line("one")), true);
  assert.equal(buffer.add("ab-2", line("two")), true);
  assert.equal(buffer.add("ab-2", line("two")), false);
  assert.equal(buffer.add("ab-1", line("one")), false);
  assert.equal(buffer.add("cd-1", line("other container")), true);
  assert.deepEqual(
    buffer.lines.map((l) => l.line),
    ["one", "two", "other container"],
  );
});

test("capacity keeps the newest and counts the rest", () => {
  const buffer = new LogBuffer(3);
  for (let n = 1; n <= 5; n++) buffer.add(`e-${n}`, line(`l${n}`));
  assert.deepEqual(buffer.lines.map((l) => l.line), ["l3", "l4", "l5"]);
  assert.equal(buffer.dropped, 2);
  buffer.reset();
  assert.equal(buffer.lines.length, 0);
  assert.equal(buffer.add("e-1", line("again")), true); // after a reset, old ids are new
});

test("filter by text without colours, and by stream", () => {
  const buffer = new LogBuffer();
  buffer.add("e-1", line("\x1b[31mERROR\x1b[0m disk full", "stderr"));
  buffer.add("e-2", line("all good"));
  assert.deepEqual(buffer.filter({ text: "error disk" }).map((l) => l.id), ["e-1"]);
  assert.deepEqual(buffer.filter({ stream: "stdout" }).map((l) => l.id), ["e-2"]);
  assert.equal(buffer.filter(), buffer.lines);
  assert.equal(buffer.lines[0].level, "error");
});

test("levels and ids", () => {
  assert.equal(levelOf("WARN: low memory"), "warn");
  assert.equal(levelOf("[debug] x"), "debug");
  assert.equal(levelOf("nothing to see"), "");
  assert.deepEqual(parseId("0a1b-42"), ["0a1b", 42]);
  assert.equal(parseId("nonsense"), null);
});
