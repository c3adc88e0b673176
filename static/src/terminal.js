/**
 * The terminal page: one xterm.js terminal on the gateway's ttyd-compatible
 * socket (/agents/{id}/ws), reconnecting on its own, with a small badge that
 * says how the connection (ours, and the gateway's to the agent) is doing.
 */
import "@xterm/xterm/css/xterm.css";
import "./terminal.css";

import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";

import { Backoff } from "./backoff.js";
import {
  ServerCommand,
  agentIdFromPath,
  binaryStringToBytes,
  decodeServerFrame,
  encodeHandshake,
  encodeInput,
  encodeResize,
  safePreferences,
  socketUrl,
} from "./protocol.js";

// A connection that stayed up this long was healthy: the next outage starts
// from short delays again instead of where the last one left off.
const STABLE_AFTER_MS = 10_000;
// Window drags fire resize events per frame; one fit (and one resize frame
// to the agent, which makes the TUI repaint) per pause is enough.
const RESIZE_DEBOUNCE_MS = 100;
// How long a viewer notice (e.g. refused input) stays in the badge.
const NOTICE_MS = 4_000;

const agentId = agentIdFromPath(location.pathname);
if (agentId) document.title = agentId;

const term = new Terminal({
  // The agent's pty already sends CRLF; converting would double line feeds.
  convertEol: false,
  fontFamily:
    'ui-monospace, "SFMono-Regular", "Cascadia Mono", "DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace',
  fontSize: 14,
  scrollback: 5000,
  cursorBlink: true,
});
const fit = new FitAddon();
term.loadAddon(fit);
term.open(document.getElementById("terminal"));
// Fit before connecting so the handshake already carries the real size.
fit.fit();
term.focus();

// ---------------------------------------------------------------- badge --

const badge = document.getElementById("status");
const badgeText = document.getElementById("status-text");
const retryButton = document.getElementById("retry");

/** What the badge shows is derived from this, in render(). */
const view = {
  socket: "connecting", // connecting | open | waiting | invalid
  retryAt: 0, // when we reconnect, while waiting (performance.now() ms)
  closeReason: "",
  upstream: null, // last 'S' status from the gateway, while open
  upstreamRetryAt: 0,
  notice: null, // { text, until }
};

const secondsUntil = (at) => Math.max(0, Math.ceil((at - performance.now()) / 1000));

function describe() {
  const now = performance.now();
  if (view.socket === "invalid") return ["error", "not an agent page"];
  if (view.socket === "connecting") return ["connecting", "connecting"];
  if (view.socket === "waiting") return ["waiting", `reconnecting in ${secondsUntil(view.retryAt)}s`];
  // Notices concern this connection (e.g. refused input), so they only
  // cover the upstream state, never our own reconnect countdown.
  if (view.notice && view.notice.until > now) return ["notice", view.notice.text];
  const status = view.upstream;
  switch (status?.state) {
    case undefined:
    case "connected":
      return ["connected", "connected"];
    case "connecting":
      return ["connecting", "connecting"];
    case "reconnecting": {
      const retry = view.upstreamRetryAt ? ` (retry in ${secondsUntil(view.upstreamRetryAt)}s)` : "";
      return ["down", `upstream down: ${status.message || "unreachable"}${retry}`];
    }
    case "stopped":
      return ["down", `upstream stopped${status.message ? `: ${status.message}` : ""}`];
    default:
      return ["down", `upstream ${status.state}`];
  }
}

let ticker = 0;

function render() {
  const [state, label] = describe();
  badge.dataset.state = state;
  badgeText.textContent = label;
  badge.title = view.closeReason;
  retryButton.hidden = view.socket !== "waiting";
  // Tick only while something counts down or fades, not forever.
  const now = performance.now();
  const counting =
    view.socket === "waiting" ||
    (view.socket === "open" && view.upstreamRetryAt > now) ||
    (view.notice !== null && view.notice.until > now);
  if (counting && !ticker) {
    ticker = setInterval(render, 250);
  } else if (!counting && ticker) {
    clearInterval(ticker);
    ticker = 0;
  }
}

