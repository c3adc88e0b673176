/**
 * The terminal page: one xterm.js terminal on the gateway's ttyd-compatible
 * socket (/agents/{id}/ws), reconnecting on its own, with a bar that says how
 * the connection (ours, and the gateway's to the agent) is doing, who else
 * is watching, and whether this page may type.
 *
 * The terminal always has the agent's size (from the gateway's status
 * frames): a window smaller than the agent scrolls, a larger one leaves a
 * margin. Nobody's window resizes the agent by accident; an operator can
 * ask for it with "Fit agent to window".
 */
import "@xterm/xterm/css/xterm.css";
import "./terminal.css";

import { FitAddon } from "@xterm/addon-fit";
import { SearchAddon } from "@xterm/addon-search";
import { Unicode11Addon } from "@xterm/addon-unicode11";
import { WebLinksAddon } from "@xterm/addon-web-links";
import { WebglAddon } from "@xterm/addon-webgl";
import { Terminal } from "@xterm/xterm";

import * as api from "./api.js";
import { Backoff, afterClose } from "./backoff.js";
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
import { describeResult, sendCommand } from "./command.js";
import { LogsPanel } from "./logs-panel.js";
import { presenceText } from "./presence.js";
import { SharePanel } from "./share-panel.js";

// A connection that stayed up this long was healthy: the next outage starts
// from short delays again instead of where the last one left off.
const STABLE_AFTER_MS = 10_000;
// How long a viewer notice (e.g. refused input) stays in the badge.
const NOTICE_MS = 4_000;
const FONT_SIZES = { min: 8, max: 28, default: 14 };

const agentId = agentIdFromPath(location.pathname);
if (agentId) {
  document.title = agentId;
  document.getElementById("agent-name").textContent = agentId;
}

const storedFont = Number(localStorage.getItem("gateway.fontSize"));
const term = new Terminal({
  // The agent's pty already sends CRLF; converting would double line feeds.
  convertEol: false,
  fontFamily:
    'ui-monospace, "SFMono-Regular", "Cascadia Mono", "DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace',
  fontSize: storedFont >= FONT_SIZES.min && storedFont <= FONT_SIZES.max ? storedFont : FONT_SIZES.default,
  scrollback: 5000,
  cursorBlink: true,
  // The unicode11 addon's width tables are a "proposed" API.
  allowProposedApi: true,
});
const fit = new FitAddon();
const search = new SearchAddon();
term.loadAddon(fit);
term.loadAddon(search);
term.loadAddon(new WebLinksAddon());
term.loadAddon(new Unicode11Addon());
term.unicode.activeVersion = "11";
term.open(document.getElementById("terminal"));
try {
  const webgl = new WebglAddon();
  // A lost GPU context falls back to the DOM renderer instead of a blank screen.
  webgl.onContextLoss(() => webgl.dispose());
  term.loadAddon(webgl);
} catch {
  // No WebGL here: xterm's DOM renderer draws instead.
}
term.focus();
// For tests and for poking around in the console.
window.gateway = { term };

// ----------------------------------------------------------------- roles --

/** What /api/me says; until it answers, assume read-only (nothing is sent). */
const me = { canWrite: false, canShare: false };

async function loadMe() {
  const data = await api.me();
  if (!data) return;
  me.canWrite = data.can_write;
  me.canShare = data.can_share;
  document.getElementById("mode").hidden = me.canWrite;
  document.getElementById("fit").hidden = !me.canWrite;
  document.getElementById("share-toggle").hidden = !me.canShare;
  document.getElementById("command").hidden = !me.canWrite;
  term.options.disableStdin = !me.canWrite;
}

// ---------------------------------------------------------------- badge --

const badge = document.getElementById("status");
const badgeText = document.getElementById("status-text");
const retryButton = document.getElementById("retry");

/** What the badge shows is derived from this, in render(). */
const view = {
  socket: "connecting", // connecting | open | waiting | gaveup | invalid
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
  if (view.socket === "gaveup") return ["error", `disconnected: ${view.closeReason}`];
  // Notices concern this connection (e.g. refused input), so they only
  // cover the upstream state, never our own reconnect countdown.
  if (view.notice && view.notice.until > now) return ["notice", view.notice.text];
  const status = view.upstream;
  switch (status?.state) {
    case undefined:
    case "connected":
      return ["connected", "connected"];
    case "connecting":
      return ["connecting", "agent connecting"];
    case "reconnecting": {
      const retry = view.upstreamRetryAt ? ` (retry in ${secondsUntil(view.upstreamRetryAt)}s)` : "";
      return ["down", `agent unreachable: ${status.message || "reconnecting"}${retry}`];
    }
    default:
      return ["down", `agent ${status.state}${status.message ? `: ${status.message}` : ""}`];
  }
}

let ticker = 0;

