/**
 * How a wall tile draws an agent's screen, without the DOM: the styled runs
 * of the screen's text split into rows, and the scale (and the rows) that
 * make the screen fit the tile.
 *
 * The picture is laid out at a fixed font size and scaled down as a whole,
 * so every row and column is there whatever the agent's size; only when
 * that would be too small to make out does a tile show fewer rows, the ones
 * around the cursor, where a prompt or an agent's status line is.
 */

/** Below this scale (of a 10 px font) a tile shows the rows around the cursor instead. */
export const MIN_SCALE = 0.35;

/** Runs ({text, style}, see ansi.js) as rows of runs, one per line of text. */
export function rowsOf(runs) {
  const rows = [[]];
  for (const run of runs) {
    const parts = run.text.split("\n");
    parts.forEach((text, index) => {
      if (index > 0) rows.push([]);
      if (text) rows[rows.length - 1].push({ text, style: run.style });
    });
  }
  // The text ends each row with a newline: no row follows the last one.
  if (rows.length > 1 && rows[rows.length - 1].length === 0) rows.pop();
  return rows;
}

/**
 * The scale and the rows to show for a screen of `rows` rows laid out at
 * `width` x `height` px, in a box `boxWidth` wide and at most `maxHeight`
 * tall: {scale, firstRow, shownRows, height (of the box, px)}.
 *
 * The whole screen when it fits at `minScale` or more; otherwise at
 * `minScale` (the width may then be cut on the right), as many rows as fit,
 * the cursor's row two thirds of the way down where the screen allows.
 */
export function fitTile({ width, height, rows, cursorRow = rows - 1, boxWidth, maxHeight, minScale = MIN_SCALE }) {
  if (!(width > 0 && height > 0 && rows > 0 && boxWidth > 0 && maxHeight > 0)) {
    return { scale: 1, firstRow: 0, shownRows: Math.max(rows, 0), height: Math.max(height, 0) };
  }
  const whole = Math.min(boxWidth / width, maxHeight / height, 1);
  if (whole >= minScale) return { scale: whole, firstRow: 0, shownRows: rows, height: height * whole };
  const scale = Math.min(minScale, 1);
  const rowHeight = (height / rows) * scale;
  const shownRows = Math.max(1, Math.min(rows, Math.floor(maxHeight / rowHeight)));
  const cursor = Math.min(Math.max(cursorRow, 0), rows - 1);
  const wanted = cursor - Math.ceil((shownRows * 2) / 3) + 1;
  const firstRow = Math.min(Math.max(wanted, 0), rows - shownRows);
  return { scale, firstRow, shownRows, height: shownRows * rowHeight };
}