function showNotice(text) {
  view.notice = { text, until: performance.now() + NOTICE_MS };
  render();
}

// --------------------------------------------------------------- socket --

const backoff = new Backoff({ base: 500, cap: 30_000 });
let ws = null;
let openedAt = 0;
let retryTimer = 0;

function send(bytes) {
  // Keystrokes typed while disconnected are dropped rather than queued:
  // replaying them into whatever the agent shows by then could do harm.
  if (ws?.readyState === WebSocket.OPEN) ws.send(bytes);
}

function connect() {
  clearTimeout(retryTimer);
  retryTimer = 0;
  Object.assign(view, { socket: "connecting", upstream: null, upstreamRetryAt: 0, notice: null });
  render();

  const socket = new WebSocket(socketUrl(location.href), ["tty"]);
  socket.binaryType = "arraybuffer";
  ws = socket;

  socket.addEventListener("open", () => {
    openedAt = performance.now();
    socket.send(encodeHandshake({ columns: term.cols, rows: term.rows }));
    // No clearing here: the gateway's first output is a snapshot that begins
    // with a full reset (ESC c), so the screen is repainted exactly.
    view.socket = "open";
    view.closeReason = "";
    render();
  });

  socket.addEventListener("message", (event) => onFrame(event.data));

  // "error" is always followed by "close", which is where we act.
  socket.addEventListener("close", (event) => {
    if (ws !== socket) return; // superseded by "retry now"
    ws = null;
    if (openedAt && performance.now() - openedAt > STABLE_AFTER_MS) backoff.reset();
    openedAt = 0;
    // Every close reconnects, 1001 (gateway shutting down) included: a
    // restarted or replacement gateway is usually back within the backoff.
    const delay = backoff.next();
    view.socket = "waiting";
    view.retryAt = performance.now() + delay;
    view.closeReason = `closed (${event.code}${event.reason ? `: ${event.reason}` : ""})`;
    retryTimer = setTimeout(connect, delay);
    render();
  });
}

function retryNow() {
  if (view.socket !== "waiting") return;
  connect();
  term.focus();
}

function onFrame(data) {
  let frame;
  try {
    frame = decodeServerFrame(data);
  } catch (err) {
    console.warn("ignoring malformed frame:", err.message);
    return;
  }
  const { command, payload } = frame;
  switch (command) {
    case ServerCommand.OUTPUT:
      // No ttyd pause/resume flow control: the gateway fans one agent out to
      // many viewers and resyncs a slow one itself, pausing would stall all.
      term.write(payload);
      break;
    case ServerCommand.SET_WINDOW_TITLE:
      document.title = payload;
      break;
    case ServerCommand.SET_PREFERENCES:
      Object.assign(term.options, safePreferences(payload));
      fit.fit(); // font changes change the cell size
      break;
    case ServerCommand.STATUS:
      view.upstream = payload;
      view.upstreamRetryAt =
        payload.state === "reconnecting" && Number.isFinite(payload.retry_in)
          ? performance.now() + payload.retry_in * 1000
          : 0;
      render();
      break;
    case ServerCommand.NOTICE:
      showNotice(payload.message || payload.code);
      break;
    default:
      // Unknown commands are ignored, like ttyd's client: room to extend.
      break;
  }
}

// ----------------------------------------------------------------- wiring --

term.onData((data) => send(encodeInput(data)));
term.onBinary((data) => send(encodeInput(binaryStringToBytes(data))));
// Fires only when fit() actually changes the grid, so no redundant frames.
term.onResize(({ cols, rows }) => send(encodeResize({ columns: cols, rows })));
// Programs may also set the title with OSC 0/2 inside the output.
term.onTitleChange((title) => {
  if (title) document.title = title;
});

let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => fit.fit(), RESIZE_DEBOUNCE_MS);
});

retryButton.addEventListener("click", retryNow);
// Back from sleep or a network change: no point waiting out the backoff.
window.addEventListener("online", retryNow);

if (agentId) {
  connect();
} else {
  view.socket = "invalid";
  render();
}
