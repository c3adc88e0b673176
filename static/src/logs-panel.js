/**
 * The logs panel: a container's log from GET /api/agents/{id}/logs, with
 * colours, a filter, follow / pause-at-bottom, and virtual scrolling so a
 * hundred thousand lines stay smooth (only the rows in view are in the DOM).
 *
 * Lines arriving from the stream are batched: at most one redraw per
 * BATCH_MS however fast the container writes. EventSource resumes with
 * Last-Event-ID by itself after a drop; the buffer also ignores any id it
 * already has, so nothing shows twice.
 */
import { ansiSpans } from "./ansi-dom.js";
import { LogBuffer } from "./log-buffer.js";

const BATCH_MS = 100;
const ROW_PX = 16; // must match .logs-row's height in terminal.css
const OVERSCAN = 20;
const TAIL = 1000;

export class LogsPanel {
  constructor(agentId, element) {
    this.agentId = agentId;
    this.element = element;
    this.buffer = new LogBuffer();
    this.view = element.querySelector(".logs-view");
    this.spacer = element.querySelector(".logs-spacer");
    this.rows = element.querySelector(".logs-rows");
    this.note = element.querySelector(".logs-note");
    this.followButton = element.querySelector(".logs-follow");
    this.filterInput = element.querySelector(".logs-filter");
    this.streamSelect = element.querySelector(".logs-stream");
    this.following = true;
    this.pending = [];
    this.flushTimer = 0;
    this.shown = [];
    this.source = null;
    this.state = "idle";

    this.view.addEventListener("scroll", () => {
      const atBottom = this.view.scrollTop + this.view.clientHeight >= this.view.scrollHeight - ROW_PX;
      if (atBottom !== this.following) this.setFollowing(atBottom);
      this.draw();
    });
    this.followButton.addEventListener("click", () => this.setFollowing(!this.following));
    this.filterInput.addEventListener("input", () => this.refilter());
    this.streamSelect.addEventListener("change", () => this.refilter());
  }

  toggle() {
    this.element.hidden = !this.element.hidden;
    if (!this.element.hidden) {
      if (!this.source) this.connect();
      this.refilter();
    }
  }

  connect() {
    const source = new EventSource(`/api/agents/${encodeURIComponent(this.agentId)}/logs?tail=${TAIL}`);
    this.source = source;
    source.addEventListener("log", (event) => {
      this.pending.push([event.lastEventId, JSON.parse(event.data)]);
      this.schedule();
    });
    source.addEventListener("reset", () => {
      // What follows does not continue what we show: start over.
      this.pending = [];
      this.buffer.reset();
      this.schedule();
    });
    source.addEventListener("open", () => this.setState("live"));
    source.addEventListener("error", () => {
      // Closed for good means the answer was not a stream: no logs here
      // (not a container) or no longer allowed; otherwise it reconnects.
      this.setState(source.readyState === EventSource.CLOSED ? "unavailable" : "reconnecting");
    });
  }

  setState(state) {
    this.state = state;
    this.element.dataset.state = state;
    this.updateNote();
  }

  setFollowing(following) {
    this.following = following;
    this.followButton.setAttribute("aria-pressed", String(following));
    this.followButton.textContent = following ? "Following" : "Paused";
    if (following) this.scrollToEnd();
  }

  schedule() {
    if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), BATCH_MS);
  }

  flush() {
    this.flushTimer = 0;
    const batch = this.pending;
    this.pending = [];
    for (const [id, data] of batch) this.buffer.add(id, data);
    this.refilter();
  }

  refilter() {
    this.shown = this.buffer.filter({ text: this.filterInput.value, stream: this.streamSelect.value });
    this.spacer.style.height = `${this.shown.length * ROW_PX}px`;
    this.updateNote();
    if (this.following) this.scrollToEnd();
    this.draw();
  }

  updateNote() {
    const parts = [];
    if (this.state === "unavailable") parts.push("no container logs for this agent");
    else if (this.state === "reconnecting") parts.push("reconnecting…");
    parts.push(`${this.shown.length} lines`);
    if (this.buffer.dropped) parts.push(`${this.buffer.dropped} older dropped`);
    this.note.textContent = parts.join(" · ");
  }

  scrollToEnd() {
    this.view.scrollTop = this.view.scrollHeight;
  }

  draw() {
    if (this.element.hidden) return;
    const first = Math.max(0, Math.floor(this.view.scrollTop / ROW_PX) - OVERSCAN);
    const count = Math.ceil(this.view.clientHeight / ROW_PX) + 2 * OVERSCAN;
    const slice = this.shown.slice(first, first + count);
    this.rows.style.transform = `translateY(${first * ROW_PX}px)`;
    this.rows.replaceChildren(...slice.map((entry) => row(entry)));
  }
}

function row(entry) {
  const element = document.createElement("div");
  element.className = "logs-row";
  element.dataset.stream = entry.stream;
  if (entry.level) element.dataset.level = entry.level;
  element.dataset.id = entry.id;
  const time = document.createElement("time");
  time.textContent = entry.ts ? entry.ts.slice(11, 23) : "";
  time.title = entry.ts;
  const text = document.createElement("span");
  text.className = "logs-text";
  text.append(...ansiSpans(entry.line));
  element.append(time, text);
  return element;
}
