import assert from "node:assert/strict";
import { test } from "node:test";

import { PALETTE16, color256, parseAnsi, stripAnsi } from "../src/ansi.js";

test("plain text is one run", () => {
  assert.deepEqual(parseAnsi("hello"), [{ text: "hello", style: {} }]);
});

test("16 colours, bright colours, bold and reset", () => {
  assert.deepEqual(parseAnsi("a\x1b[31;1mred\x1b[0m b \x1b[92mgreen"), [
    { text: "a", style: {} },
    { text: "red", style: { fg: PALETTE16[1], bold: true } },
    { text: " b ", style: {} },
    { text: "green", style: { fg: PALETTE16[10] } },
  ]);
});

test("256 colours and truecolour, foreground and background", () => {
  const [run] = parseAnsi("\x1b[38;5;196;48;2;1;2;300mx");
  assert.deepEqual(run.style, { fg: color256(196), bg: "rgb(1,2,255)" });
  assert.equal(color256(196), "rgb(255,0,0)");
  assert.equal(color256(232), "rgb(8,8,8)");
  assert.equal(color256(3), PALETTE16[3]);
});

test("partial resets and defaults", () => {
  const runs = parseAnsi("\x1b[1;3;4;41mA\x1b[22;23;24mB\x1b[49mC\x1b[mD");
  assert.deepEqual(
    runs.map((r) => [r.text, r.style]),
    [
      ["A", { bold: true, italic: true, underline: true, bg: PALETTE16[1] }],
      ["B", { bg: PALETTE16[1] }],
      ["CD", {}], // same style: one run
    ],
  );
});

test("other escapes and control characters are dropped", () => {
  assert.equal(stripAnsi("\x1b]0;title\x07a\x1b[2Kb\x1b[?25lc\x1b(Bd\r\x07e"), "abcde");
  assert.equal(stripAnsi("tab\there"), "tab\there");
});
