/** Styled runs (see ansi.js) as DOM spans: textContent and style only, never HTML. */
import { parseAnsi } from "./ansi.js";
import { rowsOf } from "./tile-fit.js";

function spanOf(run) {
  const span = document.createElement("span");
  span.textContent = run.text;
  const { fg, bg, bold, dim, italic, underline, inverse } = run.style;
  const color = inverse ? bg || "#000" : fg;
  const background = inverse ? fg || "#e6e6e6" : bg;
  if (color) span.style.color = color;
  if (background) span.style.backgroundColor = background;
  if (bold) span.style.fontWeight = "bold";
  if (dim) span.style.opacity = "0.7";
  if (italic) span.style.fontStyle = "italic";
  if (underline) span.style.textDecoration = "underline";
  return span;
}

export function ansiSpans(text) {
  return parseAnsi(text).map(spanOf);
}

/** A screen's text (a row per line) as one `div.row` of spans per row. */
export function ansiRows(text) {
  return rowsOf(parseAnsi(text)).map((runs) => {
    const row = document.createElement("div");
    row.className = "row";
    row.append(...runs.map(spanOf));
    return row;
  });
}
