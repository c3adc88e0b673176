/**
 * The on-screen key row (phones have no Esc, Tab, Ctrl or arrow keys): what
 * each key types, as a terminal's keyboard would. The gateway refuses keys
 * from viewers and spectators whatever a page sends; the row is offered to
 * operators only.
 */

/** The row, in order: [name shown, key]. */
export const KEY_ROW = Object.freeze([
  ["Esc", "escape"],
  ["Tab", "tab"],
  ["Ctrl-C", "ctrl-c"],
  ["←", "left"],
  ["↑", "up"],
  ["↓", "down"],
  ["→", "right"],
  ["Enter", "enter"],
  ..."1234567890".split("").map((digit) => [digit, digit]),
]);

const FIXED = Object.freeze({ escape: "\x1b", tab: "\t", "ctrl-c": "\x03", enter: "\r" });
const ARROWS = Object.freeze({ up: "A", down: "B", right: "C", left: "D" });

/**
 * What ``key`` types. Arrows follow the cursor-key mode the program asked
 * for (DECCKM): ESC O A in application mode (tmux, vim, menus), ESC [ A
 * otherwise, as xterm.js itself sends them.
 */
export function keySequence(key, { applicationCursor = false } = {}) {
  if (Object.hasOwn(FIXED, key)) return FIXED[key];
  if (Object.hasOwn(ARROWS, key)) return `\x1b${applicationCursor ? "O" : "["}${ARROWS[key]}`;
  if (/^[0-9]$/.test(key)) return key;
  throw new RangeError(`no such key: ${key}`);
}
