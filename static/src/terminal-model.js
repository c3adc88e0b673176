/**
 * The terminal page's connection, without the DOM: what the agent badge and
 * the link badge say, and when to reconnect. terminal.js feeds it what the socket and the
 * gateway say, paints badge(), and runs the timers: the model owns none and
 * reads the time only from the clock it is given, so tests step time by hand.
 *
 * Our own socket goes through these phases:
 *
 *   connecting ──open──► open ──close──┐
 *        │                             ├──► waiting ──delay over, or retry now──► connecting
 *        └──────────close──────────────┤
 *                                      └──► gaveup ───retry now─────────────────► connecting
 *                          (on 1008, or after MAX_ATTEMPTS)   (the backoff starts over)
 *
 *   any ──ended(kind)──► ended   (the session is over: 401, or closed for good;
 *                                 nothing to retry, only "log in again" or a new link)
 *
 * and "invalid" is a page that names no agent. Two badges, two vocabularies
 * (vocabulary.js): link() is our socket to the gateway; agent() is what the
 * gateway last said of the agent ('S' frames, an agent state, in the words
 * the wall uses too), marked stale while our socket is not open. A notice
 * ('N', about this viewer) shows for NOTICE_MS beside them.
 */
import { ENDED, LINK_WORDS, loginHref, stateWord } from "./vocabulary.js";
import { Backoff, afterClose } from "./backoff.js";

export const Phase = Object.freeze({
  CONNECTING: "connecting",
  OPEN: "open",
  WAITING: "waiting",
  GAVE_UP: "gaveup",
  ENDED: "ended",
  INVALID: "invalid",
});

// A connection that stayed up this long was healthy: the next outage starts
// from short delays again instead of where the last one left off.
export const STABLE_AFTER_MS = 10_000;
// How long a viewer notice (e.g. refused input) stays in the badge.
export const NOTICE_MS = 4_000;

const secondsUntil = (at, now) => Math.max(0, Math.ceil((at - now) / 1000));

/**
 * The agent badge for the gateway's last status frame: {state, text, detail}.
 * `text` is the agent state's one word (as on the wall); `detail` the
 * gateway's reason and, while it retries, its countdown. `retryIn` is whole
 * seconds to the gateway's next try, or null.
 */
export function agentBadge(status, retryIn = null) {
  // Before the first status frame the gateway has nothing to add: connected.
  const state = status === null ? "connected" : String(status.state);
  const parts = [];
  if (status?.message) parts.push(status.message);
  if (state === "reconnecting" && retryIn !== null) parts.push(`retry in ${retryIn}s`);
  return { state, text: stateWord(state), detail: parts.join(" · ") };
}

/** Our socket's phase and what the gateway last said on it; see the top of this file. */
export class Connection {
  #clock;
  #backoff;
  #phase = Phase.CONNECTING;
  #retryAt = 0; // when we reconnect, while waiting (clock ms)
  #closeReason = ""; // why the last socket closed, until one opens
  #openedAt = null;
  #upstream = null; // the last status frame (kept, stale, while our socket is down)
  #heard = false; // whether any socket of this page was ever open
  #upstreamRetryAt = null; // when the gateway retries the agent, if it said
  #notice = null; // { text, until }
  #ended = null; // a key of ENDED, once the session is over
  #path;

  /**
   * @param {object} [options]
   * @param {() => number} [options.clock] ms, monotonic (performance.now)
   * @param {Backoff} [options.backoff] the delays between our reconnects
   * @param {string} [options.path] this page's path, to come back to after logging in
   */
  constructor({
    clock = () => performance.now(),
    backoff = new Backoff({ base: 500, cap: 30_000 }),
    path = "/",
  } = {}) {
    this.#clock = clock;
    this.#backoff = backoff;
    this.#path = path;
  }

  get phase() {
    return this.#phase;
  }

  /** The agent state of the gateway's last status frame on this socket, or null. */
  get upstreamState() {
    return this.#upstream?.state ?? null;
  }

