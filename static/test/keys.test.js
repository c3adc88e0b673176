import assert from "node:assert/strict";
import { test } from "node:test";

import { KEY_ROW, keySequence } from "../src/keys.js";

test("the row has what a phone lacks: Esc, Tab, Ctrl-C, arrows, Enter and the digits", () => {
  const labels = KEY_ROW.map(([label]) => label);
  assert.deepEqual(labels.slice(0, 8), ["Esc", "Tab", "Ctrl-C", "←", "↑", "↓", "→", "Enter"]);
  assert.deepEqual(labels.slice(8).sort(), "0123456789".split(""));
  for (const [, key] of KEY_ROW) assert.equal(typeof keySequence(key), "string");
});

test("keys type what a terminal's keyboard would", () => {
  assert.equal(keySequence("escape"), "\x1b");
  assert.equal(keySequence("tab"), "\t");
  assert.equal(keySequence("ctrl-c"), "\x03");
  assert.equal(keySequence("enter"), "\r");
  assert.equal(keySequence("7"), "7");
});

test("arrows follow the cursor-key mode the program asked for", () => {
  assert.equal(keySequence("up"), "\x1b[A");
  assert.equal(keySequence("left"), "\x1b[D");
  assert.equal(keySequence("up", { applicationCursor: true }), "\x1bOA");
  assert.equal(keySequence("right", { applicationCursor: true }), "\x1bOC");
  assert.equal(keySequence("down", { applicationCursor: true }), "\x1bOB");
});

test("anything else is no key (not a way to type arbitrary text)", () => {
  for (const key of ["", "a", "12", "constructor", "__proto__", "toString", "\x03"]) {
    assert.throws(() => keySequence(key), RangeError, JSON.stringify(key));
  }
});
