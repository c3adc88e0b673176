/**
 * The wall view: a live tile per agent, kept current by the gateway's event
 * feed (EventSource on /api/events, which resumes by itself with
 * Last-Event-ID). A tile's picture of the screen is refetched when an
 * `activity` event says the agent wrote something, at most once a second,
 * and drawn whole, scaled into the tile (see tile-fit.js).
 */
import "./wall.css";

import * as api from "./api.js";
import { ansiRows } from "./ansi-dom.js";
import { describeResult, sendCommand } from "./command.js";
import { CommandHistory, recallWith, timeStamp } from "./command-history.js";
import { presenceText } from "./presence.js";
import { fitTile } from "./tile-fit.js";
import { ENDED, LINK_WORDS, loginHref } from "./vocabulary.js";
import { Wall, arrange, statusLabel } from "./wall-model.js";
import {
  Notifier,
  activityWord,
  age,
  answerPath,
  describeAnswer,
  inboxItems,
  needsAttention,
  promptButtons,
} from "./inbox-model.js";

// A tile's screen is refetched at most this often.
const SCREEN_REFRESH_MS = 1000;
// The tallest a tile's picture gets (px): taller screens are scaled down to it.
const TILE_MAX_HEIGHT = 320;
// After the feed was refused with something other than a 401 (a 503 while
// Redis is away), it is opened again this much later: EventSource itself
// gives up on any answer that is not a stream.
const FEED_RETRY_MS = 5000;

// A tile's width follows the window (one column on a phone): fit again.
const resized = new ResizeObserver((records) => {
  for (const record of records) {
    const id = record.target.closest(".tile")?.dataset.agent;
    if (tiles.has(id)) layOut(tiles.get(id));
  }
});

const wall = new Wall();
const grid = document.getElementById("wall");
const empty = document.getElementById("empty");
const filterText = document.getElementById("filter");
const filterStatus = document.getElementById("status-filter");
const feed = document.getElementById("feed");
const tiles = new Map(); // id -> { element, fetchedAt, timer, screen (the last picture's JSON) }
const selected = new Set();
let canWrite = false;
// While the pointer is on the wall no tile moves (see arrange in wall-model.js).
let pointerOnWall = false;
let spectator = false;

function tile(id) {
  let entry = tiles.get(id);
  if (entry) return entry;
  const element = document.createElement("article");
  element.className = "tile";
  element.dataset.agent = id;
  element.innerHTML =
    '<a class="open"><header><span class="name"></span><span class="activity"></span>' +
    '<span class="state"></span></header>' +
    '<div class="screen" aria-label="screen"><div class="grid"></div></div></a>' +
    '<footer><label class="pick" hidden><input type="checkbox"> select</label>' +
    '<span class="title"></span><span class="viewers"></span></footer>' +
    '<p class="result" role="status" hidden></p>';
  element.querySelector(".open").href = `/agents/${encodeURIComponent(id)}/`;
  const pick = element.querySelector(".pick");
  pick.hidden = !canWrite;
  pick.querySelector("input").addEventListener("change", (event) => {
    if (event.target.checked) selected.add(id);
    else selected.delete(id);
    updateCommand();
  });
  entry = { element, fetchedAt: -Infinity, timer: 0, screen: null };
  tiles.set(id, entry);
  resized.observe(element.querySelector(".screen"));
  refreshScreen(id);
  return entry;
}

function paint(agent) {
  const { element } = tile(agent.id);
  element.dataset.status = agent.status;
  element.dataset.stale = String(wall.stale);
  element.querySelector(".name").textContent = agent.id;
  const state = element.querySelector(".state");
  state.textContent = statusLabel(agent);
  state.title = wall.stale ? "as last heard: the event feed is down" : agent.message || "";
  element.querySelector(".title").textContent = agent.title === agent.id ? "" : agent.title;
  const activity = element.querySelector(".activity");
  activity.textContent = activityWord(agent);
  activity.dataset.state = agent.state || "unknown";
  activity.dataset.attention = String(needsAttention(agent));
  element.querySelector(".viewers").textContent = presenceText(agent);
}

function refreshScreen(id) {
  const entry = tiles.get(id);
  if (!entry || entry.timer) return;
  const wait = Math.max(0, entry.fetchedAt + SCREEN_REFRESH_MS - performance.now());
  entry.timer = setTimeout(async () => {
    entry.timer = 0;
    entry.fetchedAt = performance.now();
    try {
      const response = await fetch(`/api/agents/${encodeURIComponent(id)}/screen?format=json&ansi=1`);
      if (!response.ok) return;
      const screen = await response.json();
      entry.screen = screen;
      entry.element.querySelector(".grid").replaceChildren(...ansiRows(screen.ansi));
      layOut(entry);
      // The title of the same moment as the picture: an activity event's may lag.
      for (const agentId of wall.apply("screen", { id, title: screen.title })) {
        if (wall.agents.has(agentId)) paint(wall.agents.get(agentId));
      }
    } catch {
      // The feed's own reconnect will bring news; a missed picture is harmless.
    }
  }, wait);
}