  /**
   * A new socket is being opened. What the last one was told stays, as
   * stale, until the gateway says again; its countdown and notice go.
   */
  connecting() {
    if (this.#phase === Phase.ENDED) return;
    this.#phase = Phase.CONNECTING;
    this.#upstreamRetryAt = null;
    this.#notice = null;
  }

  opened() {
    this.#phase = Phase.OPEN;
    this.#openedAt = this.#clock();
    this.#closeReason = "";
    // A fresh socket: until its first status frame the agent is connected.
    this.#upstream = null;
    this.#heard = true;
  }

  /**
   * The session is over (`kind`: "session", "link" or "access", see
   * ENDED): nothing is retried or offered but what can work.
   */
  ended(kind) {
    this.#phase = Phase.ENDED;
    this.#ended = kind;
    this.#upstreamRetryAt = null;
    this.#notice = null;
  }

  /**
   * The socket closed. Resolves what next: `{retry: true, delay}` (ms to
   * wait before connecting again) or `{retry: false}` (gave up).
   */
  closed(code, reason = "") {
    if (this.#phase === Phase.ENDED) return { retry: false };
    const now = this.#clock();
    if (this.#openedAt !== null && now - this.#openedAt > STABLE_AFTER_MS) this.#backoff.reset();
    this.#openedAt = null;
    const verdict = afterClose(code, this.#backoff.attempt);
    this.#closeReason = verdict.reason || `closed (${code}${reason ? `: ${reason}` : ""})`;
    if (!verdict.retry) {
      this.#phase = Phase.GAVE_UP;
      return { retry: false };
    }
    // 1001 (gateway shutting down) reconnects too: a restarted or
    // replacement gateway is usually back within the backoff.
    const delay = this.#backoff.next();
    this.#phase = Phase.WAITING;
    this.#retryAt = now + delay;
    return { retry: true, delay };
  }

  /** A status frame: {state, message?, retry_in? (s), columns, rows}. */
  status(payload) {
    this.#upstream = payload;
    this.#upstreamRetryAt =
      payload.state === "reconnecting" && Number.isFinite(payload.retry_in)
        ? this.#clock() + payload.retry_in * 1000
        : null;
  }

  /** A notice frame's text, shown for NOTICE_MS. */
  notice(text) {
    this.#notice = { text, until: this.#clock() + NOTICE_MS };
  }

  /**
   * "Retry now" (the button, or the browser back online): whether to
   * connect at once. Only while waiting or after giving up; giving up
   * started over, so the backoff does too.
   */
  retryNow() {
    if (this.#phase === Phase.GAVE_UP) this.#backoff.reset();
    return this.#phase === Phase.WAITING || this.#phase === Phase.GAVE_UP;
  }

  /** The page names no agent: there is nothing to connect to. */
  invalid() {
    this.#phase = Phase.INVALID;
  }

  /**
   * Our link to the gateway: {state, text, title, retry (the button),
   * login (a link to log in again, or null)}. `state` is one of
   * connecting, live, offline, ended, invalid (terminal.css colours them).
   */
  link() {
    const now = this.#clock();
    const retry = this.#phase === Phase.WAITING || this.#phase === Phase.GAVE_UP;
    const base = { title: this.#closeReason, retry, login: null };
    switch (this.#phase) {
      case Phase.INVALID:
        return { ...base, state: "invalid", text: "not an agent page" };
      case Phase.CONNECTING:
        return { ...base, state: "connecting", text: LINK_WORDS.connecting };
      case Phase.OPEN:
        return { ...base, state: "live", text: LINK_WORDS.live };
      case Phase.WAITING:
        return {
          ...base,
          state: "offline",
          text: `${LINK_WORDS.offline} · reconnecting in ${secondsUntil(this.#retryAt, now)}s`,
        };
      case Phase.GAVE_UP:
        return { ...base, state: "offline", text: `${LINK_WORDS.offline}: ${this.#closeReason}` };
      case Phase.ENDED:
        return {
          ...base,
          state: "ended",
          text: ENDED[this.#ended] ?? ENDED.session,
          login: this.#ended === "session" ? loginHref(this.#path) : null,
        };
    }
    return { ...base, state: "offline", text: LINK_WORDS.offline };
  }

  /**
   * What the gateway last said of the agent: {state, text, detail, stale}.
   * Stale while our socket is not open (it may have changed since); state
   * "unknown" before any socket of this page was ever open.
   */
  agent() {
    const stale = this.#phase !== Phase.OPEN;
    if (!this.#heard) return { state: "unknown", text: "unknown", detail: "", stale: true };
    const now = this.#clock();
    const retryIn =
      !stale && this.#upstreamRetryAt !== null ? secondsUntil(this.#upstreamRetryAt, now) : null;
    return { ...agentBadge(this.#upstream, retryIn), stale };
  }

  /** The notice about this viewer to show now, or "". */
  noticeText() {
    return this.#noticeShown(this.#clock()) ? this.#notice.text : "";
  }

  /** Whether the badge changes with time alone (a countdown, a notice that fades): then re-render. */
  ticking() {
    const now = this.#clock();
    if (this.#phase === Phase.WAITING) return true;
    if (this.#phase !== Phase.OPEN) return false;
    return (this.#upstreamRetryAt !== null && this.#upstreamRetryAt > now) || this.#noticeShown(now);
  }

  #noticeShown(now) {
    return this.#notice !== null && this.#notice.until > now;
  }
}

/**
 * What this viewer may do and which controls the page offers, from /api/me.
 * `access(null)` (no answer yet, or none coming) may do nothing: keystrokes
 * are not sent. `readOnly` is the read-only badge.
 */
export function access(me) {
  const canWrite = Boolean(me?.can_write);
  const canShare = Boolean(me?.can_share);
  return { canWrite, canShare, readOnly: !canWrite, fit: canWrite, share: canShare, command: canWrite, keys: canWrite };
}
