import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { TRANSITIONS } from "../src/agent-state.js";
import { Backoff, MAX_ATTEMPTS } from "../src/backoff.js";
import { Connection, NOTICE_MS, Phase, STABLE_AFTER_MS, access, agentBadge } from "../src/terminal-model.js";
import { ENDED } from "../src/vocabulary.js";

/**
 * A connection on a hand-stepped clock whose backoff always draws the middle
 * of its window (delays 250, 500, 1000, ... ms), so no test sleeps or guesses.
 */
function setup() {
  const clock = { now: 1_000 };
  const connection = new Connection({
    clock: () => clock.now,
    backoff: new Backoff({ base: 500, cap: 30_000, random: () => 0.5 }),
    path: "/agents/a b/",
  });
  const advance = (ms) => {
    clock.now += ms;
  };
  return { connection, advance };
}

/** A connection whose socket is open, with `frames` status frames applied. */
function open(...frames) {
  const fixture = setup();
  fixture.connection.opened();
  for (const frame of frames) fixture.connection.status({ columns: 80, rows: 24, ...frame });
  return fixture;
}

/** Our link to the gateway: [state, text]. */
const link = (connection) => {
  const { state, text } = connection.link();
  return [state, text];
};

/** The agent badge: [state, text, detail, stale]. */
const agent = (connection) => {
  const { state, text, detail, stale } = connection.agent();
  return [state, text, detail, stale];
};

describe("our socket (the link badge)", () => {
  it("starts connecting, with no retry button, nothing to count down, and the agent unknown", () => {
    const { connection } = setup();
    assert.equal(connection.phase, Phase.CONNECTING);
    assert.deepEqual(connection.link(), {
      state: "connecting",
      text: "gateway: connecting",
      title: "",
      retry: false,
      login: null,
    });
    assert.deepEqual(agent(connection), ["unknown", "unknown", "", true]);
    assert.equal(connection.ticking(), false);
  });

  it("once open, and before any status frame: live, and the agent connected", () => {
    const { connection } = open();
    assert.equal(connection.phase, Phase.OPEN);
    assert.deepEqual(link(connection), ["live", "gateway: live"]);
    assert.deepEqual(agent(connection), ["connected", "connected", "", false]);
    assert.equal(connection.ticking(), false);
  });

  it("a page that names no agent says so and never connects", () => {
    const { connection } = setup();
    connection.invalid();
    assert.deepEqual(link(connection), ["invalid", "not an agent page"]);
    assert.equal(connection.link().retry, false);
    assert.equal(connection.retryNow(), false);
  });

  it("a close waits out a backoff delay, counting down with a retry button", () => {
    const { connection, advance } = open();
    assert.deepEqual(connection.closed(1006), { retry: true, delay: 250 });
    assert.equal(connection.phase, Phase.WAITING);
    assert.deepEqual(connection.link(), {
      state: "offline",
      text: "gateway: offline · reconnecting in 1s",
      title: "closed (1006)",
      retry: true,
      login: null,
    });
    assert.equal(connection.ticking(), true);
    advance(250);
    assert.deepEqual(link(connection), ["offline", "gateway: offline · reconnecting in 0s"]);
  });

  it("while our socket is down the agent shows as last heard, stale, without a countdown", () => {
    const { connection } = open({ state: "reconnecting", message: "refused", retry_in: 5 });
    connection.closed(1006);
    assert.deepEqual(agent(connection), ["reconnecting", "reconnecting", "refused", true]);
    connection.connecting();
    assert.deepEqual(agent(connection), ["reconnecting", "reconnecting", "refused", true]);
    connection.opened();
    assert.deepEqual(agent(connection), ["connected", "connected", "", false]);
  });

  it("counts whole seconds up, down to zero", () => {
    const { connection, advance } = setup();
    for (let n = 0; n < 4; n++) connection.closed(1006); // delays 250, 500, 1000, 2000
    assert.deepEqual(link(connection), ["offline", "gateway: offline · reconnecting in 2s"]);
    advance(1_001);
    assert.deepEqual(link(connection), ["offline", "gateway: offline · reconnecting in 1s"]);
    advance(5_000);
    assert.deepEqual(link(connection), ["offline", "gateway: offline · reconnecting in 0s"]);
  });

  it("the delays grow with each failed try, and the reason names the close", () => {
    const { connection } = setup();
    const delays = [];
    for (let n = 0; n < 8; n++) {
      connection.connecting();
      delays.push(connection.closed(1011, "upstream broke").delay);
    }
    assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 8000, 15_000, 15_000]);
    assert.equal(connection.link().title, "closed (1011: upstream broke)");
  });

  it("1001 (the gateway going away) reconnects like any other close", () => {
    const { connection } = open();
    assert.equal(connection.closed(1001, "shutting down").retry, true);
    assert.equal(connection.phase, Phase.WAITING);
  });

  it("1008 stops retrying at once; the button stays until the page knows the session is over", () => {
    const { connection } = open();
    assert.deepEqual(connection.closed(1008, "input flood"), { retry: false });
    assert.equal(connection.phase, Phase.GAVE_UP);
    assert.deepEqual(connection.link(), {
      state: "offline",
      text: "gateway: offline: the gateway ended this session",
      title: "the gateway ended this session",
      retry: true,
      login: null,
    });
    assert.equal(connection.ticking(), false);
  });

  it("gives up after MAX_ATTEMPTS tries in a row without a healthy connection", () => {
    const { connection, advance } = setup();
    for (let n = 0; n < MAX_ATTEMPTS; n++) {
      connection.connecting();
      assert.equal(connection.closed(1006).retry, true, `try ${n}`);
      // Open but not for long: that is no healthy connection.
      connection.opened();
      advance(STABLE_AFTER_MS);
    }
    assert.deepEqual(connection.closed(1006), { retry: false });
    assert.deepEqual(link(connection), ["offline", `gateway: offline: no connection after ${MAX_ATTEMPTS} tries`]);
  });

  it("a connection that stayed up past STABLE_AFTER_MS starts over from short delays", () => {
    const { connection, advance } = setup();
    for (let n = 0; n < 5; n++) connection.closed(1006);
    connection.connecting();
    connection.opened();
    advance(STABLE_AFTER_MS + 1);
    assert.equal(connection.closed(1006).delay, 250);
  });

  it("a close before the socket ever opened does not count as healthy", () => {
    const { connection, advance } = setup();
    connection.closed(1006);
    advance(60_000); // a long wait, but never open
    connection.connecting();
    assert.equal(connection.closed(1006).delay, 500);
  });

  it("the close reason stays in the title while reconnecting, and goes once open", () => {
    const { connection } = open();
    connection.closed(1006);
    connection.connecting();
    assert.deepEqual(connection.link(), {
      state: "connecting",
      text: "gateway: connecting",
      title: "closed (1006)",
      retry: false,
      login: null,
    });
    connection.opened();
    assert.equal(connection.link().title, "");
  });
});

