/**
 * The terminal page's connection, without the DOM: what the status badge
 * says and when to reconnect. terminal.js feeds it what the socket and the
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
 * and "invalid" is a page that names no agent. While open, the badge shows
 * the gateway's side instead: its last status frame ('S', an agent state
 * from agent-state.js), or for NOTICE_MS a notice ('N') about this viewer.
 */
import { NO_TERMINAL } from "./agent-state.js";
import { Backoff, afterClose } from "./backoff.js";

export const Phase = Object.freeze({
  CONNECTING: "connecting",
  OPEN: "open",
  WAITING: "waiting",
  GAVE_UP: "gaveup",
  INVALID: "invalid",
});

// A connection that stayed up this long was healthy: the next outage starts
// from short delays again instead of where the last one left off.
export const STABLE_AFTER_MS = 10_000;
// How long a viewer notice (e.g. refused input) stays in the badge.
export const NOTICE_MS = 4_000;

const secondsUntil = (at, now) => Math.max(0, Math.ceil((at - now) / 1000));

// No terminal, and the gateway may say why: one wording for all such states.
const noTerminal = (status) => ["down", `agent ${status.state}${status.message ? `: ${status.message}` : ""}`];

/**
 * [badge state, text] for the gateway's status frame, per agent state;
 * `retryIn` is whole seconds to the gateway's next try, or null. The badge
 * states are terminal.css's `.status[data-state]` values. The states with
 * no terminal come from the generated NO_TERMINAL set and share a wording,
 * so one added there shows without a change here; any other new state
 * fails test/agent-state.test.js until it has an entry.
 */
export const UPSTREAM_BADGES = Object.freeze({
  connecting: () => ["connecting", "agent connecting"],
  connected: () => ["connected", "connected"],
  reconnecting: (status, retryIn) => [
    "down",
    `agent unreachable: ${status.message || "reconnecting"}${retryIn === null ? "" : ` (retry in ${retryIn}s)`}`,
  ],
  ...Object.fromEntries([...NO_TERMINAL].map((state) => [state, noTerminal])),
});

function upstreamBadge(status, retryIn) {
  // Before the first status frame the gateway has nothing to add: connected.
  if (status === null) return UPSTREAM_BADGES.connected();
  const known = Object.prototype.hasOwnProperty.call(UPSTREAM_BADGES, status.state);
  // A state this bundle does not know (the gateway was upgraded under an
  // open page) still says something.
  return (known ? UPSTREAM_BADGES[status.state] : noTerminal)(status, retryIn);
}

/** Our socket's phase and what the gateway last said on it; see the top of this file. */
export class Connection {
  #clock;
  #backoff;
  #phase = Phase.CONNECTING;
  #retryAt = 0; // when we reconnect, while waiting (clock ms)
  #closeReason = ""; // why the last socket closed, until one opens
  #openedAt = null;
  #upstream = null; // the last status frame, while open
  #upstreamRetryAt = null; // when the gateway retries the agent, if it said
  #notice = null; // { text, until }

  /**
   * @param {object} [options]
   * @param {() => number} [options.clock] ms, monotonic (performance.now)
   * @param {Backoff} [options.backoff] the delays between our reconnects
   */
  constructor({ clock = () => performance.now(), backoff = new Backoff({ base: 500, cap: 30_000 }) } = {}) {
    this.#clock = clock;
    this.#backoff = backoff;
  }

  get phase() {
    return this.#phase;
  }

  /** The agent state of the gateway's last status frame on this socket, or null. */
  get upstreamState() {
    return this.#upstream?.state ?? null;
  }

  /** A new socket is being opened: what the last one was told no longer holds. */
  connecting() {
    this.#phase = Phase.CONNECTING;
    this.#upstream = null;
    this.#upstreamRetryAt = null;
    this.#notice = null;
  }

  opened() {
    this.#phase = Phase.OPEN;
    this.#openedAt = this.#clock();
    this.#closeReason = "";
  }

  /**
   * The socket closed. Resolves what next: `{retry: true, delay}` (ms to
   * wait before connecting again) or `{retry: false}` (gave up).
   */
  closed(code, reason = "") {
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

  /** What the badge shows: {state, text, title, retry (the button)}. */
  badge() {
    const now = this.#clock();
    const [state, text] = this.#describe(now);
    const retry = this.#phase === Phase.WAITING || this.#phase === Phase.GAVE_UP;
    return { state, text, title: this.#closeReason, retry };
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

  #describe(now) {
    switch (this.#phase) {
      case Phase.INVALID:
        return ["error", "not an agent page"];
      case Phase.CONNECTING:
        return ["connecting", "connecting"];
      case Phase.WAITING:
        return ["waiting", `reconnecting in ${secondsUntil(this.#retryAt, now)}s`];
      case Phase.GAVE_UP:
        return ["error", `disconnected: ${this.#closeReason}`];
      case Phase.OPEN:
        break;
    }
    // Notices concern this connection (e.g. refused input), so they only
    // cover the upstream state, never our own reconnect countdown.
    if (this.#noticeShown(now)) return ["notice", this.#notice.text];
    const retryIn = this.#upstreamRetryAt === null ? null : secondsUntil(this.#upstreamRetryAt, now);
    return upstreamBadge(this.#upstream, retryIn);
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
  return { canWrite, canShare, readOnly: !canWrite, fit: canWrite, share: canShare, command: canWrite };
}
