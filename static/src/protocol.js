/**
 * The ttyd wire protocol as the browser speaks it, sans I/O.
 *
 * Each WebSocket message is one frame: a command byte, then the payload
 * (ttyd 1.7, mirrored by gateway/ttyd.py).
 *
 *   browser → gateway                     gateway → browser
 *     '{'...  handshake (whole frame JSON)  '0' + bytes  terminal output
 *     '0' + bytes  input                    '1' + text   window title
 *     '1' + JSON   resize {columns, rows}   '2' + JSON   xterm preferences
 *                                           'S' + JSON   upstream status (gateway)
 *                                           'N' + JSON   viewer notice (gateway)
 *
 * Everything is sent as binary frames: ttyd reads the first byte of either
 * kind, but binary keeps input bytes (onBinary) intact, with no UTF-8 pass.
 */

/** Command bytes of client → server frames. */
export const ClientCommand = Object.freeze({
  INPUT: "0",
  RESIZE: "1",
  PAUSE: "2",
  RESUME: "3",
});

/** Command bytes of server → client frames. */
export const ServerCommand = Object.freeze({
  OUTPUT: "0",
  SET_WINDOW_TITLE: "1",
  SET_PREFERENCES: "2",
  STATUS: "S",
  NOTICE: "N",
});

/** A server frame this module cannot make sense of. */
export class ProtocolError extends Error {
  name = "ProtocolError";
}

const encoder = new TextEncoder();
// fatal: a title or JSON payload that is not UTF-8 is a broken frame, not
// something to paint with replacement characters.
const decoder = new TextDecoder("utf-8", { fatal: true });

function frame(command, payload) {
  const out = new Uint8Array(1 + payload.length);
  out[0] = command.charCodeAt(0);
  out.set(payload, 1);
  return out;
}

/**
 * The first message on a new socket. The browser authenticates with its
 * cookie, so AuthToken is normally empty; the size lets the gateway (and
 * ttyd) start at the viewer's size instead of 80x24.
 */
export function encodeHandshake({ columns, rows, authToken = "" }) {
  return encoder.encode(JSON.stringify({ AuthToken: authToken, columns, rows }));
}

/**
 * Input for the terminal: a string (xterm onData: UTF-8 encoded) or a
 * Uint8Array of raw bytes (xterm onBinary, e.g. X10 mouse reports, which
 * must not be re-encoded as UTF-8).
 */
export function encodeInput(data) {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return frame(ClientCommand.INPUT, bytes);
}

/** xterm's onBinary hands out a "binary string" (one char per byte 0-255). */
export function binaryStringToBytes(data) {
  return Uint8Array.from(data, (ch) => ch.charCodeAt(0) & 0xff);
}

/** Ask for a new terminal size. */
export function encodeResize({ columns, rows }) {
  return frame(ClientCommand.RESIZE, encoder.encode(JSON.stringify({ columns, rows })));
}

function toBytes(data) {
  if (typeof data === "string") return encoder.encode(data); // a text frame
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new ProtocolError(`unsupported frame type ${Object.prototype.toString.call(data)}`);
}

function text(payload, what) {
  try {
    return decoder.decode(payload);
  } catch {
    throw new ProtocolError(`${what}: payload is not UTF-8`);
  }
}