describe("a session that is over", () => {
  it("says log in again, with a link back to this page, and offers no retry", () => {
    const { connection } = open({ state: "connected" });
    connection.closed(1008, "session ended");
    connection.ended("session");
    assert.deepEqual(connection.link(), {
      state: "ended",
      text: "your session ended — log in again",
      title: "the gateway ended this session",
      retry: false,
      login: "/login?next=%2Fagents%2Fa%20b%2F",
    });
    assert.equal(connection.retryNow(), false);
    assert.equal(connection.ticking(), false);
    assert.deepEqual(agent(connection), ["connected", "connected", "", true]);
  });

  it("ends a backoff in progress: a 401 (a restarted gateway) never counts down again", () => {
    const { connection } = open();
    assert.equal(connection.closed(1001).retry, true);
    connection.ended("session");
    assert.equal(connection.link().retry, false);
    assert.equal(connection.ticking(), false);
    // A timer that fires anyway connects nothing and retries nothing.
    connection.connecting();
    assert.equal(connection.phase, Phase.ENDED);
    assert.deepEqual(connection.closed(1006), { retry: false });
    assert.equal(connection.phase, Phase.ENDED);
  });

  it("a spectator's link: ask for a new one; there is no login to offer", () => {
    const { connection } = open();
    connection.ended("link");
    assert.deepEqual(link(connection), ["ended", "this link was revoked or expired — ask for a new one"]);
    assert.equal(connection.link().login, null);
    assert.equal(connection.link().retry, false);
  });

  it("access taken away (a reload of the users) says so, without a retry", () => {
    const { connection } = open();
    connection.ended("access");
    assert.deepEqual(link(connection), ["ended", ENDED.access]);
    assert.equal(connection.link().login, null);
  });
});

describe("retry now", () => {
  it("does nothing while connecting or open", () => {
    const { connection } = setup();
    assert.equal(connection.retryNow(), false);
    connection.opened();
    assert.equal(connection.retryNow(), false);
  });

  it("while waiting, connects at once and keeps the backoff where it is", () => {
    const { connection } = setup();
    connection.closed(1006);
    connection.closed(1006);
    assert.equal(connection.retryNow(), true);
    connection.connecting();
    assert.equal(connection.closed(1006).delay, 1000);
  });

  it("after giving up, connects and starts the backoff over", () => {
    const { connection } = setup();
    for (let n = 0; n <= MAX_ATTEMPTS; n++) connection.closed(1006);
    assert.equal(connection.phase, Phase.GAVE_UP);
    assert.equal(connection.retryNow(), true);
    connection.connecting();
    assert.equal(connection.closed(1006).delay, 250);
  });
});