/** Scale a tile's picture to its width (and at most TILE_MAX_HEIGHT), or show the cursor's rows. */
function layOut(entry) {
  const { screen } = entry;
  if (!screen) return;
  const box = entry.element.querySelector(".screen");
  const picture = box.firstElementChild;
  picture.style.setProperty("--columns", String(screen.columns));
  picture.style.setProperty("--rows", String(screen.rows));
  const fit = fitTile({
    width: picture.offsetWidth,
    height: picture.offsetHeight,
    rows: screen.rows,
    cursorRow: screen.cursor?.y,
    boxWidth: box.clientWidth,
    maxHeight: TILE_MAX_HEIGHT,
  });
  const shift = (fit.firstRow * picture.offsetHeight) / screen.rows;
  picture.style.transform = `scale(${fit.scale}) translateY(${-shift}px)`;
  const height = `${Math.ceil(fit.height)}px`;
  if (box.style.height !== height) box.style.height = height;
  box.dataset.rows = fit.shownRows === screen.rows ? "all" : `${fit.firstRow + 1}-${fit.firstRow + fit.shownRows}`;
}


/** Draw the wall; `byUser`: the user changed the filter, so tiles may move under the pointer. */
function render(byUser = false) {
  const shown = wall.visible({ text: filterText.value, status: filterStatus.value });
  for (const agent of shown) paint(agent);
  const now = [...grid.children].map((element) => element.dataset.agent);
  const order = arrange(
    now,
    shown.map((agent) => agent.id),
    pointerOnWall && !byUser,
  );
  // Reorder with the fewest moves: append in order (moving existing nodes).
  order.forEach((id, index) => {
    const { element } = tiles.get(id);
    if (grid.children[index] !== element) grid.insertBefore(element, grid.children[index] || null);
  });
  const keep = new Set(shown.map((agent) => agent.id));
  for (const [id, entry] of tiles) {
    if (!keep.has(id)) {
      entry.element.remove();
      if (!wall.agents.has(id)) {
        clearTimeout(entry.timer);
        resized.unobserve(entry.element.querySelector(".screen"));
        tiles.delete(id);
        selected.delete(id);
      }
    }
  }
  empty.hidden = shown.length > 0;
  updateCommand();
  renderInbox();
}

// --- the attention inbox ------------------------------------------------------

const inbox = document.getElementById("inbox");
const inboxList = document.getElementById("inbox-list");
const notifier = new Notifier();
// One notification for whatever arrived in this long, fleet-wide.
const NOTIFY_EVERY_MS = 2000;
// A card's answer result, kept across redraws: id -> text.
const answered = new Map();

/** One card per agent waiting for someone: what it asks, and the buttons to answer. */
function renderInbox() {
  const items = inboxItems(wall.agents.values());
  inbox.hidden = items.length === 0;
  document.getElementById("inbox-count").textContent = items.length ? `(${items.length})` : "";
  const now = Date.now() / 1000;
  inboxList.replaceChildren(...items.map((agent) => card(agent, now)));
}

function card(agent, now) {
  const item = document.createElement("li");
  item.className = "card";
  item.dataset.agent = agent.id;
  item.dataset.state = agent.state;
  const head = document.createElement("p");
  const link = document.createElement("a");
  link.href = `/agents/${encodeURIComponent(agent.id)}/`;
  link.textContent = agent.id;
  const what = document.createElement("span");
  what.className = "what";
  what.textContent = ` ${activityWord(agent)} · ${age(agent.state_since, now)}`;
  head.append(link, what);
  item.append(head);
  const prompt = agent.prompt;
  if (prompt) {
    const question = document.createElement("p");
    question.className = "question";
    question.textContent = prompt.question;
    item.append(question);
    if (prompt.subject) {
      const subject = document.createElement("pre");
      subject.className = "subject";
      subject.textContent = prompt.subject;
      item.append(subject);
    }
    if (canWrite) {
      const buttons = document.createElement("div");
      buttons.className = "options";
      for (const button of promptButtons(prompt)) {
        const element = document.createElement("button");
        element.type = "button";
        element.dataset.role = button.role;
        element.textContent = `${button.n}. ${button.label}`;
        element.addEventListener("click", () => answer(agent.id, prompt.fingerprint, button.body));
        buttons.append(element);
      }
      item.append(buttons);
    }
  }
  const result = document.createElement("p");
  result.className = "answer";
  result.setAttribute("role", "status");
  result.textContent = answered.get(agent.id) || "";
  item.append(result);
  return item;
}

async function answer(agentId, fingerprint, body) {
  answered.set(agentId, "sending…");
  renderInbox();
  let status = 0;
  let reply = null;
  try {
    ({ status, body: reply } = await api.postJson(answerPath(agentId, fingerprint), body));
  } catch {
    reply = { message: "no answer from the gateway" };
  }
  answered.set(agentId, `${timeStamp(new Date())} ${describeAnswer(status, reply)}`);
  renderInbox();
}

