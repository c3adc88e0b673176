/**
 * The logs panel's lines, without the DOM: a bounded buffer fed by the
 * gateway's log stream (SSE `log` and `reset` events), deduplicated by event
 * id, with the filter the panel shows.
 */
import { stripAnsi } from "./ansi.js";

export const DEFAULT_CAPACITY = 100_000;

const LEVELS = [
  ["error", /\b(error|err|fatal|panic|critical|exception|traceback)\b/i],
  ["warn", /\b(warn|warning)\b/i],
  ["debug", /\b(debug|trace)\b/i],
  ["info", /\b(info|notice)\b/i],
];

/** A line's level, guessed from common spellings (for colouring), or "". */
export function levelOf(text) {
  for (const [level, pattern] of LEVELS) if (pattern.test(text)) return level;
  return "";
}

/** "<epoch>-<n>" → [epoch, n]; the gateway's ids (see gateway/sse.py). */
export function parseId(id) {
  const match = /^([0-9a-f]+)-([0-9]+)$/.exec(id || "");
  return match ? [match[1], Number(match[2])] : null;
}

export class LogBuffer {
  constructor(capacity = DEFAULT_CAPACITY) {
    this.capacity = capacity;
    this.lines = [];
    this.dropped = 0; // lines pushed out by the capacity, for the "older lines dropped" note
    this.last = null; // [epoch, n] of the newest line taken
    this.version = 0; // bumps on every change, so views know when to redraw
  }

  /** Take one `log` event; false for a repeat (already have this id). */
  add(id, data) {
    const parsed = parseId(id);
    if (parsed && this.last && parsed[0] === this.last[0] && parsed[1] <= this.last[1]) return false;
    if (parsed) this.last = parsed;
    const plain = stripAnsi(data.line);
    this.lines.push({ id, ts: data.ts, stream: data.stream, line: data.line, plain, level: levelOf(plain) });
    if (this.lines.length > this.capacity) {
      const excess = this.lines.length - this.capacity;
      this.lines.splice(0, excess);
      this.dropped += excess;
    }
    this.version += 1;
    return true;
  }

  /** A `reset` event: what follows does not continue what we have. */
  reset() {
    this.lines = [];
    this.last = null;
    this.dropped = 0;
    this.version += 1;
  }

  /** The lines matching ``text`` (case-insensitive, without colours) and ``stream``. */
  filter({ text = "", stream = "" } = {}) {
    const needle = text.toLowerCase();
    if (!needle && !stream) return this.lines;
    return this.lines.filter(
      (entry) => (!stream || entry.stream === stream) && (!needle || entry.plain.toLowerCase().includes(needle)),
    );
  }
}
