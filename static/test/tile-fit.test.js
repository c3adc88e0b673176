import assert from "node:assert/strict";
import { test } from "node:test";

import { MIN_SCALE, fitTile, rowsOf } from "../src/tile-fit.js";

test("rows of runs: a row per line, styles kept, empty rows kept", () => {
  const red = { fg: "#cd3131" };
  const rows = rowsOf([
    { text: "a", style: {} },
    { text: "b\n\nc", style: red },
    { text: "d\n", style: {} },
  ]);
  assert.deepEqual(rows, [
    [
      { text: "a", style: {} },
      { text: "b", style: red },
    ],
    [],
    [
      { text: "c", style: red },
      { text: "d", style: {} },
    ],
  ]);
  assert.deepEqual(rowsOf([]), [[]]);
  assert.equal(rowsOf([{ text: "x\n\n\n", style: {} }]).length, 3);
});

// A 120x40 agent laid out at 10 px: 6 px columns, 12 px rows.
const agent = { width: 720, height: 480, rows: 40 };

test("the whole screen, scaled to the tile's width", () => {
  const fit = fitTile({ ...agent, boxWidth: 360, maxHeight: 320 });
  assert.deepEqual(fit, { scale: 0.5, firstRow: 0, shownRows: 40, height: 240 });
});

test("a tall screen is scaled to the height limit while that stays legible", () => {
  const fit = fitTile({ ...agent, boxWidth: 720, maxHeight: 240 });
  assert.equal(fit.scale, 0.5);
  assert.equal(fit.shownRows, 40);
  assert.equal(fit.height, 240);
});

test("never scaled up", () => {
  assert.equal(fitTile({ width: 300, height: 120, rows: 10, boxWidth: 900, maxHeight: 900 }).scale, 1);
});

test("too small to read: the rows around the cursor, at the smallest scale", () => {
  // 300x100 in a phone's tile.
  const big = { width: 1800, height: 1200, rows: 100, boxWidth: 350, maxHeight: 320 };
  const fit = fitTile({ ...big, cursorRow: 50 });
  assert.equal(fit.scale, MIN_SCALE);
  assert.equal(fit.shownRows, Math.floor(320 / (12 * MIN_SCALE)));
  assert.ok(fit.height <= 320);
  const last = fit.firstRow + fit.shownRows - 1;
  assert.ok(fit.firstRow <= 50 && 50 <= last, "the cursor's row is shown");
  assert.ok(last - 50 >= 5, "and rows below it (an agent's status line)");
  // At the top or the bottom the window stays on the screen.
  assert.equal(fitTile({ ...big, cursorRow: 0 }).firstRow, 0);
  const bottom = fitTile({ ...big, cursorRow: 99 });
  assert.equal(bottom.firstRow + bottom.shownRows, 100);
  assert.equal(fitTile({ ...big, cursorRow: 500 }).firstRow, bottom.firstRow);
});

test("nothing measured yet (a hidden tile): drawn as it is", () => {
  assert.deepEqual(fitTile({ width: 0, height: 0, rows: 24, boxWidth: 0, maxHeight: 320 }), {
    scale: 1,
    firstRow: 0,
    shownRows: 24,
    height: 0,
  });
});