function render() {
  const [state, label] = describe();
  badge.dataset.state = state;
  badgeText.textContent = label;
  badge.title = view.closeReason;
  retryButton.hidden = view.socket !== "waiting" && view.socket !== "gaveup";
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
    // No size: the agent keeps its own; this page takes it from the status.
    socket.send(encodeHandshake({}));
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
    const verdict = afterClose(event.code, backoff.attempt);
    view.closeReason = verdict.reason || `closed (${event.code}${event.reason ? `: ${event.reason}` : ""})`;
    if (!verdict.retry) {
      view.socket = "gaveup";
      render();
      return;
    }
    // 1001 (gateway shutting down) reconnects too: a restarted or
    // replacement gateway is usually back within the backoff.
    const delay = backoff.next();
    view.socket = "waiting";
    view.retryAt = performance.now() + delay;
    retryTimer = setTimeout(connect, delay);
    render();
  });
}

function retryNow() {
  if (view.socket !== "waiting" && view.socket !== "gaveup") return;
  if (view.socket === "gaveup") backoff.reset();
  connect();
  term.focus();
}

/** Take the agent's size: the one terminal every viewer shares. */
function takeAgentSize(columns, rows) {
  if (Number.isInteger(columns) && Number.isInteger(rows) && (columns !== term.cols || rows !== term.rows)) {
    term.resize(columns, rows);
  }
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
      break;
    case ServerCommand.STATUS:
      view.upstream = payload;
      view.upstreamRetryAt =
        payload.state === "reconnecting" && Number.isFinite(payload.retry_in)
          ? performance.now() + payload.retry_in * 1000
          : 0;
      takeAgentSize(payload.columns, payload.rows);
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

// --------------------------------------------------------------- presence --

/** Who else watches this agent, from the dashboard's event feed. */
function watchPresence() {
  const presence = document.getElementById("presence");
  const show = (agent) => {
    if (agent && agent.id === agentId) presence.textContent = presenceText(agent);
  };
  const source = new EventSource("/api/events");
  source.addEventListener("snapshot", (event) => {
    show(JSON.parse(event.data).agents.find((agent) => agent.id === agentId));
  });
  source.addEventListener("agent", (event) => show(JSON.parse(event.data).agent));
}

// ------------------------------------------------------------------ tools --

function setFontSize(size) {
  const clamped = Math.min(FONT_SIZES.max, Math.max(FONT_SIZES.min, size));
  term.options.fontSize = clamped;
  localStorage.setItem("gateway.fontSize", String(clamped));
}

function fitAgentToWindow() {
  // The grid that would fill the viewport at the current font size.
  const dimensions = fit.proposeDimensions();
  if (dimensions && me.canWrite) send(encodeResize({ columns: dimensions.cols, rows: dimensions.rows }));
}

const searchbar = document.getElementById("searchbar");
const searchInput = document.getElementById("search");

function toggleSearch(open = searchbar.hidden) {
  searchbar.hidden = !open;
  if (open) {
    searchInput.focus();
    searchInput.select();
  } else {
    search.clearDecorations();
    term.focus();
  }
}

// ----------------------------------------------------------------- wiring --

term.onData((data) => me.canWrite && send(encodeInput(data)));
term.onBinary((data) => me.canWrite && send(encodeInput(binaryStringToBytes(data))));
// Programs may also set the title with OSC 0/2 inside the output.
term.onTitleChange((title) => {
  if (title) document.title = title;
});
term.attachCustomKeyEventHandler((event) => {
  if (event.type !== "keydown" || !event.ctrlKey || !event.shiftKey) return true;
  if (event.code === "KeyC" && term.hasSelection()) {
    navigator.clipboard?.writeText(term.getSelection());
    return false;
  }
  if (event.code === "KeyF") {
    toggleSearch(true);
    return false;
  }
  return true;
});

retryButton.addEventListener("click", retryNow);
// Back from sleep or a network change: no point waiting out the backoff.
window.addEventListener("online", retryNow);
document.getElementById("fit").addEventListener("click", fitAgentToWindow);
document.getElementById("font-smaller").addEventListener("click", () => setFontSize(term.options.fontSize - 1));
document.getElementById("font-larger").addEventListener("click", () => setFontSize(term.options.fontSize + 1));
document.getElementById("search-toggle").addEventListener("click", () => toggleSearch());
searchInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    (event.shiftKey ? search.findPrevious : search.findNext).call(search, searchInput.value);
  } else if (event.key === "Escape") {
    toggleSearch(false);
  }
});
document.getElementById("search-next").addEventListener("click", () => search.findNext(searchInput.value));
document.getElementById("search-prev").addEventListener("click", () => search.findPrevious(searchInput.value));

document.getElementById("command").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("command-line");
  const result = document.getElementById("command-result");
  if (!input.value) return;
  const outcome = (await sendCommand([agentId], input.value))[agentId];
  result.textContent = describeResult(outcome);
  result.dataset.ok = String(outcome.ok);
  if (outcome.ok) input.value = "";
});

if (agentId) {
  const sharing = new SharePanel(agentId, document.getElementById("sharing"));
  const logs = new LogsPanel(agentId, document.getElementById("logs"));
  window.gateway.logs = logs;
  document.getElementById("logs-toggle").addEventListener("click", () => logs.toggle());
  document.getElementById("share-toggle").addEventListener("click", () => sharing.toggle());
  loadMe();
  connect();
  watchPresence();
} else {
  view.socket = "invalid";
  render();
}