function noteStates(ids) {
  for (const id of ids) {
    const agent = wall.agents.get(id);
    if (agent) notifier.note(agent);
    if (agent && !needsAttention(agent)) answered.delete(id);
  }
}

function setUpNotifications() {
  if (typeof Notification === "undefined") return;
  const button = document.getElementById("notify");
  button.hidden = Notification.permission !== "default";
  button.addEventListener("click", async () => {
    await Notification.requestPermission();
    button.hidden = Notification.permission !== "default";
  });
  setInterval(() => {
    const message = notifier.take();
    if (message && Notification.permission === "granted") {
      new Notification(message.title, { body: message.body, tag: message.tag });
    }
  }, NOTIFY_EVERY_MS);
}

function updateCommand() {
  const send = document.getElementById("command-send");
  send.textContent = `Send to ${selected.size} selected`;
  send.disabled = selected.size === 0;
}

const commandLine = document.getElementById("command-line");
const commandHistory = new CommandHistory();
recallWith(commandLine, commandHistory);

/**
 * Send the bar's line to the selected agents. The bar is cleared at once,
 * so a second Enter broadcasts nothing (ArrowUp brings the line back), and
 * each result says when it came.
 */
async function submitCommand(event) {
  event.preventDefault();
  const line = commandLine.value;
  if (!line || selected.size === 0) return;
  commandHistory.push(line);
  commandLine.value = "";
  const agents = [...selected];
  const results = await sendCommand(agents, line);
  const stamp = timeStamp(new Date());
  let sent = 0;
  for (const id of agents) {
    const result = results[id] || { ok: false, message: "no answer" };
    if (result.ok) sent += 1;
    const note = tiles.get(id)?.element.querySelector(".result");
    if (note) {
      note.hidden = false;
      note.dataset.ok = String(result.ok);
      note.textContent = `${stamp} ${line}: ${describeResult(result)}`;
    }
  }
  document.getElementById("command-summary").textContent = `${stamp} sent to ${sent} of ${agents.length}`;
}

/** The feed badge: our link to the gateway, in the words the terminal uses too. */
function showFeed(state, text, login = null) {
  feed.dataset.state = state;
  feed.textContent = text;
  const again = document.getElementById("login-again");
  again.hidden = login === null;
  if (login !== null) again.href = login;
  if (wall.feed(state)) render();
}

function listen() {
  const source = new EventSource("/api/events");
  const handle = (kind) => (event) => {
    const data = JSON.parse(event.data);
    if (kind === "snapshot") {
      wall.snapshot(data);
      for (const id of wall.agents.keys()) refreshScreen(id);
      noteStates(wall.agents.keys());
    } else {
      const ids = wall.apply(kind, data);
      for (const id of ids) if (kind === "activity") refreshScreen(id);
      if (kind !== "activity") noteStates(ids);
    }
    render();
  };
  for (const kind of ["snapshot", "agent", "activity", "agent_state"]) {
    source.addEventListener(kind, handle(kind));
  }
  source.addEventListener("open", () => showFeed("live", LINK_WORDS.live));
  source.addEventListener("error", async () => {
    // Down: every tile is only what was last heard. EventSource reconnects
    // by itself unless the answer was not a stream: then ask whether the
    // session is over (a 401 after a logout, an expiry, a restart).
    showFeed("offline", `${LINK_WORDS.offline} · tiles are stale`);
    if (source.readyState !== EventSource.CLOSED) return;
    const { state } = await api.session();
    if (state === "ended") {
      const kind = spectator ? "link" : "session";
      showFeed("ended", ENDED[kind], kind === "session" ? loginHref(location.pathname) : null);
    } else {
      setTimeout(listen, FEED_RETRY_MS);
    }
  });
}

async function whoAmI() {
  const me = await api.me();
  if (!me) return;
  canWrite = me.can_write;
  spectator = Boolean(me.spectator_of);
  document.getElementById("command").hidden = !canWrite;
  for (const { element } of tiles.values()) element.querySelector(".pick").hidden = !canWrite;
  if (me.login) {
    document.getElementById("who").textContent = `${me.name} (${me.role})`;
    const logout = document.getElementById("logout");
    logout.hidden = false;
    logout.addEventListener("click", async () => {
      // The body is ignored. With no answer at all the session may still be
      // live, so the page stays (the click rejects, as it always did).
      await api.postJson("/api/logout", {});
      location.assign("/login");
    });
  }
}

filterText.addEventListener("input", () => render(true));
document.getElementById("command").addEventListener("submit", submitCommand);
filterStatus.addEventListener("change", () => render(true));
// Touch pointers leave after the finger lifts, so a tap holds the order too.
grid.addEventListener("pointerenter", () => {
  pointerOnWall = true;
});
grid.addEventListener("pointerleave", () => {
  pointerOnWall = false;
  render();
});
// Ages in the inbox move on by themselves.
setInterval(renderInbox, 5000);
setUpNotifications();
whoAmI();
listen();
