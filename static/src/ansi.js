/**
 * ANSI SGR colours in log lines, turned into styled runs for the DOM.
 *
 * Pure: `parseAnsi(text)` returns [{text, style}] where style holds only
 * what differs from the default (fg, bg as CSS colours; bold, dim, italic,
 * underline, inverse). Every other escape sequence (cursor moves, OSC
 * titles, ...) is dropped: a log panel is not a terminal.
 */

// xterm's default 16-colour palette.
export const PALETTE16 = [
  "#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
  "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff",
];

/** The xterm 256-colour palette entry ``n`` as a CSS colour. */
export function color256(n) {
  if (n < 16) return PALETTE16[n];
  if (n < 232) {
    const i = n - 16;
    const level = (v) => (v === 0 ? 0 : 55 + v * 40);
    return `rgb(${level(Math.floor(i / 36))},${level(Math.floor(i / 6) % 6)},${level(i % 6)})`;
  }
  const grey = 8 + (n - 232) * 10;
  return `rgb(${grey},${grey},${grey})`;
}

// CSI ... final byte, OSC ... BEL/ST, or ESC with intermediates and a final byte.
const ESCAPE = /\x1b(?:\[([0-9;:?<=>]*)[ -/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -/]*[0-~])/g;

function applySgr(style, params) {
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  for (let i = 0; i < codes.length; i++) {
    const code = codes[i];
    if (code === 0) for (const key of Object.keys(style)) delete style[key];
    else if (code === 1) style.bold = true;
    else if (code === 2) style.dim = true;
    else if (code === 3) style.italic = true;
    else if (code === 4) style.underline = true;
    else if (code === 7) style.inverse = true;
    else if (code === 22) {
      delete style.bold;
      delete style.dim;
    }
    else if (code === 23) delete style.italic;
    else if (code === 24) delete style.underline;
    else if (code === 27) delete style.inverse;
    else if (code >= 30 && code <= 37) style.fg = PALETTE16[code - 30];
    else if (code >= 90 && code <= 97) style.fg = PALETTE16[code - 90 + 8];
    else if (code >= 40 && code <= 47) style.bg = PALETTE16[code - 40];
    else if (code >= 100 && code <= 107) style.bg = PALETTE16[code - 100 + 8];
    else if (code === 39) delete style.fg;
    else if (code === 49) delete style.bg;
    else if (code === 38 || code === 48) {
      const key = code === 38 ? "fg" : "bg";
      if (codes[i + 1] === 5 && codes[i + 2] >= 0 && codes[i + 2] <= 255) {
        style[key] = color256(codes[i + 2]);
        i += 2;
      } else if (codes[i + 1] === 2 && codes.length >= i + 5) {
        const [r, g, b] = codes.slice(i + 2, i + 5).map((v) => Math.max(0, Math.min(255, v)));
        style[key] = `rgb(${r},${g},${b})`;
        i += 4;
      }
    }
  }
}

export function parseAnsi(text) {
  const runs = [];
  const style = {};
  let last = 0;
  const push = (chunk) => {
    if (!chunk) return;
    const previous = runs[runs.length - 1];
    const same = previous && JSON.stringify(previous.style) === JSON.stringify(style);
    if (same) previous.text += chunk;
    else runs.push({ text: chunk, style: { ...style } });
  };
  for (const match of text.matchAll(ESCAPE)) {
    push(text.slice(last, match.index));
    last = match.index + match[0].length;
    if (match[2] === "m" && !/^[?<=>]/.test(match[1] || "")) applySgr(style, match[1] || "");
  }
  push(text.slice(last));
  // Other control characters would only confuse the layout.
  for (const run of runs) run.text = run.text.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
  return runs.filter((run) => run.text);
}

/** Plain text of a line, for searching. */
export const stripAnsi = (text) => parseAnsi(text).map((run) => run.text).join("");