function object(payload, what) {
  let value;
  try {
    value = JSON.parse(text(payload, what));
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError(`${what}: payload is not valid JSON`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ProtocolError(`${what}: payload must be a JSON object`);
  }
  return value;
}

/**
 * Split one server frame into `{command, payload}`.
 *
 * `command` is the command character. The payload is decoded by command:
 * output stays a Uint8Array (a view, no copy: it goes straight to
 * term.write), the title is a string, preferences/status/notice are objects.
 * Unknown commands keep their raw Uint8Array payload so the caller can
 * ignore them, as ttyd's own client does: the gateway may add commands.
 * Throws ProtocolError on an empty frame or a malformed known payload.
 */
export function decodeServerFrame(data) {
  const bytes = toBytes(data);
  if (bytes.length === 0) throw new ProtocolError("empty frame");
  const command = String.fromCharCode(bytes[0]);
  const payload = bytes.subarray(1);
  switch (command) {
    case ServerCommand.OUTPUT:
      return { command, payload };
    case ServerCommand.SET_WINDOW_TITLE:
      return { command, payload: text(payload, "title") };
    case ServerCommand.SET_PREFERENCES:
      return { command, payload: object(payload, "preferences") };
    case ServerCommand.STATUS: {
      const status = object(payload, "status");
      if (typeof status.state !== "string") throw new ProtocolError("status: 'state' must be a string");
      return { command, payload: status };
    }
    case ServerCommand.NOTICE: {
      const notice = object(payload, "notice");
      if (typeof notice.code !== "string") throw new ProtocolError("notice: 'code' must be a string");
      return { command, payload: notice };
    }
    default:
      return { command, payload };
  }
}

// ttyd's preferences come from its -t flags and may name any xterm option.
// Only cosmetic options with the expected type are applied: nothing that
// changes how input or output bytes are interpreted (convertEol, windowsPty,
// ...) or that could grow memory without bound (scrollback).
const SAFE_PREFERENCES = {
  fontSize: (v) => Number.isFinite(v) && v >= 6 && v <= 72,
  fontFamily: (v) => typeof v === "string" && v.length <= 200,
  fontWeight: (v) => typeof v === "string" || Number.isFinite(v),
  lineHeight: (v) => Number.isFinite(v) && v >= 1 && v <= 3,
  letterSpacing: (v) => Number.isFinite(v) && v >= 0 && v <= 10,
  cursorBlink: (v) => typeof v === "boolean",
  cursorStyle: (v) => ["block", "underline", "bar"].includes(v),
  theme: (v) => v !== null && typeof v === "object" && !Array.isArray(v),
};

/** The subset of a preferences object that is safe to hand to xterm. */
export function safePreferences(preferences) {
  const out = {};
  for (const [key, accept] of Object.entries(SAFE_PREFERENCES)) {
    const has = Object.prototype.hasOwnProperty.call(preferences, key);
    if (has && accept(preferences[key])) out[key] = preferences[key];
  }
  return out;
}

/**
 * The socket URL for the page at `href` (`/agents/{id}/` → `/agents/{id}/ws`),
 * on ws: or wss: to match the page, so a TLS page never opens a cleartext
 * socket. Relative, so a gateway mounted under a path prefix still works.
 */
export function socketUrl(href) {
  const url = new URL("ws", href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  return url.href;
}

/** The agent id from a `/agents/{id}/...` path, or null. */
export function agentIdFromPath(pathname) {
  const match = /\/agents\/([^/]+)\/?/.exec(pathname);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return null;
  }
}

/**
 * Where to go after logging in: a path on this site, never another one.
 *
 * `search` is the login page's query string, `origin` its own origin
 * (`location.origin`). The `next` parameter is resolved the way the browser
 * would resolve it, `new URL(next, origin)`, so whatever the URL parser
 * strips or rewrites (tabs, newlines, backslashes, leading spaces, an
 * uppercase scheme) is judged after the fact, not guessed at: only an
 * http(s) URL with exactly this origin is kept. The answer is that URL's
 * path, query and fragment, re-serialized (never the raw `next`), and only
 * if that path resolves to itself on this origin again: "/.//evil.net"
 * normalizes to the path "//evil.net", which as a link names another host.
 * Anything else, or no `next` at all, is the home page "/".
 */
export function safeNext(search, origin) {
  const next = new URLSearchParams(search).get("next");
  if (!next) return "/";
  try {
    const base = new URL(origin);
    if (base.protocol !== "http:" && base.protocol !== "https:") return "/";
    const target = new URL(next, base.origin);
    // The scheme too: a "blob:http://this-origin/..." URL has this origin.
    if (target.protocol !== base.protocol || target.origin !== base.origin) return "/";
    const path = target.pathname + target.search + target.hash;
    const again = new URL(path, base.origin);
    const same = again.origin === base.origin && again.pathname + again.search + again.hash === path;
    return same ? path : "/";
  } catch {
    return "/"; // not a URL at all (a bad origin, or a next the parser refuses)
  }
}
