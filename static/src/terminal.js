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
 *
 * What the badge says and when to reconnect is decided in terminal-model.js;
 * this file wires it, xterm.js and the page together.
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
import { CommandHistory, recallWith, timeStamp } from "./command-history.js";
import { KEY_ROW, keySequence } from "./keys.js";
import { LogsPanel } from "./logs-panel.js";
import { presenceText } from "./presence.js";
import { resizeNotice } from "./resize-notice.js";
import { SharePanel } from "./share-panel.js";
import { tabState, tabTitle } from "./tab-title.js";
import { Connection, Phase, access } from "./terminal-model.js";

// How often a countdown or a fading notice in the badge is redrawn.
const TICK_MS = 250;
const FONT_SIZES = { min: 8, max: 28, default: 14 };

const agentId = agentIdFromPath(location.pathname);
if (agentId) {
  document.title = agentId;
  document.getElementById("agent-name").textContent = agentId;
}
// The title the agent's program set (OSC 0/2, or the gateway's title frame).
let programTitle = "";

const storedFont = Number(localStorage.getItem("gateway.fontSize"));
const term = new Terminal({
  // The agent's pty already sends CRLF; converting would double line feeds.
  convertEol: false,
  fontFamily:
    'ui-monospace, "SFMono-Regular", "Cascadia Mono", "DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace',
  fontSize: storedFont >= FONT_SIZES.min && storedFont <= FONT_SIZES.max ? storedFont : FONT_SIZES.default,
  // The gateway's default (server.scrollback); /api/me says the real one
  // before the join brings that much history.
  scrollback: 10000,
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
let me = access(null);
// Whether this page watches through a spectator link (then there is no
// login to go back to when it ends: only a new link).
let spectator = false;

async function loadMe() {
  const data = await api.me();
  // No answer: the page keeps its HTML defaults, which offer nothing.
  if (!data) return;
  spectator = Boolean(data.spectator_of);
  if (Number.isInteger(data.scrollback) && data.scrollback > 0) term.options.scrollback = data.scrollback;
  offer(access(data));
}

/** Show the controls `allowed` (an access()) offers, and only those. */
function offer(allowed) {
  me = allowed;
  document.getElementById("mode").hidden = !me.readOnly;
  document.getElementById("fit").hidden = !me.fit;
  document.getElementById("share-toggle").hidden = !me.share;
  document.getElementById("command").hidden = !me.command;
  document.getElementById("keys").hidden = !me.keys;
  // Who may not resize is still told who did, without the button.
  if (!me.canWrite) document.getElementById("resize-restore").hidden = true;
  term.options.disableStdin = !me.canWrite;
}

// ---------------------------------------------------------------- badge --

const badge = document.getElementById("status");
const badgeText = document.getElementById("status-text");
const badgeDetail = document.getElementById("status-detail");
const linkBadge = document.getElementById("link");
const linkText = document.getElementById("link-text");
const loginAgain = document.getElementById("login-again");
const retryButton = document.getElementById("retry");
const noticeBadge = document.getElementById("notice");
const connection = new Connection({ path: location.pathname });
let ticker = 0;

function render() {
  const agent = connection.agent();
  badge.dataset.state = agent.state;
  badge.dataset.stale = String(agent.stale);
  badgeText.textContent = agent.text;
  badgeDetail.textContent = agent.detail;
  badge.title = agent.stale ? "the agent as last heard: the gateway is not connected" : agent.detail;
  const link = connection.link();
  linkBadge.dataset.state = link.state;
  linkText.textContent = link.text;
  linkBadge.title = link.title;
  retryButton.hidden = !link.retry;
  loginAgain.hidden = link.login === null;
  if (link.login !== null) loginAgain.href = link.login;
  const notice = connection.noticeText();
  noticeBadge.textContent = notice;
  noticeBadge.hidden = !notice;
  if (agentId) {
    const title = tabTitle({ agentId, state: tabState(connection.phase, connection.upstreamState), title: programTitle });
    if (document.title !== title) document.title = title;
  }
  // Tick only while something counts down or fades, not forever.
  const ticking = connection.ticking();
  if (ticking && !ticker) {
    ticker = setInterval(render, TICK_MS);
  } else if (!ticking && ticker) {
    clearInterval(ticker);
    ticker = 0;
  }
}

/**
 * After a close the gateway may have ended the session (logout, expiry, a
 * revoked link), or a restarted gateway may not know it: its upgrade then
 * fails with 401, which a browser shows a socket only as a close (1006). So
 * ask: a session that is over ends the page's retrying, with words that
 * say what to do instead.
 */
async function checkSession(code, reason) {
  const { state } = await api.session();
  if (state === "ended") {
    connection.ended(spectator ? "link" : "session");
  } else if (state === "live" && code === 1008 && reason === "access revoked") {
    connection.ended(spectator ? "link" : "access");
  } else {
    return;
  }
  // Nothing this page offered can work any more: no controls that would fail.
  offer(access(null));
  document.getElementById("mode").hidden = true;
  clearTimeout(retryTimer);
  retryTimer = 0;
  render();
}

// --------------------------------------------------------------- socket --

let ws = null;
let retryTimer = 0;

function send(bytes) {
  // Keystrokes typed while disconnected are dropped rather than queued:
  // replaying them into whatever the agent shows by then could do harm.
  if (ws?.readyState === WebSocket.OPEN) ws.send(bytes);
}

function connect() {
  clearTimeout(retryTimer);
  retryTimer = 0;
  // A session that is over stays over: no socket that can only be refused.
  if (connection.phase === Phase.ENDED) return;
  connection.connecting();
  render();

  const socket = new WebSocket(socketUrl(location.href), ["tty"]);
  socket.binaryType = "arraybuffer";
  ws = socket;

  socket.addEventListener("open", () => {
    // No size: the agent keeps its own; this page takes it from the status.
    socket.send(encodeHandshake({}));
    // No clearing here: the gateway's first output is a snapshot that begins
    // with a full reset (ESC c), so the screen is repainted exactly.
    connection.opened();
    render();
  });

  socket.addEventListener("message", (event) => onFrame(event.data));

  // "error" is always followed by "close", which is where we act.
  socket.addEventListener("close", (event) => {
    if (ws !== socket) return; // superseded by "retry now"
    ws = null;
    const next = connection.closed(event.code, event.reason);
    if (next.retry) retryTimer = setTimeout(connect, next.delay);
    render();
    checkSession(event.code, event.reason);
  });
}

function retryNow() {
  if (!connection.retryNow()) return;
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
      programTitle = payload;
      render();
      break;
    case ServerCommand.SET_PREFERENCES:
      Object.assign(term.options, safePreferences(payload));
      break;
    case ServerCommand.STATUS:
      connection.status(payload);
      takeAgentSize(payload.columns, payload.rows);
      render();
      break;
    case ServerCommand.NOTICE:
      if (payload.code === "resized") {
        showResized(payload);
      } else {
        connection.notice(payload.message || payload.code);
        render();
      }
      break;
    default:
      // Unknown commands are ignored, like ttyd's client: room to extend.
      break;
  }
}

// --------------------------------------------------------------- resized --

const resized = document.getElementById("resized");
const restoreButton = document.getElementById("resize-restore");
let restoreTo = null;

/** Someone else resized the agent: say who, and offer the size before (operators). */
function showResized(payload) {
  const shown = resizeNotice(payload, me.canWrite);
  document.getElementById("resized-text").textContent = shown.text;
  restoreTo = shown.restore;
  restoreButton.hidden = restoreTo === null;
  restoreButton.textContent = shown.label;
  resized.hidden = false;
}

function hideResized() {
  resized.hidden = true;
  restoreTo = null;
}

function restoreSize() {
  if (restoreTo && me.canWrite) send(encodeResize(restoreTo));
  hideResized();
  term.focus();
}

// --------------------------------------------------------------- presence --

/** Who else watches this agent, and whether it is a container, from the dashboard's event feed. */
function watchPresence() {
  const presence = document.getElementById("presence");
  const logsButton = document.getElementById("logs-toggle");
  const show = (agent) => {
    if (!agent || agent.id !== agentId) return;
    presence.textContent = presenceText(agent);
    // Only a container has a log to show: a disabled button says so,
    // instead of a panel that takes the window to say it in grey.
    const container = Boolean(agent.container);
    logsButton.disabled = !container;
    logsButton.title = container ? "The container's log" : "No logs: this agent is not a container";
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
  // What someone else's resize was is moot now: this one is what counts.
  hideResized();
}

// ------------------------------------------------------------------- keys --

/** The on-screen key row (operators): keys a phone's keyboard lacks, typed into the agent. */
function buildKeyRow() {
  const row = document.getElementById("keys");
  for (const [label, key] of KEY_ROW) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.dataset.key = key;
    // Keep the focus where it is (a phone's keyboard stays open).
    button.addEventListener("pointerdown", (event) => event.preventDefault());
    button.addEventListener("click", () => {
      if (!me.canWrite) return;
      const applicationCursor = term.modes.applicationCursorKeysMode;
      send(encodeInput(keySequence(key, { applicationCursor })));
    });
    row.append(button);
  }
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
// Programs set the title with OSC 0/2 inside the output; an empty one
// (tmux sends that for a pane no program titled) clears it.
term.onTitleChange((title) => {
  programTitle = title;
  render();
});
// The wheel never becomes input. tmux draws on the alternate screen, where
// xterm.js turns the wheel into Up/Down keys (and, when a program asks for
// mouse reports, into wheel reports): a scroll would recall commands or move
// an approval menu's choice before someone presses Enter. Returning false
// only skips that; scrolling xterm.js's own buffer, or the page around a
// terminal larger than the window, still happens.
term.attachCustomWheelEventHandler(() => false);
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
const searchResult = document.getElementById("search-result");

/** Find the next (or previous) match in the scrollback and the screen; say when there is none. */
function find(previous = false) {
  const query = searchInput.value;
  const found = query ? (previous ? search.findPrevious : search.findNext).call(search, query) : true;
  searchResult.textContent = found ? "" : "no match";
  searchbar.dataset.result = found ? "found" : "none";
}

searchInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    find(event.shiftKey);
  } else if (event.key === "Escape") {
    toggleSearch(false);
  }
});
searchInput.addEventListener("input", () => {
  searchResult.textContent = "";
  delete searchbar.dataset.result;
});
document.getElementById("search-next").addEventListener("click", () => find());
document.getElementById("search-prev").addEventListener("click", () => find(true));