describe("status frames (the agent badge: the gateway's side)", () => {
  it("connected and connecting: the state's word, as on the wall", () => {
    assert.deepEqual(agent(open({ state: "connected" }).connection), ["connected", "connected", "", false]);
    assert.deepEqual(agent(open({ state: "connecting" }).connection), ["connecting", "connecting", "", false]);
  });

  it("reconnecting: the word, and the gateway's reason and countdown beside it", () => {
    const { connection, advance } = open({ state: "reconnecting", message: "connection refused", retry_in: 2.5 });
    assert.deepEqual(agent(connection), ["reconnecting", "reconnecting", "connection refused · retry in 3s", false]);
    assert.equal(connection.ticking(), true);
    advance(1_000);
    assert.equal(connection.agent().detail, "connection refused · retry in 2s");
    advance(1_500);
    // The countdown is over: it stays at 0s and the ticking stops.
    assert.equal(connection.agent().detail, "connection refused · retry in 0s");
    assert.equal(connection.ticking(), false);
  });

  it("reconnecting without a reason or a delay", () => {
    const { connection } = open({ state: "reconnecting" });
    assert.deepEqual(agent(connection), ["reconnecting", "reconnecting", "", false]);
    assert.equal(connection.ticking(), false);
  });

  it("no terminal: the state, and the owner's reason when it gives one", () => {
    assert.deepEqual(agent(open({ state: "stopped" }).connection), ["stopped", "stopped", "", false]);
    assert.deepEqual(agent(open({ state: "conflict", message: "claimed by a and b" }).connection), [
      "conflict",
      "conflict",
      "claimed by a and b",
      false,
    ]);
  });

  it("a state this bundle does not know shows as itself, never as a property", () => {
    assert.deepEqual(agent(open({ state: "paused", message: "by olga" }).connection), [
      "paused",
      "paused",
      "by olga",
      false,
    ]);
    assert.equal(open({ state: "constructor" }).connection.agent().text, "constructor");
    assert.equal(agentBadge({ state: "toString" }).text, "toString");
  });

  it("a retry delay only counts for reconnecting", () => {
    const { connection } = open({ state: "stopped", retry_in: 5 });
    assert.deepEqual(agent(connection), ["stopped", "stopped", "", false]);
    assert.equal(connection.ticking(), false);
  });

  it("every allowed transition shows the new state alone (the old one's countdown is gone)", () => {
    const earlier = { state: "reconnecting", message: "refused", retry_in: 9 };
    for (const [from, tos] of Object.entries(TRANSITIONS)) {
      for (const to of [from, ...tos]) {
        const before = from === "reconnecting" ? earlier : { state: from };
        const moved = open(before, { state: to }).connection;
        assert.deepEqual(agent(moved), agent(open({ state: to }).connection), `${from} -> ${to}`);
        assert.equal(moved.ticking(), false, `${from} -> ${to}`);
      }
    }
  });
});

describe("notices (about this viewer)", () => {
  it("show for NOTICE_MS beside the badges, then fade", () => {
    const { connection, advance } = open({ state: "stopped" });
    connection.notice("read-only: input refused");
    assert.equal(connection.noticeText(), "read-only: input refused");
    assert.deepEqual(agent(connection), ["stopped", "stopped", "", false]);
    assert.equal(connection.ticking(), true);
    advance(NOTICE_MS - 1);
    assert.equal(connection.noticeText(), "read-only: input refused");
    advance(1);
    assert.equal(connection.noticeText(), "");
    assert.equal(connection.ticking(), false);
  });

  it("a newer notice replaces the older and gets its own NOTICE_MS", () => {
    const { connection, advance } = open();
    connection.notice("first");
    advance(NOTICE_MS - 100);
    connection.notice("second");
    advance(200);
    assert.equal(connection.noticeText(), "second");
  });

  it("go with the socket", () => {
    const { connection } = open();
    connection.notice("input flood");
    connection.closed(1006);
    connection.connecting();
    connection.opened();
    assert.equal(connection.noticeText(), "");
  });
});

describe("access (from /api/me)", () => {
  it("before /api/me answers, or if it cannot: nothing may be typed or offered", () => {
    assert.deepEqual(access(null), {
      canWrite: false,
      canShare: false,
      readOnly: true,
      fit: false,
      share: false,
      command: false,
      keys: false,
    });
  });

  it("an operator types, fits, shares, sends commands and gets the key row; no read-only badge", () => {
    assert.deepEqual(access({ name: "olga", role: "operator", can_write: true, can_share: true }), {
      canWrite: true,
      canShare: true,
      readOnly: false,
      fit: true,
      share: true,
      command: true,
      keys: true,
    });
  });

  it("a viewer or a spectator watches: read-only badge, no controls, no key row", () => {
    const spectator = access({ name: "spectator:7", role: "viewer", can_write: false, can_share: false });
    assert.equal(spectator.readOnly, true);
    const offered = [spectator.canWrite, spectator.fit, spectator.share, spectator.command, spectator.keys];
    assert.deepEqual(offered, [false, false, false, false, false]);
  });

  it("writing without sharing (open mode: no login, so no links)", () => {
    const open = access({ can_write: true, can_share: false });
    assert.deepEqual([open.readOnly, open.command, open.share], [false, true, false]);
  });
});
