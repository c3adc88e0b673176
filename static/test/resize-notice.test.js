import assert from "node:assert/strict";
import { test } from "node:test";

import { resizeNotice } from "../src/resize-notice.js";

const notice = {
  code: "resized",
  message: "olga resized the agent to 46x40 (was 100x30)",
  by: "olga",
  columns: 46,
  rows: 40,
  previous: { columns: 100, rows: 30 },
};

test("an operator is told who resized and offered the size before", () => {
  assert.deepEqual(resizeNotice(notice, true), {
    text: "olga resized the agent to 46x40 (was 100x30)",
    restore: { columns: 100, rows: 30 },
    label: "restore size (100x30)",
  });
});

test("a viewer is told, with nothing to press", () => {
  const shown = resizeNotice(notice, false);
  assert.equal(shown.text, notice.message);
  assert.equal(shown.restore, null);
});

test("no usable size before: nothing to restore; no words: a plain sentence", () => {
  for (const previous of [undefined, null, {}, { columns: "100", rows: 30 }, { columns: 0, rows: 30 }, { columns: 1.5, rows: 2 }]) {
    assert.equal(resizeNotice({ ...notice, previous }, true).restore, null, JSON.stringify(previous));
  }
  assert.equal(resizeNotice({ code: "resized" }, true).text, "the agent was resized");
  assert.equal(resizeNotice(null, true).restore, null);
});
