import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Backoff, MAX_ATTEMPTS, afterClose } from "../src/backoff.js";

/** A random() that plays back the given values, then fails loudly. */
function sequence(...values) {
  return () => {
    assert.ok(values.length > 0, "random() called more often than expected");
    return values.shift();
  };
}

const take = (backoff, n) => Array.from({ length: n }, () => backoff.next());

describe("Backoff", () => {
  it("doubles the window from base up to cap", () => {
    const backoff = new Backoff({ base: 500, cap: 30_000, random: () => 0.5 });
    assert.deepEqual(take(backoff, 9), [250, 500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
    assert.equal(backoff.attempt, 9);
  });

  it("reports the ceiling of the next window", () => {
    const backoff = new Backoff({ base: 500, cap: 30_000, random: () => 0 });
    const ceilings = [];
    for (let i = 0; i < 8; i++) {
      ceilings.push(backoff.ceiling());
      backoff.next();
    }
    assert.deepEqual(ceilings, [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
  });

  it("stays at the cap (and finite) after a very long outage", () => {
    const backoff = new Backoff({ base: 500, cap: 30_000, random: () => 0.999_999 });
    const delays = take(backoff, 5000);
    assert.equal(backoff.ceiling(), 30_000);
    assert.equal(delays.at(-1), 29_999);
    assert.ok(delays.every((d) => Number.isInteger(d) && d >= 0 && d < 30_000));
  });

  it("uses full jitter: the whole window [0, ceiling) is reachable", () => {
    // Lowest and highest random values give 0 and just under the ceiling.
    const backoff = new Backoff({ base: 500, cap: 30_000, random: sequence(0, 0.999_999, 0, 0.999_999) });
    assert.deepEqual(take(backoff, 4), [0, 999, 0, 3999]);
  });

  it("keeps Math.random delays within bounds", () => {
    const backoff = new Backoff({ base: 100, cap: 1000 });
    for (let i = 0; i < 2000; i++) {
      const ceiling = backoff.ceiling();
      const delay = backoff.next();
      assert.ok(delay >= 0 && delay < ceiling, `delay ${delay} outside [0, ${ceiling})`);
    }
  });

  it("starts over from base after reset()", () => {
    const backoff = new Backoff({ base: 500, cap: 30_000, random: () => 0.5 });
    take(backoff, 6);
    assert.equal(backoff.next(), 15_000);
    backoff.reset();
    assert.equal(backoff.attempt, 0);
    assert.deepEqual(take(backoff, 3), [250, 500, 1000]);
  });

  it("handles a cap that is not a power-of-two multiple of base", () => {
    const backoff = new Backoff({ base: 300, cap: 1000, random: () => 0.5 });
    assert.deepEqual(take(backoff, 4), [150, 300, 500, 500]);
  });

  it("defaults to base 500 ms and cap 30 s", () => {
    const backoff = new Backoff({ random: () => 0.5 });
    assert.equal(backoff.next(), 250);
    take(backoff, 20);
    assert.equal(backoff.ceiling(), 30_000);
  });

  it("rejects nonsensical bounds", () => {
    assert.throws(() => new Backoff({ base: 0 }), RangeError);
    assert.throws(() => new Backoff({ base: 1000, cap: 500 }), RangeError);
    assert.throws(() => new Backoff({ base: Number.NaN }), RangeError);
  });
});

it("afterClose: policy closes and long outages give up", () => {
  assert.deepEqual(afterClose(1006, 0), { retry: true, reason: "" });
  assert.deepEqual(afterClose(1001, MAX_ATTEMPTS - 1), { retry: true, reason: "" });
  assert.equal(afterClose(1006, MAX_ATTEMPTS).retry, false);
  assert.match(afterClose(1006, MAX_ATTEMPTS).reason, /after 12 tries/);
  assert.equal(afterClose(1008, 0).retry, false);
});