const commandLine = document.getElementById("command-line");
const commandHistory = new CommandHistory();
recallWith(commandLine, commandHistory);

/** Send the bar's line (with Enter, or without: a bare line); the bar is cleared, ArrowUp brings it back. */
async function submitLine(enter) {
  const result = document.getElementById("command-result");
  const line = commandLine.value;
  if (!line) return;
  commandHistory.push(line);
  commandLine.value = "";
  const outcome = (await sendCommand([agentId], line, fetch, { enter }))[agentId];
  result.textContent = `${timeStamp(new Date())} ${describeResult(outcome)}`;
  result.dataset.ok = String(outcome.ok);
}

document.getElementById("command").addEventListener("submit", (event) => {
  event.preventDefault();
  submitLine(true);
});
document.getElementById("command-type").addEventListener("click", () => submitLine(false));
restoreButton.addEventListener("click", restoreSize);
document.getElementById("resized-dismiss").addEventListener("click", hideResized);
buildKeyRow();

if (agentId) {
  const sharing = new SharePanel(agentId, document.getElementById("sharing"));
  const logs = new LogsPanel(agentId, document.getElementById("logs"));
  window.gateway.logs = logs;
  document.getElementById("logs-toggle").addEventListener("click", () => logs.toggle());
  document.getElementById("share-toggle").addEventListener("click", () => sharing.toggle());
  // The join brings the agent's history: xterm.js must keep as much first.
  loadMe().finally(connect);
  watchPresence();
} else {
  connection.invalid();
  render();
}
