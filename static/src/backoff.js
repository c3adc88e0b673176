/**
 * Capped exponential backoff with full jitter.
 *
 * Delay n (0-based) is uniform in [0, min(cap, base * 2^n)). Full jitter
 * rather than "exponential plus a little noise" because many browsers lose
 * the gateway at the same moment (a restart, a deploy): spreading their
 * retries over the whole window keeps them from coming back in lockstep
 * (see the AWS Architecture Blog, "Exponential Backoff And Jitter").
 *
 * Pure: no timers, no clock. Randomness is injected so tests can pin it.
 */
export class Backoff {
  #base;
  #cap;
  #random;
  #attempt = 0;

  /**
   * @param {object} [options]
   * @param {number} [options.base=500] first window, in ms
   * @param {number} [options.cap=30000] largest window, in ms
   * @param {() => number} [options.random=Math.random] uniform in [0, 1)
   */
  constructor({ base = 500, cap = 30_000, random = Math.random } = {}) {
    if (!(base > 0) || !(cap >= base)) {
      throw new RangeError(`Backoff needs 0 < base <= cap, got base=${base} cap=${cap}`);
    }
    this.#base = base;
    this.#cap = cap;
    this.#random = random;
  }

  /** How many delays were handed out since the last reset. */
  get attempt() {
    return this.#attempt;
  }

  /** The upper bound of the window the next delay is drawn from, in ms. */
  ceiling() {
    // Once base * 2^n passes the cap the exponent no longer matters; stopping
    // there keeps 2 ** n from growing towards Infinity on a long outage.
    const maxExponent = Math.ceil(Math.log2(this.#cap / this.#base));
    return Math.min(this.#cap, this.#base * 2 ** Math.min(this.#attempt, maxExponent));
  }

  /** The next delay in whole ms, and advance. */
  next() {
    const delay = Math.floor(this.#random() * this.ceiling());
    this.#attempt += 1;
    return delay;
  }

  /** Start over from the base window (after a connection proved healthy). */
  reset() {
    this.#attempt = 0;
  }
}

// Reconnecting this many times in a row without a healthy connection is
// enough: the page says it gave up and offers a button instead of retrying
// forever in the background.
export const MAX_ATTEMPTS = 12;

/**
 * Whether a closed terminal socket should be retried.
 *
 * 1008 is the gateway ending this viewer on purpose (logout, expiry, a
 * revoked spectator link, an input flood): retrying would only fail again,
 * or worse, succeed with credentials the user meant to give up.
 *
 * @param {number} code the WebSocket close code
 * @param {number} attempt reconnects already made since the last healthy connection
 * @returns {{retry: boolean, reason: string}}
 */
export function afterClose(code, attempt) {
  if (code === 1008) return { retry: false, reason: "the gateway ended this session" };
  if (attempt >= MAX_ATTEMPTS) return { retry: false, reason: `no connection after ${attempt} tries` };
  return { retry: true, reason: "" };
}
